//! weir's control side: configuration (TOML → typed, validated config →
//! compiled dataplane specs) and the virtual-time simulator.

pub mod config;
pub mod sim;
