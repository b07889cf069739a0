#!/usr/bin/env bash
# weir's benchmark suite: one command, bounded time (about 15 minutes on a
# 2-core VM with the build cached, at most 20), one report.
#
#   bench/run.sh [--quick] [--out DIR] [--skip-micro]
#
# What it runs, all on veth labs (scripts/lab.sh) on this machine, as root:
#
#   1. Forwarding, RFC 2544 style (weir-bench compare), four paths measured
#      in turn, step by step (a b c d a b c d …), for 64- and 1518-byte
#      frames: NDR, PDR (0.5 % loss), latency at 10/50/90 % of PDR, CPU
#      per forwarded frame against a baseline (generator straight into the
#      receiver):
#        a  kernel bridge                      (lab wbu-, twin path, no qdisc)
#        b  kernel bridge + the equivalent HTB (lab wbk-, twin path, pfifo leaves)
#        c  weir, one worker, a tree that never limits (lab wbu-, weir path)
#        d  weir, seed 3.1 tree with fq_codel/sfq leaves (lab wbk-, weir path)
#   2. Shaping accuracy (weir-bench shaping): the lab tree (config/lab.toml,
#      100 Mbit/s, 30/60 50/80 20/100) with 1518-byte frames, saturated,
#      one idle and one active, on weir and on the kernel HTB twin.
#   2b. Rate accuracy against the kernel, tc defaults (weir-bench
#      differential): random trees (seeds 1..12, 1..4 with --quick) and the
#      hand-made quantum3, quantum2 and lab trees (lab, lab-30-idle,
#      lab-only-20 with UDP; lab-tcp with one bulk iperf3 TCP flow per
#      class) through kernel HTB, weir run and (UDP) weir simulate; per
#      class the difference in points of the root's rate (lab prefix wdf-).
#   3. Latency under load: 4 bulk TCP flows (iperf3) saturate a 20 Mbit/s
#      class while irtt probes the RTT every 10 ms through the same class;
#      fq_codel, sfq and a 1000-packet pfifo leaf.
#   4. Core micro-benchmarks (criterion: scheduler and classifier).
#   5. A profile of weir's worker while it forwards flat out (perf).
#
# Output: bench/results/<UTC date>.json and .md (a run on the same day
# replaces them), and the raw pieces in bench/results/<date>/.
#
# Options:
#   --quick       shorter trials and searches (about 6 minutes): a smoke
#                 test of the harness, not numbers to quote.
#   --out DIR     write the results under DIR instead of bench/results.
#   --skip-micro  leave out the criterion benches.
#
# Environment: WEIR_SKIP_INSTALL=1 as for scripts/test.sh.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"
cd "$WEIR_ROOT"

((EUID == 0)) || weir_die "bench/run.sh needs root (AF_XDP, XDP, network namespaces)"

quick=0
skip_micro=0
out_root=bench/results
while (($# > 0)); do
    case "$1" in
    --quick) quick=1 ;;
    --skip-micro) skip_micro=1 ;;
    --out)
        (($# >= 2)) || weir_die "--out needs a directory"
        out_root="$2"
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) weir_die "unknown option '$1' (bench/run.sh --help)" ;;
    esac
    shift
done

started=$SECONDS
# CPU counters at the start: the report says how much of the run the
# hypervisor gave to others (steal). On a shared VM that is the noise
# floor of every number here.
stat_start="$(grep '^cpu ' /proc/stat)"
day="$(date -u +%Y-%m-%d)"
out="$out_root/$day"
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.md "$out"/*.txt "$out"/*.toml "$out"/*.log

# Trial lengths: full run vs --quick.
if ((quick)); then
    trial_ms=500 steps=4 shaping_ms=2000 shaping_repeat=3 bloat_secs=5 diff_trees=4
else
    trial_ms=1000 steps=7 shaping_ms=5000 shaping_repeat=5 bloat_secs=10 diff_trees=12
fi

LABS=(wbk- wbu- wbs- wbq- wdf-)
DIRECT_A=wbd-a
DIRECT_B=wbd-b
weir_pids=()

cleanup() {
    local rc=$?
    for pid in "${weir_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for p in "${LABS[@]}"; do
        scripts/lab.sh down --prefix "$p" >/dev/null 2>&1 || true
    done
    ip netns del "$DIRECT_A" 2>/dev/null || true
    ip netns del "$DIRECT_B" 2>/dev/null || true
    if ((rc == 0)); then
        weir_ok "bench/run.sh: done in $(weir_duration $((SECONDS - started))): $out_root/$day.md"
    else
        weir_err "bench/run.sh: FAILED (exit $rc) after $(weir_duration $((SECONDS - started))); pieces so far in $out"
    fi
}
trap cleanup EXIT

weir_banner "[1/8] prerequisites and build"
weir_ensure_packages "${WEIR_DEB_PACKAGES[@]}" "${WEIR_BENCH_PACKAGES[@]}"
cargo build --release --locked -p weir --bin weir -p weir-bench --bin weir-bench
WEIR=target/release/weir
# Nothing is pinned: not the generator and receiver (on one CPU with the
# sender, the kernel paths, which forward in the sender's softirq, lost 12 %
# against having the second CPU free for the receiver) and not weir's
# worker (pinned, it woke later for its shaping deadlines and shaped
# 1-1.5 % short in the saturated case). The scheduler places all three.
BENCH=(target/release/weir-bench)

# Start `weir run` in a lab's gateway namespace; its API socket and metrics
# port are its own, so several run side by side.
start_weir() {
    local prefix="$1" config="$2" port="$3"
    local log="$out/weir-${prefix%-}.log"
    ip netns exec "${prefix}gw" "$WEIR" run -c "$config" --history none \
        --socket "/run/weir/bench-${prefix%-}.sock" --metrics "127.0.0.1:$port" \
        >"$log" 2>&1 &
    weir_pids+=($!)
    local _
    for _ in $(seq 1 100); do
        grep -q '^ready' "$log" && return 0
        kill -0 "${weir_pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    weir_die "weir did not start in ${prefix}gw with $config"
}

stop_weirs() {
    local pid
    for pid in "${weir_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${weir_pids[@]}"; do
        timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    weir_pids=()
}

weir_banner "[2/8] labs"
scripts/lab.sh up --prefix wbk- --twin --config bench/config/fwd-tiers.toml \
    --up-tree tiers --down-tree tiers --weir "$WEIR"
scripts/lab.sh up --prefix wbu- --twin --config bench/config/fwd-tiers.toml \
    --up-tree tiers --down-tree tiers --weir "$WEIR"
# Path (a) is the same twin without any qdisc: the plain bridge.
for dev in k-in k-out; do
    ip netns exec wbu-br tc qdisc del dev "$dev" root 2>/dev/null || true
done
# The baseline: generator straight into the receiver over one veth pair.
ip netns del "$DIRECT_A" 2>/dev/null || true
ip netns del "$DIRECT_B" 2>/dev/null || true
ip netns add "$DIRECT_A"
ip netns add "$DIRECT_B"
ip link add wbd-x type veth peer name wbd-y
ip link set wbd-x netns "$DIRECT_A"
ip link set wbd-y netns "$DIRECT_B"
ip -n "$DIRECT_A" link set wbd-x name a0
ip -n "$DIRECT_B" link set wbd-y name b0
for ns in "$DIRECT_A" "$DIRECT_B"; do
    dev=a0
    [[ "$ns" == "$DIRECT_B" ]] && dev=b0
    ip netns exec "$ns" ethtool -K "$dev" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
    ip -n "$ns" link set "$dev" up
done
start_weir wbk- bench/config/fwd-tiers.toml 9481
start_weir wbu- bench/config/fwd-unshaped.toml 9482

TWIN_MACS="smac=02:00:c6:12:01:01,dmac=02:00:c6:12:01:02"
PATH_A="name=a,tx=wbu-a2/a0,rx=wbu-b2/b0,$TWIN_MACS"
PATH_B="name=b,tx=wbk-a2/a0,rx=wbk-b2/b0,$TWIN_MACS"
PATH_C="name=c,tx=wbu-a/a0,rx=wbu-b/b0"
PATH_D="name=d,tx=wbk-a/a0,rx=wbk-b/b0"
PATH_BASE="name=baseline,tx=$DIRECT_A/a0,rx=$DIRECT_B/b0"

weir_banner "[3/8] forwarding: NDR/PDR, latency, CPU (a b c d interleaved)"
# EF: in path (d) and (b) it goes to premium-interactive (fq_codel) three
# levels down; in (c) to the single class.
"${BENCH[@]}" compare --path "$PATH_A" --path "$PATH_B" --path "$PATH_C" --path "$PATH_D" \
    --baseline "$PATH_BASE" --reference b --sizes 64,1518 --dscp 46 --flows 16 \
    --trial-ms "$trial_ms" --max-steps "$steps" --resolution 0.02 \
    --json "$out/compare.json" --md "$out/compare.md"

weir_banner "[4/8] profile of weir's worker forwarding flat out (path c, 64 bytes)"
profile_weir() {
    local pid="${weir_pids[1]}"
    if ! command -v perf >/dev/null 2>&1; then
        echo "perf is not installed (apt-get install linux-perf): no profile." >"$out/profile.txt"
        return 0
    fi
    "${BENCH[@]}" trial --path "$PATH_C" --stream size=64,flows=16,dscp=46 --duration-ms 5000 \
        >"$out/profile-trial.txt" &
    local gen=$!
    sleep 1
    # Worker threads only: the control thread sleeps.
    perf record -q -F 1999 -g -p "$pid" -o "$out/perf.data" -- sleep 3 >/dev/null 2>&1 || true
    wait "$gen" || true
    {
        echo "perf record -F 1999 -g -p <weir> -- sleep 3, while weir-bench sends 64-byte frames flat out on path c."
        echo
        echo "By shared object (user space is weir; [kernel.kallsyms] is the kernel's share, mostly AF_XDP copy-mode tx on veth):"
        perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8 || true
        echo
        echo "Top symbols:"
        perf report -i "$out/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25 || true
    } >"$out/profile.txt"
    rm -f "$out/perf.data" "$out/perf.data.old"
}
profile_weir || true
stop_weirs

weir_banner "[5/8] shaping accuracy: weir vs kernel HTB, same tree, same traffic"
scripts/lab.sh up --prefix wbs- --twin --weir "$WEIR"
start_weir wbs- config/lab.toml 9483
S_WEIR="name=weir,tx=wbs-a/a0,rx=wbs-b/b0"
S_KERN="name=kernel,tx=wbs-a2/a0,rx=wbs-b2/b0,$TWIN_MACS"
# config/lab.toml, upload: root 100 Mbit/s; 1:10 high 30/60 prio 1 (EF),
# 1:20 medium 50/80 prio 2 (AF41), 1:30 low 20/100 prio 3 (the rest).
# HTB's promises: saturated, each gets its rate (they add up to the root);
# with high idle, medium borrows first (lower prio value) up to its ceil
# 80 and low keeps 20; with only low active, it gets its ceil, 100.
shaping() {
    local name="$1" expect="$2"
    shift 2
    local args=()
    local s
    for s in "$@"; do args+=(--stream "$s"); done
    "${BENCH[@]}" shaping --scenario "$name" --path "$S_WEIR" --path "$S_KERN" "${args[@]}" \
        --expect-mbit "$expect" --trial-ms "$shaping_ms" --repeat "$shaping_repeat" \
        --json "$out/shaping-$name.json" --md "$out/shaping-$name.md"
}
shaping saturated 30,50,20 \
    dscp=46,size=1518,rate=70mbit,flows=4 dscp=34,size=1518,rate=90mbit,flows=4 dscp=0,size=1518,rate=110mbit,flows=4
shaping one-idle 80,20 \
    dscp=34,size=1518,rate=90mbit,flows=4 dscp=0,size=1518,rate=110mbit,flows=4
shaping one-active 100 \
    dscp=0,size=1518,rate=120mbit,flows=4
stop_weirs

weir_banner "[6/8] rate accuracy against the kernel, tc defaults: random trees (weir-bench differential)"
# Its own lab (wdf-) and weirs; a tree that differs makes weir-bench exit
# 1: the report says which, and the rest of the suite still runs.
"${BENCH[@]}" differential --trees "$diff_trees" --seed 1 --tree quantum3 --tree quantum2 --tree lab --tree lab-30-idle --tree lab-only-20 --tree lab-tcp \
    --weir "$WEIR" --prefix wdf- --dir "$out/differential" \
    --json "$out/differential.json" --md "$out/differential.md" ||
    weir_err "weir-bench differential: some trees differ from the kernel (see $out/differential.md)"

weir_banner "[7/8] latency under load: fq_codel vs sfq vs pfifo leaf"
scripts/lab.sh up --prefix wbq- --weir "$WEIR"
# The server ends are bounded by timeout(1) like everything else.
ip netns exec wbq-b timeout $((bloat_secs * 3 * 4 + 60)) irtt server -b 198.18.0.2:2112 >/dev/null 2>&1 &
irtt_server=$!
ip netns exec wbq-b timeout $((bloat_secs * 3 * 4 + 60)) iperf3 -s -B 198.18.0.2 -p 5201 >/dev/null 2>&1 &
iperf_server=$!
sleep 0.5
# One irtt run: RTT of every reply in µs, summarized by jq.
rtt_stats() {
    jq '[.round_trips[] | select(.lost == "false") | .delay.rtt / 1000] | sort |
        {n: length, min: .[0], p50: .[(length * 0.5 | floor)], p99: .[(length * 0.99 | floor)], max: .[-1]}' "$1"
}
for leaf in fq_codel sfq pfifo; do
    start_weir wbq- "bench/config/bloat-$leaf.toml" 9484
    ip netns exec wbq-a timeout 20 irtt client -Q -i 10ms -d 3s -o "$out/irtt-$leaf-idle.json" 198.18.0.2:2112 >/dev/null
    ip netns exec wbq-a timeout $((bloat_secs + 15)) iperf3 -c 198.18.0.2 -p 5201 -P 4 -t $((bloat_secs + 3)) -J \
        >"$out/iperf3-$leaf.json" 2>&1 &
    load=$!
    sleep 3
    ip netns exec wbq-a timeout $((bloat_secs + 10)) irtt client -Q -i 10ms -d "${bloat_secs}s" \
        -o "$out/irtt-$leaf-load.json" 198.18.0.2:2112 >/dev/null
    wait "$load" || true
    jq -n --arg leaf "$leaf" --argjson idle "$(rtt_stats "$out/irtt-$leaf-idle.json")" \
        --argjson load "$(rtt_stats "$out/irtt-$leaf-load.json")" \
        --argjson tput "$(jq '.end.sum_received.bits_per_second // 0' "$out/iperf3-$leaf.json")" \
        '{leaf: $leaf, idle_us: $idle, load_us: $load, tcp_mbit: ($tput / 1e6),
          induced_p50_us: ($load.p50 - $idle.p50), induced_p99_us: ($load.p99 - $idle.p50)}' \
        >"$out/bloat-$leaf.json"
    rm -f "$out/irtt-$leaf-idle.json" "$out/irtt-$leaf-load.json"
    stop_weirs
done
kill "$irtt_server" "$iperf_server" 2>/dev/null || true

weir_banner "[8/8] core micro-benchmarks (criterion)"
if ((skip_micro)); then
    echo "skipped (--skip-micro)" >"$out/micro.txt"
else
    rm -rf target/criterion
    if ((quick)); then crit=(--warm-up-time 0.2 --measurement-time 0.5); else crit=(--warm-up-time 0.5 --measurement-time 1); fi
    cargo bench --locked -p weir-bench --bench sched --bench classify -- "${crit[@]}" --noplot \
        >"$out/criterion.log" 2>&1 || weir_die "cargo bench failed: see $out/criterion.log"
    # Every benchmark's median estimate, from criterion's own files.
    find target/criterion -path '*/new/estimates.json' | sort | while read -r f; do
        id="${f#target/criterion/}"
        id="${id%/new/estimates.json}"
        jq -c --arg id "$id" '{bench: $id, median_ns: .median.point_estimate}' "$f"
    done | jq -s . >"$out/micro.json"
fi

# ---- the report -----------------------------------------------------------
# Steal as a share of all CPU time since the start (fields: user nice
# system idle iowait irq softirq steal ...).
steal_pct="$(printf '%s\n%s\n' "$stat_start" "$(grep '^cpu ' /proc/stat)" | awk '
    NR == 1 { for (i = 2; i <= NF; i++) a[i] = $i }
    NR == 2 { for (i = 2; i <= 9 && i <= NF; i++) { d = $i - a[i]; t += d; if (i == 9) s = d } }
    END { printf "%.1f", (t > 0 ? 100 * s / t : 0) }')"
json="$out_root/$day.json"
md="$out_root/$day.md"
jq -n \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg host "$(uname -n)" --arg kernel "$(uname -r)" \
    --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
    --argjson cpus "$(nproc)" --argjson quick "$quick" --argjson steal_pct "$steal_pct" \
    --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --slurpfile compare "$out/compare.json" \
    --argjson shaping "$(jq -s . "$out"/shaping-*.json)" \
    --argjson bloat "$(jq -s . "$out"/bloat-*.json)" \
    --argjson differential "$(if [[ -f "$out/differential.json" ]]; then cat "$out/differential.json"; else echo null; fi)" \
    --argjson micro "$(if [[ -f "$out/micro.json" ]]; then cat "$out/micro.json"; else echo null; fi)" \
    '{date: $date, host: $host, kernel: $kernel, cpu: $cpu, cpus: $cpus, quick: ($quick == 1), steal_pct: $steal_pct,
      commit: $commit, forwarding: $compare[0], shaping: $shaping, differential: $differential, latency_under_load: $bloat,
      micro: $micro}' >"$json"

{
    echo "# weir benchmark report, $day"
    echo
    echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(uname -r), $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)). Command: \`bench/run.sh$( ((quick)) && echo ' --quick')\`. Steal (CPU time the hypervisor gave to other guests) over the run: **${steal_pct} %** of all CPU time; above a few percent every number below is noisy, weir's more than the kernel's (docs/performance.md says why)."
    echo
    echo "## Forwarding (RFC 2544 style)"
    echo
    echo "Paths: **a** kernel bridge; **b** kernel bridge + the equivalent HTB tree (seed 3.1 ×10, pfifo leaves); **c** weir, one worker, a tree that never limits; **d** weir, one worker, seed 3.1 ×10 with fq_codel/sfq leaves. Ratios are against **b**. All paths are veth pairs in network namespaces; weir runs AF_XDP in copy mode (veth has no zero copy). Nothing is pinned: weir-bench's sender and receiver and weir's worker share the $(nproc) CPUs as the scheduler places them; the kernel paths forward in the sender's softirq."
    echo
    cat "$out/compare.md"
    echo "### Where weir's worker spends its time"
    echo
    echo '```'
    cat "$out/profile.txt"
    echo '```'
    echo
    echo "## Shaping accuracy (1518-byte frames, config/lab.toml)"
    echo
    for f in "$out"/shaping-*.md; do cat "$f"; done
    echo "## Rate accuracy against the kernel, tc defaults (weir-bench differential)"
    echo
    if [[ -f "$out/differential.md" ]]; then cat "$out/differential.md"; else echo "Not run (see the log)."; echo; fi
    echo "## Latency under load (4 TCP flows saturating a 20 Mbit/s class; irtt every 10 ms)"
    echo
    echo "| leaf | TCP Mbit/s | idle RTT p50 µs | loaded RTT p50 µs | loaded RTT p99 µs | induced p50 µs | induced p99 µs |"
    echo "|---|--:|--:|--:|--:|--:|--:|"
    for leaf in fq_codel sfq pfifo; do
        jq -r '"| \(.leaf) | \(.tcp_mbit | floor) | \(.idle_us.p50 | floor) | \(.load_us.p50 | floor) | \(.load_us.p99 | floor) | \(.induced_p50_us | floor) | \(.induced_p99_us | floor) |"' "$out/bloat-$leaf.json"
    done
    echo
    echo "## Core micro-benchmarks (criterion, median ns per iteration; a \`_batch32\` iteration is 32 packets)"
    echo
    if [[ -f "$out/micro.json" ]]; then
        echo "| benchmark | median ns |"
        echo "|---|--:|"
        jq -r '.[] | "| \(.bench) | \(.median_ns * 10 | floor / 10) |"' "$out/micro.json"
    else
        echo "Skipped (--skip-micro)."
    fi
} >"$md"
echo
cat "$md"
