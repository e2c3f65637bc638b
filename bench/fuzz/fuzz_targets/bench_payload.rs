//! The sinks' payload check (`traffic::payload::verify`): any bytes give a header or an
//! error, never a panic; a payload that verifies is exactly what `write` makes of its header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_bench::traffic::payload::{HEADER_LEN, PayloadError, verify, write};

fuzz_target!(|data: &[u8]| {
    match verify(data) {
        Ok(header) => {
            let mut again = vec![0u8; data.len()];
            write(&mut again, &header).expect("as long as the input");
            assert_eq!(again, data);
        }
        Err(PayloadError::Truncated) => assert!(data.len() < HEADER_LEN),
        Err(PayloadError::Corrupt { offset }) => {
            assert!(offset >= HEADER_LEN && offset < data.len())
        }
        Err(PayloadError::BadMagic) => {}
    }
});
