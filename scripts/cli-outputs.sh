#!/usr/bin/env bash
# Print what the `weir` binary says for every shipped config: `weir check`,
# `weir simulate` (table and --json) on each shipped traffic example,
# `weir tc` for every tree, and every subcommand's --help, one file each in
# OUTDIR. Run it with two builds and `diff -r` the two directories to show
# that a refactor changed no output:
#
#   scripts/cli-outputs.sh target/release/weir /tmp/before
#   ... change, rebuild ...
#   scripts/cli-outputs.sh target/release/weir /tmp/after
#   diff -r /tmp/before /tmp/after
set -euo pipefail
bin=${1:?usage: cli-outputs.sh WEIR_BIN OUTDIR}
out=${2:?usage: cli-outputs.sh WEIR_BIN OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
cd "$root"

# Exit codes are part of the output.
run() {
    local name=$1
    shift
    local rc=0
    "$@" >"$out/$name.out" 2>"$out/$name.err" || rc=$?
    echo "$rc" >"$out/$name.rc"
}

for cfg in config/*.toml; do
    base=$(basename "$cfg" .toml)
    run "check-$base" "$bin" check "$cfg"
    # Every tree the config names, as `weir tc` translates it.
    for tree in $(sed -n 's/^\[tree\.\([A-Za-z0-9_-]*\)\]$/\1/p' "$cfg" | sort -u); do
        run "tc-$base-$tree" "$bin" tc --config "$cfg" --tree "$tree" --dev eth0
    done
done

# (config, traffic) pairs as sim_examples.rs runs them.
sims=(
    "seed-1.2-htb seed-1.2-default"
    "seed-1.2-htb seed-1.2-saturate"
    "seed-1.2-htb seed-1.2-class30-idle"
    "seed-1.3-classify seed-1.3-mix"
    "seed-2.1-dscp seed-2.1-dscp"
    "seed-2.2-apps seed-2.2-apps"
    "lab lab-up"
)
for pair in "${sims[@]}"; do
    read -r cfg traffic <<<"$pair"
    run "sim-$cfg-$traffic" "$bin" simulate "config/$cfg.toml" --traffic "config/traffic/$traffic.toml"
    run "sim-$cfg-$traffic-json" "$bin" simulate "config/$cfg.toml" --traffic "config/traffic/$traffic.toml" --json
done

run help "$bin" --help
for sub in run show class reload top history man tc check simulate; do
    run "help-$sub" "$bin" "$sub" --help
done

# The man pages, from the same clap definitions.
run man "$bin" man --out "$out/man"
sed -i "s|$out/man|OUT/man|" "$out/man.out"
