#!/usr/bin/env bash
# make test's pytest. The slowest parts mostly wait on controllers and clocks,
# each with API servers of its own: the Kthena parity harness (tests/kthena,
# ~5 min), the operations tests (leader election, drains, a retry rate
# measured over minutes: ~10 min) and the operator's integration tests (~5
# min). Each runs as a pytest process of its own beside the rest of the suite,
# so the waits overlap (serially the suite took ~26 min, under 2 cores' load).
# The docs as written (tests/docs, ~1-1.5 min of npm, asc and cargo) run beside
# too, on the cores those waits leave idle. Every part must
# pass; their reports follow the main run's. Arguments go to every part (with
# arguments, a part where they select no test passes).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BESIDE=(tests/kthena tests/integration/test_operations.py tests/integration/test_operator.py
        tests/docs)

dir=$(mktemp -d -t podplug-test-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

ignore=()
for i in "${!BESIDE[@]}"; do
    "$PY" -m pytest -p no:cacheprovider "${BESIDE[$i]}" "$@" >"$dir/$i.log" 2>&1 &
    pids+=($!)
    ignore+=(--ignore="${BESIDE[$i]}")
done
echo "${BESIDE[*]} run beside this run (their reports follow it)"
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
