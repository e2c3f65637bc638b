//! xpptp-bench: the emulator and the benchmarks.
//!
//! Results are benchmarks, never timed tests: every figure is reported with a baseline
//! measured in the same run (the crypto floor, the socket backend), because the machines
//! this runs on are shared and noisy.

// The README's demo.
pub mod demo;
// Entering the test bed's network namespaces.
pub mod netns;
// the scenario: dial, traffic, report, on the test bed.
pub mod scenario;
// topology: the namespaces and daemons the demo and the suite run against.
pub mod topology;
// the client emulator (issue 7 item 1)
pub mod emulator;
// the traffic engine (issue 7 item 2)
pub mod traffic;
// The crypto floor and the pcap export for external generators.
pub mod floor;
pub mod pcap;
// the report types, the human summary, the charts.
pub mod chart;
pub mod report;
