#!/usr/bin/env bash
# Compares builds of the apps cost bench (benches/flow.rs, its interleaved
# report) on this noisy VM: the binaries run in turn, RUNS times each, so a
# slow minute slows them all; per binary, the medians over its runs.
#
#   bench/flow-ab.sh FLOWS RUNS BIN...
#
# A BIN is a copy of the bench binary of the commit it stands for: after
# `cargo bench -p weir-bench --bench flow --no-run`, the newest
# target/release/deps/flow-* that is not a .d file (its hash changes with
# the dependencies, so take the newest, not a remembered name).
#
# Printed per binary: the ns added per packet with apps, as the median over
# runs of each run's median of paired-round differences, and of its
# fastest rounds (noise only adds time, so the fastest round of each arm
# is the least disturbed); and the "without apps" arm's median and least.
set -euo pipefail

if (($# < 3)); then
    echo "usage: $0 FLOWS RUNS BIN..." >&2
    exit 2
fi
flows=$1
runs=$2
shift 2
for bin in "$@"; do
    [[ -x $bin ]] || { echo "$0: $bin is not an executable bench binary" >&2; exit 2; }
done

lines="$(mktemp)"
trap 'rm -f "$lines"' EXIT
for _ in $(seq "$runs"); do
    for bin in "$@"; do
        out="$(WEIR_BENCH_FLOWS=$flows "$bin" --bench zzz 2>&1)"
        paired="$(sed -n 's/.*flows: without apps .* added \([-0-9.]*\) ns\/packet (median.*/\1/p' <<<"$out")"
        fastest="$(sed -n 's/.*fastest round.*without apps \([0-9.]*\), with apps [0-9.]*, added \([-0-9.]*\) ns.*/\1 \2/p' <<<"$out")"
        [[ -n $paired && -n $fastest ]] || { echo "$0: $bin printed no interleaved report" >&2; exit 1; }
        echo "$bin $paired $fastest" >>"$lines"
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
least() { sort -g | head -1; }
echo "$flows flows, $runs runs each, in turn:"
for bin in "$@"; do
    mine() { awk -v b="$bin" -v c="$1" '$1 == b { print $c }' "$lines"; }
    printf '  %s: added %.1f ns (paired rounds), %.1f ns (fastest rounds); without apps %.1f ns (least %.1f)\n' \
        "$bin" "$(mine 2 | median)" "$(mine 4 | median)" "$(mine 3 | median)" "$(mine 3 | least)"
done
