#!/bin/sh
# compare.sh with every client logging in through SCRAM-SHA-1 instead of PLAIN, as Conversations,
# Gajim, Dino and Monal do. The shared harness has no switch for it: this runs a copy of it
# whose xmppload always adds --scram (the warm-up too). Arguments go to compare.sh unchanged:
#   BENCH_SERVER_DIR=$PWD/bench bench/scram.sh --servers 'magpie ejabberd' --scenarios presence --out DIR
# (give --out: the copy, and anything compare.sh writes inside it, is removed at the end)
set -eu
SHARED=${BENCH_SHARED:-$(cd "$(dirname "$0")/../../shared/bench" && pwd)}
COPY=$(mktemp -d /tmp/magpie-scram-bench.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
cp -a "$SHARED/." "$COPY/"
chmod -R u+w "$COPY"
[ -x "$COPY/loadgen/xmppload" ] || make -C "$COPY/loadgen" >/dev/null
mv "$COPY/loadgen/xmppload" "$COPY/loadgen/xmppload.plain"
cat >"$COPY/loadgen/xmppload" <<'WRAP'
#!/bin/sh
exec "$(dirname "$0")/xmppload.plain" --scram "$@"
WRAP
chmod +x "$COPY/loadgen/xmppload"
"$COPY/compare.sh" "$@"
