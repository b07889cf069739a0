//! weir's traffic generator and receiver (`weir-bench`): paced streams of
//! test frames sent over AF_XDP, taken off the far end of the path by
//! another AF_XDP socket, counted per stream with loss, reordering and
//! one-way latency; and the RFC 2544-style searches built on them.
//!
//! - [`testframe`]: the test frames (templates, sizes, IMIX, the probe).
//! - [`pace`]: how many frames are due when (time as an argument).
//! - [`rx`]: the receiver's accounting.
//! - [`search`]: NDR/PDR binary search as a state machine.
//! - [`trial`]: the I/O: one trial on real interfaces.
//! - [`compare`]: NDR/PDR, latency and CPU of several paths, interleaved.
//! - [`shaping`]: per-stream delivered rate against what HTB promises.
//! - [`spec`]: command-line specs of paths and streams.

pub mod compare;
pub mod pace;
pub mod rx;
pub mod search;
pub mod shaping;
pub mod spec;
pub mod testframe;
pub mod trial;
