//! MS-CHAP version 1 (RFC 2433) and version 2 (RFC 2759): the hash computations of both the
//! authenticator (server) and the peer (client).
//!
//! Only the cryptography lives here; packet formats are in `wire::chap` and the exchange in
//! the PPP auth state machine. The entry points that machine calls are:
//!
//! * MS-CHAPv2 peer: [`v2_client_response`] builds the NT-Response and remembers the
//!   AuthenticatorResponse the server must send back; [`AuthenticatorResponse::verify_message`]
//!   checks the server's Success message (mutual authentication, RFC 2759 section 5).
//! * MS-CHAPv2 authenticator: [`v2_server_verify`] checks the peer's NT-Response against a
//!   [`Secret`] (the plain password, or only its NT hash: a server may store just that) and
//!   yields the AuthenticatorResponse to send in the Success packet.
//! * MS-CHAPv1: [`v1_client_response`] and [`v1_server_verify`].
//!
//! Both successful paths hand out the [`NtHashHash`] that MPPE key derivation needs
//! (`crypto::mppe_keys`).
//!
//! Secrets (`NtHash`, `NtHashHash`, `LmHash`, [`Secret`]) print as `<redacted>` in `Debug`
//! output. They are not zeroed on drop (no zeroize dependency); keep their lifetimes short.

use core::fmt;

use des::Des;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use md4::{Digest, Md4};
use sha1::Sha1;

use crate::wire::chap::MsChapV2Success;

/// RFC 2759 section 4 and RFC 2433 section 4: a password is "0 to (theoretically) 256
/// case-sensitive Unicode characters". We count UTF-16 code units, as Windows does (a
/// character outside the BMP counts twice), and refuse longer passwords instead of silently
/// truncating them.
pub const MAX_PASSWORD_UTF16_UNITS: usize = 256;

/// RFC 2433 appendix A.2: the LAN Manager password is at most 14 OEM characters.
pub const MAX_LM_PASSWORD_LEN: usize = 14;

/// Length of an MS-CHAP NT-Response or LM-Response (three DES blocks).
pub const RESPONSE_LEN: usize = 24;

/// Why a password cannot be used for a computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordError {
    /// More than [`MAX_PASSWORD_UTF16_UNITS`] UTF-16 code units.
    TooLong,
    /// The LAN Manager hash needs at most 14 ASCII characters (we do not guess the peer's OEM
    /// code page for other characters). Windows then sends only the NT-Response.
    NotLmCompatible,
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::TooLong => f.write_str("password longer than 256 UTF-16 units"),
            PasswordError::NotLmCompatible => {
                f.write_str("password is not 0 to 14 ASCII characters (no LM hash)")
            }
        }
    }
}

impl core::error::Error for PasswordError {}

/// Why a response was not accepted by the authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The peer's response does not match the one computed from the secret: wrong password
    /// (or user name, for MS-CHAPv2).
    Mismatch,
    /// The stored password cannot be hashed (see [`PasswordError`]).
    Password(PasswordError),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Mismatch => f.write_str("response does not match"),
            VerifyError::Password(e) => write!(f, "unusable secret: {e}"),
        }
    }
}

impl core::error::Error for VerifyError {}

impl From<PasswordError> for VerifyError {
    fn from(e: PasswordError) -> Self {
        VerifyError::Password(e)
    }
}

macro_rules! secret_bytes {
    ($(#[$attr:meta])* $name:ident, $len:expr) => {
        $(#[$attr])*
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_bytes!(
    /// NtPasswordHash (RFC 2759 section 8.3): MD4 of the UTF-16LE password. Anyone holding it
    /// can authenticate as the user, so treat it like the password.
    NtHash,
    16
);
secret_bytes!(
    /// PasswordHashHash (RFC 2759 section 8.4): MD4 of the [`NtHash`]. It keys the
    /// AuthenticatorResponse and MPPE key derivation (RFC 3079).
    NtHashHash,
    16
);
secret_bytes!(
    /// LmPasswordHash (RFC 2433 appendix A.2), used by MS-CHAPv1's LM-Response and its 40/56-bit
    /// MPPE keys (RFC 3079 section 2.1).
    LmHash,
    16
);

impl NtHash {
    /// NtPasswordHash of `password` (RFC 2759 section 8.3, RFC 2433 appendix A.6): MD4 over
    /// the password in UTF-16 little endian, no terminating zero. Does not allocate.
    pub fn from_password(password: &str) -> Result<NtHash, PasswordError> {
        if password.encode_utf16().count() > MAX_PASSWORD_UTF16_UNITS {
            return Err(PasswordError::TooLong);
        }
        let mut md4 = Md4::new();
        for unit in password.encode_utf16() {
            md4.update(unit.to_le_bytes());
        }
        Ok(NtHash(md4.finalize().into()))
    }

    /// HashNtPasswordHash (RFC 2759 section 8.4).
    pub fn hash(&self) -> NtHashHash {
        NtHashHash(Md4::digest(self.0).into())
    }
}

impl LmHash {
    /// LmPasswordHash (RFC 2433 appendix A.2): the password uppercased, zero padded to 14
    /// octets, each 7-octet half used as a DES key to encrypt "KGS!@#$%".
    ///
    /// Only ASCII passwords of at most 14 characters are accepted: the RFC's "OEM" character
    /// set depends on the peer's code page, which we cannot know.
    pub fn from_password(password: &str) -> Result<LmHash, PasswordError> {
        let bytes = password.as_bytes();
        if bytes.len() > MAX_LM_PASSWORD_LEN || !password.is_ascii() {
            return Err(PasswordError::NotLmCompatible);
        }
        let mut upper = [0u8; MAX_LM_PASSWORD_LEN];
        for (dst, src) in upper.iter_mut().zip(bytes) {
            *dst = src.to_ascii_uppercase();
        }
        const STD_TEXT: [u8; 8] = *b"KGS!@#$%";
        let mut out = [0u8; 16];
        let (first, second) = upper.split_at(7);
        out[..8].copy_from_slice(&des_encrypt(&STD_TEXT, first_7(first)));
        out[8..].copy_from_slice(&des_encrypt(&STD_TEXT, first_7(second)));
        Ok(LmHash(out))
    }
}

/// The credential an authenticator checks a response against.
///
/// A server may keep only the NT hash of each password (chap-secrets style files store the
/// password itself; RADIUS-like back ends often only the hash). MS-CHAPv2 and MS-CHAPv1's
/// NT-Response need nothing else.
#[derive(Clone, Copy)]
pub enum Secret<'a> {
    /// The clear-text password.
    Password(&'a str),
    /// Its NtPasswordHash.
    NtHash(NtHash),
}

impl Secret<'_> {
    /// The NtPasswordHash of this secret.
    pub fn nt_hash(&self) -> Result<NtHash, PasswordError> {
        match self {
            Secret::Password(p) => NtHash::from_password(p),
            Secret::NtHash(h) => Ok(*h),
        }
    }
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Secret::Password(<redacted>)"),
            Secret::NtHash(_) => f.write_str("Secret::NtHash(<redacted>)"),
        }
    }
}

fn first_7(bytes: &[u8]) -> [u8; 7] {
    let mut out = [0u8; 7];
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = *src;
    }
    out
}

/// Spreads a 56-bit key over 8 octets, 7 key bits each, with an odd-parity low bit
/// (RFC 2759 section 9.3, RFC 2433 appendix B.3). The DES engine ignores the parity bits,
/// but setting them gives the keys the RFC examples print.
pub fn des_key_from_7(key: &[u8; 7]) -> [u8; 8] {
    let mut bits = 0u64;
    for b in key {
        bits = (bits << 8) | u64::from(*b);
    }
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        // Bits 55..49 for i = 0, down to 6..0 for i = 7.
        let shift = 49 - 7 * i;
        let seven = ((bits >> shift) & 0x7f) as u8;
        let byte = seven << 1;
        *o = if byte.count_ones().is_multiple_of(2) {
            byte | 1
        } else {
            byte
        };
    }
    out
}

/// DesEncrypt (RFC 2759 section 8.6): one DES-ECB block under a 7-octet key.
fn des_encrypt(clear: &[u8; 8], key: [u8; 7]) -> [u8; 8] {
    let cipher = Des::new(&des_key_from_7(&key).into());
    let mut block = (*clear).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// ChallengeResponse (RFC 2759 section 8.5, RFC 2433 appendix A.7): the 16-octet hash zero
/// padded to 21 octets, split into three 7-octet DES keys, each encrypting the challenge.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; RESPONSE_LEN] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(password_hash);
    let mut out = [0u8; RESPONSE_LEN];
    for (chunk, key) in out.chunks_exact_mut(8).zip(z.chunks_exact(7)) {
        chunk.copy_from_slice(&des_encrypt(challenge, first_7(key)));
    }
    out
}

/// The account name without a leading `DOMAIN\` (RFC 2759 section 4: "only the user name is
/// used, without any associated Windows NT domain name"). Like pppd, everything up to the
/// last backslash is dropped.
pub fn user_name_without_domain(user: &[u8]) -> &[u8] {
    match user.iter().rposition(|&b| b == b'\\') {
        Some(i) => user.get(i + 1..).unwrap_or(&[]),
        None => user,
    }
}

/// ChallengeHash (RFC 2759 section 8.2): the first 8 octets of
/// SHA-1(PeerChallenge || AuthenticatorChallenge || UserName). Any `DOMAIN\` prefix of
/// `user` is stripped first, as the RFC requires.
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 8] {
    let digest = Sha1::new()
        .chain_update(peer_challenge)
        .chain_update(authenticator_challenge)
        .chain_update(user_name_without_domain(user))
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// GenerateNTResponse (RFC 2759 section 8.1).
pub fn generate_nt_response(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
    nt_hash: &NtHash,
) -> [u8; RESPONSE_LEN] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user);
    challenge_response(&challenge, &nt_hash.0)
}

/// The 20-octet AuthenticatorResponse of MS-CHAPv2 (RFC 2759 section 8.7), sent in the
/// Success packet as `S=` and 40 uppercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatorResponse(pub [u8; 20]);

pub use crate::wire::chap::AUTHENTICATOR_RESPONSE_TEXT_LEN;

impl AuthenticatorResponse {
    /// The `S=` text form the authenticator puts at the start of the Success message.
    pub fn to_text(&self) -> [u8; AUTHENTICATOR_RESPONSE_TEXT_LEN] {
        MsChapV2Success::authenticator_response_text(&self.0)
    }

    /// Reads the `S=` value at the start of a Success message (RFC 2759 section 5:
    /// `S=<auth_string> M=<message>`). Hex digits of either case are accepted. `None` if the
    /// message does not start with `S=` and 40 hex digits.
    pub fn from_message(message: &[u8]) -> Option<AuthenticatorResponse> {
        let (response, _) = MsChapV2Success::parse_authenticator_response(message).ok()?;
        Some(AuthenticatorResponse(response))
    }

    /// Client side of mutual authentication: does the server's Success message carry this
    /// (expected) AuthenticatorResponse? Constant time in the compared value. A peer MUST
    /// drop the link when this fails (RFC 2759 section 5, 9.1.2).
    pub fn verify_message(&self, message: &[u8]) -> bool {
        match AuthenticatorResponse::from_message(message) {
            Some(received) => ct_eq(&self.0, &received.0),
            None => false,
        }
    }
}

impl fmt::Debug for AuthenticatorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret: it travels in clear in the Success packet.
        let text = self.to_text();
        let s = core::str::from_utf8(&text).map_err(|_| fmt::Error)?;
        write!(f, "AuthenticatorResponse({s})")
    }
}

/// Compares two byte strings in time that depends only on their lengths, so a network
/// attacker cannot learn how many leading bytes of a response matched.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    core::hint::black_box(diff) == 0
}

/// GenerateAuthenticatorResponse (RFC 2759 section 8.7).
pub fn generate_authenticator_response(
    nt_hash_hash: &NtHashHash,
    nt_response: &[u8; RESPONSE_LEN],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user: &[u8],
) -> AuthenticatorResponse {
    const MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
    const MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";
    let digest = Sha1::new()
        .chain_update(nt_hash_hash.0)
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user);
    let digest = Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(MAGIC2)
        .finalize();
    AuthenticatorResponse(digest.into())
}

/// What an MS-CHAPv2 peer sends and must later check.
#[derive(Debug, Clone, Copy)]
pub struct V2ClientResponse {
    /// The NT-Response field of the Response packet.
    pub nt_response: [u8; RESPONSE_LEN],
    /// What the server's Success message must carry; check it with
    /// [`AuthenticatorResponse::verify_message`].
    pub expected_authenticator_response: AuthenticatorResponse,
    /// Input to MPPE key derivation (`mppe_keys::MasterKey::from_mschap_v2`).
    pub nt_hash_hash: NtHashHash,
}

/// MS-CHAPv2 peer: the response to an authenticator's challenge. `peer_challenge` must be
/// 16 fresh random octets (the caller owns randomness). `user` is the Name field sent in the
/// Response (a `DOMAIN\` prefix may be present; it is not hashed).
pub fn v2_client_response(
    user: &[u8],
    password: &str,
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
) -> Result<V2ClientResponse, PasswordError> {
    let nt_hash = NtHash::from_password(password)?;
    let nt_hash_hash = nt_hash.hash();
    let nt_response = generate_nt_response(authenticator_challenge, peer_challenge, user, &nt_hash);
    let expected_authenticator_response = generate_authenticator_response(
        &nt_hash_hash,
        &nt_response,
        peer_challenge,
        authenticator_challenge,
        user,
    );
    Ok(V2ClientResponse {
        nt_response,
        expected_authenticator_response,
        nt_hash_hash,
    })
}

/// What an MS-CHAPv2 authenticator learns from a correct response.
#[derive(Debug, Clone, Copy)]
pub struct V2ServerSuccess {
    /// Goes into the Success message (`to_text()`, then optionally ` M=<message>`).
    pub authenticator_response: AuthenticatorResponse,
    /// Input to MPPE key derivation (`mppe_keys::MasterKey::from_mschap_v2`).
    pub nt_hash_hash: NtHashHash,
}

/// MS-CHAPv2 authenticator: checks the peer's NT-Response (constant-time comparison) and on
/// success returns the AuthenticatorResponse for the Success packet. `user` is the Name
/// field of the Response as received; look the secret up by whatever name policy the
/// caller has (with or without domain), the hash ignores the domain either way.
pub fn v2_server_verify(
    user: &[u8],
    secret: Secret<'_>,
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    nt_response: &[u8; RESPONSE_LEN],
) -> Result<V2ServerSuccess, VerifyError> {
    let nt_hash = secret.nt_hash()?;
    let expected = generate_nt_response(authenticator_challenge, peer_challenge, user, &nt_hash);
    if !ct_eq(&expected, nt_response) {
        return Err(VerifyError::Mismatch);
    }
    let nt_hash_hash = nt_hash.hash();
    let authenticator_response = generate_authenticator_response(
        &nt_hash_hash,
        nt_response,
        peer_challenge,
        authenticator_challenge,
        user,
    );
    Ok(V2ServerSuccess {
        authenticator_response,
        nt_hash_hash,
    })
}

/// NtChallengeResponse (RFC 2433 appendix A.5).
pub fn nt_challenge_response(challenge: &[u8; 8], nt_hash: &NtHash) -> [u8; RESPONSE_LEN] {
    challenge_response(challenge, &nt_hash.0)
}

/// LmChallengeResponse (RFC 2433 appendix A.1).
pub fn lm_challenge_response(challenge: &[u8; 8], lm_hash: &LmHash) -> [u8; RESPONSE_LEN] {
    challenge_response(challenge, &lm_hash.0)
}

/// What an MS-CHAPv1 peer sends (RFC 2433 section 4: LM-Response, NT-Response, Use-NT flag).
#[derive(Debug, Clone, Copy)]
pub struct V1ClientResponse {
    /// LM-Response, or `None` when the password has no LM hash; send 24 zero octets then.
    pub lm_response: Option<[u8; RESPONSE_LEN]>,
    /// NT-Response; always sent, with the Use-NT flag set to 1.
    pub nt_response: [u8; RESPONSE_LEN],
}

/// MS-CHAPv1 peer: the responses to an 8-octet challenge.
pub fn v1_client_response(
    password: &str,
    challenge: &[u8; 8],
) -> Result<V1ClientResponse, PasswordError> {
    let nt_hash = NtHash::from_password(password)?;
    let lm_response = LmHash::from_password(password)
        .ok()
        .map(|lm| lm_challenge_response(challenge, &lm));
    Ok(V1ClientResponse {
        lm_response,
        nt_response: nt_challenge_response(challenge, &nt_hash),
    })
}

/// MS-CHAPv1 authenticator: checks the NT-Response (constant time). LM-Responses are not
/// accepted: a server holding only NT hashes cannot check them, and the LM hash is far
/// weaker still. On success returns the [`NtHashHash`] that the 128-bit MS-CHAPv1 MPPE start
/// key needs (RFC 3079 section 2.3).
pub fn v1_server_verify(
    secret: Secret<'_>,
    challenge: &[u8; 8],
    nt_response: &[u8; RESPONSE_LEN],
) -> Result<NtHashHash, VerifyError> {
    let nt_hash = secret.nt_hash()?;
    let expected = nt_challenge_response(challenge, &nt_hash);
    if !ct_eq(&expected, nt_response) {
        return Err(VerifyError::Mismatch);
    }
    Ok(nt_hash.hash())
}

#[cfg(test)]
mod test {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        let v = hex::decode(s.replace(' ', "")).unwrap();
        v.try_into().unwrap()
    }

    // RFC 2759 section 9.2.
    const USER: &[u8] = b"User";
    const PASSWORD: &str = "clientPass";
    const AUTH_CHALLENGE: &str = "5B5D7C7D7B3F2F3E3C2C602132262628";
    const PEER_CHALLENGE: &str = "21402324255E262A28295F2B3A337C7E";
    const NT_RESPONSE: &str = "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF";

    #[test]
    fn rfc2759_intermediate_values() {
        let nt = NtHash::from_password(PASSWORD).unwrap();
        assert_eq!(nt.0, h("44EBBA8D5312B8D611474411F56989AE"));
        assert_eq!(nt.hash().0, h("41C00C584BD2D91C4017A2A12FA59F3F"));
        assert_eq!(
            challenge_hash(&h(PEER_CHALLENGE), &h(AUTH_CHALLENGE), USER),
            h("D02E4386BCE91226")
        );
        let resp = generate_nt_response(&h(AUTH_CHALLENGE), &h(PEER_CHALLENGE), USER, &nt);
        assert_eq!(resp, h(NT_RESPONSE));
        let auth = generate_authenticator_response(
            &nt.hash(),
            &resp,
            &h(PEER_CHALLENGE),
            &h(AUTH_CHALLENGE),
            USER,
        );
        assert_eq!(
            &auth.to_text(),
            b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }

    #[test]
    fn rfc2759_des_key_parity() {
        // RFC 2759 section 9.3 / RFC 2433 appendix B.3, password "MyPw".
        let hash = NtHash::from_password("MyPw").unwrap();
        assert_eq!(hash.0, h("FC156AF7EDCD6C0EDDE3337D427F4EAC"));
        assert_eq!(des_key_from_7(&h("FC156AF7EDCD6C")), h("FD0B5B5E7F6E34D9"));
        assert_eq!(des_key_from_7(&h("0EDDE3337D427F")), h("0E6E796737EA08FE"));
    }

    #[test]
    fn domain_is_not_hashed() {
        let plain = challenge_hash(&h(PEER_CHALLENGE), &h(AUTH_CHALLENGE), b"User");
        let with_domain = challenge_hash(&h(PEER_CHALLENGE), &h(AUTH_CHALLENGE), b"BIGCO\\User");
        assert_eq!(plain, with_domain);
        assert_eq!(user_name_without_domain(b"A\\B\\user"), b"user");
        assert_eq!(user_name_without_domain(b"user"), b"user");
        assert_eq!(user_name_without_domain(b"DOM\\"), b"");
    }

    #[test]
    fn v2_both_sides_rfc_vector() {
        let client =
            v2_client_response(USER, PASSWORD, &h(AUTH_CHALLENGE), &h(PEER_CHALLENGE)).unwrap();
        assert_eq!(client.nt_response, h(NT_RESPONSE));
        let nt = NtHash::from_password(PASSWORD).unwrap();
        for secret in [Secret::Password(PASSWORD), Secret::NtHash(nt)] {
            let ok = v2_server_verify(
                USER,
                secret,
                &h(AUTH_CHALLENGE),
                &h(PEER_CHALLENGE),
                &client.nt_response,
            )
            .unwrap();
            assert_eq!(
                ok.authenticator_response,
                client.expected_authenticator_response
            );
            let mut msg = [0u8; 51];
            msg[..42].copy_from_slice(&ok.authenticator_response.to_text());
            msg[42..].copy_from_slice(b" M=Welcom");
            assert!(client.expected_authenticator_response.verify_message(&msg));
        }
        let wrong = v2_server_verify(
            USER,
            Secret::Password("clientPasS"),
            &h(AUTH_CHALLENGE),
            &h(PEER_CHALLENGE),
            &client.nt_response,
        );
        assert_eq!(wrong.unwrap_err(), VerifyError::Mismatch);
        let mut tampered = client.nt_response;
        tampered[23] ^= 1;
        let r = v2_server_verify(
            USER,
            Secret::NtHash(nt),
            &h(AUTH_CHALLENGE),
            &h(PEER_CHALLENGE),
            &tampered,
        );
        assert_eq!(r.unwrap_err(), VerifyError::Mismatch);
    }

    #[test]
    fn v2_real_session() {
        use crate::testing::reference::chap::SUCCESS_MESSAGE;
        use crate::testing::reference::mschap::{
            AUTHENTICATOR_CHALLENGE, NT_RESPONSE, PASSWORD, PEER_CHALLENGE, USER,
        };
        let client =
            v2_client_response(USER, PASSWORD, &AUTHENTICATOR_CHALLENGE, &PEER_CHALLENGE).unwrap();
        assert_eq!(client.nt_response, NT_RESPONSE);
        // What Poptop sent in its Success, before " M=".
        assert_eq!(
            &client.expected_authenticator_response.to_text(),
            &SUCCESS_MESSAGE[..42]
        );
        let server = v2_server_verify(
            USER,
            Secret::Password(PASSWORD),
            &AUTHENTICATOR_CHALLENGE,
            &PEER_CHALLENGE,
            &client.nt_response,
        )
        .unwrap();
        assert!(
            client
                .expected_authenticator_response
                .verify_message(SUCCESS_MESSAGE)
        );
        assert_eq!(
            server.authenticator_response,
            client.expected_authenticator_response
        );
    }

    #[test]
    fn authenticator_response_text() {
        let a = AuthenticatorResponse(h("407A5589115FD0D6209F510FE9C04566932CDA56"));
        assert_eq!(
            AuthenticatorResponse::from_message(b"S=407a5589115fd0d6209f510fe9c04566932cda56"),
            Some(a)
        );
        assert!(a.verify_message(b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=hi"));
        // One digit off, truncated, missing prefix, non-hex.
        assert!(!a.verify_message(b"S=407A5589115FD0D6209F510FE9C04566932CDA57"));
        assert!(!a.verify_message(b"S=407A5589115FD0D6209F510FE9C04566932CDA5"));
        assert!(!a.verify_message(b"s=407A5589115FD0D6209F510FE9C04566932CDA56"));
        assert!(!a.verify_message(b"S=407A5589115FD0D6209F510FE9C04566932CDAZ6"));
        assert!(!a.verify_message(b""));
    }

    #[test]
    fn rfc2433_nt_response() {
        // RFC 2433 appendix B.2, password "MyPw".
        let challenge = h("102DB5DF085D3041");
        let nt = NtHash::from_password("MyPw").unwrap();
        let resp = nt_challenge_response(&challenge, &nt);
        assert_eq!(resp, h("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61"));
        let client = v1_client_response("MyPw", &challenge).unwrap();
        assert_eq!(client.nt_response, resp);
        assert!(v1_server_verify(Secret::NtHash(nt), &challenge, &resp).is_ok());
        assert_eq!(
            v1_server_verify(Secret::Password("MyPW"), &challenge, &resp).unwrap_err(),
            VerifyError::Mismatch
        );
    }

    #[test]
    fn lm_hash_and_response() {
        // RFC 3079 section 2.5 (password "clientPass"); the "MyPw" values are those widely
        // used with RFC 2433's example challenge (PHP Crypt_CHAP, Node chap tests).
        assert_eq!(
            LmHash::from_password("clientPass").unwrap().0,
            h("76A152936096D7830E2390227404AFD2")
        );
        let lm = LmHash::from_password("MyPw").unwrap();
        assert_eq!(lm.0, h("75BA30198E6D1975AAD3B435B51404EE"));
        assert_eq!(
            lm_challenge_response(&h("102DB5DF085D3041"), &lm),
            h("91881D0152AB0C33C524135EC24A95EE64E23CDC2D33347D")
        );
        // Case-insensitive by construction.
        assert_eq!(LmHash::from_password("mypw").unwrap(), lm);
        assert_eq!(
            LmHash::from_password("fifteen-chars-x").unwrap_err(),
            PasswordError::NotLmCompatible
        );
        assert_eq!(
            LmHash::from_password("pässword").unwrap_err(),
            PasswordError::NotLmCompatible
        );
        let v1 = v1_client_response("a-password-over-14", &[0; 8]).unwrap();
        assert!(v1.lm_response.is_none());
    }

    #[test]
    fn password_length_limit() {
        let max: String = core::iter::repeat_n('x', 256).collect();
        assert!(NtHash::from_password(&max).is_ok());
        let over: String = core::iter::repeat_n('x', 257).collect();
        assert_eq!(NtHash::from_password(&over), Err(PasswordError::TooLong));
        // 128 characters outside the BMP are 256 UTF-16 units: still fine; 129 are not.
        let astral: String = core::iter::repeat_n('\u{1F600}', 128).collect();
        assert!(NtHash::from_password(&astral).is_ok());
        let astral: String = core::iter::repeat_n('\u{1F600}', 129).collect();
        assert_eq!(NtHash::from_password(&astral), Err(PasswordError::TooLong));
        assert_eq!(
            v2_server_verify(b"u", Secret::Password(&over), &[0; 16], &[0; 16], &[0; 24])
                .unwrap_err(),
            VerifyError::Password(PasswordError::TooLong)
        );
        // Empty passwords are allowed by the RFC: MD4 of nothing.
        assert_eq!(
            NtHash::from_password("").unwrap().0,
            h("31D6CFE0D16AE931B73C59D7E0C089C0")
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let nt = NtHash::from_password(PASSWORD).unwrap();
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            nt,
            nt.hash(),
            Secret::Password(PASSWORD),
            Secret::NtHash(nt)
        );
        assert!(!shown.contains(PASSWORD));
        assert!(!shown.to_lowercase().contains("44eb"));
        assert!(!shown.contains("68"), "{shown}");
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
