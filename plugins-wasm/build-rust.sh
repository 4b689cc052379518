#!/usr/bin/env bash
# Builds the Rust plugins of plugins-wasm/ with Debian's rustc and packaged
# crates, offline, and writes plugins-wasm/NAME/NAME.wasm (the file the
# operator loads).
#
#   plugins-wasm/build-rust.sh           build; rewrites NAME.wasm only when its bytes change
#   plugins-wasm/build-rust.sh --check   build elsewhere and fail, naming the plugin, when
#                                        a committed NAME.wasm differs from what the sources give
#   plugins-wasm/build-rust.sh --test    also run each plugin's native `cargo test`
#   plugins-wasm/build-rust.sh --sdk-head  build against the SDK as committed (git HEAD),
#                                        not the work tree: what CI's clone will build
#   plugins-wasm/build-rust.sh NAME...   only these plugins
#
# The modules embed the SDK: a commit to sdk/rust changes their bytes, so rerun
# this (with --sdk-head when the work tree has uncommitted SDK edits) and commit
# the .wasm files, or tests/plugins/test_rust_plugins.py reports them stale.
#
# Reproducible: the same sources give the same bytes wherever the repository is
# cloned. Sources are mirrored into a fixed directory, /tmp/podplug-plugins-rust/src
# (so no Cargo.lock or target/ lands in the repo, and Debian's cargo never meets a
# rustup lock file), and remapped to /podplug in the binary. The mirror's path
# must not depend on the clone's: it reaches the module through panic locations,
# and cargo 1.65 hashes RUSTFLAGS (and so any path in a --remap-path-prefix) into
# every crate's -C metadata, which reorders the code LTO emits. A lock keeps two
# checkouts from sharing the mirror at once; the cargo target dir stays under
# build/plugins-rust/. The toolchain (Debian's rustc, serde from
# /usr/share/cargo/registry) and binaryen's wasm-opt must be the versions the
# committed modules were built with: they are printed below.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGINS_DIR=$ROOT/plugins-wasm
WORK=$ROOT/build/plugins-rust
STAGE_ROOT=/tmp/podplug-plugins-rust
STAGE=$STAGE_ROOT/src
# The Rust plugins of this folder; the others (AssemblyScript) have their own build.
ALL=(lws-standard-labels nvidia-gpu-defaults huawei-ascend-defaults)

CHECK=0
RUN_TESTS=0
SDK_HEAD=0
SELECTED=()
for arg in "$@"; do
    case $arg in
        --check) CHECK=1 ;;
        --test) RUN_TESTS=1 ;;
        --sdk-head) SDK_HEAD=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        -*) echo "usage: $0 [--check] [--test] [--sdk-head] [NAME...]" >&2; exit 2 ;;
        *)
            [[ " ${ALL[*]} " == *" $arg "* ]] || { echo "build-rust.sh: unknown plugin $arg (have: ${ALL[*]})" >&2; exit 2; }
            SELECTED+=("$arg") ;;
    esac
done
[[ ${#SELECTED[@]} -gt 0 ]] || SELECTED=("${ALL[@]}")

export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR=$WORK/target
for tool in "$CARGO" "$RUSTC"; do
    [[ -x $tool ]] || { echo "build-rust.sh: $tool not found (apt-get install cargo rustc libstd-rust-dev-wasm32)" >&2; exit 1; }
done
[[ -d /usr/lib/rustlib/wasm32-unknown-unknown ]] || {
    echo "build-rust.sh: no wasm32 std for /usr/bin/rustc (apt-get install libstd-rust-dev-wasm32)" >&2; exit 1; }
CARGO_ARGS=(--config "$STAGE/sdk/rust/debian-offline.toml" --offline --quiet)
NICE=(nice -n 10)
# Absolute paths reach the module through panic locations (file!()); the mirror's
# location differs between a developer's tree and CI's clone.
# A 256 KiB stack instead of rustc's 1 MiB (the SDK bounds nesting at 256):
# less linear memory for wasmtime to map and reset per instance.
export RUSTFLAGS="--remap-path-prefix=$STAGE=/podplug -C link-arg=-zstack-size=262144"

step() { printf '==> %s\n' "$*"; }

mkdir -p "$STAGE_ROOT"
exec 9>"$STAGE_ROOT/lock"
flock 9

if command -v wasm-opt >/dev/null; then
    WASM_OPT="wasm-opt $(wasm-opt --version | awk '{print $3}')"
else
    WASM_OPT="none"
fi
step "toolchain: rustc $($RUSTC --version | cut -d' ' -f2), wasm-opt: $WASM_OPT"

# The SDK and the plugins, at the same relative places as in the repo so the
# plugins' `path = "../../sdk/rust"` resolves. tar keeps mtimes: unchanged
# files do not make cargo rebuild.
step "mirroring sdk/rust and the plugins into $STAGE"
mkdir -p "$STAGE/sdk/rust" "$STAGE/plugins-wasm"
# A source file deleted in the repo must not linger in the mirror.
rm -rf "$STAGE/sdk/rust/src"
if [[ $SDK_HEAD == 1 ]]; then
    git -C "$ROOT" archive --format=tar HEAD sdk/rust | tar -C "$STAGE" --strip-components=0 -xf - --exclude=sdk/rust/template
else
    tar -C "$ROOT/sdk/rust" --exclude=./target --exclude=./Cargo.lock --exclude=./template -cf - . | tar -C "$STAGE/sdk/rust" -xf -
fi
# Every plugin, not only the selected ones: huawei-ascend-defaults compiles
# nvidia-gpu-defaults/src/common.rs.
for name in "${ALL[@]}"; do
    mkdir -p "$STAGE/plugins-wasm/$name"
    rm -rf "$STAGE/plugins-wasm/$name/src"
    tar -C "$PLUGINS_DIR/$name" --exclude=./target --exclude=./Cargo.lock --exclude=./cases \
        --exclude="./$name.wasm" -cf - . | tar -C "$STAGE/plugins-wasm/$name" -xf -
done

OUT=$WORK/out
mkdir -p "$OUT"
STALE=()
for name in "${SELECTED[@]}"; do
    crate=${name//-/_}
    step "building $name"
    (cd "$STAGE/plugins-wasm/$name" && "${NICE[@]}" "$CARGO" build "${CARGO_ARGS[@]}" --release --target wasm32-unknown-unknown)
    raw=$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$crate.wasm
    # wasm-opt only when the raw module changed since the last run.
    digest=$(sha256sum "$raw" | cut -d' ' -f1)
    built=$OUT/$name.wasm
    if [[ ! -e $built || "$(cat "$OUT/$name.raw-sha256" 2>/dev/null)" != "$digest $WASM_OPT" ]]; then
        if [[ $WASM_OPT != none ]]; then
            "${NICE[@]}" wasm-opt -Oz --strip-producers "$raw" -o "$built.tmp"
        else
            echo "    (wasm-opt not found: the module stays unoptimised and will not match a committed one)"
            cp "$raw" "$built.tmp"
        fi
        mv "$built.tmp" "$built"
        echo "$digest $WASM_OPT" >"$OUT/$name.raw-sha256"
    fi
    committed=$PLUGINS_DIR/$name/$name.wasm
    printf '    %s: %d bytes (%d before wasm-opt)\n' "$name.wasm" "$(stat -c %s "$built")" "$(stat -c %s "$raw")"
    if cmp -s "$built" "$committed"; then
        echo "    up to date: plugins-wasm/$name/$name.wasm"
    elif [[ $CHECK == 1 ]]; then
        echo "    STALE: plugins-wasm/$name/$name.wasm differs from what its sources build ($(sha256sum "$built" | cut -c1-12) built, $( [[ -e $committed ]] && sha256sum "$committed" | cut -c1-12 || echo missing) committed)"
        STALE+=("$name")
    else
        cp "$built" "$committed"
        echo "    wrote plugins-wasm/$name/$name.wasm"
    fi
done

if [[ $RUN_TESTS == 1 ]]; then
    for name in "${SELECTED[@]}"; do
        step "native tests: $name"
        (cd "$STAGE/plugins-wasm/$name" && RUSTFLAGS= "${NICE[@]}" "$CARGO" test "${CARGO_ARGS[@]}")
    done
fi

if [[ ${#STALE[@]} -gt 0 ]]; then
    echo "build-rust.sh: stale or unreproducible: ${STALE[*]} (run plugins-wasm/build-rust.sh and commit the .wasm)" >&2
    exit 1
fi
step "done"
