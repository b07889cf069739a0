//! Dev-only helpers shared by every weir crate's tests and by the fuzz
//! targets, so that each thing is written once:
//!
//! - [`frame`]: hand-built Ethernet, VLAN, IPv4, IPv6, UDP and TCP headers
//!   and the Internet checksum, for tests that must control every byte
//!   (including the wrong ones).
//! - [`fixture`]: where the shipped configs are, the `@` marker that tests
//!   of diagnostics put at the spot an error must point to, and the tree
//!   that the SLA and policy tests share.
//! - [`cmd`]: running commands bounded in time, with errors that carry the
//!   command line and its stderr.
//! - [`netns`]: throwaway network namespaces and veth pairs that clean up
//!   on drop, traffic made in Rust inside them, waiting for a listener.
//! - [`host`]: how much CPU the hypervisor stole, for rate tests on a
//!   shared VM.
//!
//! It depends on libc only: no libbpf, clang or SQLite, so the fuzz crate
//! can use it. Crates use it as a dev-dependency; nothing here ships.

pub mod cmd;
pub mod fixture;
pub mod frame;
pub mod host;
pub mod netns;

/// True when this process runs as (effective) root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when a test that needs root (for `why`, e.g. "it mounts a
/// tmpfs") can run. When it cannot, it says so on stderr, so a skipped
/// test is visible in the output; with `WEIR_REQUIRE_ROOT_TESTS=1` in the
/// environment (scripts/test.sh, CI) not being root is a failure instead.
pub fn root_or_skip(why: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("WEIR_REQUIRE_ROOT_TESTS").is_some_and(|v| v == "1") {
        panic!("this test needs root ({why}) and WEIR_REQUIRE_ROOT_TESTS=1");
    }
    eprintln!("SKIPPED: this test needs root ({why})");
    false
}
