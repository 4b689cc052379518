# Sourced by hack/controlplane/build.sh and hack/tools/build.sh: the parts of a
# cached Go build that every binary shares. Set PREFIX (for messages) and
# CACHE (where binaries go) first.
#   - step: one progress line;
#   - reports / install_bin: a binary is cached only once it runs and reports
#     the expected version, and only by a rename, so the cache never holds half
#     a binary or a wrong one;
#   - lock_cache: one build per cache directory at a time (the second waits,
#     then finds the binaries built);
#   - start_ticker: Go prints nothing while it compiles, so say every minute
#     that it is still going; temporary files go on exit, Ctrl-C or kill.

step() { printf '%s: %s\n' "$PREFIX" "$*"; }

find_go() {
    # Go's tarball install is not always on PATH (CI runs with a plain environment).
    [[ -x /usr/local/go/bin/go ]] && PATH=$PATH:/usr/local/go/bin
    command -v go >/dev/null || { echo "$PREFIX: Go is not installed (needed to build $*)" >&2; exit 1; }
}

reports() {  # reports <binary path> <expected version substring> [version args...]
    # Capture first: `| grep -q` would close the pipe early and, with pipefail,
    # fail on the binary's SIGPIPE.
    local bin=$1 want=$2 out
    shift 2
    (($#)) || set -- --version
    [[ -x $bin ]] && out=$("$bin" "$@" 2>/dev/null) && [[ $out == *"$want"* ]]
}

install_bin() {  # install_bin <tmp path> <name> <expected version substring> [version args...]
    local tmp=$1 name=$2 want=$3
    shift 3
    reports "$tmp" "$want" "$@" || { echo "$PREFIX: built $name does not report $want" >&2; exit 1; }
    mv -f "$tmp" "$CACHE/$name"
}

lock_cache() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock -n 9 || { step "waiting for another build in $CACHE"; flock 9; }
}

start_ticker() {
    # sleep holds no copy of stdout: a pipe reading the build closes when it ends.
    ( exec 9>&-; while sleep 60 >/dev/null 2>&1 && kill -0 $$ 2>/dev/null; do
        step "... still building ($((SECONDS - start))s)"; done ) &
    ticker=$!
    # `|| true`: the ticker may be gone already (killed after a build), and under
    # set -e a failing command in this trap would turn a good exit into exit 1.
    trap 'kill $ticker 2>/dev/null || true; rm -rf "$CACHE"/.*.tmp.$$' EXIT
    trap 'exit 130' INT TERM  # run the EXIT trap on Ctrl-C and kill too
}
