#!/usr/bin/env bash
# make test's pytest: the Kthena parity harness (tests/kthena, ~10 min, its own
# API server, mostly waiting on controllers) runs as a second pytest process
# beside the rest of the suite, so the two waits overlap. Both must pass; the
# harness's report is printed after the main run's. Arguments go to both.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
log=$(mktemp -t podplug-kthena-XXXXXX.log)
trap 'rm -f "$log"' EXIT

"$PY" -m pytest -p no:cacheprovider tests/kthena "$@" >"$log" 2>&1 &
kthena=$!
trap 'kill "$kthena" 2>/dev/null; rm -f "$log"' EXIT INT TERM

echo "tests/kthena runs beside this run (its report follows it)"
"$PY" -m pytest --ignore=tests/kthena "$@"
main=$?

wait "$kthena"
harness=$?
echo
echo "==================== tests/kthena (Kthena parity) ===================="
cat "$log"
if [ "$main" -ne 0 ] || [ "$harness" -ne 0 ]; then
    echo "make test: failed (the suite: exit $main, tests/kthena: exit $harness)" >&2
    exit 1
fi
