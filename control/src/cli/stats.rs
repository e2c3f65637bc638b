//! `xpptp stats`: the daemon's and the workers' counters, and rates from two samples (the
//! daemons keep only counters; readers diff them).

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Value, json};
use xpptp_proto::command::{RingStats, Traffic, VerdictCount};
use xpptp_proto::control_api::{Stats, WorkerStats};

use super::format::{self, Align, TableStyle};

/// Counters read at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the reply came.
    pub at: Instant,
    /// What it said.
    pub stats: Stats,
}

/// A worker's totals over both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
    drops: u64,
    batches: u64,
    batch_packets: u64,
    handed_off: u64,
    punted: u64,
}

impl Totals {
    fn of(w: &WorkerStats) -> Totals {
        Totals {
            rx_packets: w
                .upstream
                .rx
                .packets
                .saturating_add(w.downstream.rx.packets),
            rx_bytes: w.upstream.rx.bytes.saturating_add(w.downstream.rx.bytes),
            tx_packets: w
                .upstream
                .tx
                .packets
                .saturating_add(w.downstream.tx.packets),
            tx_bytes: w.upstream.tx.bytes.saturating_add(w.downstream.tx.bytes),
            drops: w
                .drops
                .iter()
                .fold(0u64, |sum, d| sum.saturating_add(d.packets)),
            batches: w.batches,
            batch_packets: w.batch_packets,
            handed_off: w.handed_off,
            punted: w.punted,
        }
    }

    fn add(self, o: Totals) -> Totals {
        Totals {
            rx_packets: self.rx_packets.saturating_add(o.rx_packets),
            rx_bytes: self.rx_bytes.saturating_add(o.rx_bytes),
            tx_packets: self.tx_packets.saturating_add(o.tx_packets),
            tx_bytes: self.tx_bytes.saturating_add(o.tx_bytes),
            drops: self.drops.saturating_add(o.drops),
            batches: self.batches.saturating_add(o.batches),
            batch_packets: self.batch_packets.saturating_add(o.batch_packets),
            handed_off: self.handed_off.saturating_add(o.handed_off),
            punted: self.punted.saturating_add(o.punted),
        }
    }
}

/// Per-second rates of one worker (or all) between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Packets received per second.
    pub rx_pps: f64,
    /// Bits received per second.
    pub rx_bps: f64,
    /// Packets sent per second.
    pub tx_pps: f64,
    /// Bits sent per second.
    pub tx_bps: f64,
    /// Packets dropped per second.
    pub drops_pps: f64,
}

/// `(now - then) / secs`, 0 when the counter went back (a restarted datapath) or no time
/// passed.
fn rate(then: u64, now: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    // f64 is exact to 2^53; a counter delta over an interval is far below.
    now.saturating_sub(then) as f64 / secs
}

fn rates(then: Totals, now: Totals, secs: f64) -> Rates {
    Rates {
        rx_pps: rate(then.rx_packets, now.rx_packets, secs),
        rx_bps: rate(then.rx_bytes, now.rx_bytes, secs) * 8.0,
        tx_pps: rate(then.tx_packets, now.tx_packets, secs),
        tx_bps: rate(then.tx_bytes, now.tx_bytes, secs) * 8.0,
        drops_pps: rate(then.drops, now.drops, secs),
    }
}

/// What two samples give.
#[derive(Debug, Clone)]
pub struct Report {
    /// Seconds between the samples.
    pub interval: f64,
    /// Sessions reaching established per second.
    pub setups_per_sec: f64,
    /// Per worker in the second sample: (worker, its counters, its rates).
    workers: Vec<(u16, Totals, Rates)>,
    /// All workers.
    total: (Totals, Rates),
    /// The XDP program's verdicts in the second sample, with their rates.
    verdicts: Vec<VerdictRate>,
}

/// One XDP verdict counter and its rates between two samples.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRate {
    /// The counter's name (`to_worker`, `pass`, ...).
    pub verdict: String,
    /// Packets, in all (second sample).
    pub packets: u64,
    /// Octets, in all (second sample).
    pub bytes: u64,
    /// Packets per second.
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
}

/// Each verdict of `second` with its rates since `first` (matched by name; a verdict new in
/// `second` has rate 0, as a worker new in `second` does).
fn verdict_rates(first: &[VerdictCount], second: &[VerdictCount], secs: f64) -> Vec<VerdictRate> {
    second
        .iter()
        .map(|now| {
            let then = first
                .iter()
                .find(|v| v.verdict == now.verdict)
                .unwrap_or(now);
            VerdictRate {
                verdict: now.verdict.clone(),
                packets: now.packets,
                bytes: now.bytes,
                pps: rate(then.packets, now.packets, secs),
                bps: rate(then.bytes, now.bytes, secs) * 8.0,
            }
        })
        .collect()
}

impl Report {
    /// The rates from `first` to `second` (workers matched by index).
    pub fn new(first: &Sample, second: &Sample) -> Report {
        let interval = second.at.saturating_duration_since(first.at).as_secs_f64();
        let before = |index: u16| {
            first
                .stats
                .workers
                .iter()
                .find(|w| w.worker == index)
                .map(Totals::of)
        };
        let mut total_now = Totals::default();
        let mut total_then = Totals::default();
        let workers = second
            .stats
            .workers
            .iter()
            .map(|w| {
                let now = Totals::of(w);
                let then = before(w.worker).unwrap_or(now);
                total_now = total_now.add(now);
                total_then = total_then.add(then);
                (w.worker, now, rates(then, now, interval))
            })
            .collect();
        Report {
            interval,
            setups_per_sec: rate(
                first.stats.setups_total,
                second.stats.setups_total,
                interval,
            ),
            workers,
            total: (total_now, rates(total_then, total_now, interval)),
            verdicts: verdict_rates(&first.stats.xdp, &second.stats.xdp, interval),
        }
    }

    fn rates_json(r: &Rates) -> Value {
        json!({
            "rx_pps": r.rx_pps,
            "rx_bps": r.rx_bps,
            "tx_pps": r.tx_pps,
            "tx_bps": r.tx_bps,
            "drops_pps": r.drops_pps,
        })
    }

    /// `rates` of `xpptp stats --json`.
    pub fn json(&self) -> Value {
        json!({
            "interval_secs": self.interval,
            "setups_per_sec": self.setups_per_sec,
            "workers": self.workers.iter().map(|(index, _, r)| {
                let mut v = Report::rates_json(r);
                if let Some(object) = v.as_object_mut() {
                    object.insert("worker".into(), json!(index));
                }
                v
            }).collect::<Vec<Value>>(),
            "total": Report::rates_json(&self.total.1),
            "xdp": self.verdicts.iter().map(|v| {
                (v.verdict.clone(), json!({"pps": v.pps, "bps": v.bps}))
            }).collect::<serde_json::Map<String, Value>>(),
        })
    }
}

/// One sample's raw counters as JSON (keys in the README).
pub fn stats_json(s: &Stats) -> Value {
    let refusals: serde_json::Map<String, Value> = s
        .refusals
        .iter()
        .map(|r| {
            (
                format::reason_name(&format!("{:?}", r.reason), '_'),
                json!(r.count),
            )
        })
        .collect();
    let workers: Vec<Value> = s
        .workers
        .iter()
        .map(|w| {
            let drops: serde_json::Map<String, Value> = w
                .drops
                .iter()
                .map(|d| {
                    (
                        format::reason_name(&format!("{:?}", d.reason), '_'),
                        json!(d.packets),
                    )
                })
                .collect();
            let events: serde_json::Map<String, Value> = w
                .events
                .iter()
                .map(|e| (e.name.clone(), json!(e.packets)))
                .collect();
            json!({
                "worker": w.worker,
                "cpu": w.cpu,
                "upstream": {"rx": traffic(&w.upstream.rx), "tx": traffic(&w.upstream.tx)},
                "downstream": {"rx": traffic(&w.downstream.rx), "tx": traffic(&w.downstream.tx)},
                "drops": drops,
                "batches": w.batches,
                "batch_packets": w.batch_packets,
                "handed_off": w.handed_off,
                "punted": w.punted,
                "client_to_client": traffic(&w.client_to_client),
                "acks_sent": traffic(&w.acks_sent),
                "control_sent": traffic(&w.control_sent),
                "events": events,
                "batch_sizes": w.batch_sizes,
                "rings": w.rings.iter().map(ring_json).collect::<Vec<Value>>(),
            })
        })
        .collect();
    json!({
        "uptime_secs": s.uptime_secs,
        "sessions_starting": s.sessions_starting,
        "sessions_established": s.sessions_established,
        "sessions_finishing": s.sessions_finishing,
        "setups_total": s.setups_total,
        "auth_failures": s.auth_failures,
        "refusals": refusals,
        "gre": {
            "delivered": s.gre.delivered,
            "malformed": s.gre.malformed,
            "unknown_call": s.gre.unknown_call,
            "wrong_peer": s.gre.wrong_peer,
            "queue_full": s.gre.queue_full,
        },
        "datapath_connected": s.datapath_connected,
        "workers": workers,
        "xdp": s.xdp.iter().map(|v| {
            (v.verdict.clone(), json!({"packets": v.packets, "bytes": v.bytes}))
        }).collect::<serde_json::Map<String, Value>>(),
    })
}

fn traffic(t: &Traffic) -> Value {
    json!({"packets": t.packets, "bytes": t.bytes})
}

fn ring_json(r: &RingStats) -> Value {
    json!({
        "ifindex": r.ifindex,
        "frames": r.frames,
        "free": r.free,
        "receive": r.receive,
        "transmit": r.transmit,
        "kernel": r.kernel.map(|k| json!({
            "rx_dropped": k.rx_dropped,
            "rx_invalid_descs": k.rx_invalid_descs,
            "tx_invalid_descs": k.tx_invalid_descs,
            "rx_ring_full": k.rx_ring_full,
            "rx_fill_ring_empty_descs": k.rx_fill_ring_empty_descs,
            "tx_ring_empty_descs": k.tx_ring_empty_descs,
        })),
    })
}

/// `xpptp stats --json`: both samples and the rates.
pub fn json(first: &Sample, second: &Sample) -> Value {
    json!({
        "first": stats_json(&first.stats),
        "second": stats_json(&second.stats),
        "rates": Report::new(first, second).json(),
    })
}

fn mean_batch(t: &Totals) -> String {
    if t.batches == 0 {
        "-".into()
    } else {
        // Display only.
        format!("{:.1}", t.batch_packets as f64 / t.batches as f64)
    }
}

/// The worker table's header.
pub const WORKER_COLUMNS: [&str; 15] = [
    "worker",
    "cpu",
    "rx-pkts",
    "rx-bytes",
    "tx-pkts",
    "tx-bytes",
    "rx-pps",
    "rx-bps",
    "tx-pps",
    "tx-bps",
    "drops",
    "batches",
    "batch-mean",
    "handoffs",
    "punts",
];

fn worker_row(name: String, cpu: String, t: &Totals, r: &Rates) -> Vec<String> {
    vec![
        name,
        cpu,
        format::count(t.rx_packets),
        format::bytes(t.rx_bytes),
        format::count(t.tx_packets),
        format::bytes(t.tx_bytes),
        format::per_sec(r.rx_pps),
        format::bits_per_sec(r.rx_bps),
        format::per_sec(r.tx_pps),
        format::bits_per_sec(r.tx_bps),
        format::count(t.drops),
        format::count(t.batches),
        mean_batch(t),
        format::count(t.handed_off),
        format::count(t.punted),
    ]
}

/// The `xpptp stats` text: control plane figures, the worker table with a total row, drops
/// and other events by name, the AF_XDP rings and the XDP verdicts.
pub fn text(first: &Sample, second: &Sample, style: TableStyle) -> String {
    let report = Report::new(first, second);
    let s = &second.stats;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "control plane (up {})",
        format::duration(s.uptime_secs)
    );
    let _ = writeln!(
        out,
        "  sessions      {} starting, {} established, {} finishing",
        s.sessions_starting, s.sessions_established, s.sessions_finishing
    );
    let _ = writeln!(
        out,
        "  set-ups       {} total, {:.1}/s over {:.1}s",
        s.setups_total, report.setups_per_sec, report.interval
    );
    let _ = writeln!(out, "  auth failures {}", s.auth_failures);
    let refusals: Vec<String> = s
        .refusals
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| {
            format!(
                "{} {}",
                format::reason_name(&format!("{:?}", r.reason), '-'),
                r.count
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "  refusals      {}",
        if refusals.is_empty() {
            "none".to_owned()
        } else {
            refusals.join(", ")
        }
    );
    let g = &s.gre;
    let _ = writeln!(
        out,
        "  gre socket    delivered {}, malformed {}, unknown-call {}, wrong-peer {}, queue-full {}",
        g.delivered, g.malformed, g.unknown_call, g.wrong_peer, g.queue_full
    );
    out.push('\n');
    if !s.datapath_connected {
        out.push_str("datapath: not connected (no worker figures)\n");
        return out;
    }
    let mut rows: Vec<Vec<String>> = report
        .workers
        .iter()
        .map(|(index, t, r)| {
            let cpu = s
                .workers
                .iter()
                .find(|w| w.worker == *index)
                .and_then(|w| w.cpu)
                .map_or_else(|| "-".to_owned(), |c| c.to_string());
            worker_row(index.to_string(), cpu, t, r)
        })
        .collect();
    rows.push(worker_row(
        "total".into(),
        "-".into(),
        &report.total.0,
        &report.total.1,
    ));
    let mut align = [Align::Right; WORKER_COLUMNS.len()];
    align[0] = Align::Left;
    out.push_str(&format::table(&WORKER_COLUMNS, &align, &rows, style));
    out.push_str(&drops_table(s, style));
    out.push_str(&events_table(s, style));
    out.push_str(&rings_table(s, style));
    out.push_str(&verdicts_table(&report.verdicts, style));
    out
}

/// A table under a blank line, its first column left-aligned and the others right.
fn section(header: &[&str], rows: &[Vec<String>], style: TableStyle) -> String {
    let mut align = vec![Align::Right; header.len()];
    if let Some(first) = align.first_mut() {
        *first = Align::Left;
    }
    format!("\n{}", format::table(header, &align, rows, style))
}

/// The datapath's other counts by name (`_` shown as `-`, as drop reasons are): one row
/// per name some worker counted (non-zero), one column per worker, and the total.
fn events_table(s: &Stats, style: TableStyle) -> String {
    let mut names: Vec<&str> = Vec::new();
    for w in &s.workers {
        for e in &w.events {
            if e.packets > 0 && !names.contains(&e.name.as_str()) {
                names.push(&e.name);
            }
        }
    }
    if names.is_empty() {
        return "\nevents: none\n".into();
    }
    names.sort_unstable();
    let worker_names: Vec<String> = s.workers.iter().map(|w| format!("w{}", w.worker)).collect();
    let mut header: Vec<&str> = vec!["event"];
    header.extend(worker_names.iter().map(String::as_str));
    header.push("total");
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let mut row = vec![name.replace('_', "-")];
            let mut total = 0u64;
            for w in &s.workers {
                let n = w
                    .events
                    .iter()
                    .filter(|e| e.name == *name)
                    .fold(0u64, |sum, e| sum.saturating_add(e.packets));
                total = total.saturating_add(n);
                row.push(n.to_string());
            }
            row.push(total.to_string());
            row
        })
        .collect();
    section(&header, &rows, style)
}

/// The ring table's header.
pub const RING_COLUMNS: [&str; 8] = [
    "worker",
    "ifindex",
    "frames",
    "free",
    "receive",
    "transmit",
    "kernel-drops",
    "ring-full",
];

/// Where each worker's AF_XDP sockets' frames are, and the kernel's drop counters (`-`
/// until the worker has read them). Nothing on the socket backend (no rings).
fn rings_table(s: &Stats, style: TableStyle) -> String {
    let rows: Vec<Vec<String>> = s
        .workers
        .iter()
        .flat_map(|w| {
            w.rings.iter().map(move |r| {
                let kernel = |f: fn(&xpptp_proto::command::XskKernelStats) -> u64| {
                    r.kernel
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |k| f(k).to_string())
                };
                vec![
                    w.worker.to_string(),
                    r.ifindex.to_string(),
                    r.frames.to_string(),
                    r.free.to_string(),
                    r.receive.to_string(),
                    r.transmit.to_string(),
                    kernel(|k| k.rx_dropped),
                    kernel(|k| k.rx_ring_full),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    section(&RING_COLUMNS, &rows, style)
}

/// The verdict table's header.
pub const VERDICT_COLUMNS: [&str; 5] = ["verdict", "packets", "bytes", "pps", "bps"];

/// The XDP program's verdicts (`_` shown as `-`): totals and rates over the interval.
/// Nothing on the socket backend (no XDP program). Scaled units for people, raw numbers
/// with `--tsv`.
fn verdicts_table(verdicts: &[VerdictRate], style: TableStyle) -> String {
    if verdicts.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = verdicts
        .iter()
        .map(|v| {
            if style.tsv {
                vec![
                    v.verdict.replace('_', "-"),
                    v.packets.to_string(),
                    v.bytes.to_string(),
                    format!("{:.1}", v.pps),
                    format!("{:.0}", v.bps),
                ]
            } else {
                vec![
                    v.verdict.replace('_', "-"),
                    format::count(v.packets),
                    format::bytes(v.bytes),
                    format::per_sec(v.pps),
                    format::bits_per_sec(v.bps),
                ]
            }
        })
        .collect();
    section(&VERDICT_COLUMNS, &rows, style)
}

/// Drops by reason: one row per reason any worker counted, one column per worker, and
/// the total.
fn drops_table(s: &Stats, style: TableStyle) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for w in &s.workers {
        for d in &w.drops {
            let name = format::reason_name(&format!("{:?}", d.reason), '-');
            if d.packets > 0 && !reasons.contains(&name) {
                reasons.push(name);
            }
        }
    }
    if reasons.is_empty() {
        return "\ndrops: none\n".into();
    }
    reasons.sort();
    let worker_names: Vec<String> = s.workers.iter().map(|w| format!("w{}", w.worker)).collect();
    let mut header: Vec<&str> = vec!["drop-reason"];
    header.extend(worker_names.iter().map(String::as_str));
    header.push("total");
    let rows: Vec<Vec<String>> = reasons
        .iter()
        .map(|reason| {
            let mut row = vec![reason.clone()];
            let mut total = 0u64;
            for w in &s.workers {
                let n = w
                    .drops
                    .iter()
                    .filter(|d| format::reason_name(&format!("{:?}", d.reason), '-') == *reason)
                    .fold(0u64, |sum, d| sum.saturating_add(d.packets));
                total = total.saturating_add(n);
                row.push(n.to_string());
            }
            row.push(total.to_string());
            row
        })
        .collect();
    section(&header, &rows, style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use xpptp_proto::command::{
        DirectionStats, DropCount, DropReason, EventCount, Traffic, XskKernelStats,
    };
    use xpptp_proto::control_api::GreStats;

    fn stats(setups: u64, rx_packets: u64, rx_bytes: u64, drops: u64) -> Stats {
        Stats {
            uptime_secs: 10,
            sessions_starting: 0,
            sessions_established: 1,
            sessions_finishing: 0,
            setups_total: setups,
            auth_failures: 0,
            refusals: Vec::new(),
            gre: GreStats::default(),
            datapath_connected: true,
            workers: vec![WorkerStats {
                worker: 0,
                cpu: Some(1),
                upstream: DirectionStats {
                    rx: Traffic {
                        packets: rx_packets,
                        bytes: rx_bytes,
                    },
                    tx: Traffic::default(),
                },
                downstream: DirectionStats::default(),
                drops: vec![DropCount {
                    reason: DropReason::NoRoute,
                    packets: drops,
                }],
                batches: 4,
                batch_packets: 10,
                handed_off: 0,
                punted: 0,
                client_to_client: Traffic::default(),
                acks_sent: Traffic::default(),
                control_sent: Traffic::default(),
                events: Vec::new(),
                batch_sizes: Vec::new(),
                rings: Vec::new(),
            }],
            xdp: Vec::new(),
        }
    }

    #[test]
    fn rates_from_two_samples() {
        let at = Instant::now();
        let first = Sample {
            at,
            stats: stats(10, 1000, 100_000, 1),
        };
        let second = Sample {
            at: at + Duration::from_secs(2),
            stats: stats(14, 3000, 300_000, 5),
        };
        let report = Report::new(&first, &second);
        assert_eq!(report.setups_per_sec, 2.0);
        let r = report.workers[0].2;
        assert_eq!(r.rx_pps, 1000.0);
        assert_eq!(r.rx_bps, 800_000.0);
        assert_eq!(r.drops_pps, 2.0);
        assert_eq!(report.total.1, r);
        // A counter that went back (datapath restarted) gives 0, not a huge rate.
        let report = Report::new(&second, &first);
        assert_eq!(report.workers[0].2.rx_pps, 0.0);
        let text = text(
            &first,
            &second,
            TableStyle {
                header: true,
                tsv: false,
            },
        );
        assert!(text.contains("800.0 kbit/s"), "{text}");
        assert!(text.contains("no-route"), "{text}");
        assert!(text.contains("total"), "{text}");
        let v = json(&first, &second);
        assert_eq!(v["second"]["workers"][0]["drops"]["no_route"], 5);
        assert_eq!(v["rates"]["workers"][0]["rx_pps"], 1000.0);
    }

    /// `stats` with the datapath's events, rings and XDP verdicts set: `to_worker` has
    /// counted `to_worker` packets of 100 octets.
    fn datapath_stats(to_worker: u64, kernel: Option<XskKernelStats>) -> Stats {
        let mut s = stats(1, 0, 0, 0);
        if let Some(w) = s.workers.first_mut() {
            w.events = vec![
                EventCount {
                    name: "from_tun".into(),
                    packets: 7,
                },
                EventCount {
                    name: "next_hop_unresolved".into(),
                    packets: 0,
                },
            ];
            w.acks_sent = Traffic {
                packets: 2,
                bytes: 120,
            };
            w.batch_sizes = vec![3, 2, 0, 0, 0, 0, 0, 1];
            w.rings = vec![RingStats {
                ifindex: 5,
                frames: 2048,
                free: 40,
                receive: 2000,
                transmit: 8,
                kernel,
            }];
        }
        let mut second = s.workers[0].clone();
        second.worker = 1;
        second.events = vec![EventCount {
            name: "from_tun".into(),
            packets: 3,
        }];
        second.rings = Vec::new();
        s.workers.push(second);
        s.xdp = vec![
            VerdictCount {
                verdict: "to_worker".into(),
                packets: to_worker,
                bytes: to_worker * 100,
            },
            VerdictCount {
                verdict: "pass".into(),
                packets: 4,
                bytes: 240,
            },
        ];
        s
    }

    fn cells(text: &str, first: &str) -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no {first} row in {text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn datapath_tables_and_verdict_rates() {
        let at = Instant::now();
        let kernel = XskKernelStats {
            rx_dropped: 11,
            rx_ring_full: 6,
            ..XskKernelStats::default()
        };
        let first = Sample {
            at,
            stats: datapath_stats(1000, None),
        };
        let second = Sample {
            at: at + Duration::from_secs(4),
            stats: datapath_stats(3000, Some(kernel)),
        };
        let report = Report::new(&first, &second);
        assert_eq!(
            report.verdicts,
            vec![
                VerdictRate {
                    verdict: "to_worker".into(),
                    packets: 3000,
                    bytes: 300_000,
                    pps: 500.0,
                    bps: 400_000.0,
                },
                VerdictRate {
                    verdict: "pass".into(),
                    packets: 4,
                    bytes: 240,
                    pps: 0.0,
                    bps: 0.0,
                },
            ]
        );
        // A verdict the first sample lacked has rate 0; one that went back too.
        let mut lacking = first.clone();
        lacking.stats.xdp.truncate(1);
        assert_eq!(Report::new(&lacking, &second).verdicts[1].pps, 0.0);
        assert_eq!(Report::new(&second, &first).verdicts[0].pps, 0.0);

        let aligned = TableStyle {
            header: true,
            tsv: false,
        };
        let text = text(&first, &second, aligned);
        // Events: non-zero names only, per worker and total.
        assert_eq!(cells(&text, "event"), ["event", "w0", "w1", "total"]);
        assert_eq!(cells(&text, "from-tun"), ["from-tun", "7", "3", "10"]);
        assert!(!text.contains("next-hop-unresolved"), "{text}");
        // Rings: one row per socket (worker 1 has none).
        assert_eq!(cells(&text, "worker").len(), WORKER_COLUMNS.len());
        assert!(text.contains(&RING_COLUMNS.join("  ")), "{text}");
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["0", "5", "2048", "40", "2000", "8", "11", "6"]),
            "{text}"
        );
        // Verdicts with scaled units and rates.
        assert_eq!(
            cells(&text, "to-worker"),
            [
                "to-worker",
                "3.0k",
                "293.0",
                "KiB",
                "500",
                "400.0",
                "kbit/s"
            ]
        );
        assert_eq!(
            cells(&text, "pass"),
            ["pass", "4", "240", "B", "0", "0", "bit/s"]
        );
        // Kernel counters not read yet show as -.
        let text = super::text(&second, &first, aligned);
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["0", "5", "2048", "40", "2000", "8", "-", "-"]),
            "{text}"
        );
        // --tsv: raw numbers.
        let tsv = super::text(
            &first,
            &second,
            TableStyle {
                header: false,
                tsv: true,
            },
        );
        assert!(
            tsv.contains("\nto-worker\t3000\t300000\t500.0\t400000\n"),
            "{tsv}"
        );
        assert!(tsv.contains("\n0\t5\t2048\t40\t2000\t8\t11\t6\n"), "{tsv}");
        assert!(tsv.contains("\nfrom-tun\t7\t3\t10\n"), "{tsv}");

        let v = json(&first, &second);
        let w0 = &v["second"]["workers"][0];
        assert_eq!(w0["events"]["from_tun"], 7);
        assert_eq!(w0["events"]["next_hop_unresolved"], 0);
        assert_eq!(w0["acks_sent"]["bytes"], 120);
        assert_eq!(w0["client_to_client"]["packets"], 0);
        assert_eq!(w0["batch_sizes"], json!([3, 2, 0, 0, 0, 0, 0, 1]));
        assert_eq!(w0["rings"][0]["free"], 40);
        assert_eq!(w0["rings"][0]["kernel"]["rx_ring_full"], 6);
        assert_eq!(v["first"]["workers"][0]["rings"][0]["kernel"], Value::Null);
        assert_eq!(v["first"]["xdp"]["to_worker"]["packets"], 1000);
        assert_eq!(v["second"]["xdp"]["pass"]["bytes"], 240);
        assert_eq!(v["rates"]["xdp"]["to_worker"]["pps"], 500.0);
        assert_eq!(v["rates"]["xdp"]["to_worker"]["bps"], 400_000.0);
    }

    #[test]
    fn socket_backend_has_no_ring_or_verdict_table() {
        let at = Instant::now();
        let sample = Sample {
            at,
            stats: stats(1, 0, 0, 0),
        };
        let text = text(
            &sample,
            &sample,
            TableStyle {
                header: true,
                tsv: false,
            },
        );
        assert!(text.contains("events: none"), "{text}");
        assert!(!text.contains("ifindex"), "{text}");
        assert!(!text.contains("verdict"), "{text}");
        assert_eq!(json(&sample, &sample)["rates"]["xdp"], json!({}));
    }
}
