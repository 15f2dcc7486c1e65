//! Shared workloads and peers for the benchmarks and the `compare` binary.
