//! PPP state machines (RFC 1661 and the protocols on top), server and client roles.
//!
//! Sans-I/O in the quinn-proto style: inputs are `handle_*` calls with the current time,
//! outputs are drained with `poll_*`, and no clock is ever read here.
//!
//! * [`fsm`]: the generic option-negotiation automaton of RFC 1661 section 4, with the
//!   [`fsm::Negotiator`] trait that LCP, IPCP and CCP implement.
//! * [`lcp`], [`ipcp`], [`ccp`]: the negotiators.
//! * [`auth`]: PAP, CHAP-MD5, MS-CHAP v1 and v2, both sides.
//! * [`link`]: one PPP link through its phases.

pub mod auth;
pub mod ccp;
pub mod fsm;
pub mod ipcp;
pub mod lcp;
pub mod link;
