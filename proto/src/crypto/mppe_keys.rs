//! MPPE key derivation: start keys from MS-CHAP credentials (RFC 3079) and the session-key
//! change of RFC 3078 section 7.3.
//!
//! The chain of keys for one direction:
//!
//! ```text
//! credentials --RFC 3079--> start key (per direction, 8 or 16 octets used)
//! start key --GetNewKeyFromSHA(start, start), reduce--> initial session key K0
//! K(n) --GetNewKeyFromSHA(start, K(n)), RC4 with itself, reduce--> K(n+1)
//! ```
//!
//! "Reduce" forces the first octets of 40- and 56-bit keys to the fixed salt 0xD1 0x26 0x9E
//! (RFC 3079 sections 2.1, 3.1). Which K(n) encrypts which packet is MPPE's business
//! (`crypto::mppe`).
//!
//! Start keys are computed at authentication time, before CCP has chosen a strength: the
//! 16-octet [`StartKey`] serves every strength, because a shorter start key is always a
//! prefix of the longer one (each is a truncated SHA-1 output).

use core::fmt;

use sha1::{Digest, Sha1};

use super::mppe::Rc4;
use super::mschap::{LmHash, NtHashHash, RESPONSE_LEN};

/// MPPE session key strength, as negotiated in CCP option 18 (RFC 3078 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MppeStrength {
    /// 40-bit: 8-octet keys whose first 3 octets are 0xD1 0x26 0x9E.
    Bits40,
    /// 56-bit: 8-octet keys whose first octet is 0xD1.
    Bits56,
    /// 128-bit: 16-octet keys.
    Bits128,
}

impl MppeStrength {
    /// Session key length in octets (RFC 3079: 8 for 40 and 56 bits, 16 for 128).
    pub const fn key_len(self) -> usize {
        match self {
            MppeStrength::Bits40 | MppeStrength::Bits56 => 8,
            MppeStrength::Bits128 => 16,
        }
    }
}

/// Which end of the link we are: it decides which direction each MS-CHAPv2 key serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The authenticator (the PPTP server, PNS side of a concentrator).
    Server,
    /// The peer (the dialling client).
    Client,
}

macro_rules! redacted_debug {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

/// MS-CHAPv2 MasterKey (RFC 3079 section 3.4, GetMasterKey).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey(pub [u8; 16]);
redacted_debug!(MasterKey);

impl MasterKey {
    /// GetMasterKey: the first 16 octets of SHA-1(PasswordHashHash || NT-Response || Magic1).
    pub fn from_mschap_v2(
        nt_hash_hash: &NtHashHash,
        nt_response: &[u8; RESPONSE_LEN],
    ) -> MasterKey {
        const MAGIC1: &[u8; 27] = b"This is the MPPE Master Key";
        let digest = Sha1::new()
            .chain_update(nt_hash_hash.0)
            .chain_update(nt_response)
            .chain_update(MAGIC1)
            .finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        MasterKey(out)
    }
}

/// The start key of one direction (RFC 3079 calls it MasterSendKey / MasterReceiveKey; the
/// Linux kernel "master key"). 16 octets; 40- and 56-bit MPPE use only the first 8.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StartKey(pub [u8; 16]);
redacted_debug!(StartKey);

const SHS_PAD1: [u8; 40] = [0x00; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// GetAsymmetricStartKey (RFC 3079 section 3.4), always for 16 octets (shorter keys are its
/// prefix). The magic strings are chosen so that the server's send key is the client's
/// receive key.
pub fn asymmetric_start_key(master: &MasterKey, is_send: bool, is_server: bool) -> StartKey {
    const MAGIC2: &[u8; 84] = b"On the client side, this is the send key; \
on the server side, it is the receive key.";
    const MAGIC3: &[u8; 84] = b"On the client side, this is the receive key; \
on the server side, it is the send key.";
    let magic = if is_send == is_server { MAGIC3 } else { MAGIC2 };
    let digest = Sha1::new()
        .chain_update(master.0)
        .chain_update(SHS_PAD1)
        .chain_update(magic)
        .chain_update(SHS_PAD2)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    StartKey(out)
}

/// The start keys of both directions as seen from one end: `send` encrypts what this end
/// transmits, `receive` decrypts what it gets. The server's `send` is the client's
/// `receive` and vice versa.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKeys {
    /// Start key of the direction this end transmits.
    pub send: StartKey,
    /// Start key of the direction this end receives.
    pub receive: StartKey,
}

impl SessionKeys {
    /// MS-CHAPv2 (RFC 3079 section 3): asymmetric keys from the master key.
    pub fn from_mschap_v2(master: &MasterKey, role: Role) -> SessionKeys {
        let is_server = role == Role::Server;
        SessionKeys {
            send: asymmetric_start_key(master, true, is_server),
            receive: asymmetric_start_key(master, false, is_server),
        }
    }

    /// MS-CHAPv1, 40- and 56-bit (RFC 3079 sections 2.1, 2.2): the first 8 octets of the LAN
    /// Manager hash, the same in both directions. Needs the clear password (see
    /// `LmHash::from_password`). pppd instead truncates the 128-bit key below for every
    /// strength; if a Linux peer is on the other end, use [`Self::from_mschap_v1_nt`].
    pub fn from_mschap_v1_lm(lm_hash: &LmHash) -> SessionKeys {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&lm_hash.0[..8]);
        SessionKeys {
            send: StartKey(key),
            receive: StartKey(key),
        }
    }

    /// MS-CHAPv1, 128-bit (RFC 3079 section 2.3, GetStartKey): the first 16 octets of
    /// SHA-1(NtPasswordHashHash || NtPasswordHashHash || Challenge), the same in both
    /// directions. `challenge` is the authenticator's 8-octet challenge.
    pub fn from_mschap_v1_nt(nt_hash_hash: &NtHashHash, challenge: &[u8; 8]) -> SessionKeys {
        let digest = Sha1::new()
            .chain_update(nt_hash_hash.0)
            .chain_update(nt_hash_hash.0)
            .chain_update(challenge)
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        SessionKeys {
            send: StartKey(key),
            receive: StartKey(key),
        }
    }
}

/// One MPPE session key: 8 octets (40/56-bit) or 16 (128-bit), the RC4 key of one packet
/// (stateless) or of a run of packets (stateful).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionKey {
    bytes: [u8; 16],
    strength: MppeStrength,
}
redacted_debug!(SessionKey);

/// The first `strength.key_len()` octets of a 16-octet buffer.
fn key_prefix(bytes: &[u8; 16], strength: MppeStrength) -> &[u8] {
    match strength {
        MppeStrength::Bits128 => bytes,
        MppeStrength::Bits40 | MppeStrength::Bits56 => &bytes[..8],
    }
}

/// GetNewKeyFromSHA (RFC 3079 section 3.4; RFC 3078 section 7.3's first half; "GetKey" of
/// RFC 3079 section 2.4): SHA-1(StartKey || SHApad1 || SessionKey || SHApad2), truncated to
/// the key length. Octets past the key length are zero.
pub fn new_key_from_sha(start: &StartKey, current: &[u8; 16], strength: MppeStrength) -> [u8; 16] {
    let digest = Sha1::new()
        .chain_update(key_prefix(&start.0, strength))
        .chain_update(SHS_PAD1)
        .chain_update(key_prefix(current, strength))
        .chain_update(SHS_PAD2)
        .finalize();
    let mut out = [0u8; 16];
    match strength {
        MppeStrength::Bits128 => out.copy_from_slice(&digest[..16]),
        MppeStrength::Bits40 | MppeStrength::Bits56 => out[..8].copy_from_slice(&digest[..8]),
    }
    out
}

/// Forces the salt octets of 40- and 56-bit keys (RFC 3079 sections 2.1, 2.2, 3.1, 3.2;
/// RFC 3078 section 7.3).
fn reduce(key: &mut [u8; 16], strength: MppeStrength) {
    match strength {
        MppeStrength::Bits40 => key[..3].copy_from_slice(&[0xd1, 0x26, 0x9e]),
        MppeStrength::Bits56 => key[0] = 0xd1,
        MppeStrength::Bits128 => {}
    }
}

impl SessionKey {
    /// The initial session key of a direction: GetNewKeyFromSHA(start, start), reduced
    /// (RFC 3079 sections 2.x and 3.x, "initial session key"; no RC4 step).
    pub fn initial(start: &StartKey, strength: MppeStrength) -> SessionKey {
        let mut bytes = new_key_from_sha(start, &start.0, strength);
        reduce(&mut bytes, strength);
        SessionKey { bytes, strength }
    }

    /// The next session key (RFC 3078 section 7.3, GetKey): InterimKey =
    /// GetNewKeyFromSHA(start, this), then RC4-encrypt InterimKey with itself as the key,
    /// then reduce. One SHA-1 (two blocks) and one RC4 key schedule.
    pub fn next(&self, start: &StartKey) -> SessionKey {
        let interim = SessionKey {
            bytes: new_key_from_sha(start, &self.bytes, self.strength),
            strength: self.strength,
        };
        let mut bytes = interim.bytes;
        let mut rc4 = Rc4::with_key(&interim);
        match self.strength {
            MppeStrength::Bits128 => rc4.apply_keystream(&mut bytes),
            MppeStrength::Bits40 | MppeStrength::Bits56 => rc4.apply_keystream(&mut bytes[..8]),
        }
        reduce(&mut bytes, self.strength);
        SessionKey {
            bytes,
            strength: self.strength,
        }
    }

    /// A session key from raw octets (only the first `strength.key_len()` are used; the rest
    /// are ignored). For tests and for keys carried between processes.
    pub fn from_bytes(bytes: [u8; 16], strength: MppeStrength) -> SessionKey {
        let mut bytes = bytes;
        if strength != MppeStrength::Bits128 {
            bytes[8..].fill(0);
        }
        SessionKey { bytes, strength }
    }

    /// The RC4 key: 8 or 16 octets.
    pub fn as_bytes(&self) -> &[u8] {
        key_prefix(&self.bytes, self.strength)
    }

    /// The key padded to 16 octets: an 8-octet key is repeated twice, which leaves the RC4
    /// key schedule unchanged (it cycles through the key) and lets it index with `i & 15`.
    pub(crate) fn rc4_key16(&self) -> [u8; 16] {
        match self.strength {
            MppeStrength::Bits128 => self.bytes,
            MppeStrength::Bits40 | MppeStrength::Bits56 => {
                let mut k = self.bytes;
                k.copy_within(..8, 8);
                k
            }
        }
    }

    /// The strength this key was made for.
    pub fn strength(&self) -> MppeStrength {
        self.strength
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crypto::mschap::NtHash;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        let v = hex::decode(s.replace(' ', "")).unwrap();
        v.try_into().unwrap()
    }

    fn h16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        let v = hex::decode(s.replace(' ', "")).unwrap();
        out[..v.len()].copy_from_slice(&v);
        out
    }

    // RFC 3079 section 3.5: user "User", password "clientPass", the RFC 2759 section 9.2
    // challenges, NT-Response 82309ECD...D6DF.
    const NT_RESPONSE: &str = "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF";

    fn rfc3079_master() -> MasterKey {
        let hh = NtHash::from_password("clientPass").unwrap().hash();
        MasterKey::from_mschap_v2(&hh, &h(NT_RESPONSE))
    }

    #[test]
    fn rfc3079_mschap_v2_master_and_start_keys() {
        let master = rfc3079_master();
        assert_eq!(master.0, h("FDECE3717A8C838CB388E527AE3CDD31"));
        // The RFC's SendStartKey is computed with IsServer = TRUE: it is the server's send
        // key (Magic3), hence the client's receive key.
        let server = SessionKeys::from_mschap_v2(&master, Role::Server);
        let client = SessionKeys::from_mschap_v2(&master, Role::Client);
        assert_eq!(server.send.0, h("8B7CDC149B993A1BA118CB153F56DCCB"));
        assert_eq!(server.send, client.receive);
        assert_eq!(server.receive, client.send);
        assert_ne!(server.send, server.receive);
        assert_eq!(
            asymmetric_start_key(&master, true, true),
            asymmetric_start_key(&master, false, false)
        );
    }

    #[test]
    fn rfc3079_mschap_v2_session_keys() {
        let start = SessionKeys::from_mschap_v2(&rfc3079_master(), Role::Server).send;
        // 3.5.1: SendStartKey40 = 8B7CDC149B993A1B, SendSessionKey40 = D1269EC49FA62E3E.
        assert_eq!(&start.0[..8], &h::<8>("8B7CDC149B993A1B"));
        assert_eq!(
            new_key_from_sha(&start, &start.0, MppeStrength::Bits40),
            h16("965C00C49FA62E3E")
        );
        let k40 = SessionKey::initial(&start, MppeStrength::Bits40);
        assert_eq!(k40.as_bytes(), h::<8>("D1269EC49FA62E3E"));
        // 3.5.2: SendSessionKey56 = D15C00C49FA62E3E.
        let k56 = SessionKey::initial(&start, MppeStrength::Bits56);
        assert_eq!(k56.as_bytes(), h::<8>("D15C00C49FA62E3E"));
        // 3.5.3: SendSessionKey128 = 405CB2247A7956E6E211007AE27B22D4.
        let k128 = SessionKey::initial(&start, MppeStrength::Bits128);
        assert_eq!(k128.as_bytes(), h::<16>("405CB2247A7956E6E211007AE27B22D4"));
    }

    #[test]
    fn rfc3079_mschap_v1_keys() {
        // RFC 3079 section 2.5: password "clientPass", challenge 102DB5DF085D3041.
        let challenge = h("102DB5DF085D3041");
        let lm = LmHash::from_password("clientPass").unwrap();
        let keys = SessionKeys::from_mschap_v1_lm(&lm);
        assert_eq!(keys.send, keys.receive);
        assert_eq!(keys.send.0, h16("76A152936096D783"));
        // 2.5.1: GetKey gives D80801538CEC4A08, reduced to D1269E538CEC4A08.
        assert_eq!(
            new_key_from_sha(&keys.send, &keys.send.0, MppeStrength::Bits40),
            h16("D80801538CEC4A08")
        );
        let k40 = SessionKey::initial(&keys.send, MppeStrength::Bits40);
        assert_eq!(k40.as_bytes(), h::<8>("D1269E538CEC4A08"));
        // 2.5.2
        let k56 = SessionKey::initial(&keys.send, MppeStrength::Bits56);
        assert_eq!(k56.as_bytes(), h::<8>("D10801538CEC4A08"));
        // 2.5.3: NtPasswordHashHash 41C00C58..., start key A8947850CFC0ACC1D1789FB62DDCDDB0
        // (the RFC's step 3 prints ...ACCA D1...; its later steps follow from ...ACC1 D1...),
        // session key 59D159BC09F76F1DA2A86A28FFEC0B1E.
        let hh = NtHash::from_password("clientPass").unwrap().hash();
        let keys = SessionKeys::from_mschap_v1_nt(&hh, &challenge);
        assert_eq!(keys.send.0, h("A8947850CFC0ACC1D1789FB62DDCDDB0"));
        let k128 = SessionKey::initial(&keys.send, MppeStrength::Bits128);
        assert_eq!(k128.as_bytes(), h::<16>("59D159BC09F76F1DA2A86A28FFEC0B1E"));
    }

    #[test]
    fn real_session_keys() {
        use crate::testing::reference::mschap::{
            KEY_CLIENT_TO_SERVER as C2S, KEY_SERVER_TO_CLIENT as S2C, NT_RESPONSE, PASSWORD,
        };
        // Debian pptp-linux/pppd client against Poptop/pppd, 128-bit stateless
        // (/work/shared/reference/pptpd-session, verify-mschapv2-mppe.txt).
        let hh = NtHash::from_password(PASSWORD).unwrap().hash();
        let master = MasterKey::from_mschap_v2(&hh, &NT_RESPONSE);
        assert_eq!(master.0, h("a37a9498ee467274a0ada125b6931b26"));
        let server = SessionKeys::from_mschap_v2(&master, Role::Server);
        let client = SessionKeys::from_mschap_v2(&master, Role::Client);
        assert_eq!(client.send.0, C2S);
        assert_eq!(server.receive.0, C2S);
        assert_eq!(server.send.0, S2C);
        assert_eq!(client.receive.0, S2C);
    }

    #[test]
    fn rekey_step() {
        let start = StartKey(h("8B7CDC149B993A1BA118CB153F56DCCB"));
        for strength in [
            MppeStrength::Bits40,
            MppeStrength::Bits56,
            MppeStrength::Bits128,
        ] {
            let k0 = SessionKey::initial(&start, strength);
            let k1 = k0.next(&start);
            // RC4(interim, interim) by the definition, with an independent RC4 (the rc4
            // crate) as the oracle.
            let mut expect = new_key_from_sha(&start, &k0.bytes, strength);
            let len = strength.key_len();
            let mut oracle = <rc4::Rc4 as rc4::KeyInit>::new_from_slice(&expect[..len]).unwrap();
            rc4::StreamCipher::apply_keystream(&mut oracle, &mut expect[..len]);
            reduce(&mut expect, strength);
            assert_eq!(k1.as_bytes(), &expect[..len]);
            assert_ne!(k1, k0);
            assert_eq!(k1.as_bytes().len(), len);
            match strength {
                MppeStrength::Bits40 => assert_eq!(&k1.as_bytes()[..3], &[0xd1, 0x26, 0x9e]),
                MppeStrength::Bits56 => assert_eq!(k1.as_bytes()[0], 0xd1),
                MppeStrength::Bits128 => {}
            }
            // The padded RC4 key repeats short keys.
            let k16 = k1.rc4_key16();
            assert_eq!(&k16[..len], k1.as_bytes());
            assert_eq!(&k16[16 - len..], k1.as_bytes());
        }
    }

    #[test]
    fn keys_are_redacted_in_debug() {
        let start = StartKey([0xab; 16]);
        let shown = format!(
            "{:?} {:?} {:?}",
            start,
            SessionKey::initial(&start, MppeStrength::Bits128),
            MasterKey([0xab; 16])
        );
        assert!(!shown.contains("171"), "{shown}");
        assert!(!shown.to_lowercase().contains("ab, "), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
