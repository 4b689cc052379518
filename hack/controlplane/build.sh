#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from the Go module proxy (there is no download
# site to fetch them from) and caches them by version outside the repository:
#   ${PODPLUG_CACHE_DIR:-~/.cache/podplug}/controlplane/<k8s-version>/{kube-apiserver,etcd,kubectl}
# A second run with the binaries in place (each reporting the expected version)
# takes well under a second. Go's module and build caches stay where Go keeps them.
#
# kube-apiserver: a wrapper module requiring k8s.io/kubernetes, whose go.mod
# pins every k8s.io/* staging module at v0.0.0 with a replace to ./staging/...;
# we replace each with its published v0.Y.Z tag, read from that go.mod (not a
# hard-coded list), and copy its go and godebug lines.
# kubectl: k8s.io/kubernetes/cmd/kubectl, built in the kube-apiserver's module.
# etcd: a three-line main over go.etcd.io/etcd/server/v3/etcdmain.
set -euo pipefail

start=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${PODPLUG_CACHE_DIR:-$HOME/.cache/podplug}/controlplane/$K8S_VERSION
SRC=$CACHE/src
PREFIX=controlplane
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
# shellcheck source=gobuild.sh
source "$HERE/gobuild.sh"
find_go "kube-apiserver, etcd and kubectl"
have() { reports "$CACHE/$1" "$2" "${@:3}"; }
kubectl_version=(version --client)

lock_cache
if have kube-apiserver "$K8S_VERSION" && have etcd "${ETCD_VERSION#v}" \
        && have kubectl "$K8S_VERSION" "${kubectl_version[@]}"; then
    step "kube-apiserver $K8S_VERSION, kubectl $K8S_VERSION and etcd $ETCD_VERSION cached in $CACHE"
    exit 0
fi
start_ticker
mkdir -p "$SRC/kube-apiserver" "$SRC/etcd"
IFS=. read -r major minor _ <<< "${K8S_VERSION#v}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

if ! have kube-apiserver "$K8S_VERSION" || ! have kubectl "$K8S_VERSION" "${kubectl_version[@]}"; then
    step "resolving k8s.io/kubernetes@$K8S_VERSION from the module proxy"
    mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    [[ -f $mod ]] || { echo "controlplane: could not download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
    staging=${K8S_VERSION/v1./v0.}
    {
        echo "module podplug.local/kube-apiserver"
        echo
        # The go line and the godebug line or block, as k8s.io/kubernetes has them.
        awk '/^go /; /^godebug \(/{b=1} b; b && /^\)/{b=0} /^godebug [^(]/' "$mod"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$mod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
        echo ")"
    } > "$SRC/kube-apiserver/go.mod.new"
    n=$(grep -c ' => ' "$SRC/kube-apiserver/go.mod.new")
    step "replacing $n staging modules with their $staging tags"
    mv "$SRC/kube-apiserver/go.mod.new" "$SRC/kube-apiserver/go.mod"
    cp "$HERE/kube-apiserver/main.go" "$SRC/kube-apiserver/main.go"
    (cd "$SRC/kube-apiserver" && step "downloading modules (first run: several hundred MB)" && go mod tidy)
fi
if ! have kube-apiserver "$K8S_VERSION"; then
    step "building kube-apiserver $K8S_VERSION (first run: several minutes on 2 cores)"
    (cd "$SRC/kube-apiserver" && nice go build -trimpath -ldflags "$ldflags" -o "$CACHE/.kube-apiserver.tmp.$$" .)
    install_bin "$CACHE/.kube-apiserver.tmp.$$" kube-apiserver "$K8S_VERSION"
fi
if ! have kubectl "$K8S_VERSION" "${kubectl_version[@]}"; then
    # k8s.io/kubernetes/cmd/kubectl itself, in the kube-apiserver's module: the
    # same build list, so most of its packages come from Go's build cache.
    step "building kubectl $K8S_VERSION"
    (cd "$SRC/kube-apiserver" && nice go build -trimpath -ldflags "$ldflags" -o "$CACHE/.kubectl.tmp.$$" k8s.io/kubernetes/cmd/kubectl)
    install_bin "$CACHE/.kubectl.tmp.$$" kubectl "$K8S_VERSION" "${kubectl_version[@]}"
fi

if ! have etcd "${ETCD_VERSION#v}"; then
    step "building etcd $ETCD_VERSION"
    cp "$HERE/etcd/main.go" "$SRC/etcd/main.go"
    printf 'module podplug.local/etcd\n\ngo 1.24\n' > "$SRC/etcd/go.mod"
    (cd "$SRC/etcd" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy \
        && nice go build -trimpath -ldflags "-s -w" -o "$CACHE/.etcd.tmp.$$" .)
    install_bin "$CACHE/.etcd.tmp.$$" etcd "${ETCD_VERSION#v}"
fi

step "built in $((SECONDS - start))s: $(du -sh "$CACHE/kube-apiserver" | cut -f1) kube-apiserver, $(du -sh "$CACHE/etcd" | cut -f1) etcd, $(du -sh "$CACHE/kubectl" | cut -f1) kubectl in $CACHE"
