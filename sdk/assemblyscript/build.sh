#!/usr/bin/env bash
# Builds the AssemblyScript SDK's wasm artefacts into <repo>/build/wasm/:
#   conformance-as.wasm   the conformance plugin (sdk/testdata/README.md)
#   as-sdk-tests.wasm     the SDK's own unit-test module (tests/sdk/test_as_sdk.py)
# Runs `npm ci` only when node_modules is missing or older than package-lock.json,
# and recompiles an artefact only when a source it depends on changed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${PODPLUG_WASM_DIR:-$ROOT/build/wasm}"
cd "$HERE"

say() { printf 'sdk/assemblyscript: %s\n' "$*"; }

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci"
  # --prefer-offline: reuse the npm cache when it has the pinned tarballs.
  nice npm ci --prefer-offline --no-audit --no-fund --loglevel=error
fi
mkdir -p "$OUT"

ASC=(nice node "$HERE/node_modules/assemblyscript/bin/asc.js" --config "$HERE/asconfig.json")
SDK_SOURCES=(assembly/*.ts asconfig.json package-lock.json build.sh scripts/metadata.js testing/msgpack.js)

# build NAME ENTRY [METADATA_JSON]: compile ENTRY to $OUT/NAME.wasm when stale,
# then append the podplug.metadata custom section when a metadata file is given.
build() {
  local name="$1" entry="$2" meta="${3:-}" out="$OUT/$1.wasm" dep stale=0
  if [[ ! -f "$out" ]]; then
    stale=1
  else
    for dep in "${SDK_SOURCES[@]}" "$(dirname "$entry")"/*.ts ${meta:+"$meta"}; do
      if [[ "$dep" -nt "$out" ]]; then stale=1; break; fi
    done
  fi
  if (( ! stale )); then
    say "$name.wasm is up to date"
    return
  fi
  say "compiling $entry -> ${out#"$ROOT"/}"
  local start=$SECONDS
  "${ASC[@]}" "$entry" --outFile "$out.tmp"
  if [[ -n "$meta" ]]; then
    node scripts/metadata.js "$out.tmp" "$meta"
  fi
  mv "$out.tmp" "$out"
  say "built ${out#"$ROOT"/} ($(stat -c %s "$out") bytes, $((SECONDS - start)) s)"
}

build conformance-as conformance/index.ts conformance/podplug.json
build as-sdk-tests tests/index.ts
