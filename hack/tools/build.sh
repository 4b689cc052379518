#!/usr/bin/env bash
# Builds the Go tools the deploy and OCI tests run, from the Go module proxy,
# at the versions in versions.env, and caches each by version:
#   ${PODPLUG_CACHE_DIR:-~/.cache/podplug}/tools/<tool>-<version>/<tool>
#
#   hack/tools/build.sh              every tool (helm, registry, cosign)
#   hack/tools/build.sh helm cosign  only these
#
# helm (helm.sh/helm/v3/cmd/helm) and cosign (github.com/sigstore/cosign/v2/
# cmd/cosign) are each `go install pkg@version`: the module's own go.mod and
# go.sum, exactly as released, nothing generated. registry (CNCF distribution)
# is registry/main.go here, its command with only the filesystem driver and
# htpasswd auth, in a module generated beside the build that requires
# github.com/distribution/distribution/v3 at its version (its go.mod's
# requirements, resolved and checked against the checksum database). Only the
# command's packages are built (-trimpath, stripped, CGO off), with the version
# ldflags its release build sets, so `--version` reports it. A cached
# tool that reports its version is not rebuilt (well under a second). Go's
# module and build caches stay where Go keeps them. kubectl is built with the
# control plane (hack/controlplane/build.sh), sharing its build cache.
set -euo pipefail

start=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
PREFIX=tools
export CGO_ENABLED=0 GOTOOLCHAIN=local
# shellcheck source=../controlplane/gobuild.sh
source "$HERE/../controlplane/gobuild.sh"

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;; esac
tools=("$@")
((${#tools[@]})) || tools=(helm registry cosign)

# spec <tool>: its package, the version to expect and the command that reports it.
spec() {
    wrapper=""  # set: build this main.go in a module requiring $pkg@$version
    case $1 in
        helm) pkg=helm.sh/helm/v3/cmd/helm version=$HELM_VERSION check=(version --short) ;;
        registry) pkg=github.com/distribution/distribution/v3 version=$DISTRIBUTION_VERSION
                  check=(--version) wrapper=$HERE/registry/main.go ;;
        cosign) pkg=github.com/sigstore/cosign/v2/cmd/cosign version=$COSIGN_VERSION check=(version) ;;
        *) echo "tools: unknown tool $1 (helm, registry, cosign)" >&2; exit 2 ;;
    esac
}

# ldflags <tool>: the -X flags the tool's release build sets.
ldflags() {
    case $1 in
        helm)  # its version, and the Kubernetes version `helm template` assumes: its client-go's
            local mod kv major minor
            mod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
            kv=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$mod")
            IFS=. read -r major minor _ <<< "${kv#v}"
            printf -- '-X helm.sh/helm/v3/internal/version.version=%s' "$HELM_VERSION"
            for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
                printf -- ' -X %s.k8sVersionMajor=%s -X %s.k8sVersionMinor=%s' "$p" $((major + 1)) "$p" "$minor"
            done ;;
        registry) printf -- '-X github.com/distribution/distribution/v3/version.version=%s' "$DISTRIBUTION_VERSION" ;;
        cosign) printf -- '-X sigs.k8s.io/release-utils/version.gitVersion=%s' "$COSIGN_VERSION" ;;
    esac
}

for tool in "${tools[@]}"; do spec "$tool"; done  # reject a typo before building anything
find_go "${tools[*]}"
for tool in "${tools[@]}"; do
    spec "$tool"
    CACHE=${PODPLUG_CACHE_DIR:-$HOME/.cache/podplug}/tools/$tool-$version
    lock_cache
    # A wrapper's binary is current only if it was built from this main.go.
    if reports "$CACHE/$tool" "$version" "${check[@]}" \
            && { [[ -z $wrapper ]] || cmp -s "$wrapper" "$CACHE/src/main.go"; }; then
        step "$tool $version cached in $CACHE"
        continue
    fi
    start_ticker
    t0=$SECONDS
    step "building $tool $version ($pkg; first run downloads its modules)"
    if [[ -n $wrapper ]]; then
        rm -f "$CACHE/$tool"  # never a binary beside a main.go it was not built from
        src=$CACHE/src
        mkdir -p "$src"
        mod=$(go mod download -json "$pkg@$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
        printf 'module podplug.local/%s\n\ngo %s\n' "$tool" "$(awk '/^go /{print $2; exit}' "$mod")" > "$src/go.mod"
        rm -f "$src/go.sum"
        cp "$wrapper" "$src/main.go"
        (cd "$src" && GOFLAGS=-mod=mod go get "$pkg@$version" \
            && GOFLAGS=-mod=mod nice go build -trimpath -ldflags "-s -w $(ldflags "$tool")" \
                -o "$CACHE/.$tool.tmp.$$" .)
    else
        gobin=$CACHE/.bin.tmp.$$
        rm -rf "$gobin"
        GOBIN=$gobin nice go install -trimpath -ldflags "-s -w $(ldflags "$tool")" "$pkg@$version"
        mv "$gobin/$tool" "$CACHE/.$tool.tmp.$$"
        rmdir "$gobin"
    fi
    install_bin "$CACHE/.$tool.tmp.$$" "$tool" "$version" "${check[@]}"
    kill "$ticker" 2>/dev/null || true
    step "built $tool $version in $((SECONDS - t0))s: $(du -sh "$CACHE/$tool" | cut -f1)"
done
