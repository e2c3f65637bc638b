//! PPTP (RFC 2637) state machines, both roles.
//!
//! * [`control`]: the control connection on TCP 1723 and its calls (section 3).
//! * [`gre`]: the GRE layer of one call: sequence numbers, the receive window and
//!   acknowledgements (section 4), while the control plane owns the call's numbering.

pub mod control;
pub mod gre;
