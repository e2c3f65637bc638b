//! What the datapath's workers spent: their packet counters (the command socket's
//! GetWorkerStats) and their threads' CPU time (`/proc/PID/task/TID/schedstat`, in
//! nanoseconds), sampled before and after a run.

use std::path::Path;

use serde::Serialize;
use thiserror::Error;
use xpptp_datapath::command::client::{Client, ClientError};
use xpptp_proto::command::{Message, WorkerStats};

/// Thread name prefix of the datapath's workers (`xpptp-q{queue}`, datapath/src/worker).
pub const WORKER_THREAD_PREFIX: &str = "xpptp-q";

#[derive(Debug, Error)]
pub enum CostError {
    #[error("datapath command socket: {0}; is the datapath running, and is the path right?")]
    Client(#[from] ClientError),
    #[error("the datapath answered GetWorkerStats with {0}")]
    Unexpected(String),
    #[error("cannot read the datapath's threads in /proc/{pid}/task: {source}")]
    Proc {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// One sample of the datapath's workers.
#[derive(Debug, Clone, Default)]
pub struct CostSample {
    /// Per worker: (index, packets received both ways).
    pub packets: Vec<(u16, u64)>,
    /// Per worker thread: (queue from the thread name, CPU ns).
    pub cpu_ns: Vec<(u16, u64)>,
}

/// Packets a worker processed: what it received from the clients and from the inside.
fn worker_packets(w: &WorkerStats) -> u64 {
    w.upstream.rx.packets + w.downstream.rx.packets
}

/// Asks the datapath at `socket` for its worker counters.
pub fn worker_stats(socket: &Path) -> Result<Vec<WorkerStats>, CostError> {
    let (mut client, _) = Client::connect(socket, "xpptp-bench traffic", false)?;
    match client.request(Message::GetWorkerStats)? {
        Message::WorkerStats(reply) => Ok(reply.workers),
        other => Err(CostError::Unexpected(format!("{other:?}"))),
    }
}

/// CPU nanoseconds of each worker thread of process `pid`.
pub fn worker_cpu_ns(pid: u32) -> Result<Vec<(u16, u64)>, CostError> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|source| CostError::Proc { pid, source })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let Some(queue) = comm
            .trim()
            .strip_prefix(WORKER_THREAD_PREFIX)
            .and_then(|q| q.parse::<u16>().ok())
        else {
            continue;
        };
        // schedstat: on-CPU ns, wait ns, timeslices.
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        out.push((queue, ns));
    }
    out.sort_unstable();
    Ok(out)
}

/// Samples the datapath (command socket `socket`, process `pid`).
pub fn sample(socket: &Path, pid: u32) -> Result<CostSample, CostError> {
    let packets = worker_stats(socket)?
        .iter()
        .map(|w| (w.worker, worker_packets(w)))
        .collect();
    Ok(CostSample {
        packets,
        cpu_ns: worker_cpu_ns(pid)?,
    })
}

/// One worker's cost over a run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerCost {
    pub worker: u16,
    pub packets: u64,
    pub cpu_ns: u64,
    /// `cpu_ns / packets`; None when it processed none.
    pub ns_per_packet: Option<f64>,
}

/// Every worker's cost and the total.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub workers: Vec<WorkerCost>,
    pub packets: u64,
    pub cpu_ns: u64,
    pub ns_per_packet: Option<f64>,
}

fn per_packet(ns: u64, packets: u64) -> Option<f64> {
    (packets > 0).then(|| ns as f64 / packets as f64)
}

/// The difference of two samples.
pub fn difference(before: &CostSample, after: &CostSample) -> CostReport {
    let find =
        |list: &[(u16, u64)], w: u16| list.iter().find(|(i, _)| *i == w).map_or(0, |(_, v)| *v);
    let workers: Vec<WorkerCost> = after
        .packets
        .iter()
        .map(|&(w, p)| {
            let packets = p.saturating_sub(find(&before.packets, w));
            let cpu_ns = find(&after.cpu_ns, w).saturating_sub(find(&before.cpu_ns, w));
            WorkerCost {
                worker: w,
                packets,
                cpu_ns,
                ns_per_packet: per_packet(cpu_ns, packets),
            }
        })
        .collect();
    let packets = workers.iter().map(|w| w.packets).sum();
    let cpu_ns = workers.iter().map(|w| w.cpu_ns).sum();
    CostReport {
        workers,
        packets,
        cpu_ns,
        ns_per_packet: per_packet(cpu_ns, packets),
    }
}
