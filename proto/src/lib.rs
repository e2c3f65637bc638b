//! xpptp-proto: everything a PPTP endpoint computes, with no I/O and no clock reads.
//!
//! * [`wire`]: zero-copy views and parse/emit representations of every byte format a PPTP
//!   concentrator reads or writes (Enhanced GRE, PPP framing, PPTP control messages, LCP, PAP,
//!   CHAP and MS-CHAP, IPCP, CCP, the MPPE header, and IPv4/TCP as far as the fast path needs).
//! * [`crypto`]: MS-CHAP v1/v2, MPPE key derivation and the MPPE cipher.
//!
//! The crate forbids `unsafe`: all of it lives in the datapath's AF_XDP layer.
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod crypto;
pub mod wire;
