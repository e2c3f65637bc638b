//! `xpptp stats`: the daemon's and the workers' counters, and rates from two samples (the
//! daemons keep only counters; readers diff them).

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Value, json};
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
            let traffic = |t: &xpptp_proto::control_api::Traffic| {
                json!({"packets": t.packets, "bytes": t.bytes})
            };
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

/// The `xpptp stats` text: control plane figures, the worker table with a total row, and
/// drops by reason.
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
    out
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
    let mut align = vec![Align::Right; header.len()];
    if let Some(first) = align.first_mut() {
        *first = Align::Left;
    }
    format!("\n{}", format::table(&header, &align, &rows, style))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use xpptp_proto::command::{DirectionStats, DropCount, DropReason, Traffic};
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
}
