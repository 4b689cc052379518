#!/usr/bin/env bash
# Installs what podplug's builds and tests use, then proves each tool runs.
#
#   hack/install-deps.sh           install what is missing, then check every tool
#   hack/install-deps.sh --check   only check; exit 1 naming the first broken tool
#
# Debian packages are installed by name, explicitly, with --no-install-recommends:
# a tool that only arrives as someone's Recommends (lld-14, the linker behind
# Debian's rust-lld symlink) is listed here itself. `apt-get update` runs only
# when something is missing. The AssemblyScript compiler comes from npm
# (sdk/assemblyscript's package-lock.json). After installing, every tool the
# builds call is run once: a dangling symlink or a missing binary ends here, in
# one line naming the package to install, before any test starts.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHECK_ONLY=0
case "${1:-}" in
  --check) CHECK_ONLY=1 ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

packages=(
  wabt binaryen                      # wat2wasm; wasm-opt for Rust plugin builds
  rustc cargo libstd-rust-dev-wasm32 # Debian's Rust 1.63 with the wasm32 standard library
  lld-14                             # the wasm32 linker: /usr/bin/rust-lld -> lld-14
  librust-serde-dev librust-serde-derive-dev librust-rmp-serde-dev librust-serde-json-dev
  librust-serde-path-to-error-dev librust-once-cell-dev  # the Rust SDK: config field paths, lazy parts
  python3 python3-venv               # Debian's interpreter: the wheel test's venv, run as uid 65532
  zsh                                # `podplug completion zsh` is loaded by a real zsh (tests/cli)
)
# Node.js and npm come with the machine image; install Debian's if absent.
command -v npm >/dev/null || packages+=(nodejs npm)

say() { printf 'install-deps: %s\n' "$*"; }

if [[ $CHECK_ONLY == 0 ]]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  # The AssemblyScript SDK's pinned compiler (asc); plugin folders install their own.
  sdk=$ROOT/sdk/assemblyscript
  if [[ ! -d $sdk/node_modules || $sdk/package-lock.json -nt $sdk/node_modules ]]; then
    say "npm ci in sdk/assemblyscript"
    (cd "$sdk" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    touch "$sdk/node_modules"
  fi
fi

# Go's tarball install is not always on PATH (CI runs with a plain environment).
[[ -x /usr/local/go/bin/go ]] && PATH=$PATH:/usr/local/go/bin

# check <what> <how to get it> <command...>: run the command, quietly; on
# failure print one line and stop. PATH lookups are the builds' own: rustc
# finds its linker `rust-lld` on PATH, `podplug build` calls wasm-opt there.
check() {
  local what=$1 fix=$2
  shift 2
  local out rc=0
  out=$("$@" 2>&1 </dev/null) || rc=$?
  if ((rc)); then
    local detail
    detail=$(printf '%s' "$out" | head -n 1)
    # Name a dangling symlink as what it is: the usual way a tool goes missing.
    if [[ $1 != */* ]] && ! command -v "$1" >/dev/null; then
      detail="$1 not found on PATH"
      local dir
      IFS=: read -ra dirs <<<"$PATH"
      for dir in "${dirs[@]}"; do
        if [[ -L $dir/$1 && ! -e $dir/$1 ]]; then
          detail="$dir/$1 is a dangling symlink to $(readlink "$dir/$1")"
          break
        fi
      done
    fi
    say "$what does not run (${detail:-exit status $rc}): $fix" >&2
    exit 1
  fi
}

pkg_fix() { echo "apt-get install $*"; }

check "rustc (Debian's, for wasm32)" "$(pkg_fix rustc)" /usr/bin/rustc --version
check "cargo (Debian's)" "$(pkg_fix cargo)" /usr/bin/cargo --version
check "the wasm32 standard library" "$(pkg_fix libstd-rust-dev-wasm32)" \
  test -d /usr/lib/rustlib/wasm32-unknown-unknown/lib
check "rust-lld, the wasm32 linker" "$(pkg_fix lld-14)" rust-lld -flavor wasm --version
check "wasm-opt" "$(pkg_fix binaryen)" wasm-opt --version
check "wat2wasm" "$(pkg_fix wabt)" wat2wasm --version
check "the Debian crate registry (serde, rmp-serde, serde_path_to_error)" \
  "$(pkg_fix librust-serde-dev librust-rmp-serde-dev librust-serde-path-to-error-dev librust-once-cell-dev)" \
  test -d /usr/share/cargo/registry/rmp-serde-1.1.1 -a -d /usr/share/cargo/registry/serde_path_to_error-0.1.9
check "node" "$(pkg_fix nodejs)" node --version
check "npm" "$(pkg_fix npm)" npm --version
check "asc (AssemblyScript, from npm)" \
  "cd sdk/assemblyscript && npm ci" \
  node "$ROOT/sdk/assemblyscript/node_modules/assemblyscript/bin/asc.js" --version
check "Debian's python3 with venv (tests/integration/test_install.py)" \
  "$(pkg_fix python3 python3-venv)" /usr/bin/python3 -c "import ensurepip, venv"
check "zsh (tests/cli/test_completion.py)" "$(pkg_fix zsh)" /usr/bin/zsh -fc true
check "go (builds kube-apiserver, etcd, kubectl, helm, registry, cosign)" \
  "install Go from https://go.dev/dl (or put /usr/local/go/bin on PATH)" go version
