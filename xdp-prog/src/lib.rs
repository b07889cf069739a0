//! weir's I/O adapter: everything that touches XDP and AF_XDP.
//!
//! - [`prog`]: the eBPF XDP program (`src/bpf/weir.bpf.c`, compiled by the
//!   build script), attached per interface through a bpf_link so it goes
//!   away with the process; an XSKMAP per interface; per-CPU counters;
//!   prefixes passed to the kernel (management traffic).
//! - [`datapath`]: the data path: one shared UMEM per port pair, one AF_XDP
//!   socket per (port, queue), one pinned worker thread per (pair, queue)
//!   driving the shaping core (`weir-dataplane`), SPSC hand-over rings
//!   between workers, and the [`datapath::DataPath`] handle the control thread
//!   uses (placement, snapshots, commands, stop).
//!
//! The decision core never depends on this crate; this crate never decides
//! anything about shaping. Time is read here (once per batch) and passed
//! into the core.

pub mod datapath;
pub mod prog;
