#!/usr/bin/env bash
# Generates Volcano's PodGroup CRD (scheduling.volcano.sh/v1beta1) from the Go module
# proxy and caches it outside the repository; prints the CRD file's path:
#   ${PODPLUG_CACHE_DIR:-~/.cache/podplug}/volcano-crd/<apis version>/scheduling.volcano.sh_podgroups.yaml
# controller-gen runs over volcano.sh/apis/pkg/apis/scheduling/v1beta1, as Volcano's
# `make manifests` does (see versions.env). A cached CRD is reused at once.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${PODPLUG_CACHE_DIR:-$HOME/.cache/podplug}/volcano-crd/$VOLCANO_APIS_VERSION
CRD=$CACHE/scheduling.volcano.sh_podgroups.yaml
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

[[ -x /usr/local/go/bin/go ]] && PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "volcano-crd: Go is not installed (needed to generate Volcano's PodGroup CRD)" >&2; exit 1; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -n 9 || { echo "volcano-crd: waiting for another build.sh" >&2; flock 9; }
if [[ -s $CRD ]]; then
    echo "$CRD"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cd "$work"
cat > go.mod <<MOD
module volcanocrd

go 1.24

require volcano.sh/apis $VOLCANO_APIS_VERSION
MOD
printf 'package volcanocrd\n\nimport _ "volcano.sh/apis/pkg/apis/scheduling/v1beta1"\n' > tools.go
echo "volcano-crd: resolving volcano.sh/apis $VOLCANO_APIS_VERSION" >&2
nice go mod tidy >&2
echo "volcano-crd: controller-gen $CONTROLLER_GEN_VERSION" >&2
nice go run "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION" \
    crd:crdVersions=v1,generateEmbeddedObjectMeta=true \
    paths=volcano.sh/apis/pkg/apis/scheduling/v1beta1 output:crd:dir=out >&2
grep -q 'subGroupPolicy' out/scheduling.volcano.sh_podgroups.yaml \
    || { echo "volcano-crd: generated PodGroup CRD has no subGroupPolicy" >&2; exit 1; }
mv -f out/scheduling.volcano.sh_podgroups.yaml "$CRD.tmp.$$"
mv -f "$CRD.tmp.$$" "$CRD"
echo "$CRD"
