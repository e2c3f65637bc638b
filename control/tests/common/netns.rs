//! The namespaces and veth pairs every root-only test uses: the shared `xpptp-testnet` crate.

pub use xpptp_testnet::*;
