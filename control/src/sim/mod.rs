//! Simulator (owner: sim helper).
