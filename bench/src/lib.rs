//! xpptp-bench: the emulator and the benchmarks.
//!
//! Results are benchmarks, never timed tests: every figure is reported with a baseline
//! measured in the same run (the crypto floor, the socket backend), because the machines
//! this runs on are shared and noisy.

// --- floorpcap
pub mod floor;
pub mod pcap;
// --- end floorpcap
