#!/usr/bin/env bash
# Builds the AssemblyScript plugins of plugins-wasm/ with the assemblyscript
# version pinned in each plugin's package-lock.json and writes
# plugins-wasm/NAME/NAME.wasm (the file the operator loads).
#
#   plugins-wasm/build-as.sh           build; rewrites NAME.wasm only when its bytes change
#   plugins-wasm/build-as.sh --check   build elsewhere and fail, naming the plugin, when a
#                                      committed NAME.wasm differs from what the sources give
#   plugins-wasm/build-as.sh NAME...   only these plugins
#
# Steps per plugin (from its folder, so only relative paths reach the module):
# `npm ci` when node_modules is missing or older than package-lock.json;
# asc with the plugin's asconfig.json (the SDK's flags: stub runtime, -O3);
# `wasm-opt -Oz` from the binaryen package pinned with assemblyscript (a
# system wasm-opt would make the bytes depend on the machine); the SDK's
# metadata step (podplug.json -> the podplug.metadata custom section).
#
# Fast when nothing changed: build/plugins-as/NAME.stamp records the digest of
# every input (sources, the SDK, lock file, tool versions) and of the module it
# gave, so an unchanged plugin is neither rebuilt nor, with --check, recompiled.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGINS_DIR=$ROOT/plugins-wasm
SDK=$ROOT/sdk/assemblyscript
WORK=$ROOT/build/plugins-as
ALL=(amd-rocm-defaults intel-gaudi-defaults demo-pod-tweaks entry-address-file)

CHECK=0
SELECTED=()
for arg in "$@"; do
    case $arg in
        --check) CHECK=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) echo "usage: $0 [--check] [NAME...]" >&2; exit 2 ;;
        *)
            [[ " ${ALL[*]} " == *" $arg "* ]] || { echo "build-as.sh: unknown plugin $arg (have: ${ALL[*]})" >&2; exit 2; }
            SELECTED+=("$arg") ;;
    esac
done
[[ ${#SELECTED[@]} -gt 0 ]] || SELECTED=("${ALL[@]}")

command -v npm >/dev/null || { echo "build-as.sh: npm not found (make deps)" >&2; exit 1; }
NICE=(nice -n 10)
step() { printf '==> %s\n' "$*"; }
mkdir -p "$WORK"

# The inputs of one plugin's module, as one digest: its sources, the SDK's
# AssemblyScript sources and metadata step, this script, node's version.
inputs_digest() {
    local dir=$1
    {
        (cd "$dir" && sha256sum assembly/*.ts asconfig.json podplug.json package-lock.json)
        (cd "$SDK" && sha256sum index.ts assembly/*.ts scripts/metadata.js testing/msgpack.js package.json)
        sha256sum "$0" | cut -d' ' -f1
        node --version
        cat "$dir/node_modules/assemblyscript/package.json" "$dir/node_modules/binaryen/package.json" 2>/dev/null \
            | grep -m2 '"version"' || true
    } | sha256sum | cut -d' ' -f1
}

# compile NAME OUT: the module of plugin NAME written to OUT.
compile() {
    local name=$1 out=$2 dir=$PLUGINS_DIR/$1
    (
        cd "$dir"
        "${NICE[@]}" node node_modules/assemblyscript/bin/asc.js assembly/index.ts \
            --config asconfig.json --outFile "$out"
        # asc's default feature set; wasm-opt must not use more than the module does.
        "${NICE[@]}" node_modules/.bin/wasm-opt -Oz --enable-mutable-globals --enable-sign-ext \
            --enable-nontrapping-float-to-int --enable-bulk-memory --enable-bulk-memory-opt \
            "$out" -o "$out"
        node node_modules/@podplug/sdk/scripts/metadata.js "$out" podplug.json
    )
}

failed=()
for name in "${SELECTED[@]}"; do
    dir=$PLUGINS_DIR/$name
    committed=$dir/$name.wasm
    stamp=$WORK/$name.stamp
    if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
        step "$name: npm ci"
        # --prefer-offline: the npm cache is enough when it has the pinned tarballs.
        (cd "$dir" && "${NICE[@]}" npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    fi
    digest=$(inputs_digest "$dir")
    # The stamp holds "<inputs digest> <module sha256>" of the last build.
    if [[ -f $stamp && -f $committed ]] && [[ $(cat "$stamp") == "$digest $(sha256sum <"$committed" | cut -d' ' -f1)" ]]; then
        step "$name: up to date ($(stat -c %s "$committed") bytes)"
        continue
    fi
    start=$SECONDS
    tmp=$WORK/$name.wasm.tmp
    compile "$name" "$tmp"
    sum=$(sha256sum <"$tmp" | cut -d' ' -f1)
    if (( CHECK )); then
        if [[ -f $committed ]] && cmp -s "$tmp" "$committed"; then
            step "$name: matches the committed $name.wasm ($((SECONDS - start)) s)"
            echo "$digest $sum" >"$stamp"
        else
            step "$name: DIFFERS from plugins-wasm/$name/$name.wasm (rebuild with plugins-wasm/build-as.sh and commit it)"
            failed+=("$name")
        fi
        rm -f "$tmp"
        continue
    fi
    if [[ -f $committed ]] && cmp -s "$tmp" "$committed"; then
        rm -f "$tmp"
        step "$name: unchanged ($(stat -c %s "$committed") bytes, $((SECONDS - start)) s)"
    else
        mv "$tmp" "$committed"
        step "$name: wrote plugins-wasm/$name/$name.wasm ($(stat -c %s "$committed") bytes, $((SECONDS - start)) s)"
    fi
    echo "$digest $sum" >"$stamp"
done

if (( ${#failed[@]} )); then
    echo "build-as.sh: stale committed modules: ${failed[*]}" >&2
    exit 1
fi
