# shellcheck shell=bash disable=SC2034 # variables are for the scripts that source this
# Shared helpers for weir's scripts. Source it, don't run it:
#   . "$(dirname "$0")/lib.sh"
# Bash only (arrays, [[ ]]). Callers set `set -euo pipefail` themselves.
#
# Environment:
#   CI=true             no colour, no prompts (also makes cargo print plainly)
#   NO_COLOR=1          no colour (https://no-color.org)
#   WEIR_SKIP_INSTALL=1 skip installing Debian packages and rustup components

# Debian (bookworm) packages the whole product needs: clang/llvm/libelf/zlib/m4/
# pkg-config build the XDP program and libbpf; libpcap for pcap replay; the rest
# is the lab: iproute2 (netns, veth, tc), iperf3, netsniff-ng (trafgen), irtt,
# tcpreplay, fping, ethtool, procps (sysctl in the lab's namespaces). The
# simulator needs none of them, but the AF_XDP
# data path does, and both README commands should leave a machine ready for it.
WEIR_DEB_PACKAGES=(
    clang llvm libelf-dev libpcap-dev pkg-config zlib1g-dev m4
    iproute2 iputils-ping iperf3 netsniff-ng irtt tcpreplay fping ethtool jq procps
    tcpdump curl openssl
)

# What bench/run.sh needs on top: perf, for the profile of weir's worker.
WEIR_BENCH_PACKAGES=(linux-perf)

# Repository root, whatever the caller's cwd.
WEIR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "${CI:-}" == "true" || -n "${NO_COLOR:-}" || ! -t 1 || "${TERM:-dumb}" == "dumb" ]]; then
    WEIR_COLOR=never
    WEIR_BOLD='' WEIR_RED='' WEIR_GREEN='' WEIR_RESET=''
else
    WEIR_COLOR=auto
    WEIR_BOLD=$'\e[1m' WEIR_RED=$'\e[31m' WEIR_GREEN=$'\e[32m' WEIR_RESET=$'\e[0m'
fi
# cargo and rustc follow CARGO_TERM_COLOR (and already stay plain when not on
# a terminal); rustfmt's diff needs `--color "$WEIR_COLOR"`.
if [[ "${CI:-}" == "true" || -n "${NO_COLOR:-}" ]]; then
    export CARGO_TERM_COLOR=never
fi
if [[ "${CI:-}" == "true" ]]; then
    export DEBIAN_FRONTEND=noninteractive
fi

# One-line banner for a step.
weir_banner() {
    printf '%s==> %s%s\n' "$WEIR_BOLD" "$*" "$WEIR_RESET"
}

weir_ok() {
    printf '%s%s%s\n' "$WEIR_GREEN" "$*" "$WEIR_RESET"
}

weir_err() {
    printf '%s%s%s\n' "$WEIR_RED" "$*" "$WEIR_RESET" >&2
}

weir_die() {
    weir_err "error: $*"
    exit 1
}

# "3m07s" from a number of seconds.
weir_duration() {
    printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# Make `cargo` findable: a root shell that did not source rustup's profile
# snippet has ~/.cargo/bin off its PATH.
weir_find_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]]; then
        # shellcheck disable=SC1091 # rustup's generated file, not in the repo
        . "${CARGO_HOME:-$HOME/.cargo}/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        weir_die "cargo not found: install the Rust toolchain with rustup (https://rustup.rs) first"
}

# Print the given Debian packages that are not installed, one per line.
weir_missing_packages() {
    local pkg status
    for pkg in "$@"; do
        # An unknown package makes dpkg-query fail; a removed one reports
        # "deinstall ok config-files". Only this exact status means present.
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        if [[ "$status" != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# Install the Debian packages that are missing (apt-get update runs once, and
# only if something is missing). Also installs a C linker if there is none:
# rustc links through `cc`.
weir_ensure_packages() {
    if [[ "${WEIR_SKIP_INSTALL:-0}" == "1" ]]; then
        echo "WEIR_SKIP_INSTALL=1: not checking Debian packages"
        return 0
    fi
    command -v dpkg-query >/dev/null 2>&1 ||
        weir_die "dpkg-query not found: the install step supports Debian/Ubuntu only (set WEIR_SKIP_INSTALL=1 and install $* yourself)"
    local -a missing
    mapfile -t missing < <(weir_missing_packages "$@")
    if ! command -v cc >/dev/null 2>&1; then
        mapfile -t -O "${#missing[@]}" missing < <(weir_missing_packages gcc libc6-dev)
    fi
    if ((${#missing[@]} == 0)); then
        echo "all ${#} Debian packages present"
        return 0
    fi
    local -a sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            weir_die "missing packages (${missing[*]}) and not root: run as root, or set WEIR_SKIP_INSTALL=1 and install them yourself"
        sudo=(sudo -n)
    fi
    echo "installing: ${missing[*]}"
    # Wait for a concurrent apt/dpkg (e.g. unattended-upgrades on a fresh
    # machine) instead of failing on its lock.
    local -a apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    "${sudo[@]}" apt-get "${apt_opts[@]}" update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}"
    local still
    still="$(weir_missing_packages "${missing[@]}" | tr '\n' ' ')"
    [[ -z "$still" ]] || weir_die "still missing after apt-get install: $still"
    # Debian's irtt package enables an irtt server on every address. weir's
    # lab starts its own servers inside test namespaces; an appliance should
    # not grow an open UDP port because its test script ran.
    if [[ " ${missing[*]} " == *" irtt "* ]] && command -v systemctl >/dev/null 2>&1; then
        "${sudo[@]}" systemctl disable --now irtt.service >/dev/null 2>&1 || true
    fi
}

# rustfmt and clippy through rustup, only if cargo cannot run them.
weir_ensure_rust_components() {
    weir_find_cargo
    local -a want=()
    cargo fmt --version >/dev/null 2>&1 || want+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || want+=(clippy)
    if ((${#want[@]} == 0)); then
        return 0
    fi
    if [[ "${WEIR_SKIP_INSTALL:-0}" == "1" ]]; then
        weir_die "cargo cannot run ${want[*]} and WEIR_SKIP_INSTALL=1: run 'rustup component add ${want[*]}'"
    fi
    command -v rustup >/dev/null 2>&1 ||
        weir_die "cargo cannot run ${want[*]} and rustup is not installed"
    echo "rustup component add ${want[*]}"
    rustup component add "${want[@]}"
}
