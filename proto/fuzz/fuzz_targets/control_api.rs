//! The control socket's frame decoder (proto/src/control_api.rs): any octets from a local
//! client give a frame or an error, never a panic or an allocation the input cannot
//! justify; what decodes re-encodes to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::control_api::{Frame, frame_len};

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data);
    if let Ok(Some((frame, used))) = Frame::decode(data) {
        assert!(used <= data.len());
        let bytes = frame.to_vec().expect("a decoded frame encodes");
        let again = Frame::decode(&bytes).expect("re-decodes").map(|(f, _)| f);
        assert_eq!(again, Some(frame));
    }
});
