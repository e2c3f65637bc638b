//! One traffic run from end to end: upstream, then downstream, each sink started before
//! its sender, the datapath's workers sampled around each direction.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use socket2::Socket;

use super::cost::{self, CostError};
use super::io::{
    FrameOut, SendPlan, SinkStop, TrafficIoError, client_sink, inside_sink, send_downstream,
    send_upstream,
};
use super::report::{Conditions, DirectionReport, TrafficReport};
use super::session::{SessionRx, SessionTx};
use super::verify::RunShape;

/// The datapath whose workers' cost is reported.
#[derive(Debug, Clone)]
pub struct DatapathProbe {
    /// Its command socket.
    pub socket: PathBuf,
    /// Its process (the worker threads are `/proc/PID/task/*` named `xpptp-q*`).
    pub pid: u32,
}

/// The sockets of a run, each opened by the caller in the right namespace.
#[derive(Debug)]
pub struct Upstream<'a> {
    /// Where the clients' frames go out ([`RawIpSender`](super::RawIpSender) or
    /// [`XskSender`](super::XskSender)).
    pub out: &'a mut dyn FrameOut,
    /// The inside host's sink ([`bind_inside`](super::bind_inside)).
    pub sink: &'a UdpSocket,
}

/// The downstream sockets.
#[derive(Debug)]
pub struct Downstream<'a> {
    /// The inside host's sender ([`bind_downstream`](super::bind_downstream)).
    pub socket: &'a UdpSocket,
    /// The clients' raw GRE sink ([`open_gre_sink`](super::open_gre_sink)).
    pub sink: &'a Socket,
}

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Io(#[from] TrafficIoError),
    #[error(transparent)]
    Cost(#[from] CostError),
    #[error("a sink thread panicked")]
    SinkPanicked,
}

/// How long a sink waits for more after the last packet before it reports.
pub const SINK_IDLE: Duration = Duration::from_secs(2);

fn stop(expected: u64, txs: &[SessionTx], plan: &SendPlan) -> SinkStop {
    SinkStop {
        // Duplicates make the arriving count unknowable: an impaired run ends on idleness.
        expected: if plan.impairment.is_active() {
            u64::MAX
        } else {
            expected
        },
        idle: SINK_IDLE,
        shape: RunShape {
            sessions: txs
                .iter()
                .map(|tx| tx.index.saturating_add(1))
                .max()
                .unwrap_or(0),
            packets_per_session: plan.packets_per_session,
        },
    }
}

/// Runs upstream (if given) then downstream (if given) with `plan` over every session,
/// and reports. `conditions` names what the caller set up (backend, bind mode, sender);
/// its sizes, session count, packet count, rate and impairment are filled from `plan`.
pub fn run(
    txs: &mut [SessionTx],
    rxs: &mut [SessionRx],
    plan: &SendPlan,
    upstream: Option<Upstream<'_>>,
    downstream: Option<Downstream<'_>>,
    probe: Option<&DatapathProbe>,
    mut conditions: Conditions,
) -> Result<TrafficReport, RunError> {
    let numbers = txs.len() as u64 * plan.packets_per_session;
    let sink_stop = stop(numbers, txs, plan);
    let sample = || -> Result<Option<cost::CostSample>, CostError> {
        probe.map(|p| cost::sample(&p.socket, p.pid)).transpose()
    };
    let mut up_report = None;
    if let Some(up) = upstream {
        let before = sample()?;
        let (sent, sink) = std::thread::scope(|s| {
            let sink = s.spawn(|| inside_sink(up.sink, sink_stop));
            let sent = send_upstream(txs, up.out, plan);
            (sent, sink.join())
        });
        let sink = sink.map_err(|_| RunError::SinkPanicked)??;
        let mut report = DirectionReport::new(&sent?, &sink, numbers);
        if let (Some(before), Some(after)) = (before, sample()?) {
            report.workers = Some(cost::difference(&before, &after));
        }
        up_report = Some(report);
    }
    let mut down_report = None;
    if let Some(down) = downstream {
        let before = sample()?;
        let (sent, sink) = std::thread::scope(|s| {
            let sink = s.spawn(|| client_sink(down.sink, rxs, sink_stop));
            let sent = send_downstream(down.socket, txs, plan);
            (sent, sink.join())
        });
        let sink = sink.map_err(|_| RunError::SinkPanicked)??;
        let mut report = DirectionReport::new(&sent, &sink, numbers);
        if let (Some(before), Some(after)) = (before, sample()?) {
            report.workers = Some(cost::difference(&before, &after));
        }
        down_report = Some(report);
    }
    conditions.sizes = plan.sizes.name();
    conditions.sessions = txs.len();
    conditions.packets_per_session = plan.packets_per_session;
    conditions.rate_pps = plan.rate_pps;
    conditions.impairment = plan.impairment;
    Ok(TrafficReport {
        conditions,
        upstream: up_report,
        downstream: down_report,
    })
}
