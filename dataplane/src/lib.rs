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
//! length). It never touches frame memory: the caller parses the bytes once
//! ([`parse`]), hands the handle plus the parsed facts to the shaper, and later
//! gets every handle back exactly once, either sent or dropped with a reason.

pub mod classify;
pub mod histogram;
pub mod htb;
pub mod packet;
pub mod parse;
pub mod pool;
pub mod qdisc;
pub mod rate;
pub mod shaper;
