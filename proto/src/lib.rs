//! xpptp-proto: everything a PPTP endpoint computes, with no I/O and no clock reads.
//!
//! * [`wire`]: zero-copy views and parse/emit representations of every byte format a PPTP
//!   concentrator reads or writes (Enhanced GRE, PPP framing, PPTP control messages, LCP, PAP,
//!   CHAP and MS-CHAP, IPCP, CCP, the MPPE header, and IPv4/TCP as far as the fast path needs).
//! * [`crypto`]: MS-CHAP v1/v2, MPPE key derivation and the MPPE cipher.
//! * [`ppp`]: the PPP link's state machines (LCP, authentication, IPCP, CCP/MPPE).
//! * [`pptp`]: the PPTP control connection and its calls.
//! * [`session`]: one call tied to one PPP link, and what it tells the layer above.
//! * [`command`]: the typed, versioned messages of the datapath's command interface.
//! * [`control_api`]: the same for the control daemon's socket (the `xpptp` tool).
//! * [`frame`]: the framing both share (header, size limits, encode and decode).
//!
//! The state machines read no clock and do no I/O: time is an argument, inputs are
//! `handle_*` calls and outputs are drained with `poll_*` (the quinn-proto shape), so the
//! server and the client role run the same code in the daemon, the bench and the tests.
//!
//! The crate forbids `unsafe`: all of it lives in the datapath's AF_XDP layer.
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod command;
pub mod control_api;
pub mod crypto;
pub mod frame;
pub mod ppp;
pub mod pptp;
pub mod session;
#[cfg(test)]
mod testing;
pub mod wire;
