//! PAP (`wire::pap`): every getter of a checked `Packet` stays inside Length, the body
//! getters agree with the `Repr`, and a parsed `Repr` emits into `buffer_len()` bytes and
//! parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::pap::{Code, HEADER_LEN, Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let length = usize::from(packet.length());
    assert!((HEADER_LEN..=data.len()).contains(&length));
    assert_eq!(packet.data(), &data[HEADER_LEN..length]);
    // Body getters answer for every code (empty where the field does not exist).
    let _ = (
        packet.peer_id_len(),
        packet.password_len(),
        packet.message_len(),
    );
    let (peer_id, password, message) = (packet.peer_id(), packet.password(), packet.message());

    let repr = Repr::parse(&packet).expect("a checked PAP packet parses");
    assert_eq!(u8::from(repr.code()), packet.code());
    assert_eq!(repr.identifier(), packet.identifier());
    match repr {
        Repr::AuthenticateRequest {
            peer_id: p,
            password: w,
            ..
        } => {
            assert_eq!((p, w), (peer_id, password));
            assert_eq!(usize::from(packet.peer_id_len()), p.len());
            assert_eq!(usize::from(packet.password_len()), w.len());
        }
        Repr::AuthenticateAck { message: m, .. } | Repr::AuthenticateNak { message: m, .. } => {
            assert_eq!(m, message);
            assert_eq!(usize::from(packet.message_len()), m.len());
        }
        Repr::Other { code, data: d, .. } => {
            assert!(matches!(code, Code::Unknown(_)));
            assert_eq!(d, packet.data());
        }
    }

    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("a parsed PAP packet emits");
    let again = Repr::parse(&Packet::new_checked(&buf[..]).expect("emitted PAP checks"))
        .expect("emitted PAP parses");
    assert_eq!(again, repr);
    assert!(
        repr.buffer_len() <= length + 1,
        "only an empty Ack/Nak grows"
    );
});
