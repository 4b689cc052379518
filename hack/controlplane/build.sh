#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy (there is no download
# site to fetch them from) and caches them by version outside the repository:
#   ${PODPLUG_CACHE_DIR:-~/.cache/podplug}/controlplane/<k8s-version>/{kube-apiserver,etcd}
# A second run with the binaries in place (each reporting the expected version)
# takes well under a second. Go's module and build caches stay where Go keeps them.
#
# kube-apiserver: a wrapper module requiring k8s.io/kubernetes, whose go.mod
# pins every k8s.io/* staging module at v0.0.0 with a replace to ./staging/...;
# we replace each with its published v0.Y.Z tag, read from that go.mod (not a
# hard-coded list), and copy its go and godebug lines.
# etcd: a three-line main over go.etcd.io/etcd/server/v3/etcdmain.
set -euo pipefail

start=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${PODPLUG_CACHE_DIR:-$HOME/.cache/podplug}/controlplane/$K8S_VERSION
SRC=$CACHE/src
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

step() { printf 'controlplane: %s\n' "$*"; }

# Go's tarball install is not always on PATH (CI runs with a plain environment).
[[ -x /usr/local/go/bin/go ]] && PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "controlplane: Go is not installed (needed to build kube-apiserver and etcd)" >&2; exit 1; }

reports() {  # reports <binary path> <expected version substring>
    # Capture first: `| grep -q` would close the pipe early and, with pipefail,
    # fail on the binary's SIGPIPE.
    local out
    [[ -x $1 ]] && out=$("$1" --version 2>/dev/null) && [[ $out == *"$2"* ]]
}
have() { reports "$CACHE/$1" "$2"; }

# Install a freshly built binary only once it reports the right version, by a
# rename, so the cache never holds half a binary or a wrong one.
install_bin() {  # install_bin <tmp path> <name> <expected version substring>
    reports "$1" "$3" || { echo "controlplane: built $2 does not report $3" >&2; exit 1; }
    mv -f "$1" "$CACHE/$2"
}

mkdir -p "$CACHE"
# One build at a time per version: two `make controlplane` runs would race on
# the generated sources. The second waits, then finds the binaries built.
exec 9>"$CACHE/.lock"
flock -n 9 || { step "waiting for another build.sh of $K8S_VERSION"; flock 9; }

if have kube-apiserver "$K8S_VERSION" && have etcd "${ETCD_VERSION#v}"; then
    step "kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION cached in $CACHE"
    exit 0
fi
# Go prints nothing while it compiles: say every minute that it is still going.
# sleep holds no copy of stdout: a pipe reading build.sh closes when it ends.
( exec 9>&-; while sleep 60 >/dev/null 2>&1 && kill -0 $$ 2>/dev/null; do
    step "... still building ($((SECONDS - start))s)"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null; rm -f "$CACHE"/.*.tmp.$$' EXIT
trap 'exit 130' INT TERM  # run the EXIT trap on Ctrl-C and kill too
mkdir -p "$SRC/kube-apiserver" "$SRC/etcd"

if ! have kube-apiserver "$K8S_VERSION"; then
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
    IFS=. read -r major minor _ <<< "${K8S_VERSION#v}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    step "building kube-apiserver $K8S_VERSION (first run: several minutes on 2 cores)"
    (cd "$SRC/kube-apiserver" && nice go build -trimpath -ldflags "$ldflags" -o "$CACHE/.kube-apiserver.tmp.$$" .)
    install_bin "$CACHE/.kube-apiserver.tmp.$$" kube-apiserver "$K8S_VERSION"
fi

if ! have etcd "${ETCD_VERSION#v}"; then
    step "building etcd $ETCD_VERSION"
    cp "$HERE/etcd/main.go" "$SRC/etcd/main.go"
    printf 'module podplug.local/etcd\n\ngo 1.24\n' > "$SRC/etcd/go.mod"
    (cd "$SRC/etcd" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy \
        && nice go build -trimpath -ldflags "-s -w" -o "$CACHE/.etcd.tmp.$$" .)
    install_bin "$CACHE/.etcd.tmp.$$" etcd "${ETCD_VERSION#v}"
fi

step "built in $((SECONDS - start))s: $(du -sh "$CACHE/kube-apiserver" | cut -f1) kube-apiserver, $(du -sh "$CACHE/etcd" | cut -f1) etcd in $CACHE"
