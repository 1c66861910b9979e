#!/usr/bin/env bash
# What the transports cost: the msg scenario of the load generator against one magpied over
#   tcp      the embedded mux (client port of magpied)
#   mux-tcp  magpie-mux in its own process, linked to that magpied over TCP (port 45222 style)
#   ws       WebSocket (RFC 7395) on magpied's own HTTP port
#   mux-ws   WebSocket through magpie-mux
# and the idle scenario over tcp and ws (server RSS per idle session, after hibernation).
# Rounds interleave the modes, so the machine's noise hits all of them alike; the table shows
# medians and the ratio of each mode to tcp measured in the same run.
#
#   bench/transports.sh [BUILD_DIR (build)] [ROUNDS (3)]
# Needs the release build (make build) and bench/xmppload (make -C bench).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$HERE/../build}" && pwd)
ROUNDS=${2:-3}
USERS=${USERS:-200}
IDLE_USERS=${IDLE_USERS:-2000}
DUR=${DUR:-10}
DIR=$(mktemp -d /tmp/magpie-transports.XXXXXX)
LOAD=$BUILD/bench/xmppload
make -s -C "$HERE" BUILD="$BUILD" OUT="$BUILD/bench" >/dev/null
ulimit -n "$(ulimit -Hn)"
P_C2S=26222 P_HTTP=26280 P_LINK=26322 P_MUX=26223 P_MUXHTTP=26281
cat >"$DIR/server.yml" <<CFG
hosts: [localhost]
data_dir: $DIR/var
log: {level: warn}
c2s: {address: 127.0.0.1, port: $P_C2S, direct_tls_port: 0, tls_required: false,
      max_connections_per_ip: 0, max_read_rate: 0, preauth_max_read_rate: 0}
http: {port: $P_HTTP, tls_port: 0}
link: {address: 127.0.0.1, port: $P_LINK, secret: bench-secret}
modules: [ping, disco, version, time, last, vcard, private, search, amp, privacy, blocking, carbons]
sasl: {scram_iterations: 4096, failure_delay_ms: 0, max_failures: 1000000}
admin: {socket: $DIR/var/magpied.sock}
CFG
cat >"$DIR/mux.yml" <<CFG
hosts: [localhost]
data_dir: $DIR/muxvar
log: {level: warn}
c2s: {address: 127.0.0.1, port: $P_MUX, direct_tls_port: 0, tls_required: false,
      max_connections_per_ip: 0, max_read_rate: 0, preauth_max_read_rate: 0}
http: {port: $P_MUXHTTP, tls_port: 0}
mux: {servers: ["127.0.0.1:$P_LINK"], secret: bench-secret}
CFG
mkdir -p "$DIR/var" "$DIR/muxvar"
"$BUILD/bench/mkusers" "$DIR/server.yml" user 1 "$IDLE_USERS" secret >/dev/null
start() {
    "$BUILD/magpied" --config "$DIR/server.yml" >>"$DIR/magpied.log" 2>&1 &
    SPID=$!
    sleep 1
    "$BUILD/magpie-mux" --config "$DIR/mux.yml" >>"$DIR/mux.log" 2>&1 &
    MPID=$!
    sleep 2
}
stop() {
    kill "$SPID" "$MPID" 2>/dev/null || true
    wait "$SPID" "$MPID" 2>/dev/null || true
}
trap stop EXIT
run() { # mode scenario users extra...
    local mode=$1 sc=$2 users=$3; shift 3
    local port=$P_C2S pids=$SPID ws=()
    case $mode in
    mux-tcp) port=$P_MUX pids="$SPID,$MPID" ;;
    ws) port=$P_HTTP ws=(--ws /xmpp-websocket) ;;
    mux-ws) port=$P_MUXHTTP pids="$SPID,$MPID" ws=(--ws /xmpp-websocket) ;;
    esac
    "$LOAD" -q -s "$sc" -p "$port" -d localhost -u "$users" -c 100 --src-ips 1 --pids "$pids" \
        -l "$mode" "${ws[@]}" "$@"
}
start
for r in $(seq "$ROUNDS"); do
    for mode in tcp mux-tcp ws mux-ws; do
        run "$mode" msg "$USERS" -t "$DUR" -w 4 >>"$DIR/msg.jsonl"
    done
done
stop
# Idle memory: a fresh server for each run, or one mode would reuse what the other freed.
for r in $(seq "$ROUNDS"); do
    for mode in tcp ws; do
        start
        run "$mode" idle "$IDLE_USERS" -t 8 >>"$DIR/idle.jsonl"
        stop
    done
done
python3 - "$DIR" <<'PY'
import json, statistics, sys
d = sys.argv[1]
msg = [json.loads(l) for l in open(f"{d}/msg.jsonl")]
idle = [json.loads(l) for l in open(f"{d}/idle.jsonl")]
def med(rows, mode, key):
    v = [r[key] for r in rows if r["server"] == mode]
    return statistics.median(v) if v else 0.0
print(f"| mode | delivered msg/s (median of {len([r for r in msg if r['server']=='tcp'])}) | vs tcp | "
      "server CPU µs/msg | lost |")
print("|---|---|---|---|---|")
base = med(msg, "tcp", "delivered_per_s")
for m in ["tcp", "mux-tcp", "ws", "mux-ws"]:
    rate = med(msg, m, "delivered_per_s")
    cpu = statistics.median([r["srv_cpu_s"] * 1e6 / max(r["received"], 1) for r in msg if r["server"] == m])
    lost = sum(r["lost"] for r in msg if r["server"] == m)
    print(f"| {m} | {rate:,.0f} | {rate / base:.2f} | {cpu:.2f} | {lost} |")
print()
print("| mode | idle sessions | server RSS per idle session, KiB (after hold) |")
print("|---|---|---|")
for m in ["tcp", "ws"]:
    rows = [r for r in idle if r["server"] == m]
    per = statistics.median([(r["rss_hold_end_kb"] - r["rss_before_kb"]) / max(r["login_ok"], 1) for r in rows])
    print(f"| {m} | {rows[0]['login_ok'] if rows else 0} | {per:.2f} |")
PY
echo "raw results: $DIR/msg.jsonl $DIR/idle.jsonl" >&2
