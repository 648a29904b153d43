//! Fake Nomad for trying the daemon without a cluster (next commits).
fn main() {}
