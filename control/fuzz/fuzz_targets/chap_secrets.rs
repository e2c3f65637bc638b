//! chap-secrets (`config::parse_chap_secrets`): any bytes give a table or a located error,
//! never a panic; every entry can be looked up by its own names, and a lookup never
//! returns an entry whose names do not match. (`@/file` secrets are not read when
//! fuzzing.)
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xpptp_control::config::parse_chap_secrets;

fuzz_target!(|data: &[u8]| {
    let mut warnings = Vec::new();
    let secrets = match parse_chap_secrets(Path::new("chap-secrets"), data, &mut warnings) {
        Ok(secrets) => secrets,
        Err(error) => {
            assert!(error.location().is_some_and(|l| l.line.is_some()));
            return;
        }
    };
    for entry in secrets.entries() {
        let client = entry.client.clone().unwrap_or_else(|| b"someone".to_vec());
        let server = entry
            .server
            .clone()
            .unwrap_or_else(|| b"somewhere".to_vec());
        let found = secrets
            .lookup(&client, &server)
            .expect("an entry finds itself");
        assert!(found.client.as_ref().is_none_or(|c| *c == client));
        assert!(found.server.as_ref().is_none_or(|s| *s == server));
    }
    let _ = secrets.fixed_addresses();
});
