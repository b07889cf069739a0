#!/usr/bin/env bash
# weir's veth lab: network namespaces joined by veth pairs, for shaping real
# traffic on one machine (the demo, the end-to-end tests, hands-on work).
#
#   lab.sh up     [--prefix P] [--queues N] [--fail-open] [--twin [--config FILE]
#                  [--weir BIN] [--up-tree NAME] [--down-tree NAME]]
#   lab.sh down   [--prefix P]
#   lab.sh status [--prefix P]
#
# The weir path (always):
#
#   netns ${P}a          netns ${P}gw                       netns ${P}b
#   a0 198.18.0.1/24 ─── weir-in  [weir run]  weir-out ─── b0 198.18.0.2/24
#
#   weir-in and weir-out carry no address: `ip netns exec ${P}gw weir run -c
#   config/lab.toml` bridges them (upload = weir-in → weir-out = A → B).
#
#   With --fail-open, weir-in and weir-out are also the ports of a kernel
#   bridge br0 in ${P}gw. While weir runs, its XDP program redirects every
#   frame to weir's AF_XDP sockets before the bridge sees it (a redirected
#   frame is consumed); when weir is gone (stopped, crashed, kill -9), the
#   program is detached or finds no socket and passes the frame on, and the
#   bridge forwards it: traffic flows, unshaped.
#
# The kernel twin (with --twin), for side-by-side comparisons:
#
#   netns ${P}a2         netns ${P}br                       netns ${P}b2
#   a0 198.18.1.1/24 ─── k-in ── bridge br0 ── k-out ──── b0 198.18.1.2/24
#
#   with the equivalent kernel HTB tree (`weir tc --leaf-fallback pfifo`:
#   this kernel has no sfq/red/fq_codel) on the egress of k-out (upload,
#   A2 → B2) and k-in (download, B2 → A2).
#
# Every name outside the namespaces starts with the prefix (default `weir-`),
# so tests can run their own lab next to a hand-made one; interface names
# are fixed inside the namespaces. Addresses come from 198.18.0.0/15 (RFC
# 2544 benchmarking) only and nothing is routed out of the lab.
#
# `up` is idempotent (it creates what is missing and re-applies settings;
# with --twin it rebuilds the kernel HTB trees from the config); `down`
# stops the processes still running in the lab's namespaces (SIGTERM, then
# SIGKILL after 3 s) and deletes the namespaces, which destroys their veth
# ends; `down` on nothing is fine. `status` exits 0 when the weir path (and
# the twin, if any part of it exists) is complete, 1 otherwise.
#
# Options:
#   --prefix P       namespace name prefix (letters, digits, . _ -; at most
#                    20 characters). Default: weir-
#   --queues N       rx/tx queues of the veth pairs on the weir path
#                    (1..64, default 1). An existing pair with another count
#                    is rebuilt, unless an XDP program is attached to it.
#   --fail-open      put weir-in and weir-out in a kernel bridge br0 in
#                    ${P}gw (no STP, no forward delay, no address), so
#                    traffic flows unshaped whenever weir is not running.
#                    Without it, `up` removes a br0 left by an earlier
#                    `up --fail-open`.
#   --twin           also build the kernel twin path.
#   --config FILE    the config the twin's HTB trees come from
#                    (default config/lab.toml).
#   --up-tree NAME   its upload tree (default up); --down-tree NAME: its
#                    download tree (default down).
#   --weir BIN       the weir binary for `weir tc` (default: $WEIR_BIN, else
#                    target/release/weir, else `cargo run --release`).
#
# Needs root, iproute2 and ethtool (scripts/lib.sh lists the packages).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

# Fixed, locally administered MACs (02:…): tests write them into trafgen
# configs and static neighbour entries, and a capture is easy to read.
# c6:12 is 198.18 in hex.
MAC_A0=02:00:c6:12:00:01
MAC_B0=02:00:c6:12:00:02
MAC_WEIR_IN=02:00:c6:12:00:11
MAC_WEIR_OUT=02:00:c6:12:00:12
MAC_A2=02:00:c6:12:01:01
MAC_B2=02:00:c6:12:01:02
MAC_K_IN=02:00:c6:12:01:11
MAC_K_OUT=02:00:c6:12:01:12

ADDR_A=198.18.0.1/24
ADDR_B=198.18.0.2/24
ADDR_A2=198.18.1.1/24
ADDR_B2=198.18.1.2/24

prefix=weir-
queues=1
twin=0
fail_open=0
config=
up_tree=up
down_tree=down
weir_bin="${WEIR_BIN:-}"

((EUID == 0)) || weir_die "lab.sh needs root (network namespaces, veth, tc)"

action="${1:-}"
case "$action" in
up | down | status) shift ;;
-h | --help | help)
    usage
    exit 0
    ;;
"") weir_die "expected an action: up, down or status (lab.sh --help)" ;;
*) weir_die "unknown action '$action'; expected up, down or status" ;;
esac

while (($# > 0)); do
    case "$1" in
    --prefix | --queues | --config | --weir | --up-tree | --down-tree)
        (($# >= 2)) || weir_die "$1 needs a value"
        case "$1" in
        --prefix) prefix="$2" ;;
        --queues) queues="$2" ;;
        --config) config="$2" ;;
        --weir) weir_bin="$2" ;;
        --up-tree) up_tree="$2" ;;
        --down-tree) down_tree="$2" ;;
        esac
        shift 2
        ;;
    --twin)
        twin=1
        shift
        ;;
    --fail-open)
        fail_open=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) weir_die "unknown option '$1' (lab.sh --help)" ;;
    esac
done

[[ "$prefix" =~ ^[A-Za-z0-9._-]{1,20}$ ]] ||
    weir_die "--prefix '$prefix': expected 1 to 20 letters, digits, '.', '_' or '-'"
if ! [[ "$queues" =~ ^[0-9]{1,2}$ ]] || ((queues < 1 || queues > 64)); then
    weir_die "--queues '$queues': expected a number from 1 to 64"
fi
for t in "$up_tree" "$down_tree"; do
    [[ "$t" =~ ^[A-Za-z0-9._-]+$ ]] || weir_die "tree name '$t': expected letters, digits, '.', '_' or '-'"
done

for tool in ip tc ethtool; do
    command -v "$tool" >/dev/null 2>&1 ||
        weir_die "$tool not found: install ${WEIR_DEB_PACKAGES[*]} (scripts/demo.sh does)"
done

NS_A="${prefix}a"
NS_GW="${prefix}gw"
NS_B="${prefix}b"
NS_A2="${prefix}a2"
NS_BR="${prefix}br"
NS_B2="${prefix}b2"
WEIR_NS=("$NS_A" "$NS_GW" "$NS_B")
TWIN_NS=("$NS_A2" "$NS_BR" "$NS_B2")

ns_exists() {
    [[ -e "/run/netns/$1" ]]
}

# `ip link show` of one interface in a namespace, quietly.
link_exists() {
    ns_exists "$1" && ip -n "$1" link show dev "$2" >/dev/null 2>&1
}

ensure_ns() {
    local ns="$1"
    if ! ns_exists "$ns"; then
        ip netns add "$ns"
    fi
    ip -n "$ns" link set lo up
    # Keep the wire quiet: no IPv6 router solicitations, MLD reports or DAD
    # probes crossing the shaper, so what a test measures is what it sent.
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

# Number of rx queues of an interface, from `ip -d link` ("numrxqueues N").
rx_queues() {
    ip -n "$1" -d link show dev "$2" | sed -n 's/.*numrxqueues \([0-9]\+\).*/\1/p'
}

xdp_attached() {
    ip -n "$1" link show dev "$2" 2>/dev/null | grep -q ' xdp'
}

# One veth pair: end $2 in netns $1, end $4 in netns $3, $5 queues each.
# Reuses a complete pair with the right queue count; removes a half pair
# (one end gone, e.g. after a namespace was deleted by hand) or a pair with
# the wrong queue count and creates it again.
ensure_veth() {
    local ns1="$1" if1="$2" ns2="$3" if2="$4" nq="$5"
    if link_exists "$ns1" "$if1" && link_exists "$ns2" "$if2"; then
        local have
        have="$(rx_queues "$ns1" "$if1")"
        if [[ "$have" == "$nq" ]]; then
            return 0
        fi
        if xdp_attached "$ns1" "$if1" || xdp_attached "$ns2" "$if2"; then
            weir_die "$if1/$if2 have $have queues, $nq asked, and an XDP program is attached (weir running?): stop it or run 'lab.sh down --prefix $prefix' first"
        fi
        echo "rebuilding $if1/$if2 with $nq queues (had $have)"
    fi
    # Deleting either end deletes the pair.
    ip -n "$ns1" link del dev "$if1" 2>/dev/null || true
    ip -n "$ns2" link del dev "$if2" 2>/dev/null || true
    # Created inside ns1 with its peer straight in ns2: nothing ever appears
    # in the caller's namespace, so names cannot clash with other labs.
    ip -n "$ns1" link add "$if1" numtxqueues "$nq" numrxqueues "$nq" type veth \
        peer name "$if2" netns "$ns2" numtxqueues "$nq" numrxqueues "$nq"
}

# MAC, MTU, offloads, up: re-applied on every `up` (all idempotent).
setup_port() {
    local ns="$1" dev="$2" mac="$3"
    # The MAC can only change while the link is down; skip when it is right
    # so a running weir never sees its port bounce.
    if ! ip -n "$ns" link show dev "$dev" | grep -q "link/ether $mac "; then
        ip -n "$ns" link set dev "$dev" down
        ip -n "$ns" link set dev "$dev" address "$mac"
    fi
    ip -n "$ns" link set dev "$dev" mtu 1500
    # No segmentation offloads: every frame on the wire is at most one MTU,
    # so it fits one 4 KiB UMEM frame (AF_XDP on veth is copy mode and
    # cannot take a 64 KiB GSO super-packet), and HTB charges the bytes
    # that a real wire would carry. No tx checksum offload either: a frame
    # that leaves through AF_XDP is a plain copy of its bytes, so a
    # CHECKSUM_PARTIAL skb would reach the far host with a wrong TCP/UDP
    # checksum and be dropped there. Features a kernel lacks are skipped.
    ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off >/dev/null 2>&1 ||
        ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null
    ip -n "$ns" link set dev "$dev" up
}

host_addr() {
    local ns="$1" dev="$2" addr="$3"
    # Flush first so a changed address (or a stray one) does not linger.
    if ! ip -n "$ns" -4 addr show dev "$dev" | grep -q "inet $addr "; then
        ip -n "$ns" addr flush dev "$dev"
        ip -n "$ns" addr add "$addr" dev "$dev"
    fi
}

# The fail-open bridge of the gw namespace. weir's XDP program runs on
# each port before the bridge's rx handler: while weir runs, it redirects
# every frame to an AF_XDP socket and the bridge never sees it; without a
# socket (or without the program) the frame is passed up and the bridge
# forwards it. No address: the bridge is a wire, not a host.
ensure_fail_open_bridge() {
    if ! link_exists "$NS_GW" br0; then
        ip -n "$NS_GW" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    fi
    # Re-applied on every `up`. No STP (no BPDUs on the wire) and no
    # listening/learning delay (15 s by default), so a port forwards the
    # moment weir lets go of it; with a delay, fail-open would open only
    # after it. No multicast snooping: with it, the bridge joins the
    # snoopers' group and sends IGMP reports out of both ports when it
    # comes up, frames the hosts never sent; without it, multicast is
    # flooded like broadcast, as on a wire.
    ip -n "$NS_GW" link set dev br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    ip -n "$NS_GW" link set dev weir-in master br0
    ip -n "$NS_GW" link set dev weir-out master br0
    ip -n "$NS_GW" link set dev br0 up
}

# `up` without --fail-open: the gw namespace forwards nothing by itself.
# Deleting the bridge releases its ports and leaves them (and any XDP
# program on them) as they are.
remove_fail_open_bridge() {
    if link_exists "$NS_GW" br0; then
        ip -n "$NS_GW" link del dev br0
        echo "removed the fail-open bridge br0 from $NS_GW"
    fi
}

# The weir binary, as a command array, for `weir tc`.
resolve_weir() {
    if [[ -n "$weir_bin" ]]; then
        [[ -x "$weir_bin" ]] || weir_die "--weir/WEIR_BIN '$weir_bin' is not an executable"
        WEIR_CMD=("$weir_bin")
    elif [[ -x "$WEIR_ROOT/target/release/weir" ]]; then
        WEIR_CMD=("$WEIR_ROOT/target/release/weir")
    else
        weir_find_cargo
        WEIR_CMD=(cargo run --release --locked -q --manifest-path "$WEIR_ROOT/Cargo.toml" -p weir --bin weir --)
    fi
}

# The kernel HTB tree `tree` of the config on the egress of `dev` in the
# bridge namespace, rebuilt from scratch (a `qdisc replace` over an
# existing HTB root would keep its old classes and the class adds fail).
apply_tc_tree() {
    local tree="$1" dev="$2" script
    script="$("${WEIR_CMD[@]}" tc -c "$config" --tree "$tree" --dev "$dev" --leaf-fallback pfifo)" ||
        weir_die "weir tc -c $config --tree $tree failed (see above)"
    tc -n "$NS_BR" qdisc del dev "$dev" root 2>/dev/null || true
    printf '%s\n' "$script" | tc -n "$NS_BR" -batch - ||
        weir_die "tc -batch rejected the script of tree $tree on $dev (print it with: weir tc -c $config --tree $tree --dev $dev --leaf-fallback pfifo)"
}

lab_up() {
    local ns
    for ns in "${WEIR_NS[@]}"; do
        ensure_ns "$ns"
    done
    ensure_veth "$NS_A" a0 "$NS_GW" weir-in "$queues"
    ensure_veth "$NS_B" b0 "$NS_GW" weir-out "$queues"
    setup_port "$NS_A" a0 "$MAC_A0"
    setup_port "$NS_B" b0 "$MAC_B0"
    setup_port "$NS_GW" weir-in "$MAC_WEIR_IN"
    setup_port "$NS_GW" weir-out "$MAC_WEIR_OUT"
    host_addr "$NS_A" a0 "$ADDR_A"
    host_addr "$NS_B" b0 "$ADDR_B"
    local gw_desc=weir-in/weir-out
    if ((fail_open)); then
        ensure_fail_open_bridge
        gw_desc="br0(weir-in, weir-out) fail-open"
    else
        remove_fail_open_bridge
    fi
    echo "lab up: $NS_A a0 $ADDR_A ($MAC_A0) — $NS_GW $gw_desc — $NS_B b0 $ADDR_B ($MAC_B0)"

    ((twin)) || return 0
    config="${config:-$WEIR_ROOT/config/lab.toml}"
    [[ -f "$config" ]] || weir_die "--config $config: no such file"
    resolve_weir
    for ns in "${TWIN_NS[@]}"; do
        ensure_ns "$ns"
    done
    # The twin's ports have one queue: the kernel HTB root qdisc serialises
    # every queue of a port anyway.
    ensure_veth "$NS_A2" a0 "$NS_BR" k-in 1
    ensure_veth "$NS_B2" b0 "$NS_BR" k-out 1
    setup_port "$NS_A2" a0 "$MAC_A2"
    setup_port "$NS_B2" b0 "$MAC_B2"
    setup_port "$NS_BR" k-in "$MAC_K_IN"
    setup_port "$NS_BR" k-out "$MAC_K_OUT"
    if ! link_exists "$NS_BR" br0; then
        # No STP and no forward delay: ports forward as soon as they are up.
        ip -n "$NS_BR" link add br0 type bridge stp_state 0 forward_delay 0
    fi
    ip -n "$NS_BR" link set dev k-in master br0
    ip -n "$NS_BR" link set dev k-out master br0
    ip -n "$NS_BR" link set dev br0 up
    host_addr "$NS_A2" a0 "$ADDR_A2"
    host_addr "$NS_B2" b0 "$ADDR_B2"
    apply_tc_tree "$up_tree" k-out
    apply_tc_tree "$down_tree" k-in
    echo "twin up: $NS_A2 a0 $ADDR_A2 — $NS_BR br0(k-in, k-out) kernel HTB from $config (k-out: $up_tree, k-in: $down_tree) — $NS_B2 b0 $ADDR_B2"
}

# Stop what still runs in a namespace (weir, iperf3 servers started by
# hand): a process keeps its namespace, and so the veth ends, alive after
# `ip netns del`, and a second `up` would then fail on the names.
stop_ns_processes() {
    local ns="$1" pids i
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    ((${#pids[@]} > 0)) || return 0
    echo "stopping ${#pids[@]} process(es) in $ns: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
        ((${#pids[@]} > 0)) || return 0
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

lab_down() {
    local ns removed=0
    for ns in "${WEIR_NS[@]}" "${TWIN_NS[@]}"; do
        ns_exists "$ns" || continue
        stop_ns_processes "$ns"
        ip netns del "$ns"
        removed=$((removed + 1))
    done
    echo "lab down ($prefix): removed $removed namespace(s)"
}

# Prints one namespace's links, XDP programs and qdiscs; returns 1 when an
# expected link is missing.
status_ns() {
    local ns="$1"
    shift
    if ! ns_exists "$ns"; then
        printf '%-14s missing\n' "$ns"
        return 1
    fi
    local ok=0 dev line
    printf '%-14s present\n' "$ns"
    for dev in "$@"; do
        if ! link_exists "$ns" "$dev"; then
            printf '    %-9s missing\n' "$dev"
            ok=1
            continue
        fi
        # state, MAC, then the IPv4 address if any
        printf '    %-9s %s' "$dev" "$(ip -n "$ns" -br link show dev "$dev" | awk '{ print $2, $3 }')"
        line="$(ip -n "$ns" -br -4 addr show dev "$dev" 2>/dev/null | awk '{ print $3 }')"
        [[ -z "$line" ]] || printf ' %s' "$line"
        if xdp_attached "$ns" "$dev"; then
            printf ' xdp:%s' "$(ip -n "$ns" link show dev "$dev" | grep -o 'prog/xdp id [0-9]*' | awk '{ print $3 }' | head -1)"
        fi
        printf ' queues:%s\n' "$(rx_queues "$ns" "$dev")"
    done
    while read -r line; do
        [[ -n "$line" ]] && printf '    tc: %s\n' "$line"
    done < <(tc -n "$ns" qdisc show 2>/dev/null | grep -Ev 'qdisc (noqueue|noop) ' || true)
    local pids
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    if [[ -n "$pids" ]]; then
        printf '    processes: %s\n' "$(for p in $pids; do printf '%s(%s) ' "$(cat "/proc/$p/comm" 2>/dev/null)" "$p"; done)"
    fi
    return "$ok"
}

# One line on the fail-open bridge: absent, or its state and each port's
# bridge state (forwarding is what fail-open needs).
status_fail_open() {
    if ! link_exists "$NS_GW" br0; then
        printf '    %-9s none (no fail-open: up --fail-open)\n' br0
        return 0
    fi
    local ports
    ports="$(bridge -n "$NS_GW" link show 2>/dev/null |
        awk '/master br0/ { sub(/[@:].*/, "", $2); for (i = 1; i < NF; i++) if ($i == "state") printf " %s:%s", $2, $(i + 1) }')"
    printf '    %-9s fail-open bridge %s ports:%s\n' br0 \
        "$(ip -n "$NS_GW" -br link show dev br0 | awk '{ print $2 }')" "${ports:- none}"
}

lab_status() {
    local rc=0 any_twin=0 ns
    echo "weir path:"
    status_ns "$NS_A" a0 || rc=1
    status_ns "$NS_GW" weir-in weir-out || rc=1
    status_fail_open
    status_ns "$NS_B" b0 || rc=1
    for ns in "${TWIN_NS[@]}"; do
        ns_exists "$ns" && any_twin=1
    done
    if ((any_twin)); then
        echo "kernel twin:"
        status_ns "$NS_A2" a0 || rc=1
        status_ns "$NS_BR" k-in k-out br0 || rc=1
        status_ns "$NS_B2" b0 || rc=1
    else
        echo "kernel twin: not built (lab.sh up --twin)"
    fi
    return "$rc"
}

case "$action" in
up)
    # A failed `up` leaves what it made; `down` removes it. Say so, because
    # set -e stops at the failing command with only its own message.
    trap 'rc=$?; ((rc == 0)) || weir_err "lab.sh up failed (exit $rc); lab.sh down --prefix $prefix removes what was made"' EXIT
    lab_up
    ;;
down) lab_down ;;
status) lab_status ;;
esac
