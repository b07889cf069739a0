#!/usr/bin/env bash
# weir's demo (README command one): the HTB tree of the seed document's
# section 1.2, shaped by weir's real scheduling core.
#
# Until the AF_XDP data path lands, the traffic is simulated: `weir simulate`
# drives the same shaper the worker will run, in virtual time, so 10 s of
# 1 Gbit/s traffic takes a few seconds and gives the same numbers every run.
#
# Meant for a fresh Debian bookworm machine, as root, with the Rust toolchain
# installed by rustup; it installs the rest. Works from any directory. After
# the first build it takes well under two minutes.
#
# Environment:
#   WEIR_SKIP_INSTALL=1  do not check or install Debian packages
#   CI=true / NO_COLOR=1 no colour codes
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$WEIR_ROOT"

CONFIG=config/seed-1.2-htb.toml
SATURATE=config/traffic/seed-1.2-saturate.toml
IDLE30=config/traffic/seed-1.2-class30-idle.toml
DURATION=10s

# Set once the build is done: the binary itself, so compiler output is not
# repeated before every table.
WEIR_BIN=
weir() {
    "$WEIR_BIN" "$@"
}

for f in "$CONFIG" "$SATURATE" "$IDLE30"; do
    [[ -f "$f" ]] || weir_die "$f is missing from $WEIR_ROOT"
done

weir_banner "[1/5] prerequisites"
weir_ensure_packages "${WEIR_DEB_PACKAGES[@]}"
weir_find_cargo

echo
weir_banner "[2/5] build (release; the first build takes a few minutes)"
cargo build --release --locked -p weir-control --bin weir
target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
WEIR_BIN="${target_dir:-$WEIR_ROOT/target}/release/weir"
[[ -x "$WEIR_BIN" ]] || weir_die "built, but no binary at $WEIR_BIN"

echo
weir_banner "[3/5] weir check $CONFIG"
cat <<'EOF'
The tree of the seed document's section 1.2, as weir compiles it: a
1 Gbit/s link (1:1) shared by 1:10, 1:20 and 1:30, guaranteed 300, 500 and
200 Mbit/s, allowed up to 600, 800 and 1000 Mbit/s when there is spare.

EOF
weir check "$CONFIG"

echo
weir_banner "[4/5] all three classes saturated ($SATURATE)"
cat <<'EOF'
Every class is offered more than the link can carry. HTB first gives each
class its guaranteed rate. The rates add up to the whole link
(300 + 500 + 200 = 1000 Mbit/s), so nothing is left over to borrow and the
ceilings never come into play.
Expect (within about 1%): 1:10 300, 1:20 500, 1:30 200 Mbit/s.

EOF
weir simulate "$CONFIG" --traffic "$SATURATE" --duration "$DURATION"

echo
weir_banner "[5/5] 1:10 and 1:20 saturated, 1:30 idle ($IDLE30)"
cat <<'EOF'
Class 1:30 sends nothing, so its 200 Mbit/s is spare. 1:10 and 1:20 still
get their own rates (300 and 500) and may borrow the spare from their parent
1:1, each up to its ceil (600 and 800). HTB offers spare bandwidth to the
lowest prio value first: 1:10 (prio 1) borrows all 200 Mbit/s, 1:20 (prio 2)
gets none of it.
Expect (within about 1%): 1:10 500, 1:20 500 Mbit/s; the link stays full.

EOF
weir simulate "$CONFIG" --traffic "$IDLE30" --duration "$DURATION"

echo
weir_ok "demo.sh: done (simulated traffic; shaping real interfaces arrives with the AF_XDP data path)"
