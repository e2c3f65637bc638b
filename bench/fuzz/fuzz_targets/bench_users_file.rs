//! The emulator's users file (`emulator::cli::parse_chap_secrets`, chap-secrets lines):
//! any text gives users or an error, never a panic; every user it gives came from a line
//! of the text, and the emulator's credentials cycle through them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_bench::emulator::Users;
use xpptp_bench::emulator::cli::parse_chap_secrets;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(users) = parse_chap_secrets(text) else {
        return;
    };
    assert!(!users.is_empty());
    assert!(users.len() <= text.lines().count());
    for (user, secret) in &users {
        assert!(text.contains(user.as_str()) && text.contains(secret.as_str()));
    }
    let list = Users::List(users.clone());
    for index in 0..4u32 {
        let got = list.credentials(index).expect("a non-empty list");
        assert!(users.contains(&got));
    }
});
