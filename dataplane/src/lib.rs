//! weir's decision core.
//!
//! Everything here decides what happens to a frame — parse, classify,
//! schedule, account — and nothing here does I/O or reads a clock. Time is
//! always an argument (`now`, nanoseconds on any monotonic clock); the core
//! reports when it next wants to be called ([`htb::Htb::next_deadline`]).
//! This is what lets the same code run in the AF_XDP worker, in the
//! virtual-time simulator and in deterministic tests.
//!
//! The core works on frame *handles* ([`packet::Frame`]: a UMEM address and a
//! length). The caller lends it the received bytes for the length of one
//! call: [`shaper::Shaper::enqueue`] parses them in place ([`parse`]),
//! classifies the frame and queues the handle, never a copy. The core never
//! writes frame memory either (CE marking, [`parse::mark_ce`], is the
//! caller's, when it sends); the caller gets every handle back exactly once,
//! either sent or dropped with a reason.
//!
//! The other crates: the configuration language compiles to this crate's
//! specs (weir-config, `control/config`); the AF_XDP workers drive it on
//! real ports (weir-xdp, `xdp-prog`); the simulator drives it in virtual
//! time (weir-sim, `control/sim`). `docs/architecture.md` has the graph.

/// Parsers for a flow's first packets: TLS SNI, QUIC Initial SNI, HTTP/1 Host.
pub mod app;
pub mod classify;
pub mod flow;
pub mod histogram;
pub mod htb;
pub mod packet;
pub mod parse;
pub mod pool;
pub mod qdisc;
pub mod rate;
pub mod remark;
pub mod shaper;
