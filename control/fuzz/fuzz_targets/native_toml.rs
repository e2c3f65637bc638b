//! The native TOML file (`config::parse_native`): any bytes give a configuration that
//! passed validation, or a located error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xpptp_control::config::{Location, parse_native};

fuzz_target!(|data: &[u8]| {
    match parse_native(Path::new("xpptp.toml"), data) {
        Ok(config) => {
            config
                .validate(&Location::file(Path::new("xpptp.toml")))
                .expect("a parsed configuration is valid");
            let local = config.addresses.local[0];
            let _ = config.link_config(local);
        }
        Err(error) => assert!(error.location().is_some()),
    }
});
