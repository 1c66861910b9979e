#!/usr/bin/env bash
# Group chat fan-out (XEP-0045) side by side: Magpie, Prosody and ejabberd, rooms of 10, 100 and
# 1,000 occupants, in one run.  For every (round, size, server) a freshly started server on freshly
# restored data gets 1,000 users logged in (xmppload -s muc): 100 rooms of 10, 10 rooms of 100 or
# one room of 1,000; the first user of each room creates it as an instant room, the others join
# (no history requested); then
#   fixed  the first S occupants of each room send groupchat messages at a fixed total rate chosen
#          so that every size asks for the same deliveries/s (FIXED_DELIV, well under every
#          server's capacity): fan-out latency p50/p99 (send -> each occupant's copy);
#   max    closed loop with the same deliveries in flight for every size (INFLIGHT_DELIV, i.e.
#          INFLIGHT_DELIV/size messages): delivered messages/s, the delivery capacity.
# Every occupant (the sender too: the room reflects its message) counts each stamped message once;
# lost = sent x occupants - received.  Rounds interleave the servers (order rotated each round), so
# the machine's noise hits all of them alike; the table gives medians (± spread (max-min)/median)
# and "magpie advantage": magpie / best other for rates, best other / magpie for latencies and CPU
# per delivery (above 1: Magpie is better), from the same run.
#
#   bench/muc.sh [--servers 'magpie prosody ejabberd'] [--sizes '10 100 1000'] [--rounds 3]
#                [--duration 10] [--out DIR] [--no-provision]
#   bench/muc.sh --report DIR [--servers ...] [--sizes ...]     the table again from DIR/raw.jsonl
# Env: MAGPIE_BIN (default <repo>/build/magpied: the release build, never the ASan one),
#      BENCH_HOME (the shared harness, default <repo>/../shared/bench: only its servers/*.sh,
#      lib.sh and provision/ are used, read-only), FIXED_DELIV (1000), INFLIGHT_DELIV (5000),
#      FIXED_DURATION (the fixed phase's seconds, default --duration).
# Needs root (ejabberd runs as user ejabberd) and ulimit -n >= 2,100.
#
# The shared server scripts provision and start the servers (own dirs under $OUT/srv, own ports
# 27222/27269/27280, so a compare.sh run elsewhere does not collide); after provisioning this
# script adds the group chat part to each generated config, the same for all three as far as
# they allow:
#   - MUC service at conference.localhost, anyone local may create rooms, no occupant limit below
#     10,000 (ejabberd's max_users defaults to 200, its max_users_presence to 1,000), no rate
#     limit or shaper on rooms or c2s (none is loaded or all are set to none);
#   - room history kept in memory: 20 messages (each server's default), none sent on join
#     (the joins ask for maxstanzas='0'); no archive (MAM) on rooms: ejabberd's
#     default_room_options mam: false, Prosody has no mod_muc_mam loaded, Magpie's
#     muc.default_logging: false (MUC_MAGPIE_LOGGING=true measures Magpie's default, archiving);
#   - Prosody: muc_tombstones off (rooms are not persistent anyway), room locking on (default:
#     the instant-room form unlocks it, as on the others).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SERVERS="magpie prosody ejabberd"
SIZES="10 100 1000"
ROUNDS=3
DURATION=10
OUT=""
PROVISION=1
REPORT_ONLY=
while [ $# -gt 0 ]; do
    case $1 in
    --servers) SERVERS=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-provision) PROVISION=0; shift ;;
    --report) REPORT_ONLY=$2; shift 2 ;;
    -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
USERS=1000
FIXED_DELIV=${FIXED_DELIV:-1000}
INFLIGHT_DELIV=${INFLIGHT_DELIV:-5000}
FIXED_DURATION=${FIXED_DURATION:-$DURATION}
OUT=${OUT:-/tmp/magpie-muc-$(date +%Y%m%d-%H%M%S)}
export BENCH_HOME=${BENCH_HOME:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd)}
[ -f "$BENCH_HOME/servers/lib.sh" ] || { echo "BENCH_HOME: no servers/lib.sh in '$BENCH_HOME'" >&2; exit 2; }
export MAGPIE_BIN=${MAGPIE_BIN:-$REPO/build/magpied}
export BENCH_PORT=27222 BENCH_S2S_PORT=27269 BENCH_AUX_PORT=27280 BENCH_DOMAIN=localhost
export BENCH_USERS=$USERS BENCH_CONTACTS=2 BENCH_RING_USERS=$USERS BENCH_PREFIX=user BENCH_PASSWORD=secret
MUC=conference.$BENCH_DOMAIN

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

report() { # raw.jsonl: the Markdown table on stdout
python3 - "$1" "$SERVERS" "$SIZES" <<'PY'
import json, statistics, sys
raw, servers, sizes = sys.argv[1], sys.argv[2].split(), [int(x) for x in sys.argv[3].split()]
rows = [json.loads(l) for l in open(raw) if l.strip()]
# a run where a login or a join failed measured a smaller room: shown in the last row only
bad = [r for r in rows if "error" in r or r.get("joined") != r.get("users")]
for r in bad:
    print(f"<!-- left out: round {r.get('round')} {r.get('server')} rooms of {r.get('room_size')}: "
          f"{r.get('error') or r.get('first_error')} -->")
ok = [r for r in rows if r not in bad]
def vals(s, size, f):
    out = []
    for r in (rows if f is FAILED else ok):
        if r.get("server") == s and r.get("room_size") == size and "error" not in r:
            try:
                v = f(r)
            except (KeyError, ZeroDivisionError):
                continue
            if v is not None:
                out.append(v)
    return out
def med(s, size, f):
    v = vals(s, size, f)
    return statistics.median(v) if v else None
def spread(s, size, f):
    v = vals(s, size, f)
    m = statistics.median(v) if v else 0
    return (max(v) - min(v)) / m * 100 if len(v) > 1 and m else None
def FAILED(r):
    return r["join_failed"] + r["login_failed"]
M = [
    ("max: delivered msgs/s", lambda r: r["max_delivered_per_s"], "higher", "med"),
    ("max: server CPU µs/delivery", lambda r: r["max_srv_us_per_delivery"], "lower", "med"),
    ("max: lost (worst round)", lambda r: r["max_lost"], "zero", "max"),
    ("max: loadgen CPU %", lambda r: r["max_lg_cpu_pct"], "info", "med"),
    ("max: machine busy % (of 200)", lambda r: r["max_sys_busy_pct"], "info", "med"),
    ("fixed: offered deliveries/s", lambda r: r["fixed_sent_per_s"] * r["room_size"], "info", "med"),
    ("fixed: fan-out latency p50 ms", lambda r: r["fixed_lat_p50_ms"], "lower", "med"),
    ("fixed: fan-out latency p99 ms", lambda r: r["fixed_lat_p99_ms"], "lower", "med"),
    ("fixed: server CPU µs/delivery", lambda r: r["fixed_srv_us_per_delivery"], "lower", "med"),
    ("fixed: lost (worst round)", lambda r: r["fixed_lost"], "zero", "max"),
    ("join: seconds for all joins", lambda r: r["join_s"], "lower", "med"),
    ("join: failed (worst round)", FAILED, "zero", "max"),
    ("rounds measured", None, "info", "count"),
]
def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, int) or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
others = [s for s in servers if s != "magpie"]
hdr = "| rooms of | metric | " + " | ".join(servers)
if "magpie" in servers and others:
    hdr += " | magpie advantage ×"
print(hdr + " |")
print("|" + "---|" * (hdr.count("|")))
for size in sizes:
    for name, f, better, agg in M:
        cells = []
        meds = {}
        for s in servers:
            if agg == "count":
                m = len(vals(s, size, lambda r: 1))
                cells.append(str(m))
            elif agg == "max":
                v = vals(s, size, f)
                m = max(v) if v else None
                cells.append(fmt(m))
            else:
                m = med(s, size, f)
                sp = spread(s, size, f)
                cells.append(fmt(m) + (f" ±{sp:.0f}%" if sp is not None and better != "info" else ""))
            meds[s] = m
        line = f"| {size} | {name} | " + " | ".join(cells)
        if "magpie" in servers and others:
            ratio = ""
            ov = [meds[s] for s in others if meds[s] is not None]
            if meds["magpie"] is not None and ov and better in ("higher", "lower"):
                best = max(ov) if better == "higher" else min(ov)
                if best and meds["magpie"]:
                    ratio = f"{(meds['magpie'] / best if better == 'higher' else best / meds['magpie']):.2f}"
            line += f" | {ratio}"
        print(line + " |")
PY
}

if [ -n "$REPORT_ONLY" ]; then
    report "$REPORT_ONLY/raw.jsonl"
    exit 0
fi
mkdir -p "$OUT/logs" "$OUT/srv"
chmod 755 "$OUT" "$OUT/srv"
RAW=$OUT/raw.jsonl
LG=$OUT/xmppload
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((USERS + 1100)) ] || { echo "open-file limit $(ulimit -n) too low" >&2; exit 2; }
gcc -O2 -g -std=gnu17 -Wall -Wextra -o "$LG" "$HERE/xmppload.c" -lcrypto -lm || exit 1
script() { if [ "$1" = magpie ]; then echo "$HERE/magpie.sh"; else echo "$BENCH_HOME/servers/$1.sh"; fi; }
srv() { local s=$1; shift; BENCH_DIR=$OUT/srv/$s "$(script "$s")" "$@"; }
CURRENT=""
cleanup() { [ -n "$CURRENT" ] && srv "$CURRENT" stop >/dev/null 2>&1; }
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# The group chat part of each server's config, added after provisioning (start keeps the config).
muc_config() {
    local d=$OUT/srv/$1
    case $1 in
    prosody)
        cat >>"$d/prosody.cfg.lua" <<CFG

-- added by bench/muc.sh
Component "$MUC" "muc"
  restrict_room_creation = false
  muc_tombstones = false
  muc_room_default_history_length = 20
  max_history_messages = 20
  muc_room_cache_size = 10000
CFG
        ;;
    ejabberd)
        python3 - "$d/etc/ejabberd.yml" <<'PY' || return 1
import re, sys
p = sys.argv[1]
s = open(p).read()
new = """  mod_muc:
    access:
      - allow
    access_admin:
      - allow: admin
    access_create: muc_create
    access_persistent: muc_create
    history_size: 20
    max_users: 10000
    max_users_presence: 10000
    max_user_conferences: 1000
    min_message_interval: 0
    min_presence_interval: 0
    default_room_options:
      mam: false
      max_users: 10000
"""
s2, n = re.subn(r"  mod_muc:\n(    .*\n)+", new, s, count=1)
if n != 1:
    sys.exit("ejabberd.yml: no mod_muc block")
open(p, "w").write(s2)
PY
        chown ejabberd:ejabberd "$d/etc/ejabberd.yml"
        ;;
    magpie)
        # the harness's module list without mam, plus muc (its defaults: see docs/configuration.md)
        sed -i 's/^\( *carbons\)\]$/\1, muc]/' "$d/magpie.yml"
        grep -q 'carbons, muc\]' "$d/magpie.yml" || { log "magpie.yml: module list not found"; return 1; }
        cat >>"$d/magpie.yml" <<CFG
# added by bench/muc.sh
muc: {default_history: 20, max_occupants: 10000, default_logging: ${MUC_MAGPIE_LOGGING:-false}}
CFG
        "$MAGPIE_BIN" --check-config --config "$d/magpie.yml" >/dev/null || return 1
        ;;
    esac
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command: $0 --servers '$SERVERS' --sizes '$SIZES' --rounds $ROUNDS --duration $DURATION" \
        "(FIXED_DELIV=$FIXED_DELIV INFLIGHT_DELIV=$INFLIGHT_DELIV FIXED_DURATION=$FIXED_DURATION users=$USERS)"
    echo "machine: nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) kernel=$(uname -r)"
    for s in $SERVERS; do echo "version $s: $(srv "$s" version 2>/dev/null)"; done
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

if [ $PROVISION = 1 ]; then
    for s in $SERVERS; do
        log "provision $s ($USERS users)"
        srv "$s" stop >/dev/null 2>&1
        if ! srv "$s" provision >"$OUT/logs/provision-$s.log" 2>&1 || ! muc_config "$s" >>"$OUT/logs/provision-$s.log" 2>&1; then
            log "provision $s failed"; tail -20 "$OUT/logs/provision-$s.log" >&2; exit 1
        fi
    done
fi

senders() { case $1 in 10) echo 2 ;; 100) echo 5 ;; *) echo 10 ;; esac; }

rotate() {
    local n=$1; shift; local a=("$@") k=$# i
    for ((i = 0; i < k; i++)); do printf '%s ' "${a[$(((i + n) % k))]}"; done
}

for round in $(seq 1 "$ROUNDS"); do
    for size in $SIZES; do
        rate=$(python3 -c "print($FIXED_DELIV / $size)")
        inflight=$(( INFLIGHT_DELIV / size > 2 ? INFLIGHT_DELIV / size : 2 ))
        # shellcheck disable=SC2086
        for s in $(rotate $((round - 1)) $SERVERS); do
            tag=$s-$size-$round
            CURRENT=$s
            if ! srv "$s" start >"$OUT/logs/$tag.start.log" 2>&1; then
                log "$s failed to start"; tail -20 "$OUT/logs/$tag.start.log" >&2
                echo "{\"scenario\":\"muc\",\"server\":\"$s\",\"room_size\":$size,\"round\":$round,\"error\":\"start failed\"}" >>"$RAW"
                CURRENT=""; continue
            fi
            pids=$(srv "$s" pid | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
            "$LG" -s login -p "$BENCH_PORT" -u 100 -c 50 -q --pids "$pids" -l "$s" >/dev/null 2>&1 # warm-up
            sleep 1
            log "round $round/$ROUNDS  rooms of $size  $s (pids $pids)"
            line=$("$LG" -s muc -p "$BENCH_PORT" -u "$USERS" -c 100 --room-size "$size" \
                --senders "$(senders "$size")" --muc-service "$MUC" -r "$rate" -t "$FIXED_DURATION" \
                --inflight "$inflight" --max-duration "$DURATION" --pids "$pids" -l "$s" \
                2>>"$OUT/logs/$tag.loadgen.log")
            alive=1
            for p in ${pids//,/ }; do kill -0 "$p" 2>/dev/null || alive=0; done
            if [ -n "$line" ]; then
                echo "${line%\}},\"round\":$round,\"server_alive_after\":$alive}" >>"$RAW"
            else
                echo "{\"scenario\":\"muc\",\"server\":\"$s\",\"room_size\":$size,\"round\":$round,\"error\":\"no result\"}" >>"$RAW"
            fi
            tail -n 5 "$OUT/logs/$tag.loadgen.log" >&2
            srv "$s" stop >>"$OUT/logs/$tag.start.log" 2>&1
            CURRENT=""
            sleep 1
        done
    done
done

report "$RAW" | tee "$OUT/table.md"
log "raw results: $RAW   table: $OUT/table.md   logs: $OUT/logs"
