//! Prometheus metrics (issue 6 item 2): `GET /metrics` over HTTP/1.1 on the daemon's tokio
//! runtime, off unless configured (`[metrics] listen`, or `--metrics-listen`).
//!
//! Each scrape gathers what the control socket's `GetStats` gives ([`crate::api`]): the
//! daemon's own counters, and the datapath's per-worker figures and XDP verdicts fetched
//! with a bound ([`crate::api::STATS_DATAPATH_TIMEOUT`]), so a stuck datapath delays a
//! scrape by at most that and never holds anything of the daemon's. When the datapath does
//! not answer, `xpptp_datapath_up` is 0 and its series are absent (not zero: a counter that
//! fell to zero would read as a reset). Per-session figures are not exported (one series per
//! user would grow without bound); `xpptp sessions --json` has them.
//!
//! The text is written by [`exposition`] (see there why by hand). The families:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `xpptp_build_info` | gauge (1) | `version` |
//! | `xpptp_start_time_seconds`, `xpptp_uptime_seconds` | gauge | |
//! | `xpptp_sessions` | gauge | `state` (starting, established, finishing) |
//! | `xpptp_session_setups_total`, `xpptp_auth_failures_total` | counter | |
//! | `xpptp_refusals_total` | counter | `reason` |
//! | `xpptp_control_gre_packets_total` | counter | `result` |
//! | `xpptp_datapath_up` | gauge | |
//! | `xpptp_worker_info` | gauge (1) | `worker`, `cpu` |
//! | `xpptp_worker_received_{packets,bytes}_total`, `xpptp_worker_sent_{packets,bytes}_total` | counter | `worker`, `direction` |
//! | `xpptp_worker_generated_{packets,bytes}_total` | counter | `worker`, `kind` |
//! | `xpptp_worker_drops_total` | counter | `worker`, `reason` |
//! | `xpptp_worker_events_total` | counter | `worker`, `reason` |
//! | `xpptp_worker_handed_off_packets_total`, `xpptp_worker_punted_frames_total` | counter | `worker` |
//! | `xpptp_worker_batches_total`, `xpptp_worker_batch_packets_total` | counter | `worker` |
//! | `xpptp_worker_umem_frames` | gauge | `worker`, `ifindex`, `state` (free, receive, transmit) |
//! | `xpptp_worker_xsk_kernel_events_total` | counter | `worker`, `ifindex`, `reason` |
//! | `xpptp_xdp_packets_total`, `xpptp_xdp_bytes_total` | counter | `verdict` |

pub mod exposition;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use xpptp_proto::command::{DropReason, Traffic};
use xpptp_proto::control_api::{RefusalReason, Stats};

use self::exposition::{Exposition, MetricType};
use crate::daemon::{DaemonHandle, Refusal};

/// The exposition format's media type.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Scrapes served at once; more connections wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;

/// A client that has not sent its request headers by then is dropped; so is a kept-alive
/// connection idle that long (hyper runs this timer while it waits for the next request).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound metrics listener, not yet serving.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Binds `address` (the caller names the address in its error).
    pub async fn bind(address: SocketAddr) -> std::io::Result<MetricsServer> {
        Ok(MetricsServer {
            listener: TcpListener::bind(address).await?,
        })
    }

    /// The address bound (the port chosen, when 0 was asked).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves scrapes until the task is dropped (with the connections it serves).
    pub async fn serve(self, daemon: DaemonHandle) {
        if let Some(address) = self.local_addr() {
            tracing::info!(%address, "serving Prometheus metrics on http://{address}/metrics");
        }
        let mut connections = JoinSet::new();
        loop {
            while connections.len() >= MAX_CONNECTIONS {
                let _ = connections.join_next().await;
            }
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let daemon = daemon.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |request| {
                                respond(daemon.clone(), request)
                            });
                            let served = hyper::server::conn::http1::Builder::new()
                                .timer(TokioTimer::new())
                                .header_read_timeout(HEADER_TIMEOUT)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                            if let Err(error) = served {
                                tracing::debug!(%peer, %error, "metrics connection ended");
                            }
                        });
                    }
                    Err(error) => {
                        // Out of descriptors, most likely: wait rather than spin.
                        tracing::warn!(%error, "metrics: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

async fn respond(
    daemon: DaemonHandle,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(text(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let stats = crate::api::stats(&daemon).await;
    let body = render(&stats, SystemTime::now());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    Ok(response)
}

/// The exposition of `stats`, gathered at `now`.
pub fn render(stats: &Stats, now: SystemTime) -> String {
    let mut e = Exposition::new();
    use MetricType::{Counter, Gauge};

    e.family(
        "xpptp_build_info",
        Gauge,
        "xpptp-control's version, as a label; the value is always 1.",
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1u64);
    let uptime = Duration::from_secs(stats.uptime_secs);
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(uptime);
    e.family(
        "xpptp_start_time_seconds",
        Gauge,
        "When the control daemon started, in seconds since the Unix epoch.",
    )
    .sample(&[], since_epoch.as_secs());
    e.family(
        "xpptp_uptime_seconds",
        Gauge,
        "Seconds since the control daemon started.",
    )
    .sample(&[], stats.uptime_secs);

    e.family(
        "xpptp_sessions",
        Gauge,
        "Sessions now, by state: starting (PPTP or PPP negotiating), established, finishing.",
    )
    .sample(&[("state", "starting")], stats.sessions_starting)
    .sample(&[("state", "established")], stats.sessions_established)
    .sample(&[("state", "finishing")], stats.sessions_finishing);
    e.family(
        "xpptp_session_setups_total",
        Counter,
        "Sessions that reached the established state.",
    )
    .sample(&[], stats.setups_total);
    e.family(
        "xpptp_auth_failures_total",
        Counter,
        "Failed PPP authentications.",
    )
    .sample(&[], stats.auth_failures);
    {
        let mut f = e.family(
            "xpptp_refusals_total",
            Counter,
            "Connections, calls or authentications refused by the admission limits, by reason.",
        );
        for r in &stats.refusals {
            f.sample(&[("reason", &refusal_name(r.reason))], r.count);
        }
    }
    let g = &stats.gre;
    e.family(
        "xpptp_control_gre_packets_total",
        Counter,
        "GRE packets on the control daemon's raw socket (calls still negotiating), by result.",
    )
    .sample(&[("result", "delivered")], g.delivered)
    .sample(&[("result", "malformed")], g.malformed)
    .sample(&[("result", "unknown_call")], g.unknown_call)
    .sample(&[("result", "wrong_peer")], g.wrong_peer)
    .sample(&[("result", "queue_full")], g.queue_full);
    e.family(
        "xpptp_datapath_up",
        Gauge,
        "1 if xpptp-datapath answered this scrape's request for its figures, else 0 (and \
         its series are absent).",
    )
    .sample(&[], stats.datapath_connected);
    if stats.datapath_connected {
        datapath(&mut e, stats);
    }
    e.finish()
}

/// The datapath's families.
fn datapath(e: &mut Exposition, stats: &Stats) {
    use MetricType::{Counter, Gauge};
    let workers: Vec<(String, &_)> = stats
        .workers
        .iter()
        .map(|w| (w.worker.to_string(), w))
        .collect();

    {
        let mut f = e.family(
            "xpptp_worker_info",
            Gauge,
            "A datapath worker (one per NIC queue) and the core it is pinned to (cpu empty: \
             unpinned); the value is always 1.",
        );
        for (id, w) in &workers {
            let cpu = w.cpu.map(|c| c.to_string()).unwrap_or_default();
            f.sample(&[("worker", id), ("cpu", &cpu)], 1u64);
        }
    }
    type Pick = fn(&Traffic) -> u64;
    let packets: Pick = |t| t.packets;
    let bytes: Pick = |t| t.bytes;
    for (name, help, rx, pick) in [
        (
            "xpptp_worker_received_packets_total",
            "Packets a worker received: upstream GRE from clients of a known call, downstream \
             IPv4 for a known client.",
            true,
            packets,
        ),
        (
            "xpptp_worker_received_bytes_total",
            "Bytes (whole frames) a worker received, as xpptp_worker_received_packets_total.",
            true,
            bytes,
        ),
        (
            "xpptp_worker_sent_packets_total",
            "Packets a worker sent: upstream inner IPv4 forwarded, downstream GRE to clients.",
            false,
            packets,
        ),
        (
            "xpptp_worker_sent_bytes_total",
            "Bytes a worker sent (upstream: inner packets with their new link-layer header; \
             downstream: whole frames).",
            false,
            bytes,
        ),
    ] {
        let mut f = e.family(name, Counter, help);
        for (id, w) in &workers {
            for (direction, d) in [("upstream", &w.upstream), ("downstream", &w.downstream)] {
                let t = if rx { &d.rx } else { &d.tx };
                f.sample(&[("worker", id), ("direction", direction)], pick(t));
            }
        }
    }
    for (name, help, pick) in [
        (
            "xpptp_worker_generated_packets_total",
            "Frames a worker sent besides forwarding, by kind: client_to_client (also in the \
             downstream sent counters), gre_ack (pure acknowledgments), control (the control \
             plane's PPP frames).",
            packets,
        ),
        (
            "xpptp_worker_generated_bytes_total",
            "Bytes (whole frames) of xpptp_worker_generated_packets_total.",
            bytes,
        ),
    ] {
        let mut f = e.family(name, Counter, help);
        for (id, w) in &workers {
            for (kind, t) in [
                ("client_to_client", &w.client_to_client),
                ("gre_ack", &w.acks_sent),
                ("control", &w.control_sent),
            ] {
                f.sample(&[("worker", id), ("kind", kind)], pick(t));
            }
        }
    }
    {
        let mut f = e.family(
            "xpptp_worker_drops_total",
            Counter,
            "Packets a worker dropped, by reason (reasons with no drop yet are absent).",
        );
        for (id, w) in &workers {
            for d in &w.drops {
                f.sample(
                    &[("worker", id), ("reason", &drop_reason_name(d.reason))],
                    d.packets,
                );
            }
        }
    }
    {
        let mut f = e.family(
            "xpptp_worker_events_total",
            Counter,
            "Packets a worker did not forward itself (to the kernel: no_route, \
             next_hop_unresolved, local; to the control plane: to_control; to another \
             worker: handed_off; ...) and next-hop outcomes, by the datapath's name for them.",
        );
        for (id, w) in &workers {
            for ev in &w.events {
                f.sample(&[("worker", id), ("reason", &ev.name)], ev.packets);
            }
        }
    }
    for (name, help, pick) in [
        (
            "xpptp_worker_handed_off_packets_total",
            "Packets a worker handed to the worker owning their stateful call.",
            (|w| w.handed_off) as fn(&xpptp_proto::command::WorkerStats) -> u64,
        ),
        (
            "xpptp_worker_punted_frames_total",
            "PPP control frames a worker punted to the control plane.",
            |w| w.punted,
        ),
        (
            "xpptp_worker_batches_total",
            "Non-empty receive batches a worker processed.",
            |w| w.batches,
        ),
        (
            "xpptp_worker_batch_packets_total",
            "Packets in those batches (mean batch size: this over xpptp_worker_batches_total).",
            |w| w.batch_packets,
        ),
    ] {
        let mut f = e.family(name, Counter, help);
        for (id, w) in &workers {
            f.sample(&[("worker", id)], pick(w));
        }
    }
    {
        let mut f = e.family(
            "xpptp_worker_umem_frames",
            Gauge,
            "A worker's AF_XDP frames by where they are, at its last loop turn: free (in user \
             space), receive (on the fill ring or received and unread), transmit (queued, on \
             the TX ring, or sent and not yet completed). Absent on the socket backend.",
        );
        for (id, w) in &workers {
            for r in &w.rings {
                let ifindex = r.ifindex.to_string();
                for (state, n) in [
                    ("free", r.free),
                    ("receive", r.receive),
                    ("transmit", r.transmit),
                ] {
                    f.sample(
                        &[("worker", id), ("ifindex", &ifindex), ("state", state)],
                        n,
                    );
                }
            }
        }
    }
    {
        let mut f = e.family(
            "xpptp_worker_xsk_kernel_events_total",
            Counter,
            "The kernel's counters of a worker's AF_XDP socket (XDP_STATISTICS, read once a \
             second): rx_dropped, rx_ring_full (the worker was too slow), rx_invalid_descs, \
             tx_invalid_descs, fill_ring_empty, tx_ring_empty.",
        );
        for (id, w) in &workers {
            for r in &w.rings {
                let Some(k) = r.kernel else { continue };
                let ifindex = r.ifindex.to_string();
                for (reason, n) in [
                    ("rx_dropped", k.rx_dropped),
                    ("rx_ring_full", k.rx_ring_full),
                    ("rx_invalid_descs", k.rx_invalid_descs),
                    ("tx_invalid_descs", k.tx_invalid_descs),
                    ("fill_ring_empty", k.rx_fill_ring_empty_descs),
                    ("tx_ring_empty", k.tx_ring_empty_descs),
                ] {
                    f.sample(
                        &[("worker", id), ("ifindex", &ifindex), ("reason", reason)],
                        n,
                    );
                }
            }
        }
    }
    for (name, help, pick) in [
        (
            "xpptp_xdp_packets_total",
            "Packets the XDP program gave each verdict, summed over CPUs (absent on the socket \
             backend).",
            (|v| v.packets) as fn(&xpptp_proto::command::VerdictCount) -> u64,
        ),
        (
            "xpptp_xdp_bytes_total",
            "Bytes (whole frames) of xpptp_xdp_packets_total.",
            |v| v.bytes,
        ),
    ] {
        let mut f = e.family(name, Counter, help);
        for v in &stats.xdp {
            f.sample(&[("verdict", &v.verdict)], pick(v));
        }
    }
}

/// The name the daemon's logs give a refusal reason.
fn refusal_name(reason: RefusalReason) -> String {
    match Refusal::ALL
        .iter()
        .find(|r| crate::api::refusal_reason(**r) == reason)
    {
        Some(r) => r.name().to_owned(),
        None => format!("unknown_{}", u16::from(reason)),
    }
}

/// A drop reason's label.
fn drop_reason_name(reason: DropReason) -> String {
    let name = match reason {
        DropReason::UnknownCall => "unknown_call",
        DropReason::WrongPeer => "wrong_peer",
        DropReason::OutOfWindow => "out_of_window",
        DropReason::Duplicate => "duplicate",
        DropReason::MppeError => "mppe_error",
        DropReason::Malformed => "malformed",
        DropReason::NoRoute => "no_route",
        DropReason::NeighbourUnresolved => "neighbour_unresolved",
        DropReason::RingFull => "ring_full",
        DropReason::HandOffFull => "hand_off_full",
        DropReason::UnknownClient => "unknown_client",
        DropReason::TooBig => "too_big",
        DropReason::PuntQueueFull => "punt_queue_full",
        DropReason::Unknown(n) => return format!("unknown_{n}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xpptp_proto::command::{
        DirectionStats, DropCount, EventCount, RingStats, VerdictCount, WorkerStats, XskKernelStats,
    };
    use xpptp_proto::control_api::{GreStats, RefusalCount};

    fn stats(connected: bool) -> Stats {
        Stats {
            uptime_secs: 100,
            sessions_starting: 1,
            sessions_established: 2,
            sessions_finishing: 0,
            setups_total: 7,
            auth_failures: 3,
            refusals: vec![
                RefusalCount {
                    reason: RefusalReason::SourceRate,
                    count: 4,
                },
                RefusalCount {
                    reason: RefusalReason::Unknown(77),
                    count: 1,
                },
            ],
            gre: GreStats {
                delivered: 9,
                ..GreStats::default()
            },
            datapath_connected: connected,
            workers: vec![WorkerStats {
                worker: 0,
                cpu: None,
                upstream: DirectionStats {
                    rx: Traffic {
                        packets: 5,
                        bytes: 700,
                    },
                    tx: Traffic::default(),
                },
                downstream: DirectionStats::default(),
                drops: vec![DropCount {
                    reason: DropReason::Unknown(300),
                    packets: 2,
                }],
                batches: 1,
                batch_packets: 5,
                handed_off: 0,
                punted: 0,
                client_to_client: Traffic::default(),
                acks_sent: Traffic::default(),
                control_sent: Traffic::default(),
                events: vec![EventCount {
                    name: "no_route".into(),
                    packets: 6,
                }],
                batch_sizes: Vec::new(),
                rings: vec![RingStats {
                    ifindex: 4,
                    frames: 64,
                    free: 2,
                    receive: 60,
                    transmit: 2,
                    kernel: Some(XskKernelStats::default()),
                }],
            }],
            xdp: vec![VerdictCount {
                verdict: "to_worker".into(),
                packets: 5,
                bytes: 700,
            }],
        }
    }

    #[test]
    fn a_golden_snippet() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100);
        let text = render(&stats(true), now);
        for snippet in [
            "# HELP xpptp_sessions Sessions now, by state: starting (PPTP or PPP negotiating), \
             established, finishing.\n\
             # TYPE xpptp_sessions gauge\n\
             xpptp_sessions{state=\"starting\"} 1\n\
             xpptp_sessions{state=\"established\"} 2\n\
             xpptp_sessions{state=\"finishing\"} 0\n",
            "xpptp_start_time_seconds 1700000000\n",
            "xpptp_refusals_total{reason=\"source_rate\"} 4\n\
             xpptp_refusals_total{reason=\"unknown_77\"} 1\n",
            "xpptp_datapath_up 1\n",
            "xpptp_worker_info{worker=\"0\",cpu=\"\"} 1\n",
            "xpptp_worker_received_bytes_total{worker=\"0\",direction=\"upstream\"} 700\n",
            "xpptp_worker_drops_total{worker=\"0\",reason=\"unknown_300\"} 2\n",
            "xpptp_worker_events_total{worker=\"0\",reason=\"no_route\"} 6\n",
            "xpptp_worker_umem_frames{worker=\"0\",ifindex=\"4\",state=\"receive\"} 60\n",
            "xpptp_worker_xsk_kernel_events_total{worker=\"0\",ifindex=\"4\",reason=\"rx_ring_full\"} 0\n",
            "xpptp_xdp_packets_total{verdict=\"to_worker\"} 5\n",
        ] {
            assert!(text.contains(snippet), "{snippet:?} missing from\n{text}");
        }
        // Every family has its HELP and TYPE, once.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
            assert_eq!(
                text.matches(&format!("# HELP {name} ")).count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn the_datapath_series_are_absent_when_it_is_down() {
        let text = render(&stats(false), SystemTime::now());
        assert!(text.contains("xpptp_datapath_up 0\n"), "{text}");
        assert!(!text.contains("xpptp_worker"), "{text}");
        assert!(!text.contains("xpptp_xdp"), "{text}");
        assert!(text.contains("xpptp_session_setups_total 7\n"), "{text}");
    }
}
