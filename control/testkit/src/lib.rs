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
