//! The pppd options file Poptop's `option` line names (Debian: /etc/ppp/pptpd-options),
//! read as pppd reads it: [`words`](super::words), each option followed by its arguments
//! (which pppd, and so we, also take from the next lines).
//!
//! Options that decide what xpptp does:
//!
//! | option | effect |
//! |---|---|
//! | `name N` | our CHAP name and chap-secrets' server column |
//! | `require-pap`, `require-chap`, `require-mschap`, `require-mschap-v2` (and `+pap` ...) | the methods allowed: the required ones if any, else all |
//! | `refuse-pap`, `refuse-chap`, `refuse-mschap`, `refuse-mschap-v2`, `refuse-eap` (and `-pap` ...) | removed from the methods ([`AuthPolicy::from_pppd_options`]) |
//! | `require-mppe` (`+mppe`) | MPPE required, 40 or 128 bits |
//! | `require-mppe-40`, `require-mppe-128` | MPPE required with these lengths (together: both) |
//! | `nomppe-40`, `nomppe-128` | that length refused |
//! | `nomppe` (`-mppe`) | no MPPE |
//! | `mppe-stateful` / `nomppe-stateful` | stateful mode allowed / not (stateless is always) |
//! | `mppe-prefer-stateful` | ours: ask for stateful mode (implies `mppe-stateful`) |
//! | `ms-dns A`, `ms-wins A` | as pppd: the last two given are primary and secondary; one alone is both |
//! | `mtu N`, `mru N` | 128 to 1500 |
//! | `lcp-echo-interval N`, `lcp-echo-failure N` | LCP keepalive (0: off) |
//! | `idle N`, `maxconnect N` | session timers in seconds (0: none) |
//! | `debug` | verbose logs |
//!
//! Without any MPPE option pppd allows MPPE (40 and 128 bits) without asking for it; we map
//! that to "optional". `require-eap` is an error (xpptp has no EAP), and so is `noauth`
//! (xpptp always authenticates). Other pppd options are warned about and ignored, with the
//! number of arguments pppd gives them; a word pppd would not know is an error, as in pppd.
//! pppd also reads /etc/ppp/options first; we do not (Debian's sets what xpptp's defaults
//! already are: LCP echo every 30 s, 4 failures, and `auth`).

use core::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use xpptp_proto::ppp::auth::{AuthPolicy, PppdAuthOption};
use xpptp_proto::ppp::ccp::{MppePolicy, MppeRequirement};
use xpptp_proto::ppp::ipcp::NameServers;

use super::words::{self, Word};
use super::{ConfigError, Location, Problem, Warning};

/// What an options file set. `None`: not mentioned (the caller keeps its default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PppOptions {
    /// `name`.
    pub name: Option<String>,
    /// The methods the `require-*` / `refuse-*` options leave.
    pub auth: AuthPolicy,
    /// MPPE.
    pub mppe: MppePolicy,
    /// `ms-dns`, `ms-wins`.
    pub name_servers: NameServers,
    /// `mru`.
    pub mru: Option<u16>,
    /// `mtu`.
    pub mtu: Option<u16>,
    /// `lcp-echo-interval` (`Some(None)`: 0, off).
    pub lcp_echo_interval: Option<Option<Duration>>,
    /// `lcp-echo-failure`.
    pub lcp_echo_failures: Option<u32>,
    /// `idle` (`Some(None)`: 0, none).
    pub idle: Option<Option<Duration>>,
    /// `maxconnect` (`Some(None)`: 0, none).
    pub maxconnect: Option<Option<Duration>>,
    /// `debug`.
    pub debug: bool,
}

/// pppd options xpptp ignores, with their argument counts. A `-x` / `+x` alias is listed
/// when pppd has one.
const IGNORED: &[(&str, usize)] = &[
    // Serial lines, locks, processes and files: nothing of it applies to a tunnel.
    ("lock", 0),
    ("nolock", 0),
    ("crtscts", 0),
    ("nocrtscts", 0),
    ("-crtscts", 0),
    ("cdtrcts", 0),
    ("nocdtrcts", 0),
    ("xonxoff", 0),
    ("modem", 0),
    ("local", 0),
    ("asyncmap", 1),
    ("-am", 0),
    ("default-asyncmap", 0),
    ("escape", 1),
    ("speed", 1),
    ("connect", 1),
    ("disconnect", 1),
    ("init", 1),
    ("welcome", 1),
    ("pty", 1),
    ("connect-delay", 1),
    ("nodetach", 0),
    ("-detach", 0),
    ("updetach", 0),
    ("persist", 0),
    ("nopersist", 0),
    ("demand", 0),
    ("holdoff", 1),
    ("maxfail", 1),
    ("passive", 0),
    ("-p", 0),
    ("silent", 0),
    ("logfile", 1),
    ("logfd", 1),
    ("nologfd", 0),
    ("linkname", 1),
    ("ipparam", 1),
    ("unit", 1),
    ("ifname", 1),
    ("kdebug", 1),
    ("dump", 0),
    ("dryrun", 0),
    ("child-timeout", 1),
    ("ip-up-script", 1),
    ("ip-down-script", 1),
    ("plugin", 1),
    ("file", 1),
    ("call", 1),
    ("hide-password", 0),
    ("show-password", 0),
    ("-d", 0),
    ("chap-interval", 1),
    ("lcp-rtt-file", 1),
    ("remotenumber", 1),
    // Routing and addresses: xpptp routes through the datapath; pptpd.conf gives addresses.
    ("defaultroute", 0),
    ("nodefaultroute", 0),
    ("-defaultroute", 0),
    ("replacedefaultroute", 0),
    ("noreplacedefaultroute", 0),
    ("proxyarp", 0),
    ("noproxyarp", 0),
    ("-proxyarp", 0),
    ("netmask", 1),
    ("noipdefault", 0),
    ("ipcp-accept-local", 0),
    ("ipcp-accept-remote", 0),
    ("usepeerdns", 0),
    ("noip", 0),
    ("-ip", 0),
    ("noipv6", 0),
    ("-ipv6", 0),
    ("+ipv6", 0),
    ("ipv6", 1),
    ("noipx", 0),
    ("-ipx", 0),
    ("allow-ip", 1),
    ("noremoteip", 0),
    ("nosendip", 0),
    // Compression: xpptp negotiates none but MPPE.
    ("nobsdcomp", 0),
    ("-bsdcomp", 0),
    ("bsdcomp", 1),
    ("nodeflate", 0),
    ("-deflate", 0),
    ("deflate", 1),
    ("nopredictor1", 0),
    ("-predictor1", 0),
    ("noccp", 0),
    ("-ccp", 0),
    ("novj", 0),
    ("-vj", 0),
    ("novjccomp", 0),
    ("-vjccomp", 0),
    ("vj-max-slots", 1),
    // LCP details xpptp fixes itself (PFC/ACFC on, magic on) and multilink (rejected).
    ("noaccomp", 0),
    ("-ac", 0),
    ("nopcomp", 0),
    ("-pc", 0),
    ("nomagic", 0),
    ("-mn", 0),
    ("default-mru", 0),
    ("-mru", 0),
    ("multilink", 0),
    ("mp", 0),
    ("nomultilink", 0),
    ("nomp", 0),
    ("-mp", 0),
    ("noendpoint", 0),
    ("lcp-echo-adaptive", 0),
    ("receive-all", 0),
    // Timers of the automata: xpptp uses pppd's defaults.
    ("lcp-restart", 1),
    ("lcp-max-terminate", 1),
    ("lcp-max-configure", 1),
    ("lcp-max-failure", 1),
    ("ipcp-restart", 1),
    ("ipcp-max-terminate", 1),
    ("ipcp-max-configure", 1),
    ("ipcp-max-failure", 1),
    ("pap-restart", 1),
    ("pap-max-authreq", 1),
    ("pap-timeout", 1),
    ("chap-restart", 1),
    ("chap-max-challenge", 1),
    // Authentication details: `auth` is what xpptp always does; the rest has no meaning here.
    ("auth", 0),
    ("usehostname", 0),
    ("remotename", 1),
    ("user", 1),
    ("password", 1),
    ("domain", 1),
    ("login", 0),
    ("papcrypt", 0),
    ("+ua", 1),
    ("privgroup", 1),
    ("pap-secrets", 1),
    ("chap-secrets", 1),
    ("enable-session", 0),
    ("ms-lanman", 0),
    ("chapms-strip-domain", 0),
];

/// Reads the options file at `path`.
pub fn load_pppd_options(
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<PppOptions, ConfigError> {
    let data = super::read(path)?;
    parse_pppd_options(path, &data, warnings)
}

#[derive(Default)]
struct Mppe {
    require_40: bool,
    require_128: bool,
    no_40: bool,
    no_128: bool,
    denied_at: Option<usize>,
    required_at: Option<usize>,
    stateful: bool,
    prefer_stateful: bool,
}

/// Parses options file `data` (named `path` in messages).
pub fn parse_pppd_options(
    path: &Path,
    data: &[u8],
    warnings: &mut Vec<Warning>,
) -> Result<PppOptions, ConfigError> {
    let words = words::split(data).map_err(|e| {
        Problem::new(
            format!("a word of {} bytes or more", words::MAX_WORD_LEN),
            "shorten it",
        )
        .at(Location::line(path, e.line))
    })?;
    let mut out = PppOptions::default();
    let mut auth = Vec::new();
    let mut mppe = Mppe::default();
    let mut dns = Vec::new();
    let mut wins = Vec::new();
    let mut rest = words.as_slice();
    while let Some((word, tail)) = rest.split_first() {
        rest = tail;
        let at = Location::line(path, word.line);
        let option = word.lossy();
        let mut arg = |what: &str| -> Result<Word, ConfigError> {
            let (value, tail) = rest.split_first().ok_or_else(|| {
                Problem::new(
                    format!("`{option}` needs {what}"),
                    format!("give it, e.g. `{option} {}`", example(&option)),
                )
                .at(at.clone())
            })?;
            rest = tail;
            Ok(value.clone())
        };
        let auth_option = match option.as_str() {
            "require-pap" | "+pap" => Some(PppdAuthOption::RequirePap),
            "require-chap" | "+chap" => Some(PppdAuthOption::RequireChap),
            "require-mschap" | "+mschap" => Some(PppdAuthOption::RequireMsChap),
            "require-mschap-v2" | "+mschap-v2" => Some(PppdAuthOption::RequireMsChapV2),
            "refuse-pap" | "-pap" => Some(PppdAuthOption::RefusePap),
            "refuse-chap" | "-chap" => Some(PppdAuthOption::RefuseChap),
            "refuse-mschap" | "-mschap" => Some(PppdAuthOption::RefuseMsChap),
            "refuse-mschap-v2" | "-mschap-v2" => Some(PppdAuthOption::RefuseMsChapV2),
            "refuse-eap" => Some(PppdAuthOption::RefuseEap),
            _ => None,
        };
        if let Some(o) = auth_option {
            auth.push(o);
            continue;
        }
        match option.as_str() {
            "name" => {
                let value = arg("a name")?;
                let name = String::from_utf8(value.text).map_err(|_| {
                    Problem::new("the name is not UTF-8", "write it in UTF-8").at(at.clone())
                })?;
                out.name = Some(name);
            }
            "require-mppe" | "+mppe" => {
                mppe.require_40 = true;
                mppe.require_128 = true;
                mppe.required_at.get_or_insert(word.line);
            }
            "require-mppe-40" | "+mppe-40" => {
                mppe.require_40 = true;
                mppe.required_at.get_or_insert(word.line);
            }
            "require-mppe-128" | "+mppe-128" => {
                mppe.require_128 = true;
                mppe.required_at.get_or_insert(word.line);
            }
            "nomppe-40" | "-mppe-40" => mppe.no_40 = true,
            "nomppe-128" | "-mppe-128" => mppe.no_128 = true,
            "nomppe" | "-mppe" => {
                mppe.denied_at.get_or_insert(word.line);
            }
            "mppe-stateful" => mppe.stateful = true,
            "nomppe-stateful" => mppe.stateful = false,
            "mppe-prefer-stateful" => mppe.prefer_stateful = true,
            "ms-dns" => dns.push(address(arg("an address")?, &at)?),
            "ms-wins" => wins.push(address(arg("an address")?, &at)?),
            "mtu" => out.mtu = Some(unit_size(&option, arg("a size")?, &at)?),
            "mru" => out.mru = Some(unit_size(&option, arg("a size")?, &at)?),
            "lcp-echo-interval" => {
                out.lcp_echo_interval = Some(seconds(number(&option, arg("seconds")?, &at)?))
            }
            "lcp-echo-failure" => {
                out.lcp_echo_failures = Some(number(&option, arg("a count")?, &at)?)
            }
            "idle" => out.idle = Some(seconds(number(&option, arg("seconds")?, &at)?)),
            "maxconnect" => out.maxconnect = Some(seconds(number(&option, arg("seconds")?, &at)?)),
            "debug" => out.debug = true,
            "require-eap" => {
                return Err(Problem::new(
                    "`require-eap`: xpptp has no EAP",
                    "remove it and require MS-CHAPv2 (`require-mschap-v2`)",
                )
                .at(at));
            }
            "noauth" => {
                return Err(Problem::new(
                    "`noauth`: xpptp always authenticates its clients",
                    "remove it and list the users in chap-secrets",
                )
                .at(at));
            }
            _ => {
                if let Some(&(_, count)) = IGNORED.iter().find(|(n, _)| *n == option) {
                    let mut args = Vec::new();
                    for _ in 0..count {
                        args.push(arg("an argument")?.lossy());
                    }
                    warnings.push(Warning {
                        at,
                        message: format!(
                            "pppd option `{}` ignored: it does not apply to xpptp",
                            if args.is_empty() {
                                option
                            } else {
                                format!("{option} {}", args.join(" "))
                            }
                        ),
                    });
                } else if option.contains(':') {
                    warnings.push(Warning {
                        at,
                        message: format!(
                            "pppd address pair `{option}` ignored: pptpd.conf's localip and \
                             remoteip decide the addresses"
                        ),
                    });
                } else {
                    return Err(Problem::new(
                        format!("`{option}` is not a pppd option xpptp knows"),
                        "check the spelling, or remove it (xpptp ignores the pppd options that \
                         do not apply to it, but needs to know how many arguments they take)",
                    )
                    .at(at));
                }
            }
        }
    }
    out.auth = AuthPolicy::from_pppd_options(auth);
    out.mppe = mppe_policy(&mppe, path)?;
    out.name_servers = NameServers {
        primary_dns: pppd_pair(&dns).0,
        secondary_dns: pppd_pair(&dns).1,
        primary_nbns: pppd_pair(&wins).0,
        secondary_nbns: pppd_pair(&wins).1,
    };
    Ok(out)
}

/// pppd's ms-dns/ms-wins rule: the last two given are primary and secondary; a single one
/// is both.
fn pppd_pair(list: &[Ipv4Addr]) -> (Option<Ipv4Addr>, Option<Ipv4Addr>) {
    match list {
        [] => (None, None),
        [one] => (Some(*one), Some(*one)),
        [.., a, b] => (Some(*a), Some(*b)),
    }
}

fn mppe_policy(m: &Mppe, path: &Path) -> Result<MppePolicy, ConfigError> {
    let base = MppePolicy::default();
    let stateful = MppePolicy {
        allow_stateful: m.stateful || m.prefer_stateful,
        prefer_stateful: m.prefer_stateful,
        ..base
    };
    if let Some(line) = m.denied_at {
        if let Some(required) = m.required_at {
            return Err(Problem::new(
                format!("`nomppe` contradicts the require-mppe option on line {required}"),
                "keep one of them",
            )
            .at(Location::line(path, line)));
        }
        return Ok(MppePolicy {
            requirement: MppeRequirement::Denied,
            ..stateful
        });
    }
    let (requirement, allow_40, allow_128) = match m.required_at {
        Some(_) => (MppeRequirement::Required, m.require_40, m.require_128),
        None => (MppeRequirement::Optional, true, true),
    };
    let policy = MppePolicy {
        requirement,
        allow_40: allow_40 && !m.no_40,
        allow_128: allow_128 && !m.no_128,
        ..stateful
    };
    if let Some(line) = m.required_at
        && !policy.wants_mppe()
    {
        return Err(Problem::new(
            "MPPE is required but nomppe-40/nomppe-128 refuse every key length",
            "drop the nomppe-40 or nomppe-128 that contradicts the requirement",
        )
        .at(Location::line(path, line)));
    }
    Ok(policy)
}

fn example(option: &str) -> &'static str {
    match option {
        "name" => "pptpd",
        "ms-dns" | "ms-wins" => "192.168.0.1",
        "mtu" | "mru" => "1400",
        "lcp-echo-interval" => "30",
        "lcp-echo-failure" => "4",
        _ => "VALUE",
    }
}

fn address(word: Word, at: &Location) -> Result<Ipv4Addr, ConfigError> {
    let text = word.lossy();
    text.parse().map_err(|_| {
        Problem::new(
            format!("`{text}` is not an IPv4 address"),
            "write a dotted quad such as 192.168.0.1",
        )
        .at(at.clone())
    })
}

fn number(option: &str, word: Word, at: &Location) -> Result<u32, ConfigError> {
    let text = word.lossy();
    text.parse().map_err(|_| {
        Problem::new(
            format!("`{option} {text}`: not a whole number"),
            format!("write e.g. `{option} {}`", example(option)),
        )
        .at(at.clone())
    })
}

fn seconds(value: u32) -> Option<Duration> {
    (value > 0).then(|| Duration::from_secs(u64::from(value)))
}

fn unit_size(option: &str, word: Word, at: &Location) -> Result<u16, ConfigError> {
    let value = number(option, word, at)?;
    u16::try_from(value)
        .ok()
        .filter(|v| (128..=1500).contains(v))
        .ok_or_else(|| {
            Problem::new(
                format!("`{option} {value}` is outside 128..1500"),
                "PPTP frames travel in 1500-byte packets: pick a size in that range, e.g. 1400",
            )
            .at(at.clone())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xpptp_proto::ppp::auth::Method;

    fn parse(text: &str) -> (PppOptions, Vec<Warning>) {
        let mut warnings = Vec::new();
        let o = parse_pppd_options(Path::new("opts"), text.as_bytes(), &mut warnings).unwrap();
        (o, warnings)
    }

    fn error(text: &str) -> String {
        parse_pppd_options(Path::new("opts"), text.as_bytes(), &mut Vec::new())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn poptop_defaults_give_mschapv2_and_mppe_128() {
        let (o, w) = parse(
            "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\n\
             require-mppe-128\n",
        );
        assert!(w.is_empty());
        assert_eq!(o.name.as_deref(), Some("pptpd"));
        assert_eq!(o.auth, AuthPolicy::only(Method::MsChapV2));
        assert_eq!(o.mppe, MppePolicy::default());
    }

    #[test]
    fn auth_options_and_aliases() {
        assert_eq!(parse("").0.auth, AuthPolicy::all());
        assert_eq!(
            parse("+pap +mschap-v2").0.auth,
            AuthPolicy::only(Method::Pap).with(Method::MsChapV2)
        );
        assert_eq!(
            parse("-pap -chap -mschap refuse-eap").0.auth,
            AuthPolicy::only(Method::MsChapV2)
        );
        assert_eq!(parse("require-chap refuse-chap").0.auth, AuthPolicy::none());
        assert_eq!(
            parse("require-mschap").0.auth,
            AuthPolicy::only(Method::MsChapV1)
        );
        assert_eq!(
            parse("refuse-mschap-v2").0.auth,
            AuthPolicy::all().without(Method::MsChapV2)
        );
    }

    #[test]
    fn mppe_options() {
        let p = parse("").0.mppe;
        assert_eq!(
            (p.requirement, p.allow_40, p.allow_128),
            (MppeRequirement::Optional, true, true)
        );
        let p = parse("require-mppe").0.mppe;
        assert_eq!(
            (p.requirement, p.allow_40, p.allow_128),
            (MppeRequirement::Required, true, true)
        );
        let p = parse("require-mppe nomppe-40").0.mppe;
        assert_eq!((p.allow_40, p.allow_128), (false, true));
        let p = parse("require-mppe-40").0.mppe;
        assert_eq!((p.allow_40, p.allow_128), (true, false));
        let p = parse("require-mppe-40 require-mppe-128").0.mppe;
        assert_eq!((p.allow_40, p.allow_128), (true, true));
        let p = parse("nomppe-128").0.mppe;
        assert_eq!(
            (p.requirement, p.allow_40, p.allow_128),
            (MppeRequirement::Optional, true, false)
        );
        assert_eq!(parse("nomppe").0.mppe.requirement, MppeRequirement::Denied);
        assert_eq!(parse("-mppe").0.mppe.requirement, MppeRequirement::Denied);
        let p = parse("require-mppe-128 mppe-stateful").0.mppe;
        assert!(p.allow_stateful && !p.prefer_stateful);
        let p = parse("require-mppe-128 mppe-stateful nomppe-stateful")
            .0
            .mppe;
        assert!(!p.allow_stateful);
        let p = parse("require-mppe-128 mppe-prefer-stateful").0.mppe;
        assert!(p.allow_stateful && p.prefer_stateful);
    }

    #[test]
    fn name_servers_follow_pppd() {
        let ns = parse("ms-dns 10.0.0.1").0.name_servers;
        assert_eq!(
            (ns.primary_dns, ns.secondary_dns),
            (Some([10, 0, 0, 1].into()), Some([10, 0, 0, 1].into()))
        );
        let ns = parse("ms-dns 10.0.0.1\nms-dns 10.0.0.2\nms-dns 10.0.0.3\nms-wins\n10.0.0.9")
            .0
            .name_servers;
        assert_eq!(
            (ns.primary_dns, ns.secondary_dns),
            (Some([10, 0, 0, 2].into()), Some([10, 0, 0, 3].into()))
        );
        assert_eq!(ns.primary_nbns, Some([10, 0, 0, 9].into()));
    }

    #[test]
    fn sizes_and_timers() {
        let (o, _) = parse(
            "mtu 1400 mru 1450 lcp-echo-interval 0 lcp-echo-failure 3 idle 600 maxconnect 0 debug",
        );
        assert_eq!((o.mtu, o.mru), (Some(1400), Some(1450)));
        assert_eq!(o.lcp_echo_interval, Some(None));
        assert_eq!(o.lcp_echo_failures, Some(3));
        assert_eq!(o.idle, Some(Some(Duration::from_secs(600))));
        assert_eq!(o.maxconnect, Some(None));
        assert!(o.debug);
    }

    #[test]
    fn other_pppd_options_are_warned_with_their_arguments() {
        let (o, w) = parse("lock\nlogfile /var/log/x\nnobsdcomp\n192.168.0.1:\nname x\n");
        assert_eq!(o.name.as_deref(), Some("x"));
        let messages: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "opts:1: pppd option `lock` ignored: it does not apply to xpptp",
                "opts:2: pppd option `logfile /var/log/x` ignored: it does not apply to xpptp",
                "opts:3: pppd option `nobsdcomp` ignored: it does not apply to xpptp",
                "opts:4: pppd address pair `192.168.0.1:` ignored: pptpd.conf's localip and remoteip decide the addresses",
            ]
        );
    }

    #[test]
    fn every_error_names_line_and_fix() {
        for (text, line, needle) in [
            (
                "lock\nrequire-mppe-129\n",
                2,
                "not a pppd option xpptp knows",
            ),
            ("name", 1, "`name` needs a name"),
            ("ms-dns", 1, "needs an address"),
            ("ms-dns dns.example", 1, "not an IPv4 address"),
            ("ms-wins 1.2.3", 1, "not an IPv4 address"),
            ("\nmtu 64", 2, "outside 128..1500"),
            ("mru 9000", 1, "outside 128..1500"),
            ("mtu x", 1, "not a whole number"),
            ("lcp-echo-interval -1", 1, "not a whole number"),
            ("lcp-echo-failure", 1, "needs a count"),
            ("idle 1.5", 1, "not a whole number"),
            ("maxconnect", 1, "needs seconds"),
            ("logfile", 1, "needs an argument"),
            ("require-mppe\nnomppe\n", 2, "contradicts"),
            ("require-mppe-128 nomppe-128", 1, "refuse every key length"),
            ("require-eap", 1, "no EAP"),
            ("noauth", 1, "always authenticates"),
            ("name \\377", 1, "not UTF-8"),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("opts:{line}: ")),
                "{text}: {message}"
            );
            assert!(message.contains(needle), "{text}: {message}");
            assert!(message.contains("; "), "no fix in {message}");
        }
        let long = format!("name {}", "x".repeat(words::MAX_WORD_LEN));
        assert!(error(&long).starts_with("opts:1: a word of 1024 bytes"));
    }
}
