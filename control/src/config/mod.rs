//! The control daemon's configuration: one [`Config`], read either from the native TOML
//! file ([`load_native`]) or from an existing Poptop install as it is ([`load_poptop`]:
//! pptpd.conf, the pppd options file its `option` line names, and chap-secrets).
//!
//! Every mistake a user can make is a [`ConfigError`] that reads `file:line: what is
//! wrong; how to fix it`. Settings we understand but do not act on are [`Warning`]s with
//! the same location. Secrets live apart from the [`Config`], in [`Secrets`], so that a
//! reload (SIGHUP) builds a new table without touching the rest.

mod addr;
mod native;
mod options;
mod pptpd;
mod secrets;
pub mod words;

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use xpptp_proto::ppp::auth::{self, AuthPolicy};
use xpptp_proto::ppp::ccp::{MppePolicy, MppeRequirement};
use xpptp_proto::ppp::ipcp::{IpcpServerConfig, NameServers};
use xpptp_proto::ppp::lcp::LcpConfig;
use xpptp_proto::ppp::link;
use xpptp_proto::pptp::control;

pub use addr::parse_list as parse_address_list;
pub use native::{DEFAULT_CONFIG_PATH, load_native, parse_native};
pub use options::{PppOptions, parse_pppd_options};
pub use pptpd::{PptpdConf, load_poptop, parse_pptpd_conf};
pub use secrets::{DEFAULT_CHAP_SECRETS, SecretEntry, Secrets, load_secrets, parse_chap_secrets};

/// A file and a line in it (`None`: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: Option<usize>,
}

impl Location {
    /// Line `line` of `file`.
    pub fn line(file: &Path, line: usize) -> Location {
        Location {
            file: file.to_path_buf(),
            line: Some(line),
        }
    }

    /// `file` as a whole.
    pub fn file(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            line: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// What is wrong and how to fix it, before a location is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

impl Problem {
    /// A problem.
    pub fn new(what: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            what: what.into(),
            fix: fix.into(),
        }
    }

    /// This problem at `at`.
    pub fn at(self, at: Location) -> ConfigError {
        ConfigError::Invalid {
            at,
            what: self.what,
            fix: self.fix,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is wrong.
    #[error("{at}: {what}; {fix}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        what: String,
        /// How to fix it.
        fix: String,
    },
    /// A file cannot be read.
    #[error("{}: cannot read it ({source}); check the path and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// Where the error is (`None` for unreadable files).
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Invalid { at, .. } => Some(at),
            ConfigError::Read { .. } => None,
        }
    }
}

/// A setting understood but not acted on, or worth the operator's attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub at: Location,
    /// What.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// What to do when a user who already has a session dials again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateUser {
    /// Let both sessions run (Poptop + pppd do).
    Allow,
    /// Refuse the new session.
    Deny,
    /// End the old session and let the new one in (a client that lost its link and
    /// redials gets in at once).
    Replace,
}

/// Back-off after failed authentication, per user and per source address: after
/// `after_failures` failures in a row, further attempts are refused for `initial`, doubling
/// with each further failure up to `max`. A success resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthBackoff {
    /// Failures allowed before the back-off starts.
    pub after_failures: u32,
    /// The first refusal period.
    pub initial: Duration,
    /// The longest refusal period.
    pub max: Duration,
}

/// Admission and abuse limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions at once (Poptop `connections`, lowered to the pool size as Poptop does).
    pub max_sessions: u32,
    /// Control connections that have not reached an established session yet.
    pub max_starting: u32,
    /// New TCP connections accepted per source address per minute; 0: no limit.
    pub connections_per_source_per_minute: u32,
    /// The first PPTP message must arrive within this (Poptop `stimeout`).
    pub start_timeout: Duration,
    /// A second session of the same user.
    pub duplicate_user: DuplicateUser,
    /// Failed-authentication back-off.
    pub auth_backoff: AuthBackoff,
}

impl Default for Limits {
    /// Lenient enough for an office behind one NAT, tight enough to slow a password
    /// guesser; `max_sessions` is every call ID (loaders lower it to the pool size).
    fn default() -> Limits {
        Limits {
            max_sessions: 65_535,
            max_starting: 256,
            connections_per_source_per_minute: 60,
            start_timeout: Duration::from_secs(10),
            duplicate_user: DuplicateUser::Allow,
            auth_backoff: AuthBackoff {
                after_failures: 3,
                initial: Duration::from_secs(5),
                max: Duration::from_secs(300),
            },
        }
    }
}

/// Keepalives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// PPTP Echo-Request after this much silence on TCP (RFC 2637: 60 s); `None`: off.
    pub pptp_echo_interval: Option<Duration>,
    /// LCP Echo-Request after this much silence on the link (pppd `lcp-echo-interval`);
    /// `None`: off.
    pub lcp_echo_interval: Option<Duration>,
    /// Unanswered LCP Echo-Requests before the link is declared dead (pppd
    /// `lcp-echo-failure`); 0: never.
    pub lcp_echo_failures: u32,
}

/// Session timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// End a session without data packets for this long (pppd `idle`); `None`: never.
    pub idle: Option<Duration>,
    /// End a session this long after it came up (pppd `maxconnect`); `None`: never.
    pub session: Option<Duration>,
}

/// PPP negotiation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ppp {
    /// Our name in CHAP challenges and the server column of chap-secrets (pppd `name`).
    pub name: String,
    /// Authentication methods allowed, strongest preferred.
    pub auth: AuthPolicy,
    /// MPPE.
    pub mppe: MppePolicy,
    /// DNS and WINS servers given to clients (pppd `ms-dns`, `ms-wins`).
    pub name_servers: NameServers,
    /// The MRU we ask for (pppd `mru`).
    pub mru: u16,
    /// The largest packet we send, even if the peer's MRU allows more (pppd `mtu`);
    /// `None`: the peer's MRU.
    pub mtu: Option<u16>,
}

impl Default for Ppp {
    /// Poptop's shipped pptpd-options: name pptpd, MS-CHAPv2 only, MPPE-128 required.
    fn default() -> Ppp {
        Ppp {
            name: "pptpd".to_string(),
            auth: AuthPolicy::default(),
            mppe: MppePolicy::default(),
            name_servers: NameServers::default(),
            mru: xpptp_proto::ppp::lcp::DEFAULT_MRU,
            mtu: None,
        }
    }
}

/// Where the client addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// Our end of the tunnel: one for every session, or one per pool address (paired).
    pub local: Vec<Ipv4Addr>,
    /// The dynamic pool, in lease order.
    pub pool: Vec<Ipv4Addr>,
}

/// The whole configuration of `xpptp-control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TCP address and port for PPTP control connections (Poptop `listen`; port 1723).
    pub listen: SocketAddr,
    /// Local and client addresses.
    pub addresses: Addresses,
    /// Admission and abuse limits.
    pub limits: Limits,
    /// Keepalives.
    pub keepalive: Keepalive,
    /// Session timers.
    pub timeouts: Timeouts,
    /// PPP negotiation policy.
    pub ppp: Ppp,
    /// The datapath's command socket.
    pub datapath_socket: PathBuf,
    /// Our control socket (for the CLI).
    pub control_socket: PathBuf,
    /// Where to serve metrics; `None` (the default): nowhere.
    pub metrics: Option<SocketAddr>,
    /// chap-secrets.
    pub secrets_file: PathBuf,
    /// Verbose logs (Poptop `debug`, pppd `debug`).
    pub debug: bool,
}

/// The PPTP port.
pub const PPTP_PORT: u16 = 1723;
/// Default datapath command socket.
pub const DEFAULT_DATAPATH_SOCKET: &str = "/run/xpptp/datapath.sock";
/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xpptp/control.sock";

impl Config {
    /// The defaults every loader starts from: Poptop's behaviour where Poptop has one.
    /// `addresses` has no default: a pool is the one thing every operator must choose.
    pub fn with_addresses(addresses: Addresses) -> Config {
        let pool_size = u32::try_from(addresses.pool.len()).unwrap_or(u32::MAX);
        Config {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, PPTP_PORT)),
            addresses,
            limits: Limits {
                max_sessions: pool_size,
                ..Limits::default()
            },
            keepalive: Keepalive {
                pptp_echo_interval: Some(Duration::from_secs(60)),
                lcp_echo_interval: Some(Duration::from_secs(30)),
                lcp_echo_failures: 4,
            },
            timeouts: Timeouts {
                idle: None,
                session: None,
            },
            ppp: Ppp::default(),
            datapath_socket: PathBuf::from(DEFAULT_DATAPATH_SOCKET),
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            metrics: None,
            secrets_file: PathBuf::from(DEFAULT_CHAP_SECRETS),
            debug: false,
        }
    }

    /// Checks what no single setting can: the pool against the session limit, MPPE
    /// against the authentication methods. `at` names the file the settings came from.
    pub fn validate(&self, at: &Location) -> Result<(), ConfigError> {
        let fail = |what: String, fix: &str| Err(Problem::new(what, fix).at(at.clone()));
        if self.addresses.pool.is_empty() {
            return fail(
                "no client addresses".into(),
                "give a pool (remoteip in pptpd.conf, [addresses] pool in xpptp.toml)",
            );
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.addresses.pool.iter().find(|a| !seen.insert(**a)) {
            return fail(
                format!("{twice} appears twice in the pool"),
                "list every address once",
            );
        }
        let locals = self.addresses.local.len();
        if locals != 1 && locals != self.addresses.pool.len() {
            return fail(
                format!(
                    "{locals} local addresses for {} client addresses",
                    self.addresses.pool.len()
                ),
                "give one local address for all sessions, or exactly one per client address",
            );
        }
        if self.ppp.auth.is_empty() {
            return fail(
                "no authentication method is allowed".into(),
                "allow at least one method (MS-CHAPv2: require-mschap-v2 / auth = [\"mschap-v2\"])",
            );
        }
        let mppe = &self.ppp.mppe;
        if mppe.requirement == MppeRequirement::Required {
            if !mppe.wants_mppe() {
                return fail(
                    "MPPE is required but every key length is refused".into(),
                    "allow 128-bit (or 40-bit) MPPE, or stop requiring MPPE",
                );
            }
            if !self.ppp.auth.allowed().any(|m| m.provides_mppe_keys()) {
                return fail(
                    "MPPE is required but no allowed method yields MPPE keys (only MS-CHAP does)"
                        .into(),
                    "allow MS-CHAPv2, or stop requiring MPPE",
                );
            }
        }
        if self.limits.max_sessions == 0 {
            return fail(
                "the session limit is 0".into(),
                "allow at least one session",
            );
        }
        if self.limits.auth_backoff.initial > self.limits.auth_backoff.max {
            return fail(
                "the first back-off period is longer than the longest".into(),
                "make auth_backoff_max_secs at least auth_backoff_secs",
            );
        }
        Ok(())
    }

    /// The PPP server settings of a session whose local address is `local`.
    pub fn link_config(&self, local: Ipv4Addr) -> link::ServerConfig {
        let methods: Vec<_> = self.ppp.auth.allowed().map(auth::Method::to_lcp).collect();
        let mut lcp = LcpConfig::server(&methods);
        lcp.mru = self.ppp.mru;
        lcp.echo_interval = self.keepalive.lcp_echo_interval;
        lcp.echo_failures = self.keepalive.lcp_echo_failures;
        link::ServerConfig {
            lcp,
            auth: self.ppp.auth,
            authenticator: auth::ServerConfig {
                name: self.ppp.name.as_bytes().to_vec(),
                ..auth::ServerConfig::default()
            },
            ipcp: IpcpServerConfig {
                local_address: Some(local),
                name_servers: self.ppp.name_servers,
            },
            mppe: self.ppp.mppe,
            ncp_fsm: Default::default(),
        }
    }

    /// The PPTP control connection settings. Admission is decided when the TCP connection
    /// is accepted (the daemon's limits), so the machine does not ask again.
    pub fn pptp_config(&self) -> control::Config {
        control::Config {
            start_timeout: self.limits.start_timeout,
            echo_interval: self.keepalive.pptp_echo_interval,
            ask_admission: false,
            ..control::Config::default()
        }
    }
}

/// A loaded configuration: the settings, the secrets, and what the operator should know.
#[derive(Debug)]
pub struct Loaded {
    /// The settings.
    pub config: Config,
    /// The secrets (chap-secrets).
    pub secrets: Secrets,
    /// Settings understood but ignored, and other remarks.
    pub warnings: Vec<Warning>,
}

fn secs(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{} s", d.as_secs()),
        None => "off".into(),
    }
}

fn opt_addr(a: Option<Ipv4Addr>) -> String {
    a.map_or_else(|| "-".into(), |a| a.to_string())
}

impl fmt::Display for Loaded {
    /// The `--check` summary: what was understood, never a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(f, "listen            {}", c.listen)?;
        let local: Vec<String> = c.addresses.local.iter().map(ToString::to_string).collect();
        let pairing = if c.addresses.local.len() == 1 {
            "shared by all sessions"
        } else {
            "paired with the pool in order"
        };
        writeln!(f, "local address     {} ({pairing})", local.join(", "))?;
        let pool = &c.addresses.pool;
        let reserved = self.secrets.fixed_addresses();
        let in_pool = pool.iter().filter(|a| reserved.contains(a)).count();
        writeln!(
            f,
            "pool              {} addresses{}{}",
            pool.len(),
            pool.first()
                .zip(pool.last())
                .map(|(a, b)| format!(" ({a} .. {b})"))
                .unwrap_or_default(),
            if in_pool > 0 {
                format!(", {in_pool} reserved as fixed addresses")
            } else {
                String::new()
            }
        )?;
        writeln!(f, "fixed addresses   {} (chap-secrets)", reserved.len())?;
        let methods: Vec<&str> = c.ppp.auth.allowed().map(auth::Method::name).collect();
        writeln!(
            f,
            "authentication    {} (name {:?})",
            methods.join(", "),
            c.ppp.name
        )?;
        let m = &c.ppp.mppe;
        let mut bits = Vec::new();
        if m.allow_128 {
            bits.push("128");
        }
        if m.allow_56 {
            bits.push("56");
        }
        if m.allow_40 {
            bits.push("40");
        }
        let requirement = match m.requirement {
            MppeRequirement::Required => "required",
            MppeRequirement::Optional => "optional",
            MppeRequirement::Denied => "off",
        };
        let mode = match (m.allow_stateful, m.prefer_stateful) {
            (false, _) => "stateless only",
            (true, false) => "stateless preferred, stateful allowed",
            (true, true) => "stateful preferred",
        };
        if m.requirement == MppeRequirement::Denied {
            writeln!(f, "MPPE              off")?;
        } else {
            writeln!(
                f,
                "MPPE              {requirement}, {}-bit, {mode}",
                bits.join("/")
            )?;
        }
        let ns = &c.ppp.name_servers;
        writeln!(
            f,
            "DNS               {} {}",
            opt_addr(ns.primary_dns),
            opt_addr(ns.secondary_dns)
        )?;
        writeln!(
            f,
            "WINS              {} {}",
            opt_addr(ns.primary_nbns),
            opt_addr(ns.secondary_nbns)
        )?;
        writeln!(
            f,
            "MRU / MTU         {} / {}",
            c.ppp.mru,
            c.ppp
                .mtu
                .map_or_else(|| "peer's MRU".into(), |m| m.to_string())
        )?;
        let l = &c.limits;
        writeln!(
            f,
            "limits            {} sessions, {} being set up, {} connections per source per minute, start timeout {} s",
            l.max_sessions,
            l.max_starting,
            if l.connections_per_source_per_minute == 0 {
                "unlimited".to_string()
            } else {
                l.connections_per_source_per_minute.to_string()
            },
            l.start_timeout.as_secs()
        )?;
        writeln!(
            f,
            "same user again   {}",
            match l.duplicate_user {
                DuplicateUser::Allow => "allowed",
                DuplicateUser::Deny => "refused",
                DuplicateUser::Replace => "replaces the old session",
            }
        )?;
        writeln!(
            f,
            "auth back-off     after {} failures: {} s doubling to {} s",
            l.auth_backoff.after_failures,
            l.auth_backoff.initial.as_secs(),
            l.auth_backoff.max.as_secs()
        )?;
        let k = &c.keepalive;
        writeln!(
            f,
            "keepalive         PPTP echo {}, LCP echo {} x {}",
            secs(k.pptp_echo_interval),
            secs(k.lcp_echo_interval),
            k.lcp_echo_failures
        )?;
        writeln!(
            f,
            "timeouts          idle {}, session {}",
            secs(c.timeouts.idle),
            secs(c.timeouts.session)
        )?;
        writeln!(
            f,
            "secrets           {} ({} users)",
            c.secrets_file.display(),
            self.secrets.len()
        )?;
        writeln!(f, "datapath socket   {}", c.datapath_socket.display())?;
        writeln!(f, "control socket    {}", c.control_socket.display())?;
        writeln!(
            f,
            "metrics           {}",
            c.metrics.map_or_else(|| "off".into(), |m| m.to_string())
        )?;
        Ok(())
    }
}
