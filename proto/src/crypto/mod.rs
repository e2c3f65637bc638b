//! MS-CHAP v1/v2 (RFC 2433, RFC 2759), MPPE key derivation (RFC 3079) and the MPPE cipher
//! (RFC 3078).
//!
//! This is broken cryptography kept for compatibility: MS-CHAPv2 falls to a single DES
//! key search (2^56) and RC4 keystreams are biased. See the README.

pub mod mppe;
pub mod mppe_keys;
pub mod mschap;
