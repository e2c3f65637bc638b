//! pptpd.conf (`config::parse_pptpd_conf`): any bytes give a result or a located error,
//! never a panic; every expanded address list stays within the pool limit.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xpptp_control::config::parse_pptpd_conf;
use xpptp_control::pool::MAX_POOL_SIZE;

fuzz_target!(|data: &[u8]| {
    let mut warnings = Vec::new();
    match parse_pptpd_conf(Path::new("pptpd.conf"), data, &mut warnings) {
        Ok(conf) => {
            for (list, _) in conf.localip.iter().chain(conf.remoteip.iter()) {
                assert!(list.len() <= MAX_POOL_SIZE);
            }
        }
        Err(error) => assert!(error.location().is_some_and(|l| l.line.is_some())),
    }
    for warning in warnings {
        assert!(warning.at.line.is_some());
    }
});
