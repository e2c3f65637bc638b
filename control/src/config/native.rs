//! The native configuration file, TOML (default /etc/xpptp/xpptp.toml); every key is
//! documented in control/xpptp.toml.example. Unknown keys are errors. Durations are whole
//! seconds in keys ending in `_secs`; 0 turns a timer or keepalive off.

use core::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use xpptp_proto::ppp::auth::{AuthPolicy, Method};
use xpptp_proto::ppp::ccp::{MppePolicy, MppeRequirement};
use xpptp_proto::ppp::ipcp::NameServers;

use super::addr::{host, parse_item};
use super::secrets::load_secrets;
use super::{Addresses, Config, ConfigError, DuplicateUser, Loaded, Location, Problem, read};

/// Where `xpptp-control` looks without `--config`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/xpptp/xpptp.toml";

/// The chap-secrets file a native configuration uses unless it names one.
pub const DEFAULT_NATIVE_SECRETS: &str = "/etc/xpptp/chap-secrets";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Spanned<String>>,
    secrets: Option<PathBuf>,
    datapath_socket: Option<PathBuf>,
    control_socket: Option<PathBuf>,
    #[serde(default)]
    metrics: MetricsFile,
    #[serde(default)]
    debug: bool,
    addresses: AddressesFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    keepalive: KeepaliveFile,
    #[serde(default)]
    timeouts: TimeoutsFile,
    #[serde(default)]
    ppp: PppFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressesFile {
    local: Vec<Spanned<String>>,
    pool: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_sessions: Option<Spanned<u32>>,
    max_starting: Option<u32>,
    connections_per_source_per_minute: Option<u32>,
    start_timeout_secs: Option<Spanned<u64>>,
    duplicate_user: Option<DuplicateUser>,
    auth_failures_before_backoff: Option<u32>,
    auth_backoff_secs: Option<u64>,
    auth_backoff_max_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeepaliveFile {
    pptp_echo_interval_secs: Option<u64>,
    lcp_echo_interval_secs: Option<u64>,
    lcp_echo_failures: Option<u32>,
}

/// `[metrics]`: the Prometheus endpoint (issue 6 item 2).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TimeoutsFile {
    idle_secs: Option<u64>,
    session_secs: Option<u64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum AuthMethodName {
    #[serde(rename = "mschap-v2")]
    MsChapV2,
    #[serde(rename = "mschap")]
    MsChap,
    #[serde(rename = "chap")]
    Chap,
    #[serde(rename = "pap")]
    Pap,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum MppeMode {
    Require,
    Allow,
    Deny,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Stateful {
    Deny,
    Allow,
    Prefer,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PppFile {
    name: Option<String>,
    auth: Option<Spanned<Vec<AuthMethodName>>>,
    mppe: Option<MppeMode>,
    mppe_bits: Option<Spanned<Vec<u8>>>,
    mppe_stateful: Option<Stateful>,
    dns: Option<Spanned<Vec<Ipv4Addr>>>,
    wins: Option<Spanned<Vec<Ipv4Addr>>>,
    mru: Option<Spanned<u16>>,
    mtu: Option<Spanned<u16>>,
}

/// Reads the native file at `path`, then the chap-secrets it names.
pub fn load_native(path: &Path) -> Result<Loaded, ConfigError> {
    let data = read(path)?;
    let mut warnings = Vec::new();
    let config = parse_native(path, &data)?;
    let secrets = load_secrets(&config.secrets_file, &mut warnings)?;
    Ok(Loaded {
        config,
        secrets,
        warnings,
    })
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses a native file's `data` (named `path` in messages) into a [`Config`]; the
/// secrets are not read.
pub fn parse_native(path: &Path, data: &[u8]) -> Result<Config, ConfigError> {
    let text = std::str::from_utf8(data).map_err(|e| {
        Problem::new(
            "the file is not UTF-8",
            "save it as UTF-8 (TOML requires it)",
        )
        .at(Location::line(
            path,
            line_of(&String::from_utf8_lossy(data), e.valid_up_to()),
        ))
    })?;
    let at = |span: Range<usize>| Location::line(path, line_of(text, span.start));
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        let message = e.message().trim().to_string();
        let fix = if message.starts_with("unknown field") {
            "remove the key or correct its spelling (control/xpptp.toml.example lists every key)"
        } else if message.starts_with("missing field") {
            "add it (control/xpptp.toml.example shows every key)"
        } else if message.starts_with("unknown variant") {
            "use one of the values listed"
        } else {
            "write the value as control/xpptp.toml.example shows"
        };
        Problem::new(message, fix).at(Location::line(path, line))
    })?;

    let addresses = file.addresses;
    let mut local = Vec::new();
    for item in &addresses.local {
        local.push(host(item.get_ref()).map_err(|p| p.at(at(item.span())))?);
    }
    let mut pool = Vec::new();
    for item in &addresses.pool {
        parse_item(item.get_ref().trim(), &mut pool).map_err(|p| p.at(at(item.span())))?;
    }
    let mut config = Config::with_addresses(Addresses { local, pool });

    if let Some(listen) = &file.listen {
        config.listen = socket_addr(listen.get_ref(), Some(super::PPTP_PORT)).ok_or_else(|| {
            Problem::new(
                format!("listen = {:?} is not an address", listen.get_ref()),
                "write e.g. listen = \"0.0.0.0:1723\" or \"203.0.113.5\"",
            )
            .at(at(listen.span()))
        })?;
    }
    if let Some(metrics) = &file.metrics.listen {
        config.metrics = Some(socket_addr(metrics.get_ref(), None).ok_or_else(|| {
            Problem::new(
                format!(
                    "[metrics] listen = {:?} is not an address and port",
                    metrics.get_ref()
                ),
                "write e.g. listen = \"127.0.0.1:9723\" under [metrics], or remove the key to \
                 turn metrics off",
            )
            .at(at(metrics.span()))
        })?);
    }
    config.secrets_file = file
        .secrets
        .unwrap_or_else(|| PathBuf::from(DEFAULT_NATIVE_SECRETS));
    if let Some(p) = file.datapath_socket {
        config.datapath_socket = p;
    }
    if let Some(p) = file.control_socket {
        config.control_socket = p;
    }
    config.debug = file.debug;

    let l = file.limits;
    let limits = &mut config.limits;
    if let Some(max) = l.max_sessions {
        limits.max_sessions = *max.get_ref();
        if limits.max_sessions == 0 {
            return Err(
                Problem::new("max_sessions = 0", "allow at least one session").at(at(max.span())),
            );
        }
    }
    set(&mut limits.max_starting, l.max_starting);
    set(
        &mut limits.connections_per_source_per_minute,
        l.connections_per_source_per_minute,
    );
    if let Some(t) = l.start_timeout_secs {
        if *t.get_ref() == 0 {
            return Err(Problem::new(
                "start_timeout_secs = 0",
                "give clients a few seconds to send their first message, e.g. 10",
            )
            .at(at(t.span())));
        }
        limits.start_timeout = Duration::from_secs(*t.get_ref());
    }
    set(&mut limits.duplicate_user, l.duplicate_user);
    set(
        &mut limits.auth_backoff.after_failures,
        l.auth_failures_before_backoff,
    );
    set(
        &mut limits.auth_backoff.initial,
        l.auth_backoff_secs.map(Duration::from_secs),
    );
    set(
        &mut limits.auth_backoff.max,
        l.auth_backoff_max_secs.map(Duration::from_secs),
    );

    let k = file.keepalive;
    if let Some(s) = k.pptp_echo_interval_secs {
        config.keepalive.pptp_echo_interval = off_if_zero(s);
    }
    if let Some(s) = k.lcp_echo_interval_secs {
        config.keepalive.lcp_echo_interval = off_if_zero(s);
    }
    set(&mut config.keepalive.lcp_echo_failures, k.lcp_echo_failures);
    if let Some(s) = file.timeouts.idle_secs {
        config.timeouts.idle = off_if_zero(s);
    }
    if let Some(s) = file.timeouts.session_secs {
        config.timeouts.session = off_if_zero(s);
    }

    let p = file.ppp;
    if let Some(name) = &p.name {
        config.ppp.name = name.clone();
    }
    if let Some(auth) = &p.auth {
        let mut policy = AuthPolicy::none();
        for method in auth.get_ref() {
            policy = policy.with(match method {
                AuthMethodName::MsChapV2 => Method::MsChapV2,
                AuthMethodName::MsChap => Method::MsChapV1,
                AuthMethodName::Chap => Method::ChapMd5,
                AuthMethodName::Pap => Method::Pap,
            });
        }
        if policy.is_empty() {
            return Err(Problem::new(
                "auth = [] allows no authentication method",
                "allow at least one, e.g. auth = [\"mschap-v2\"]",
            )
            .at(at(auth.span())));
        }
        config.ppp.auth = policy;
    }
    config.ppp.mppe = mppe_policy(&p, &at)?;
    config.ppp.name_servers = NameServers {
        primary_dns: None,
        secondary_dns: None,
        primary_nbns: None,
        secondary_nbns: None,
    };
    for (list, key) in [(&p.dns, "dns"), (&p.wins, "wins")] {
        let Some(list) = list else { continue };
        let (first, second) = match list.get_ref().as_slice() {
            [] => (None, None),
            [a] => (Some(*a), None),
            [a, b] => (Some(*a), Some(*b)),
            _ => {
                return Err(Problem::new(
                    format!("{key} lists more than two servers"),
                    "IPCP carries a primary and a secondary: keep two",
                )
                .at(at(list.span())));
            }
        };
        if key == "dns" {
            config.ppp.name_servers.primary_dns = first;
            config.ppp.name_servers.secondary_dns = second;
        } else {
            config.ppp.name_servers.primary_nbns = first;
            config.ppp.name_servers.secondary_nbns = second;
        }
    }
    for (value, key) in [(&p.mru, "mru"), (&p.mtu, "mtu")] {
        if let Some(v) = value
            && !(128..=1500).contains(v.get_ref())
        {
            return Err(Problem::new(
                format!("{key} = {} is outside 128..1500", v.get_ref()),
                "PPTP frames travel in 1500-byte packets: pick a size in that range, e.g. 1400",
            )
            .at(at(v.span())));
        }
    }
    if let Some(mru) = &p.mru {
        config.ppp.mru = *mru.get_ref();
    }
    config.ppp.mtu = p.mtu.map(|m| *m.get_ref());
    // Whole-file checks (pool against locals, MPPE against methods) name the file.
    config.validate(&Location::file(path))?;
    Ok(config)
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn off_if_zero(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn socket_addr(text: &str, default_port: Option<u16>) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| {
        Some(SocketAddr::from((
            text.parse::<Ipv4Addr>().ok()?,
            default_port?,
        )))
    })
}

fn mppe_policy(
    p: &PppFile,
    at: &impl Fn(Range<usize>) -> Location,
) -> Result<MppePolicy, ConfigError> {
    let mut policy = MppePolicy::default();
    if let Some(mode) = p.mppe {
        policy.requirement = match mode {
            MppeMode::Require => MppeRequirement::Required,
            MppeMode::Allow => MppeRequirement::Optional,
            MppeMode::Deny => MppeRequirement::Denied,
        };
    }
    if let Some(bits) = &p.mppe_bits {
        policy.allow_40 = false;
        policy.allow_56 = false;
        policy.allow_128 = false;
        for b in bits.get_ref() {
            match b {
                40 => policy.allow_40 = true,
                56 => policy.allow_56 = true,
                128 => policy.allow_128 = true,
                other => {
                    return Err(Problem::new(
                        format!("mppe_bits lists {other}"),
                        "MPPE keys are 40, 56 or 128 bits: e.g. mppe_bits = [128]",
                    )
                    .at(at(bits.span())));
                }
            }
        }
        if bits.get_ref().is_empty() && policy.requirement != MppeRequirement::Denied {
            return Err(Problem::new(
                "mppe_bits = [] allows no key length",
                "allow 128 (mppe_bits = [128]), or write mppe = \"deny\"",
            )
            .at(at(bits.span())));
        }
    }
    if let Some(stateful) = p.mppe_stateful {
        (policy.allow_stateful, policy.prefer_stateful) = match stateful {
            Stateful::Deny => (false, false),
            Stateful::Allow => (true, false),
            Stateful::Prefer => (true, true),
        };
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[addresses]\nlocal = [\"10.0.0.1\"]\npool = [\"10.0.0.10-20\"]\n";

    fn parse(text: &str) -> Config {
        parse_native(Path::new("x.toml"), text.as_bytes()).unwrap()
    }

    fn error(text: &str) -> String {
        parse_native(Path::new("x.toml"), text.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_minimal_file_gets_poptop_defaults() {
        let c = parse(MINIMAL);
        assert_eq!(c.addresses.pool.len(), 11);
        assert_eq!(c.limits.max_sessions, 11);
        assert_eq!(c.listen, "0.0.0.0:1723".parse().unwrap());
        assert_eq!(c.ppp.auth, AuthPolicy::only(Method::MsChapV2));
        assert_eq!(c.ppp.mppe, MppePolicy::default());
        assert_eq!(c.metrics, None);
        assert_eq!(c.secrets_file, PathBuf::from(DEFAULT_NATIVE_SECRETS));
        assert_eq!(c.keepalive.lcp_echo_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn every_section() {
        let c = parse(&format!(
            "listen = \"192.0.2.1\"\nsecrets = \"/s\"\n\
             datapath_socket = \"/d\"\ncontrol_socket = \"/c\"\ndebug = true\n{MINIMAL}\
             [metrics]\nlisten = \"127.0.0.1:9723\"\n\
             [limits]\nmax_sessions = 5\nmax_starting = 2\nconnections_per_source_per_minute = 0\n\
             start_timeout_secs = 3\nduplicate_user = \"replace\"\nauth_failures_before_backoff = 1\n\
             auth_backoff_secs = 2\nauth_backoff_max_secs = 8\n\
             [keepalive]\npptp_echo_interval_secs = 0\nlcp_echo_interval_secs = 10\nlcp_echo_failures = 2\n\
             [timeouts]\nidle_secs = 600\nsession_secs = 0\n\
             [ppp]\nname = \"gw\"\nauth = [\"mschap-v2\", \"mschap\"]\nmppe = \"require\"\n\
             mppe_bits = [40, 128]\nmppe_stateful = \"prefer\"\ndns = [\"10.0.0.53\"]\n\
             wins = [\"10.0.0.7\", \"10.0.0.8\"]\nmru = 1400\nmtu = 1380\n"
        ));
        assert_eq!(c.listen, "192.0.2.1:1723".parse().unwrap());
        assert_eq!(c.metrics, Some("127.0.0.1:9723".parse().unwrap()));
        assert_eq!(c.secrets_file, PathBuf::from("/s"));
        assert!(c.debug);
        assert_eq!(c.limits.max_sessions, 5);
        assert_eq!(c.limits.connections_per_source_per_minute, 0);
        assert_eq!(c.limits.duplicate_user, DuplicateUser::Replace);
        assert_eq!(c.limits.auth_backoff.max, Duration::from_secs(8));
        assert_eq!(c.keepalive.pptp_echo_interval, None);
        assert_eq!(c.timeouts.idle, Some(Duration::from_secs(600)));
        assert_eq!(c.timeouts.session, None);
        assert_eq!(c.ppp.name, "gw");
        assert_eq!(
            c.ppp.auth,
            AuthPolicy::only(Method::MsChapV2).with(Method::MsChapV1)
        );
        assert!(c.ppp.mppe.allow_40 && c.ppp.mppe.allow_128 && c.ppp.mppe.prefer_stateful);
        assert_eq!(c.ppp.name_servers.primary_dns, Some([10, 0, 0, 53].into()));
        assert_eq!(c.ppp.name_servers.secondary_dns, None);
        assert_eq!(
            c.ppp.name_servers.secondary_nbns,
            Some([10, 0, 0, 8].into())
        );
        assert_eq!((c.ppp.mru, c.ppp.mtu), (1400, Some(1380)));
    }

    #[test]
    fn every_error_names_line_and_fix() {
        for (text, line, needle) in [
            (
                format!("{MINIMAL}colour = 1\n"),
                4,
                "unknown field `colour`",
            ),
            (
                format!("{MINIMAL}[limits]\nmax_session = 1\n"),
                5,
                "unknown field `max_session`",
            ),
            ("listen = 1\n".to_string(), 1, "invalid type"),
            (
                "[addresses]\nlocal = [\"10.0.0.1\"]\n".to_string(),
                1,
                "missing field `pool`",
            ),
            (
                "[addresses]\nlocal = [\"10.0.0.1\"]\npool = [\"10.0.0.9-2\"]\n".to_string(),
                3,
                "ends before",
            ),
            (
                "[addresses]\nlocal = [\"x\"]\npool = [\"10.0.0.9\"]\n".to_string(),
                2,
                "not an IPv4 address",
            ),
            (
                format!("listen = \"nowhere\"\n{MINIMAL}"),
                1,
                "is not an address",
            ),
            (
                format!("{MINIMAL}[metrics]\nlisten = \"127.0.0.1\"\n"),
                5,
                "not an address and port",
            ),
            (
                format!("{MINIMAL}[limits]\nmax_sessions = 0\n"),
                5,
                "max_sessions = 0",
            ),
            (
                format!("{MINIMAL}[limits]\nstart_timeout_secs = 0\n"),
                5,
                "start_timeout_secs = 0",
            ),
            (
                format!("{MINIMAL}[limits]\nduplicate_user = \"kick\"\n"),
                5,
                "unknown variant `kick`",
            ),
            (
                format!("{MINIMAL}[ppp]\nauth = []\n"),
                5,
                "allows no authentication",
            ),
            (
                format!("{MINIMAL}[ppp]\nauth = [\"eap\"]\n"),
                5,
                "unknown variant `eap`",
            ),
            (
                format!("{MINIMAL}[ppp]\nmppe_bits = [64]\n"),
                5,
                "mppe_bits lists 64",
            ),
            (
                format!("{MINIMAL}[ppp]\nmppe_bits = []\n"),
                5,
                "no key length",
            ),
            (
                format!("{MINIMAL}[ppp]\ndns = [\"1.1.1.1\", \"1.0.0.1\", \"8.8.8.8\"]\n"),
                5,
                "more than two",
            ),
            (format!("{MINIMAL}[ppp]\ndns = [\"one\"]\n"), 5, "invalid"),
            (
                format!("{MINIMAL}[ppp]\nmru = 100\n"),
                5,
                "outside 128..1500",
            ),
            (
                format!("{MINIMAL}[ppp]\nmtu = 9000\n"),
                5,
                "outside 128..1500",
            ),
            ("[addresses\n".to_string(), 1, ""),
        ] {
            let message = error(&text);
            assert!(
                message.starts_with(&format!("x.toml:{line}: ")),
                "{text}: {message}"
            );
            assert!(message.contains(needle), "{text}: {message}");
            assert!(message.contains("; "), "no fix in {message}");
        }
        // Whole-file checks name the file.
        for (text, needle) in [
            (
                format!("{MINIMAL}[ppp]\nauth = [\"pap\"]\n"),
                "no allowed method yields MPPE keys",
            ),
            (
                format!("{MINIMAL}[ppp]\nmppe_bits = [56]\nmppe = \"require\"\n"),
                "",
            ),
            (
                "[addresses]\nlocal = [\"10.0.0.1\"]\npool = [\"10.0.0.9\", \"10.0.0.9\"]\n"
                    .to_string(),
                "10.0.0.9 appears twice",
            ),
            (
                "[addresses]\nlocal = [\"10.0.0.1\", \"10.0.0.2\"]\npool = [\"10.0.0.9-11\"]\n"
                    .to_string(),
                "2 local addresses for 3",
            ),
            (
                format!("{MINIMAL}[limits]\nauth_backoff_secs = 9\nauth_backoff_max_secs = 1\n"),
                "first back-off period",
            ),
        ] {
            match parse_native(Path::new("x.toml"), text.as_bytes()) {
                Ok(_) => assert!(needle.is_empty(), "{text} parsed"),
                Err(e) => {
                    let message = e.to_string();
                    assert!(message.starts_with("x.toml: "), "{message}");
                    assert!(message.contains(needle), "{message}");
                }
            }
        }
        let message = parse_native(Path::new("x.toml"), b"\xff")
            .unwrap_err()
            .to_string();
        assert!(message.contains("not UTF-8"), "{message}");
    }
}
