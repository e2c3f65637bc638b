//! xpptp's control plane. So far: the configuration ([`config`]: the native TOML file, or
//! an existing Poptop install read as it is) and the client address pool ([`pool`]). The
//! daemon (TCP 1723, PPP negotiation, the datapath's command socket) comes next.

#![forbid(unsafe_code)]

pub mod config;
pub mod pool;
