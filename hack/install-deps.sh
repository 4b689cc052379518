#!/usr/bin/env bash
# Installs the Debian packages podplug's builds and tests need, once:
# `apt-get update` runs only when something is missing.
set -euo pipefail

packages=(
  wabt binaryen                      # wasm tools; wasm-opt for plugin builds
  rustc cargo libstd-rust-dev-wasm32 # Debian's Rust 1.63 with the wasm32 standard library
  librust-serde-dev librust-serde-derive-dev librust-rmp-serde-dev librust-serde-json-dev
)
# Node.js and npm come with the machine image; install Debian's if absent.
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
