#!/usr/bin/env bash
# weir's demo (README command one): weir shaping real traffic between two
# hosts of a veth lab, with the HTB tree of the seed document's section 1.2
# scaled to a 100 Mbit/s root (config/lab.toml: tc's defaults where the seed
# leaves a value open, so tc's default bursts and 1000-packet pfifo leaves).
#
#   netns A 198.18.0.1 ── weir-in [weir run] weir-out ── netns B 198.18.0.2
#
# It installs what it needs, builds weir in release, brings the lab up
# (scripts/lab.sh), starts `weir run -c config/lab.toml`, and drives UDP
# flows with iperf3, one per class, marked with the DSCP value that the
# config's filters map to that class (EF → 1:10, AF41 → 1:20, unmarked →
# 1:30), each offering more than the class may send. For each case it
# prints a table per class: rate, ceil, what HTB promises, what host B (or
# A) received, weir's drops, and PASS when the achieved rate is within ±3 %
# of the promise. Then it stops weir, shows its frame accounting, and tears
# the lab down — also on failure or Ctrl-C.
#
# Meant for a fresh Debian bookworm machine, as root, with the Rust toolchain
# installed by rustup. Works from any directory. About 40 s after the first
# build. Exits non-zero when a class misses its promise.
#
# Environment:
#   WEIR_SKIP_INSTALL=1  do not check or install Debian packages
#   CI=true / NO_COLOR=1 no colour codes
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$WEIR_ROOT"

CONFIG=config/lab.toml
# The demo's own lab, so it never touches one made by hand (lab.sh's
# default prefix is weir-).
PREFIX=weirdemo-
NS_A="${PREFIX}a"
NS_B="${PREFIX}b"
NS_GW="${PREFIX}gw"
ADDR_A=198.18.0.1
ADDR_B=198.18.0.2
# Seconds of traffic per flow; flows start STAGGER seconds apart and only
# the seconds when all of them run are measured (see run_case).
SECS=7
STAGGER=0.25
# Offered payload per flow: above every ceil that matters (60 and 80).
OFFERED=90M
TOLERANCE_PCT=3

((EUID == 0)) || weir_die "demo.sh needs root (network namespaces, veth, AF_XDP)"
[[ -f "$CONFIG" ]] || weir_die "$CONFIG is missing from $WEIR_ROOT"

WORK="$(mktemp -d -t weir-demo.XXXXXX)"
WEIR_PID=
failures=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$WEIR_PID" ]] && kill -0 "$WEIR_PID" 2>/dev/null; then
        kill -TERM "$WEIR_PID" 2>/dev/null || true
        wait "$WEIR_PID" 2>/dev/null || true
    fi
    if [[ -x scripts/lab.sh ]]; then
        scripts/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1 ||
            weir_err "lab.sh down --prefix $PREFIX failed; run it by hand"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'weir_err "interrupted"; exit 130' INT TERM

weir_banner "[1/5] prerequisites"
# jq reads weir's and iperf3's JSON below.
weir_ensure_packages "${WEIR_DEB_PACKAGES[@]}" jq
weir_find_cargo

echo
weir_banner "[2/5] build (release; the first build takes a few minutes)"
cargo build --release --locked -p weir --bin weir
target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
    jq -r '.target_directory')"
WEIR_BIN="${target_dir:-$WEIR_ROOT/target}/release/weir"
[[ -x "$WEIR_BIN" ]] || weir_die "built, but no binary at $WEIR_BIN"

echo
weir_banner "[3/5] lab up, weir run -c $CONFIG"
scripts/lab.sh up --prefix "$PREFIX" --weir "$WEIR_BIN"
ip netns exec "$NS_GW" "$WEIR_BIN" run -c "$CONFIG" --json --report "$WORK/report.json" \
    --socket "$WORK/weir.sock" --history "$WORK/history.db" \
    >"$WORK/weir.out" 2>"$WORK/weir.err" &
WEIR_PID=$!

weir_log_tail() {
    tail -n 20 "$WORK/weir.err" >&2
}

# Waits (up to $2 tenths of a second) for weir's stdout to have more than
# $1 lines; dies if weir exits.
wait_lines() {
    local min_lines="$1" tenths="$2" i
    for ((i = 0; i < tenths; i++)); do
        (($(wc -l <"$WORK/weir.out") > min_lines)) && return 0
        kill -0 "$WEIR_PID" 2>/dev/null || {
            weir_log_tail
            weir_die "weir run exited early (its log is above)"
        }
        sleep 0.1
    done
    weir_log_tail
    weir_die "weir run printed nothing new for $((tenths / 10)) s"
}

for ((i = 0; i < 200; i++)); do
    grep -qx ready "$WORK/weir.out" && break
    kill -0 "$WEIR_PID" 2>/dev/null || {
        weir_log_tail
        weir_die "weir run exited before it was ready (its log is above)"
    }
    sleep 0.1
done
grep -qx ready "$WORK/weir.out" || weir_die "weir run not ready after 20 s"
sed '/^ready$/q' "$WORK/weir.out"

# A stats dump (SIGUSR1) as one JSON line.
stats() {
    local before
    before="$(wc -l <"$WORK/weir.out")"
    kill -USR1 "$WEIR_PID"
    wait_lines "$before" 100
    tail -n 1 "$WORK/weir.out"
}

# A one-off iperf3 server in netns $1 on address $2 port $3, JSON to $4;
# waits until it listens and leaves its pid in START_SERVER_PID. Bounded:
# it exits after one test or 30 s.
start_server() {
    local ns="$1" addr="$2" port="$3" out="$4" i
    ip netns exec "$ns" timeout -k 2 30 iperf3 -s -1 -J -B "$addr" -p "$port" >"$out" 2>&1 &
    START_SERVER_PID=$!
    for ((i = 0; i < 50; i++)); do
        [[ -n "$(ip netns exec "$ns" ss -Hltn "sport = :$port")" ]] && return 0
        sleep 0.1
    done
    weir_die "iperf3 server in $ns on port $port does not listen"
}

# Receiver-side rate of the iperf3 server report $1 over the window $3..$4
# (seconds; the client started at $2 on the same clock), in Mbit/s of
# Ethernet frames: the one-second intervals wholly inside the window,
# payload bits scaled by 1514/1472 (a 1472-byte payload is a 1514-byte
# frame, which is what HTB charges).
frame_mbit() {
    jq -r --argjson s "$2" --argjson from "$3" --argjson to "$4" '
        [.intervals[].sum
         | select(.end - .start >= 0.9 and $s + .start >= $from and $s + .end <= $to)] as $iv
        | if ($iv | length) < 2 then "nan"
          else (($iv | map(.bytes) | add) * 8 / ($iv | map(.end - .start) | add) / 1e6 * 1514 / 1472)
               | . * 100 | round / 100 end' "$1"
}

# One case: traffic from host $2 ("A" or "B") on tree $3, one flow per
# "classid:dscp:promised_mbit" argument (dscp "-" = unmarked). Prints the
# table and counts the classes that miss.
run_case() {
    local title="$1" from="$2" tree="$3"
    shift 3
    local ns_from ns_to addr_to
    if [[ "$from" == A ]]; then
        ns_from="$NS_A" ns_to="$NS_B" addr_to="$ADDR_B"
    else
        ns_from="$NS_B" ns_to="$NS_A" addr_to="$ADDR_A"
    fi
    echo
    weir_banner "$title"
    local spec classid dscp port=5600 before after pid
    local -a servers=() clients=() mark starts=()
    before="$(stats)"
    for spec in "$@"; do
        port=$((port + 1))
        start_server "$ns_to" "$addr_to" "$port" "$WORK/server-$port.json"
        servers+=("$START_SERVER_PID")
    done
    # Clients start STAGGER apart, the unmarked flow last: every client's
    # TCP control connection and UDP start datagram are unmarked, so they
    # travel in the default class 1:30, and once an unmarked flood fills
    # that class most arrivals are dropped: a client started after it
    # would lose its SYN and begin a second or more late.
    port=5600
    # EPOCHREALTIME has the locale's decimal separator; jq wants a dot.
    local t0="${EPOCHREALTIME/,/.}"
    for spec in "$@"; do
        port=$((port + 1))
        ((port == 5601)) || sleep "$STAGGER"
        starts+=("$(jq -n "${EPOCHREALTIME/,/.} - $t0")")
        dscp="$(cut -d: -f3 <<<"$spec")"
        mark=()
        [[ "$dscp" == "-" ]] || mark=(--dscp "$dscp")
        ip netns exec "$ns_from" timeout -k 2 $((SECS + 15)) \
            iperf3 -c "$addr_to" -p "$port" -u -b "$OFFERED" -l 1472 -t "$SECS" "${mark[@]}" \
            >"$WORK/client-$port.out" 2>&1 &
        clients+=($!)
    done
    for pid in "${clients[@]}"; do
        wait "$pid" || weir_err "an iperf3 client failed: $(cat "$WORK"/client-*.out)"
    done
    # One-off servers exit after their test (and are bounded by timeout).
    for pid in "${servers[@]}"; do
        wait "$pid" || true
    done
    after="$(stats)"

    # Measure while every flow runs: from the first second after the last
    # start (HTB's buckets start full) to the first end, less a margin for
    # the few ms between spawning a client and its first datagram.
    local wfrom wto
    wfrom="$(jq -n "${starts[-1]} + 1.15")"
    wto="$(jq -n "${starts[0]} + $SECS - 0.15")"
    printf '%-6s %-7s %6s %6s %8s %9s %9s %8s  %s\n' \
        class name rate ceil marked promised achieved drops verdict
    port=5600
    local promised achieved rate ceil name drops verdict err n=0
    for spec in "$@"; do
        port=$((port + 1))
        classid="$(cut -d: -f1-2 <<<"$spec")"
        dscp="$(cut -d: -f3 <<<"$spec")"
        promised="$(cut -d: -f4 <<<"$spec")"
        achieved="$(frame_mbit "$WORK/server-$port.json" "${starts[n]}" "$wfrom" "$wto" 2>/dev/null || echo nan)"
        n=$((n + 1))
        read -r name rate ceil < <(jq -r --arg t "$tree" --arg c "$classid" \
            '.trees[] | select(.name == $t) | .classes[] | select(.classid == $c)
             | "\(.name // "-") \(.rate * 8 / 1e6) \(.ceil * 8 / 1e6)"' <<<"$after")
        drops=$(($(class_drops "$after" "$tree" "$classid") - $(class_drops "$before" "$tree" "$classid")))
        if [[ "$achieved" == nan ]]; then
            verdict="FAIL (no iperf3 result: $(head -c 200 "$WORK/server-$port.json"))"
            failures=$((failures + 1))
        else
            err="$(jq -n --argjson a "$achieved" --argjson p "$promised" '($a - $p) / $p * 100 | . * 100 | round / 100')"
            if jq -e -n --argjson e "$err" --argjson t "$TOLERANCE_PCT" '($e | fabs) <= $t' >/dev/null; then
                verdict="${WEIR_GREEN}PASS${WEIR_RESET} (${err} %)"
            else
                verdict="${WEIR_RED}FAIL${WEIR_RESET} (${err} %, allowed ±${TOLERANCE_PCT} %)"
                failures=$((failures + 1))
            fi
        fi
        printf '%-6s %-7s %6s %6s %8s %9s %9s %8s  %s\n' \
            "$classid" "$name" "$rate" "$ceil" "$dscp" "$promised" "$achieved" "$drops" "$verdict"
    done
}

class_drops() {
    jq -r --arg t "$2" --arg c "$3" \
        '.trees[] | select(.name == $t) | .classes[] | select(.classid == $c) | .drops' <<<"$1"
}

echo
weir_banner "[4/5] traffic: one UDP flow per class, ${OFFERED}bit/s each, ${SECS} s per case"
cat <<'EOF'
Rates and ceils in Mbit/s; "achieved" is what the receiving host got, in
Mbit/s of Ethernet frames (HTB's currency), measured while every flow runs; "drops"
are weir's drops in that class during the case (the flows offer more than
any class may send, so the queues overflow or RED drops early).
EOF

cat <<'EOF'

Every class is saturated. HTB first gives each class its guaranteed rate;
the rates add up to the whole 100 Mbit/s link, so nothing is left to
borrow and the ceilings never come into play: 30 / 50 / 20.
EOF
run_case "A → B (tree up), all classes saturated" A up 1:10:EF:30 1:20:AF41:50 1:30:-:20
run_case "B → A (tree down), all classes saturated" B down 1:10:EF:30 1:20:AF41:50 1:30:-:20

cat <<'EOF'

1:30 sends nothing, so its 20 Mbit/s is spare. HTB offers spare bandwidth
to the lowest prio value first: 1:10 (prio 1) borrows all of it (50, below
its ceil of 60); 1:20 (prio 2) keeps its own 50.
EOF
run_case "A → B (tree up), 1:30 idle" A up 1:10:EF:50 1:20:AF41:50

echo
weir_banner "[5/5] stop weir: frame accounting"
kill -TERM "$WEIR_PID"
wait "$WEIR_PID" || weir_die "weir run exited with $? after SIGTERM; expected 0 (1: its frame accounting did not add up, see below)"
WEIR_PID=
jq -r '.trees[] | "tree \(.name): received \(.frames.received) = sent \(.frames.sent) + dropped \(.frames.dropped_total) + queued \(.frames.queued) (balanced: \(.frames.balanced))"' \
    "$WORK/report.json"
jq -r '.accounting | "overall: balanced \(.balanced); every UMEM frame back (free or in a fill ring): \(.umem_free_or_fill), \(.umem_away) away"' \
    "$WORK/report.json"
jq -e '.accounting.balanced and .accounting.umem_free_or_fill' "$WORK/report.json" >/dev/null ||
    failures=$((failures + 1))

echo
echo "What the history database kept of the run (weir history --class 1:10):"
"$WEIR_BIN" history --db "$WORK/history.db" --tree up --class 1:10 --since 10m ||
    weir_err "weir history could not read $WORK/history.db"

echo
if ((failures > 0)); then
    weir_die "demo.sh: $failures check(s) missed what HTB promises (tables above)"
fi
weir_ok "demo.sh: PASS — every class within ±${TOLERANCE_PCT} % of what HTB promises, every frame accounted for"
