//! The Poptop configuration of the reference capture (shared/reference/pptpd-session, copied
//! unchanged into tests/data/poptop/: Debian's pptpd.conf and pptpd-options with the
//! capture's addresses, its chap-secrets, and Debian's /etc/ppp/options) read as an
//! operator would point xpptp at it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xpptp_control::config::{self, DuplicateUser, Loaded};
use xpptp_control::pool::{AddressPool, AddressRule, Lease};
use xpptp_proto::ppp::auth::{AuthPolicy, Method, StoredSecret};
use xpptp_proto::ppp::ccp::MppePolicy;
use xpptp_proto::ppp::link;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/poptop")
        .join(name)
}

fn load() -> Loaded {
    // pptpd.conf names /etc/ppp/pptpd-options; the test points at the copy next to it.
    config::load_poptop(
        &data("pptpd.conf"),
        Some(&data("pptpd-options")),
        Some(&data("chap-secrets")),
    )
    .unwrap()
}

#[test]
fn the_reference_install_reads_as_poptop_ran_it() {
    let loaded = load();
    let c = &loaded.config;
    assert_eq!(c.addresses.local, [Ipv4Addr::new(192, 168, 77, 1)]);
    let pool: Vec<Ipv4Addr> = (10..=19).map(|n| Ipv4Addr::new(192, 168, 77, n)).collect();
    assert_eq!(c.addresses.pool, pool);
    assert_eq!(
        c.limits.max_sessions, 10,
        "connections 100 lowered to the 10 addresses"
    );
    assert_eq!(c.limits.start_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.duplicate_user, DuplicateUser::Allow);
    assert_eq!(c.listen, "0.0.0.0:1723".parse().unwrap());
    assert_eq!(c.ppp.name, "pptpd");
    assert_eq!(c.ppp.auth, AuthPolicy::only(Method::MsChapV2));
    assert_eq!(
        c.ppp.mppe,
        MppePolicy::default(),
        "require-mppe-128, stateless only"
    );
    assert_eq!(c.keepalive.lcp_echo_interval, Some(Duration::from_secs(30)));
    assert_eq!(c.keepalive.lcp_echo_failures, 4);
    assert!(c.debug, "pptpd-options says debug");
    assert_eq!(c.secrets_file, data("chap-secrets"));

    let user = loaded.secrets.lookup(b"pptpuser", b"pptpd").unwrap();
    assert_eq!(user.addresses, AddressRule::Pool);
    match &user.secret {
        StoredSecret::Password(p) => assert_eq!(p.as_str(), "Pptp-Test-Pass-1"),
        StoredSecret::NtHash(_) => panic!("chap-secrets holds passwords"),
    }
    assert!(loaded.secrets.lookup(b"pptpuser", b"elsewhere").is_none());
}

#[test]
fn every_ignored_pppd_option_is_warned_with_its_line() {
    let warnings: Vec<String> = load().warnings.iter().map(ToString::to_string).collect();
    let options = data("pptpd-options").display().to_string();
    let expected: Vec<String> = [
        (7, "nodefaultroute"),
        (8, "lock"),
        (9, "nobsdcomp"),
        (10, "novj"),
        (11, "novjccomp"),
        (12, "nologfd"),
        (14, "logfile /share/pppd-server.log"),
    ]
    .iter()
    .map(|(line, option)| {
        format!("{options}:{line}: pppd option `{option}` ignored: it does not apply to xpptp")
    })
    .collect();
    assert_eq!(warnings, expected);
}

#[test]
fn the_link_gets_what_the_reference_replay_runs() {
    let loaded = load();
    let local = loaded.config.addresses.local[0];
    let ours = loaded.config.link_config(local);
    // proto/tests/reference_replay.rs: Poptop's behaviour as our server role reproduces it.
    let mut replay = link::ServerConfig {
        auth: AuthPolicy::only(Method::MsChapV2),
        ..link::ServerConfig::default()
    };
    replay.ipcp.local_address = Some(Ipv4Addr::new(192, 168, 77, 1));
    // What differs: the replay also sends Debian's /etc/ppp/options `asyncmap 0`, a file
    // Poptop's pppd reads and xpptp does not; and the server's LCP lists what it requires.
    replay.lcp.auth_require = vec![Method::MsChapV2.to_lcp()];
    replay.lcp.auth_accept = Vec::new();
    assert_eq!(ours, replay);
}

#[test]
fn the_pool_serves_the_reference_user() {
    let loaded = load();
    let c = &loaded.config;
    let mut pool = AddressPool::new(
        &c.addresses.pool,
        &c.addresses.local,
        loaded.secrets.fixed_addresses(),
    )
    .unwrap();
    let user = loaded.secrets.lookup(b"pptpuser", b"pptpd").unwrap();
    // Poptop gave the capture's client 192.168.77.10, the first address: so do we.
    assert_eq!(
        pool.allocate(&user.addresses).unwrap(),
        Lease {
            peer: Ipv4Addr::new(192, 168, 77, 10),
            local: Ipv4Addr::new(192, 168, 77, 1)
        }
    );
}

#[test]
fn the_summary_shows_policy_and_never_the_secret() {
    let summary = load().to_string();
    for needle in [
        "pool              10 addresses (192.168.77.10 .. 192.168.77.19)",
        "local address     192.168.77.1 (shared by all sessions)",
        "authentication    MS-CHAP-v2 (name \"pptpd\")",
        "MPPE              required, 128-bit, stateless only",
        "limits            10 sessions",
        "(1 users)",
    ] {
        assert!(
            summary.contains(needle),
            "{needle:?} missing from\n{summary}"
        );
    }
    assert!(!summary.contains("Pptp-Test-Pass-1"));
    assert!(!format!("{:?}", load().secrets).contains("Pptp-Test-Pass-1"));
}

#[test]
fn the_options_line_of_pptpd_conf_is_followed() {
    // Without the override, pptpd.conf's `option /etc/ppp/pptpd-options` is read: absent
    // here, which must say which file is missing.
    let error = config::load_poptop(&data("pptpd.conf"), None, Some(&data("chap-secrets")))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("/etc/ppp/pptpd-options: cannot read it"),
        "{error}"
    );
}

#[test]
fn debians_etc_ppp_options_is_a_pppd_options_file_too() {
    // Not read by xpptp (see config::options), but it must parse: every option in it is
    // one pppd knows.
    let mut warnings = Vec::new();
    let text = std::fs::read(data("options")).unwrap();
    let o = config::parse_pppd_options(&data("options"), &text, &mut warnings).unwrap();
    assert_eq!(o.lcp_echo_interval, Some(Some(Duration::from_secs(30))));
    assert_eq!(o.lcp_echo_failures, Some(4));
    assert_eq!(warnings.len(), 7, "{warnings:#?}");
}
