//! Poptop's pptpd.conf (pptpd.conf(5), pptpd.c), and [`load_poptop`], which reads a whole
//! Poptop install: pptpd.conf, the pppd options file its `option` line names, chap-secrets.
//!
//! A line is a keyword and its value; `#` starts a comment at the start of a line (and,
//! as our extension, after white space: pptpd would take the rest as part of the value).
//! Keywords:
//!
//! | keyword | effect |
//! |---|---|
//! | `option FILE` | the pppd options file ([`options`](super::options)) |
//! | `localip LIST` | our tunnel address: one for all, or a list paired with `remoteip` |
//! | `remoteip LIST` | the pool: addresses, ranges (`192.168.0.234-238`), comma lists |
//! | `connections N` | session limit (default 100), lowered to the address count as pptpd does |
//! | `stimeout N` | seconds for the first PPTP message (default 10) |
//! | `listen ADDR` | the address to listen on (port 1723) |
//! | `debug` | verbose logs |
//!
//! Other pptpd keywords (`speed`, `noipparam`, `logwtmp`, `bcrelay`, `delegate`,
//! `pidfile`, `ppp`, `vrf`) and anything unknown are warned about and ignored (pptpd itself
//! ignores unknown lines). As in pptpd the first line with a keyword wins; later ones are
//! warned about. pptpd has built-in defaults for `localip` and `remoteip`
//! (192.168.0.1-...); we require both, since a silently invented subnet is never right.

use core::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::addr::{host, parse_list};
use super::options::load_pppd_options;
use super::secrets::{DEFAULT_CHAP_SECRETS, load_secrets};
use super::{Addresses, Config, ConfigError, Loaded, Location, PPTP_PORT, Problem, Warning, read};

/// Poptop's default `connections`.
pub const DEFAULT_CONNECTIONS: u32 = 100;

/// What pptpd.conf says, with the line of each setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PptpdConf {
    /// `option`: the pppd options file, and its line.
    pub option: Option<(PathBuf, usize)>,
    /// `localip`, expanded, and its line.
    pub localip: Option<(Vec<Ipv4Addr>, usize)>,
    /// `remoteip`, expanded, and its line.
    pub remoteip: Option<(Vec<Ipv4Addr>, usize)>,
    /// `connections`.
    pub connections: Option<u32>,
    /// `stimeout`, seconds.
    pub stimeout: Option<u32>,
    /// `listen`.
    pub listen: Option<Ipv4Addr>,
    /// `debug`.
    pub debug: bool,
}

const IGNORED: &[&str] = &[
    "speed",
    "noipparam",
    "logwtmp",
    "bcrelay",
    "delegate",
    "pidfile",
    "ppp",
    "vrf",
];

/// Parses pptpd.conf `data` (named `path` in messages).
pub fn parse_pptpd_conf(
    path: &Path,
    data: &[u8],
    warnings: &mut Vec<Warning>,
) -> Result<PptpdConf, ConfigError> {
    let text = String::from_utf8_lossy(data);
    let mut conf = PptpdConf::default();
    let mut first_line: Vec<(&str, usize)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let at = Location::line(path, number);
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (keyword, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        let known = [
            "option",
            "localip",
            "remoteip",
            "connections",
            "stimeout",
            "listen",
            "debug",
        ];
        let Some(keyword) = known.iter().copied().find(|k| *k == keyword) else {
            let message = if IGNORED.contains(&keyword) {
                format!("pptpd keyword `{keyword}` ignored: it does not apply to xpptp")
            } else {
                format!("`{keyword}` is not a pptpd.conf keyword; line ignored (as pptpd does)")
            };
            warnings.push(Warning { at, message });
            continue;
        };
        if let Some(&(_, earlier)) = first_line.iter().find(|(k, _)| *k == keyword) {
            warnings.push(Warning {
                at,
                message: format!("`{keyword}` again: line {earlier} wins, as in pptpd; remove one"),
            });
            continue;
        }
        first_line.push((keyword, number));
        let need_value = |example: &str| {
            if value.is_empty() {
                Err(Problem::new(
                    format!("`{keyword}` needs a value"),
                    format!("write e.g. `{keyword} {example}`"),
                )
                .at(at.clone()))
            } else {
                Ok(value)
            }
        };
        match keyword {
            "option" => {
                conf.option = Some((PathBuf::from(need_value("/etc/ppp/pptpd-options")?), number))
            }
            "localip" => {
                let list = parse_list(need_value("192.168.0.1")?).map_err(|p| p.at(at.clone()))?;
                conf.localip = Some((list, number));
            }
            "remoteip" => {
                let list = parse_list(need_value("192.168.0.234-238,192.168.0.245")?)
                    .map_err(|p| p.at(at.clone()))?;
                conf.remoteip = Some((list, number));
            }
            "connections" => conf.connections = Some(positive(keyword, need_value("100")?, &at)?),
            "stimeout" => conf.stimeout = Some(positive(keyword, need_value("10")?, &at)?),
            "listen" => conf.listen = Some(host_or_any(need_value("0.0.0.0")?, &at)?),
            "debug" => {
                if !value.is_empty() {
                    warnings.push(Warning {
                        at,
                        message: format!("`debug` takes no value; `{value}` ignored"),
                    });
                }
                conf.debug = true;
            }
            _ => {}
        }
    }
    Ok(conf)
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes.get(i - 1).is_some_and(u8::is_ascii_whitespace) {
            return line.get(..i).unwrap_or(line);
        }
    }
    line
}

fn positive(keyword: &str, value: &str, at: &Location) -> Result<u32, ConfigError> {
    value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        Problem::new(
            format!("`{keyword} {value}`: not a whole number above 0"),
            format!(
                "write e.g. `{keyword} {}`",
                if keyword == "stimeout" { 10 } else { 100 }
            ),
        )
        .at(at.clone())
    })
}

fn host_or_any(value: &str, at: &Location) -> Result<Ipv4Addr, ConfigError> {
    if value == "0.0.0.0" {
        return Ok(Ipv4Addr::UNSPECIFIED);
    }
    host(value).map_err(|p| p.at(at.clone()))
}

/// Reads a Poptop install: `pptpd_conf`, the options file its `option` line names (or
/// `options`, which overrides it: tests, and installs moved elsewhere), and `chap_secrets`
/// (default /etc/ppp/chap-secrets).
pub fn load_poptop(
    pptpd_conf: &Path,
    options: Option<&Path>,
    chap_secrets: Option<&Path>,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let conf = parse_pptpd_conf(pptpd_conf, &read(pptpd_conf)?, &mut warnings)?;
    let whole = Location::file(pptpd_conf);
    let Some((mut remote, remote_line)) = conf.remoteip.clone() else {
        return Err(Problem::new(
            "no `remoteip`: xpptp has no address to give clients",
            "add e.g. `remoteip 192.168.0.234-238,192.168.0.245`",
        )
        .at(whole));
    };
    let Some((mut local, local_line)) = conf.localip.clone() else {
        return Err(Problem::new(
            "no `localip`: xpptp has no address for its end of the tunnels",
            "add e.g. `localip 192.168.0.1`",
        )
        .at(whole));
    };
    // pptpd: the session count is the smallest of `connections`, the remote address count
    // and (when there are several) the local address count; extra addresses go unused.
    let connections = conf.connections.unwrap_or(DEFAULT_CONNECTIONS);
    let mut limit = usize::try_from(connections)
        .unwrap_or(usize::MAX)
        .min(remote.len());
    if local.len() > 1 {
        limit = limit.min(local.len());
    }
    for (list, line, what) in [
        (&mut remote, remote_line, "remoteip"),
        (&mut local, local_line, "localip"),
    ] {
        if list.len() > limit && (what == "remoteip" || list.len() > 1) {
            warnings.push(Warning {
                at: Location::line(pptpd_conf, line),
                message: format!(
                    "{what}: {} addresses but {limit} sessions at most (connections {connections}); \
                     the extra addresses are unused, as in pptpd",
                    list.len()
                ),
            });
            list.truncate(limit);
        }
    }
    if remote.len() < usize::try_from(connections).unwrap_or(usize::MAX)
        && conf.connections.is_some()
    {
        warnings.push(Warning {
            at: Location::line(pptpd_conf, remote_line),
            message: format!(
                "connections {connections} lowered to {}, the number of addresses, as pptpd does",
                remote.len()
            ),
        });
    }
    let mut config = Config::with_addresses(Addresses {
        local,
        pool: remote,
    });
    config.limits.max_sessions = u32::try_from(limit).unwrap_or(u32::MAX);
    if let Some(stimeout) = conf.stimeout {
        config.limits.start_timeout = Duration::from_secs(u64::from(stimeout));
    }
    if let Some(listen) = conf.listen {
        config.listen = SocketAddr::from((listen, PPTP_PORT));
    }
    config.debug = conf.debug;
    config.secrets_file =
        chap_secrets.map_or_else(|| PathBuf::from(DEFAULT_CHAP_SECRETS), Path::to_path_buf);

    let options_path = match (options, &conf.option) {
        (Some(path), _) => Some(path.to_path_buf()),
        (None, Some((path, _))) => Some(path.clone()),
        (None, None) => None,
    };
    match options_path {
        Some(path) => {
            let o = load_pppd_options(&path, &mut warnings)?;
            if let Some(name) = o.name {
                config.ppp.name = name;
            }
            config.ppp.auth = o.auth;
            config.ppp.mppe = o.mppe;
            config.ppp.name_servers = o.name_servers;
            if let Some(mru) = o.mru {
                config.ppp.mru = mru;
            }
            config.ppp.mtu = o.mtu;
            if let Some(interval) = o.lcp_echo_interval {
                config.keepalive.lcp_echo_interval = interval;
            }
            if let Some(failures) = o.lcp_echo_failures {
                config.keepalive.lcp_echo_failures = failures;
            }
            if let Some(idle) = o.idle {
                config.timeouts.idle = idle;
            }
            if let Some(maxconnect) = o.maxconnect {
                config.timeouts.session = maxconnect;
            }
            config.debug |= o.debug;
            config.validate(&Location::file(&path))?;
        }
        None => {
            warnings.push(Warning {
                at: Location::file(pptpd_conf),
                message: "no `option` line: pppd's defaults would allow every authentication \
                          method; xpptp keeps Poptop's (MS-CHAPv2, MPPE-128 required)"
                    .into(),
            });
            config.validate(&Location::file(pptpd_conf))?;
        }
    }
    let secrets = load_secrets(&config.secrets_file, &mut warnings)?;
    Ok(Loaded {
        config,
        secrets,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (PptpdConf, Vec<Warning>) {
        let mut warnings = Vec::new();
        let c = parse_pptpd_conf(Path::new("pptpd.conf"), text.as_bytes(), &mut warnings).unwrap();
        (c, warnings)
    }

    fn error(text: &str) -> String {
        parse_pptpd_conf(Path::new("pptpd.conf"), text.as_bytes(), &mut Vec::new())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn keywords() {
        let (c, w) = parse(
            "# comment\n\
             option /etc/ppp/pptpd-options\n\
             debug\n\
             stimeout 20\n\
             connections 7   # inline comment\n\
             listen 10.1.1.1\n\
             localip 192.168.0.1\n\
             remoteip 192.168.0.234-238,192.168.0.245\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.option, Some((PathBuf::from("/etc/ppp/pptpd-options"), 2)));
        assert!(c.debug);
        assert_eq!(c.stimeout, Some(20));
        assert_eq!(c.connections, Some(7));
        assert_eq!(c.listen, Some(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!(c.localip, Some((vec![Ipv4Addr::new(192, 168, 0, 1)], 7)));
        let (remote, line) = c.remoteip.unwrap();
        assert_eq!(line, 8);
        assert_eq!(remote.len(), 6);
        assert_eq!(remote[5], Ipv4Addr::new(192, 168, 0, 245));
    }

    #[test]
    fn ignored_keywords_and_repeats_are_warned() {
        let (c, w) = parse("logwtmp\nbcrelay eth1\nfrobnicate 3\nstimeout 5\nstimeout 6\n");
        assert_eq!(c.stimeout, Some(5));
        let messages: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "pptpd.conf:1: pptpd keyword `logwtmp` ignored: it does not apply to xpptp",
                "pptpd.conf:2: pptpd keyword `bcrelay` ignored: it does not apply to xpptp",
                "pptpd.conf:3: `frobnicate` is not a pptpd.conf keyword; line ignored (as pptpd does)",
                "pptpd.conf:5: `stimeout` again: line 4 wins, as in pptpd; remove one",
            ]
        );
    }

    #[test]
    fn every_error_names_line_and_fix() {
        for (text, line, needle) in [
            ("\noption\n", 2, "`option` needs a value"),
            ("localip\n", 1, "`localip` needs a value"),
            ("localip 192.168.0.300\n", 1, "not an IPv4 address"),
            ("remoteip 192.168.0.9-2\n", 1, "ends before it starts"),
            ("remoteip 10.0.0.1,,10.0.0.2\n", 1, "empty item"),
            ("connections 0\n", 1, "not a whole number above 0"),
            ("connections many\n", 1, "not a whole number above 0"),
            ("stimeout -1\n", 1, "not a whole number above 0"),
            ("listen somewhere\n", 1, "not an IPv4 address"),
            ("listen\n", 1, "`listen` needs a value"),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("pptpd.conf:{line}: ")),
                "{text}: {message}"
            );
            assert!(message.contains(needle), "{text}: {message}");
            assert!(message.contains("; "), "no fix in {message}");
        }
    }

    #[test]
    fn debug_with_a_value_is_warned() {
        let (c, w) = parse("debug yes\n");
        assert!(c.debug);
        assert_eq!(w.len(), 1);
    }
}
