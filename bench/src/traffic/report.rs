//! The figures of one traffic run, serialisable for `--json` and the charts.

use serde::Serialize;

use super::cost::CostReport;
use super::impair::{ImpairCounts, Impairment};
use super::io::SendStats;
use super::verify::Verifier;

/// One-way latency percentiles in nanoseconds (all 0 when nothing arrived), from the
/// payload's stamp (taken as the packet is built, so it includes up to one batch of waiting
/// in the sender: at most `batch / rate`) to the sink's verification (after `recvmmsg`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencyReport {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// One direction of a run.
#[derive(Debug, Clone, Serialize)]
pub struct DirectionReport {
    /// Packets handed to the sockets (duplicates included).
    pub sent: u64,
    /// Verified packets at the sink (duplicates included).
    pub received: u64,
    /// Distinct packet numbers received.
    pub distinct: u64,
    /// Packet numbers the sender used that never arrived (its injected losses included).
    pub lost: u64,
    pub reordered: u64,
    pub duplicated: u64,
    /// Payloads that failed verification.
    pub corrupt: u64,
    /// Packets not of this run, or refused by the client-side decapsulation.
    pub foreign: u64,
    /// What the sender injected.
    pub injected: ImpairCounts,
    /// Packets sent over the time from the first send to the last.
    pub offered_pps: f64,
    /// Inner IPv4 bits per second offered (the tunnel overhead is not counted).
    pub offered_bps: f64,
    /// Verified packets over the time from the first send to the last arrival.
    pub achieved_pps: f64,
    /// Inner IPv4 bits per second received.
    pub achieved_bps: f64,
    pub latency: LatencyReport,
    /// The datapath workers' packets and CPU time during this direction, when probed.
    pub workers: Option<CostReport>,
}

impl DirectionReport {
    /// From the sender's stats, the sink's verifier and the packet numbers per session.
    pub fn new(send: &SendStats, sink: &Verifier, numbers: u64) -> DirectionReport {
        let totals = sink.totals();
        let h = &sink.latency;
        let latency = if h.is_empty() {
            LatencyReport::default()
        } else {
            LatencyReport {
                count: h.len(),
                p50_ns: h.value_at_quantile(0.5),
                p90_ns: h.value_at_quantile(0.9),
                p99_ns: h.value_at_quantile(0.99),
                max_ns: h.max(),
            }
        };
        let mean_bits = if send.sent > 0 {
            send.inner_bytes as f64 * 8.0 / send.sent as f64
        } else {
            0.0
        };
        let send_s = send.duration_s();
        let rx_s = sink.last_ns.saturating_sub(send.start_ns) as f64 / 1e9;
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let offered_pps = rate(send.sent, send_s);
        let achieved_pps = rate(totals.received, rx_s);
        DirectionReport {
            sent: send.sent,
            received: totals.received,
            distinct: totals.distinct,
            lost: numbers.saturating_sub(totals.distinct),
            reordered: totals.reordered,
            duplicated: totals.duplicated,
            corrupt: sink.corrupt,
            foreign: sink.foreign,
            injected: send.impaired,
            offered_pps,
            offered_bps: offered_pps * mean_bits,
            achieved_pps,
            achieved_bps: achieved_pps * mean_bits,
            latency,
            workers: None,
        }
    }
}

/// What was run.
#[derive(Debug, Clone, Serialize)]
pub struct Conditions {
    /// "64", "512", "1400" or "imix" (inner IPv4 length).
    pub sizes: String,
    /// "stateless", "stateful", "mixed" or "none" (MPPE).
    pub mppe: String,
    /// The datapath backend, as the caller names it ("xdp", "socket", ...).
    pub backend: String,
    /// "copy", "zero-copy" or "n/a" (the datapath's AF_XDP binding).
    pub bind_mode: String,
    /// The upstream sender: "sendmmsg" or "af_xdp".
    pub sender: String,
    pub sessions: usize,
    pub packets_per_session: u64,
    pub rate_pps: u64,
    pub impairment: Impairment,
}

impl Conditions {
    /// What the caller set up; [`run`](super::run::run) fills in the rest from its plan.
    pub fn new(mppe: &str, backend: &str, bind_mode: &str, sender: &str) -> Conditions {
        Conditions {
            sizes: String::new(),
            mppe: mppe.into(),
            backend: backend.into(),
            bind_mode: bind_mode.into(),
            sender: sender.into(),
            sessions: 0,
            packets_per_session: 0,
            rate_pps: 0,
            impairment: Impairment::default(),
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficReport {
    pub conditions: Conditions,
    pub upstream: Option<DirectionReport>,
    pub downstream: Option<DirectionReport>,
}

fn direction(f: &mut std::fmt::Formatter<'_>, name: &str, d: &DirectionReport) -> std::fmt::Result {
    writeln!(
        f,
        "{name}: sent {} at {:.0} pps ({:.1} Mbit/s inner), received {} at {:.0} pps ({:.1} Mbit/s)",
        d.sent,
        d.offered_pps,
        d.offered_bps / 1e6,
        d.received,
        d.achieved_pps,
        d.achieved_bps / 1e6
    )?;
    writeln!(
        f,
        "  lost {}, reordered {}, duplicated {}, corrupt {}, foreign {} (injected: lost {}, \
         reordered {}, duplicated {})",
        d.lost,
        d.reordered,
        d.duplicated,
        d.corrupt,
        d.foreign,
        d.injected.lost,
        d.injected.reordered,
        d.injected.duplicated
    )?;
    let l = &d.latency;
    writeln!(
        f,
        "  latency us: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        l.p50_ns as f64 / 1e3,
        l.p90_ns as f64 / 1e3,
        l.p99_ns as f64 / 1e3,
        l.max_ns as f64 / 1e3
    )?;
    if let Some(w) = &d.workers {
        let per = |ns: Option<f64>| ns.map_or("-".to_owned(), |ns| format!("{ns:.0}"));
        write!(
            f,
            "  datapath workers: {} packets, {} ns/packet",
            w.packets,
            per(w.ns_per_packet)
        )?;
        for worker in &w.workers {
            write!(f, "; q{} {}", worker.worker, per(worker.ns_per_packet))?;
        }
        writeln!(f)?;
    }
    Ok(())
}

/// The human summary: conditions, then one paragraph per direction.
impl std::fmt::Display for TrafficReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.conditions;
        writeln!(
            f,
            "{} sessions, size {}, MPPE {}, backend {} ({}), sender {}, {} packets per \
             session at {} pps",
            c.sessions,
            c.sizes,
            c.mppe,
            c.backend,
            c.bind_mode,
            c.sender,
            c.packets_per_session,
            c.rate_pps
        )?;
        if let Some(up) = &self.upstream {
            direction(f, "upstream", up)?;
        }
        if let Some(down) = &self.downstream {
            direction(f, "downstream", down)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::payload::PayloadHeader;
    use crate::traffic::verify::RunShape;

    #[test]
    fn a_direction_reports_rates_losses_and_percentiles() {
        let mut sink = Verifier::new(RunShape {
            sessions: 1,
            packets_per_session: 5,
        })
        .unwrap();
        for seq in [0u64, 2, 1, 3] {
            let header = PayloadHeader {
                session: 0,
                seq,
                sent_ns: 1_000_000_000 + seq * 1_000,
            };
            sink.record(Ok(header), 1_000_000_000 + seq * 1_000 + 50_000);
        }
        let sent = SendStats {
            sent: 4,
            inner_bytes: 4 * 1400,
            start_ns: 1_000_000_000,
            end_ns: 1_000_000_000 + 4_000,
            ..SendStats::default()
        };
        let d = DirectionReport::new(&sent, &sink, 5);
        assert_eq!((d.received, d.lost, d.reordered), (4, 1, 1));
        assert_eq!(d.latency.count, 4);
        assert!(
            (49_000..=51_000).contains(&d.latency.p50_ns),
            "{:?}",
            d.latency
        );
        assert!((d.offered_pps - 1e6).abs() < 1.0, "{}", d.offered_pps);
        assert!((d.offered_bps - 1e6 * 11_200.0).abs() < 1e3);
        let report = TrafficReport {
            conditions: Conditions::new("stateless", "xdp", "copy", "sendmmsg"),
            upstream: Some(d),
            downstream: None,
        };
        let text = report.to_string();
        assert!(text.contains("upstream: sent 4"), "{text}");
        assert!(text.contains("lost 1, reordered 1"), "{text}");
        assert!(!text.contains("downstream"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["upstream"]["latency"]["count"], 4);
    }
}
