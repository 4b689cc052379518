#!/usr/bin/env bash
# make test's pytest. The slowest parts mostly wait on controllers and clocks,
# each with API servers of its own: the Kthena parity harness (tests/kthena,
# ~5 min), the operations tests (leader election, drains, a retry rate
# measured over minutes: ~5 min) and the operator's integration tests (~5
# min); the SDK and shipped-plugin builds and the docs as written (tests/sdk,
# tests/plugins, tests/docs: ~7 min) mostly compile. Each runs as a pytest
# process of its own beside the rest of the suite, so the waits overlap the
# compiles (serially the suite took ~26 min; with only the first three beside
# it ~16 min, the last 11 of them one process on one core). Every part must
# pass; their reports follow the main run's. Arguments go to every part (with
# arguments, a part where they select no test passes).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# One entry a process; an entry may name several paths.
BESIDE=(tests/kthena tests/integration/test_operations.py tests/integration/test_operator.py
        "tests/sdk tests/plugins tests/docs")

dir=$(mktemp -d -t podplug-test-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

ignore=()
for i in "${!BESIDE[@]}"; do
    read -ra paths <<<"${BESIDE[$i]}"
    "$PY" -m pytest -p no:cacheprovider "${paths[@]}" "$@" >"$dir/$i.log" 2>&1 &
    pids+=($!)
    for path in "${paths[@]}"; do ignore+=(--ignore="$path"); done
done
echo "beside this run, each its own process (reports follow): $(printf '[%s] ' "${BESIDE[@]}")"
"$PY" -m pytest "${ignore[@]}" "$@"
status=$?
failed=()
[ "$status" -eq 0 ] || failed+=("the suite (exit $status)")

for i in "${!BESIDE[@]}"; do
    wait "${pids[$i]}"
    code=$?
    echo
    echo "==================== ${BESIDE[$i]} ===================="
    cat "$dir/$i.log"
    # 5 is "no tests collected": fine when arguments (-k ...) selected none there
    if [ "$code" -ne 0 ] && ! { [ "$code" -eq 5 ] && [ "$#" -gt 0 ]; }; then
        failed+=("${BESIDE[$i]} (exit $code)")
    fi
done
pids=()
if [ "${#failed[@]}" -ne 0 ]; then
    echo "make test: failed: ${failed[*]}" >&2
    exit 1
fi
