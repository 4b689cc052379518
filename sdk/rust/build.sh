#!/usr/bin/env bash
# Builds the Rust SDK's wasm artefacts with Debian's rustc 1.63 and its
# packaged crates, offline:
#   build/wasm/conformance-rust.wasm   the conformance plugin (sdk/testdata/README.md)
#   build/wasm/template-rust.wasm      the `podplug new --lang rust` template, rendered
#   build/wasm/sdk-rust-testplugin.wasm panics, logs and typed config, for tests/sdk
#
#   sdk/rust/build.sh          build (fast when up to date)
#   sdk/rust/build.sh --test   also run the native tests: the SDK's, the
#                              conformance vectors through the plugin natively,
#                              and the rendered template's own test
#
# Sources are mirrored into build/rust/src first so a Cargo.lock that a rustup
# cargo wrote in sdk/rust (lock v4, crates.io checksums) never meets Debian's
# cargo 1.65 and its directory registry, and vice versa.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SDK=$ROOT/sdk/rust
OUT=$ROOT/build/wasm
WORK=$ROOT/build/rust
STAGE=$WORK/src
TEMPLATE=$WORK/template-example
RUN_TESTS=0
for arg in "$@"; do
    case $arg in
        --test) RUN_TESTS=1 ;;
        *) echo "usage: $0 [--test]" >&2; exit 2 ;;
    esac
done

# Debian's toolchain, whatever rustup puts first on PATH.
export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR=$WORK/target
# The conformance crate's native test reads the shared vectors from here.
export PODPLUG_VECTORS=$ROOT/sdk/testdata/vectors
for tool in "$CARGO" "$RUSTC"; do
    [[ -x $tool ]] || { echo "build.sh: $tool not found (apt-get install cargo rustc libstd-rust-dev-wasm32)" >&2; exit 1; }
done
[[ -d /usr/lib/rustlib/wasm32-unknown-unknown ]] || {
    echo "build.sh: no wasm32 std for /usr/bin/rustc (apt-get install libstd-rust-dev-wasm32)" >&2; exit 1; }
CARGO_ARGS=(--config "$STAGE/debian-offline.toml" --offline)
# The stack size `podplug build` (cli/build_rust.py) and the template use (256 KiB).
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C link-arg=-zstack-size=262144"
NICE=(nice -n 10)

step() { printf '==> %s\n' "$*"; }

# tar keeps mtimes, so unchanged files do not make cargo rebuild.
step "mirroring sdk/rust into ${STAGE#"$ROOT"/}"
mkdir -p "$STAGE" "$OUT"
tar -C "$SDK" --exclude=./target --exclude=./Cargo.lock --exclude=./template -cf - . | tar -C "$STAGE" -xf -
# Files deleted from sdk/rust must not linger in the mirror.
comm -13 <(cd "$SDK" && find . -path ./target -prune -o -path ./template -prune -o -type f -print | sort) \
         <(cd "$STAGE" && find . -path ./target -prune -o -type f ! -name Cargo.lock -print | sort) |
    (cd "$STAGE" && xargs -r rm -v --)

# wasm-opt when binaryen is installed; skipped when the output is newer.
optimise() {  # optimise <in.wasm> <out.wasm>
    local in=$1 out=$2
    if [[ -e $out && $out -nt $in ]]; then
        return
    fi
    if command -v wasm-opt >/dev/null; then
        wasm-opt -Os "$in" -o "$out.tmp" && mv "$out.tmp" "$out"
    else
        echo "    (wasm-opt not found: copying unoptimised)"
        cp "$in" "$out"
    fi
}

report() {  # report <raw.wasm> <final.wasm>
    printf '    %s: %d bytes (%d before wasm-opt)\n' "${2#"$ROOT"/}" "$(stat -c %s "$2")" "$(stat -c %s "$1")"
}

step "building the conformance and test plugins for wasm32-unknown-unknown (rustc $($RUSTC --version | cut -d' ' -f2))"
(cd "$STAGE" && "${NICE[@]}" "$CARGO" build "${CARGO_ARGS[@]}" --release --target wasm32-unknown-unknown \
    -p podplug-conformance -p podplug-sdk-testplugin)
RAW=$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/podplug_conformance.wasm
optimise "$RAW" "$OUT/conformance-rust.wasm"
report "$RAW" "$OUT/conformance-rust.wasm"
RAW=$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/podplug_sdk_testplugin.wasm
optimise "$RAW" "$OUT/sdk-rust-testplugin.wasm"
report "$RAW" "$OUT/sdk-rust-testplugin.wasm"

# The template as `podplug new example-plugin --lang rust` would write it.
step "rendering the template into ${TEMPLATE#"$ROOT"/}"
mkdir -p "$TEMPLATE"
SDK_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SDK/Cargo.toml" | head -1)
(cd "$SDK/template" && find . -type f) | while read -r f; do
    mkdir -p "$TEMPLATE/$(dirname "$f")"
    rendered=$(sed -e "s|{{name}}|example-plugin|g" -e "s|{{crate_name}}|example_plugin|g" \
        -e "s|{{sdk_path}}|$STAGE|g" -e "s|{{sdk_version}}|$SDK_VERSION|g" "$SDK/template/$f")
    # Rewrite only on change, so the template build stays incremental.
    if [[ ! -e $TEMPLATE/$f ]] || [[ $(cat "$TEMPLATE/$f") != "$rendered" ]]; then
        printf '%s\n' "$rendered" >"$TEMPLATE/$f"
    fi
done

step "building the template plugin"
(cd "$TEMPLATE" && "${NICE[@]}" "$CARGO" build "${CARGO_ARGS[@]}" --release --target wasm32-unknown-unknown)
RAW=$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/example_plugin.wasm
optimise "$RAW" "$OUT/template-rust.wasm"
report "$RAW" "$OUT/template-rust.wasm"

if [[ $RUN_TESTS == 1 ]]; then
    step "native tests: podplug-sdk and the conformance vectors"
    (cd "$STAGE" && "${NICE[@]}" "$CARGO" test "${CARGO_ARGS[@]}" --workspace)
    step "native tests: the rendered template"
    (cd "$TEMPLATE" && "${NICE[@]}" "$CARGO" test "${CARGO_ARGS[@]}")
fi
step "done"
