//! PPTP control connection and call state machines (RFC 2637 section 3), both roles.

pub mod control;
pub mod gre;
