//! MS-CHAP on untrusted input (`crypto::mschap`, `crypto::mppe_keys`): the challenges, user
//! name, NT-Response and Success message a peer or authenticator receives.
//!
//! * `AuthenticatorResponse::from_message` reads what `wire::chap::MsChapV2Success::parse`
//!   reads, `to_text` round-trips, and `verify_message` agrees with `from_message`;
//! * `user_name_without_domain` returns a suffix without a backslash, and the hashes ignore
//!   the domain;
//! * the authenticator (`v2_server_verify`) accepts exactly the NT-Response the peer
//!   (`v2_client_response`) computes for the same inputs, and both derive the same
//!   AuthenticatorResponse and matching MPPE start keys; likewise for MS-CHAPv1;
//! * password hashing refuses, never panics on, any text.
//!
//! Input: authenticator challenge (16), peer challenge (16), NT-Response (24), a user name
//! length byte, the user name, then a message that also serves as a password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::crypto::mppe_keys::{MasterKey, Role, SessionKeys};
use xpptp_proto::crypto::mschap::{
    AuthenticatorResponse, LmHash, MAX_PASSWORD_UTF16_UNITS, NtHash, PasswordError, Secret,
    VerifyError, challenge_hash, user_name_without_domain, v1_client_response, v1_server_verify,
    v2_client_response, v2_server_verify,
};
use xpptp_proto::wire::chap::MsChapV2Success;

const PASSWORD: &str = "Pptp-Test-Pass-1";

fuzz_target!(|input: &[u8]| {
    let Some((fixed, rest)) = input.split_first_chunk::<57>() else {
        return;
    };
    let authenticator_challenge: &[u8; 16] = fixed[..16].try_into().expect("16");
    let peer_challenge: &[u8; 16] = fixed[16..32].try_into().expect("16");
    let nt_response: &[u8; 24] = fixed[32..56].try_into().expect("24");
    let (user, message) = rest.split_at(usize::from(fixed[56]).min(rest.len()));

    // Success message text.
    let received = AuthenticatorResponse::from_message(message);
    if let Ok(success) = MsChapV2Success::parse(message) {
        assert_eq!(
            received,
            Some(AuthenticatorResponse(success.authenticator_response))
        );
    }
    if let Some(response) = received {
        assert_eq!(
            AuthenticatorResponse::from_message(&response.to_text()),
            Some(response)
        );
        assert!(response.verify_message(message));
    }

    // User names.
    let bare = user_name_without_domain(user);
    assert!(user.ends_with(bare) && !bare.contains(&b'\\'));
    assert_eq!(
        challenge_hash(peer_challenge, authenticator_challenge, user),
        challenge_hash(peer_challenge, authenticator_challenge, bare)
    );

    // MS-CHAPv2 both ends, with the wire's challenges and user name.
    let client = v2_client_response(user, PASSWORD, authenticator_challenge, peer_challenge)
        .expect("the test password hashes");
    let server = v2_server_verify(
        user,
        Secret::Password(PASSWORD),
        authenticator_challenge,
        peer_challenge,
        &client.nt_response,
    )
    .expect("the peer's own response verifies");
    assert_eq!(
        server.authenticator_response,
        client.expected_authenticator_response
    );
    assert_eq!(
        received == Some(server.authenticator_response),
        client
            .expected_authenticator_response
            .verify_message(message)
    );
    let forged = v2_server_verify(
        user,
        Secret::NtHash(NtHash::from_password(PASSWORD).expect("hashes")),
        authenticator_challenge,
        peer_challenge,
        nt_response,
    );
    assert_eq!(forged.is_ok(), *nt_response == client.nt_response);
    if nt_response != &client.nt_response {
        assert_eq!(forged.err(), Some(VerifyError::Mismatch));
    }
    let master = MasterKey::from_mschap_v2(&server.nt_hash_hash, &client.nt_response);
    let at_server = SessionKeys::from_mschap_v2(&master, Role::Server);
    let at_client = SessionKeys::from_mschap_v2(&master, Role::Client);
    assert_eq!(
        (at_server.send, at_server.receive),
        (at_client.receive, at_client.send)
    );

    // MS-CHAPv1, and hashing of arbitrary text as a password.
    let challenge: &[u8; 8] = fixed[..8].try_into().expect("8");
    let v1 = v1_client_response(PASSWORD, challenge).expect("the test password hashes");
    assert!(v1_server_verify(Secret::Password(PASSWORD), challenge, &v1.nt_response).is_ok());
    if let Ok(text) = core::str::from_utf8(message) {
        let too_long = text.encode_utf16().count() > MAX_PASSWORD_UTF16_UNITS;
        assert_eq!(
            NtHash::from_password(text).err(),
            too_long.then_some(PasswordError::TooLong)
        );
        let lm = LmHash::from_password(text);
        assert_eq!(lm.is_ok(), text.is_ascii() && text.len() <= 14);
    }
});
