//! `xpptp sessions` and `xpptp session`: the columns, their order, filters and JSON.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::str::FromStr;

use regex::Regex;
use serde_json::{Map, Value, json};
use xpptp_proto::control_api::{
    AuthMethod, MppeInfo, Negotiated, SessionDetail, SessionState, SessionSummary,
};

use super::format::{self, Align, TableStyle};

/// A column of the sessions table (its name is the table header and the `--columns`,
/// `--sort` and `--match` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The session's ID (= our call ID).
    Id,
    /// The user name.
    User,
    /// starting, established, finishing.
    State,
    /// Our call ID.
    CallId,
    /// The peer's call ID.
    PeerCallId,
    /// The client's outer address.
    Peer,
    /// The client's tunnel address.
    TunnelIp,
    /// MPPE per direction.
    Mppe,
    /// Time since the call was accepted.
    Uptime,
    /// Packets from the client.
    RxPkts,
    /// Octets from the client.
    RxBytes,
    /// Packets to the client.
    TxPkts,
    /// Octets to the client.
    TxBytes,
    /// Packets of the call dropped.
    Drops,
    /// The worker(s) owning the call's stateful directions.
    Worker,
}

impl Column {
    /// Every column, in the order `--columns all` shows them.
    pub const ALL: [Column; 15] = [
        Column::Id,
        Column::User,
        Column::State,
        Column::CallId,
        Column::PeerCallId,
        Column::Peer,
        Column::TunnelIp,
        Column::Mppe,
        Column::Uptime,
        Column::RxPkts,
        Column::RxBytes,
        Column::TxPkts,
        Column::TxBytes,
        Column::Drops,
        Column::Worker,
    ];

    /// What `xpptp sessions` shows without `--columns`.
    pub const DEFAULT: [Column; 9] = [
        Column::Id,
        Column::User,
        Column::State,
        Column::Peer,
        Column::TunnelIp,
        Column::Mppe,
        Column::Uptime,
        Column::RxBytes,
        Column::TxBytes,
    ];

    /// The header and key.
    pub fn name(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::User => "user",
            Column::State => "state",
            Column::CallId => "call-id",
            Column::PeerCallId => "peer-call-id",
            Column::Peer => "peer",
            Column::TunnelIp => "tunnel-ip",
            Column::Mppe => "mppe",
            Column::Uptime => "uptime",
            Column::RxPkts => "rx-pkts",
            Column::RxBytes => "rx-bytes",
            Column::TxPkts => "tx-pkts",
            Column::TxBytes => "tx-bytes",
            Column::Drops => "drops",
            Column::Worker => "worker",
        }
    }

    fn align(self) -> Align {
        match self {
            Column::User
            | Column::State
            | Column::Peer
            | Column::TunnelIp
            | Column::Mppe
            | Column::Worker => Align::Left,
            _ => Align::Right,
        }
    }

    /// The cell for scripts (`--tsv`): counters as plain integers and the uptime in
    /// seconds; the rest as [`Column::cell`].
    pub fn raw_cell(self, s: &SessionSummary) -> String {
        match self.number(s) {
            Key::Number(n) if !matches!(self, Column::Peer | Column::TunnelIp) => n.to_string(),
            _ => self.cell(s),
        }
    }

    /// The cell as the table shows it (`-` when unknown).
    pub fn cell(self, s: &SessionSummary) -> String {
        let traffic = s.traffic.as_ref();
        let dash = || "-".to_owned();
        match self {
            Column::Id | Column::CallId => s.id.to_string(),
            Column::User => user(s),
            Column::State => state(s.state),
            Column::PeerCallId => s.peer_call_id.to_string(),
            Column::Peer => s.peer_address.to_string(),
            Column::TunnelIp => s.tunnel_address.map_or_else(dash, |a| a.to_string()),
            Column::Mppe if s.state == SessionState::Starting => dash(),
            Column::Mppe => format::mppe(s.transmit.as_ref(), s.receive.as_ref()),
            Column::Uptime => format::duration(s.uptime_secs),
            Column::RxPkts => traffic.map_or_else(dash, |t| format::count(t.rx.packets)),
            Column::RxBytes => traffic.map_or_else(dash, |t| format::bytes(t.rx.bytes)),
            Column::TxPkts => traffic.map_or_else(dash, |t| format::count(t.tx.packets)),
            Column::TxBytes => traffic.map_or_else(dash, |t| format::bytes(t.tx.bytes)),
            Column::Drops => traffic.map_or_else(dash, |t| format::count(t.dropped)),
            Column::Worker => traffic.map_or_else(dash, |t| {
                let owner = |o: Option<u16>| o.map_or_else(|| "any".to_owned(), |w| w.to_string());
                if t.upstream_owner == t.downstream_owner {
                    owner(t.upstream_owner)
                } else {
                    format!(
                        "up:{}/down:{}",
                        owner(t.upstream_owner),
                        owner(t.downstream_owner)
                    )
                }
            }),
        }
    }

    /// What `--sort` orders by: numbers as numbers (addresses too), the rest as text.
    fn number(self, s: &SessionSummary) -> Key {
        let traffic = s.traffic.as_ref();
        let counter = |f: fn(&xpptp_proto::control_api::CallTraffic) -> u64| {
            traffic.map_or(Key::Missing, |t| Key::Number(f(t)))
        };
        match self {
            Column::Id | Column::CallId => Key::Number(u64::from(s.id)),
            Column::PeerCallId => Key::Number(u64::from(s.peer_call_id)),
            Column::Peer => Key::Number(u64::from(u32::from(s.peer_address))),
            Column::TunnelIp => s
                .tunnel_address
                .map_or(Key::Missing, |a| Key::Number(u64::from(u32::from(a)))),
            Column::Uptime => Key::Number(s.uptime_secs),
            Column::RxPkts => counter(|t| t.rx.packets),
            Column::RxBytes => counter(|t| t.rx.bytes),
            Column::TxPkts => counter(|t| t.tx.packets),
            Column::TxBytes => counter(|t| t.tx.bytes),
            Column::Drops => counter(|t| t.dropped),
            Column::User | Column::State | Column::Mppe | Column::Worker => Key::Text(self.cell(s)),
        }
    }
}

impl FromStr for Column {
    type Err = String;

    fn from_str(name: &str) -> Result<Column, String> {
        Column::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| format!("no column {name:?}; the columns are {}", column_names()))
    }
}

/// Every column name, comma-separated (for messages and help).
pub fn column_names() -> String {
    Column::ALL.map(Column::name).join(",")
}

/// A sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// Unknown values sort first.
    Missing,
    Number(u64),
    Text(String),
}

/// `--sort COLUMN`, `-COLUMN` for descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// By what.
    pub column: Column,
    /// Largest first.
    pub descending: bool,
}

impl FromStr for Sort {
    type Err = String;

    fn from_str(text: &str) -> Result<Sort, String> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        Ok(Sort {
            column: name.parse()?,
            descending,
        })
    }
}

/// `--match KEY=REGEX`: the session's `KEY` cell (as the table shows it) must match.
#[derive(Debug, Clone)]
pub struct Match {
    /// Which cell.
    pub column: Column,
    /// What it must match (anywhere in the cell; anchor with ^ and $).
    pub regex: Regex,
}

impl FromStr for Match {
    type Err = String;

    fn from_str(text: &str) -> Result<Match, String> {
        let Some((key, pattern)) = text.split_once('=') else {
            return Err(format!(
                "{text:?} is not KEY=REGEX (e.g. user=^alice$, peer=^10\\.1\\.)"
            ));
        };
        let column = key.parse()?;
        let regex = Regex::new(pattern).map_err(|e| format!("bad regular expression: {e}"))?;
        Ok(Match { column, regex })
    }
}

/// `--columns a,b,c`: the columns in their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns(pub Vec<Column>);

impl FromStr for Columns {
    type Err = String;

    fn from_str(text: &str) -> Result<Columns, String> {
        parse_columns(text).map(Columns)
    }
}

/// Parses `--columns a,b,c` (`all` for every column).
pub fn parse_columns(text: &str) -> Result<Vec<Column>, String> {
    if text == "all" {
        return Ok(Column::ALL.to_vec());
    }
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Column>, String>>()
        .and_then(|columns| {
            if columns.is_empty() {
                Err(format!("no columns given; choose from {}", column_names()))
            } else {
                Ok(columns)
            }
        })
}

/// Keeps the sessions every filter matches, in `sort`'s order (ID order otherwise, and
/// among equals).
pub fn select(
    mut sessions: Vec<SessionSummary>,
    matches: &[Match],
    sort: Option<Sort>,
) -> Vec<SessionSummary> {
    sessions.retain(|s| matches.iter().all(|m| m.regex.is_match(&m.column.cell(s))));
    if let Some(sort) = sort {
        sessions.sort_by(|a, b| {
            let order = sort
                .column
                .number(a)
                .cmp(&sort.column.number(b))
                .then(a.id.cmp(&b.id));
            if sort.descending {
                order.reverse()
            } else {
                order
            }
        });
    } else {
        sessions.sort_by_key(|s| s.id);
    }
    sessions
}

/// The sessions table.
pub fn table(sessions: &[SessionSummary], columns: &[Column], style: TableStyle) -> String {
    let header: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    let align: Vec<Align> = columns.iter().map(|c| c.align()).collect();
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            columns
                .iter()
                .map(|c| if style.tsv { c.raw_cell(s) } else { c.cell(s) })
                .collect()
        })
        .collect();
    format::table(&header, &align, &rows, style)
}

/// The user name, lossily decoded; `-` before the peer gave one.
pub fn user(s: &SessionSummary) -> String {
    s.user.as_deref().map_or_else(
        || "-".to_owned(),
        |u| String::from_utf8_lossy(u).into_owned(),
    )
}

/// `starting`, `established`, `finishing`, `unknown-N`.
pub fn state(state: SessionState) -> String {
    format::reason_name(&format!("{state:?}"), '-')
}

fn mppe_json(info: Option<&MppeInfo>) -> Value {
    match info {
        None => Value::Null,
        Some(info) => json!({
            "bits": format::mppe_bits(info.strength),
            "mode": format::mppe_one(Some(info)).split_once('-').map_or("", |(_, m)| m),
        }),
    }
}

/// One session as the JSON object of `xpptp sessions --json` (keys in the README).
pub fn summary_json(s: &SessionSummary) -> Value {
    let t = s.traffic.as_ref();
    json!({
        "id": s.id,
        "user": s.user.as_deref().map(|u| String::from_utf8_lossy(u).into_owned()),
        "state": state(s.state),
        "call_id": s.id,
        "peer_call_id": s.peer_call_id,
        "peer": s.peer_address.to_string(),
        "tunnel_ip": s.tunnel_address.map(|a| a.to_string()),
        "mppe": (s.state != SessionState::Starting)
            .then(|| format::mppe(s.transmit.as_ref(), s.receive.as_ref())),
        "mppe_tx": mppe_json(s.transmit.as_ref()),
        "mppe_rx": mppe_json(s.receive.as_ref()),
        "uptime_secs": s.uptime_secs,
        "rx_packets": t.map(|t| t.rx.packets),
        "rx_bytes": t.map(|t| t.rx.bytes),
        "tx_packets": t.map(|t| t.tx.packets),
        "tx_bytes": t.map(|t| t.tx.bytes),
        "drops": t.map(|t| t.dropped),
        "upstream_worker": t.and_then(|t| t.upstream_owner),
        "downstream_worker": t.and_then(|t| t.downstream_owner),
    })
}

fn auth(method: AuthMethod) -> String {
    match method {
        AuthMethod::MsChapV2 => "ms-chap-v2".into(),
        AuthMethod::MsChapV1 => "ms-chap".into(),
        AuthMethod::ChapMd5 => "chap-md5".into(),
        AuthMethod::Pap => "pap".into(),
        AuthMethod::Unknown(n) => format!("unknown-{n}"),
    }
}

fn address(a: Option<Ipv4Addr>) -> Option<String> {
    a.map(|a| a.to_string())
}

fn negotiated_json(n: &Negotiated) -> Value {
    json!({
        "peer_mru": n.peer_mru,
        "our_mru": n.our_mru,
        "mtu": n.mtu,
        "our_magic": n.our_magic,
        "peer_magic": n.peer_magic,
        "acfc": n.acfc,
        "pfc": n.pfc,
        "auth": n.auth_method.map(auth),
        "server_tunnel_ip": address(n.server_tunnel_address),
        "client_tunnel_ip": n.client_tunnel_address.to_string(),
        "primary_dns": address(n.primary_dns),
        "secondary_dns": address(n.secondary_dns),
        "primary_nbns": address(n.primary_nbns),
        "secondary_nbns": address(n.secondary_nbns),
        "mppe_tx": mppe_json(n.transmit.as_ref()),
        "mppe_rx": mppe_json(n.receive.as_ref()),
        "peer_gre_window": n.peer_recv_window,
    })
}

/// One session in detail, as the JSON object of `xpptp session --json`: the summary's
/// keys plus `vendor` and `negotiated`.
pub fn detail_json(d: &SessionDetail) -> Value {
    let mut object = match summary_json(&d.summary) {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    object.insert("vendor".into(), Value::String(d.peer_vendor.clone()));
    object.insert(
        "negotiated".into(),
        d.negotiated.as_ref().map_or(Value::Null, negotiated_json),
    );
    Value::Object(object)
}

/// One session in detail, `key  value` lines.
pub fn detail_text(d: &SessionDetail) -> String {
    let s = &d.summary;
    let mut lines: Vec<(&str, String)> = vec![
        ("id", s.id.to_string()),
        ("user", user(s)),
        ("state", state(s.state)),
        ("uptime", format::duration(s.uptime_secs)),
        ("peer", s.peer_address.to_string()),
        ("vendor", vendor(&d.peer_vendor)),
        ("call-id", s.id.to_string()),
        ("peer-call-id", s.peer_call_id.to_string()),
    ];
    if let Some(n) = &d.negotiated {
        let magic = |m: u32| {
            if m == 0 {
                "none".to_owned()
            } else {
                format!("0x{m:08x}")
            }
        };
        let or_none = |a: Option<Ipv4Addr>| address(a).unwrap_or_else(|| "none".into());
        let pair = |a: Option<Ipv4Addr>, b: Option<Ipv4Addr>| {
            let given: Vec<String> = [a, b]
                .into_iter()
                .flatten()
                .map(|a| a.to_string())
                .collect();
            if given.is_empty() {
                "none".to_owned()
            } else {
                given.join(" ")
            }
        };
        lines.extend([
            ("peer-gre-window", n.peer_recv_window.to_string()),
            (
                "lcp",
                format!(
                    "mru {} (peer {}), mtu {}, magic {} (peer {}), acfc {}, pfc {}",
                    n.our_mru,
                    n.peer_mru,
                    n.mtu,
                    magic(n.our_magic),
                    magic(n.peer_magic),
                    on_off(n.acfc),
                    on_off(n.pfc)
                ),
            ),
            ("auth", n.auth_method.map_or_else(|| "none".into(), auth)),
            (
                "ipcp",
                format!(
                    "local {}, peer {}, dns {}, nbns {}",
                    or_none(n.server_tunnel_address),
                    n.client_tunnel_address,
                    pair(n.primary_dns, n.secondary_dns),
                    pair(n.primary_nbns, n.secondary_nbns)
                ),
            ),
            (
                "ccp",
                format!(
                    "tx {}, rx {}",
                    format::mppe_one(n.transmit.as_ref()),
                    format::mppe_one(n.receive.as_ref())
                ),
            ),
        ]);
    } else {
        lines.push(("negotiated", "not yet (negotiating)".into()));
    }
    match &s.traffic {
        Some(t) => {
            lines.extend([
                (
                    "rx",
                    format!(
                        "{} packets, {} ({} octets)",
                        t.rx.packets,
                        format::bytes(t.rx.bytes),
                        t.rx.bytes
                    ),
                ),
                (
                    "tx",
                    format!(
                        "{} packets, {} ({} octets)",
                        t.tx.packets,
                        format::bytes(t.tx.bytes),
                        t.tx.bytes
                    ),
                ),
                ("drops", t.dropped.to_string()),
                ("worker", Column::Worker.cell(s)),
            ]);
        }
        None => lines.push((
            "traffic",
            "no counters (not handed to the datapath, or it did not answer)".into(),
        )),
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in lines {
        let _ = writeln!(out, "{key:<width$}  {value}");
    }
    out
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn vendor(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned();
    if clean.is_empty() { "-".into() } else { clean }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xpptp_proto::control_api::{CallTraffic, Traffic};

    fn session(id: u16, user: &str, rx_bytes: u64, tunnel: [u8; 4]) -> SessionSummary {
        SessionSummary {
            id,
            peer_call_id: id + 100,
            user: Some(user.as_bytes().to_vec()),
            state: SessionState::Established,
            peer_address: Ipv4Addr::new(10, 0, 0, 1),
            tunnel_address: Some(Ipv4Addr::from(tunnel)),
            transmit: None,
            receive: None,
            uptime_secs: 60,
            traffic: Some(CallTraffic {
                rx: Traffic {
                    packets: 1,
                    bytes: rx_bytes,
                },
                ..CallTraffic::default()
            }),
        }
    }

    #[test]
    fn sort_and_match_parsing() {
        assert_eq!(
            "rx-bytes".parse::<Sort>().unwrap(),
            Sort {
                column: Column::RxBytes,
                descending: false
            }
        );
        assert_eq!(
            "-uptime".parse::<Sort>().unwrap(),
            Sort {
                column: Column::Uptime,
                descending: true
            }
        );
        assert!("bogus".parse::<Sort>().unwrap_err().contains("tunnel-ip"));
        let m: Match = "user=^al".parse().unwrap();
        assert_eq!(m.column, Column::User);
        assert!("user".parse::<Match>().is_err());
        assert!(
            "user=("
                .parse::<Match>()
                .unwrap_err()
                .contains("regular expression")
        );
        assert_eq!(
            parse_columns("id, user,mppe").unwrap(),
            vec![Column::Id, Column::User, Column::Mppe]
        );
        assert_eq!(parse_columns("all").unwrap().len(), Column::ALL.len());
        assert!(parse_columns(",").is_err());
    }

    #[test]
    fn numeric_sort_and_filters() {
        let sessions = vec![
            session(1, "alice", 900, [10, 0, 0, 10]),
            session(2, "bob", 10_000, [10, 0, 0, 9]),
            session(3, "carol", 80, [10, 0, 0, 100]),
        ];
        let ids = |v: &[SessionSummary]| v.iter().map(|s| s.id).collect::<Vec<_>>();
        let by = |t: &str| select(sessions.clone(), &[], Some(t.parse().unwrap()));
        assert_eq!(ids(&by("rx-bytes")), [3, 1, 2], "numbers, not text");
        assert_eq!(ids(&by("-rx-bytes")), [2, 1, 3]);
        assert_eq!(ids(&by("tunnel-ip")), [2, 1, 3], "addresses numerically");
        assert_eq!(ids(&by("user")), [1, 2, 3]);
        let only: Match = "user=^(bob|carol)$".parse().unwrap();
        assert_eq!(ids(&select(sessions.clone(), &[only], None)), [2, 3]);
        let none: Match = "tunnel-ip=^192\\.".parse().unwrap();
        assert!(select(sessions.clone(), &[none], None).is_empty());
    }

    #[test]
    fn cells_and_json_keep_raw_numbers() {
        let s = session(7, "alice", 123_456, [10, 0, 0, 10]);
        assert_eq!(Column::RxBytes.cell(&s), "120.6 KiB");
        assert_eq!(Column::RxBytes.raw_cell(&s), "123456");
        assert_eq!(Column::Uptime.cell(&s), "1m00s");
        assert_eq!(Column::Uptime.raw_cell(&s), "60");
        assert_eq!(Column::TunnelIp.raw_cell(&s), "10.0.0.10");
        assert_eq!(Column::Worker.cell(&s), "any");
        assert_eq!(Column::Mppe.cell(&s), "none");
        let v = summary_json(&s);
        assert_eq!(v["rx_bytes"], 123_456);
        assert_eq!(v["tunnel_ip"], "10.0.0.10");
        assert_eq!(v["mppe"], "none");
        assert_eq!(v["user"], "alice");
    }
}
