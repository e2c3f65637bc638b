//! The pppd options file (`config::parse_pppd_options`): any bytes give options or a
//! located error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xpptp_control::config::parse_pppd_options;

fuzz_target!(|data: &[u8]| {
    let mut warnings = Vec::new();
    if let Err(error) = parse_pppd_options(Path::new("options"), data, &mut warnings) {
        assert!(error.location().is_some_and(|l| l.line.is_some()));
    }
});
