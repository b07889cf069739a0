//! weir's control side: configuration (TOML → typed, validated config →
//! compiled dataplane specs), the control thread of `weir run`, the
//! virtual-time simulator and the kernel tc translation.

pub mod api;
pub mod cli;
pub mod config;
pub mod history;
pub mod metrics;
pub mod policy;
pub mod run;
pub mod sim;
pub mod tc;
