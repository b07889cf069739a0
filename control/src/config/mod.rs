//! Configuration (owner: config helper).
