#!/usr/bin/env bash
# weir's whole test suite (README command two; CI runs it through .ci/run).
#
# Meant for a fresh Debian bookworm machine, as root, with the Rust toolchain
# installed by rustup; it installs everything else it needs. Works from any
# directory. Stops at the first failing step and exits non-zero (within a
# test step every test binary still runs, so one run shows every failure);
# the last line always says how it went.
#
# Steps:
#   1. prerequisites: Debian packages (only the missing ones), rustfmt, clippy
#   2. cargo fmt --check
#   3. cargo clippy, warnings are errors
#   4. cargo test in release (heavy tests run only here: they are ignored
#      when debug assertions are on)
#   5. cargo test in debug (debug assertions on)
#   6. benches compile (bench/run.sh runs them; CI does not)
#   7. `weir check` on every config/*.toml and bench/config/*.toml
#
# Environment:
#   WEIR_SKIP_INSTALL=1  do not check or install Debian packages / rustup
#                        components (for machines set up by hand)
#   CI=true              no colour codes, nothing interactive
#   NO_COLOR=1           no colour codes
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$WEIR_ROOT"

export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# Tests that need root and network namespaces are first-class: under this
# script they fail, rather than skip, when they can't run.
export WEIR_REQUIRE_ROOT_TESTS=1

TOTAL_STEPS=7
step_no=0
step_name="setup"
started=$SECONDS

tmp_files=()

# The final summary line, whatever happened.
summary() {
    local rc=$?
    local took
    rm -f "${tmp_files[@]}"
    took="$(weir_duration $((SECONDS - started)))"
    echo
    if ((rc == 0)); then
        weir_ok "test.sh: PASS — all $TOTAL_STEPS steps passed in $took"
    else
        weir_err "test.sh: FAIL — step $step_no/$TOTAL_STEPS ($step_name) failed (exit $rc) after $took"
    fi
}
trap summary EXIT

# `cargo test` with its output also kept in a file: when tests fail, each
# failing test's panic message is repeated at the end of the log, where a
# CI log that keeps only its head and tail still shows why.
cargo_test() {
    local log rc=0
    log="$(mktemp)"
    tmp_files+=("$log")
    cargo test "$@" 2>&1 | tee "$log" || rc=$?
    if ((rc != 0)); then
        echo
        weir_banner "why tests failed (repeated from above, backtraces left out)"
        grep -A 12 -E "panicked at" "$log" |
            grep -v -E '^ +([0-9]+: |at )|^note: |^stack backtrace:' |
            head -n 300 || true
    fi
    return "$rc"
}

step() {
    step_no=$((step_no + 1))
    step_name="$1"
    echo
    weir_banner "[$step_no/$TOTAL_STEPS] $step_name"
}

step "prerequisites"
weir_ensure_packages "${WEIR_DEB_PACKAGES[@]}"
weir_ensure_rust_components
cargo --version
rustc --version

step "cargo fmt --check"
cargo fmt --all -- --check --color "$WEIR_COLOR"

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test --release"
cargo_test --workspace --release --locked --no-fail-fast

step "cargo test (debug)"
cargo_test --workspace --locked --no-fail-fast

step "benches compile"
cargo bench -p weir-bench --no-run --locked

step "weir check config/*.toml bench/config/*.toml"
shopt -s nullglob
configs=(config/*.toml bench/config/*.toml)
shopt -u nullglob
((${#configs[@]} > 0)) || weir_die "no config/*.toml found in $WEIR_ROOT"
cargo build --release --locked -p weir --bin weir
bad=()
errs="$(mktemp)"
tmp_files+=("$errs")
# `weir check` prints the compiled tree on stdout and warnings on stderr;
# keep the log readable by showing only its verdict (the last line of
# stdout) when it passes, and everything when it does not.
for cfg in "${configs[@]}"; do
    if out="$(cargo run --release --locked -q -p weir --bin weir -- check "$cfg" 2>"$errs")"; then
        echo "ok   ${out##*$'\n'}"
    else
        printf '%s\n' "$out"
        cat "$errs" >&2
        weir_err "FAIL $cfg"
        bad+=("$cfg")
    fi
done
((${#bad[@]} == 0)) || weir_die "weir check rejected ${#bad[@]} of ${#configs[@]} configs: ${bad[*]}"
