//! Lease journal throughput (filled in below).

fn main() {}
