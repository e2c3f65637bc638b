//! One scenario on the [test bed](crate::topology): dial emulated clients from the
//! clients' namespace, then drive verified traffic through their sessions both ways and
//! read what the datapath's workers spent on it.
//!
//! The emulator runs on its own thread and tokio runtime, created inside the clients'
//! namespace so that every socket it opens (TCP 1723, the raw GRE socket) lives there;
//! the sessions stay up (LCP echoes answered) until [`Dialled::hang_up`]. The traffic
//! engine shares each session's GRE numbering and MPPE state with the emulator
//! ([`TrafficSession::shared`]), so data and control frames are numbered as one client's.

use std::net::SocketAddrV4;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use xpptp_datapath::xsk::{BindMode, XskConfig};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::MppeStrength;

use crate::emulator::cli::DialProgressView;
use crate::emulator::{DialConfig, DialReport, DialledSession, Emulator, HangUpReport};
use crate::netns::in_netns;
use crate::topology::{self, Backend, Topology};
use crate::traffic::io::FrameOut;
use crate::traffic::run::{self, DatapathProbe, Downstream, Upstream};
use crate::traffic::session::UPSTREAM_PORT;
use crate::traffic::{
    Conditions, Impairment, L2Addresses, RawIpSender, SendPlan, SizeMix, TrafficReport,
    TrafficSession, XskSender, bind_downstream, bind_inside, open_gre_sink, open_raw_ip,
};

/// How often a waiting caller looks at the interrupt flag.
const POLL: Duration = Duration::from_millis(200);

/// The emulated clients of a scenario, up until [`Dialled::hang_up`] (or drop, which asks
/// the emulator to hang up without waiting for it).
#[derive(Debug)]
pub struct Dialled {
    sessions: Vec<DialledSession>,
    /// The dial phase's figures.
    pub report: DialReport,
    hang_up: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<HangUpReport>>,
}

type DialOutcome = anyhow::Result<(Vec<DialledSession>, DialReport)>;

/// Dials `config.clients` clients from `topology`'s clients' namespace, showing progress
/// on stderr. Returns early with an error when `interrupted` is set.
pub fn dial(
    topology: &Topology,
    config: DialConfig,
    interrupted: &AtomicBool,
) -> anyhow::Result<Dialled> {
    let netns = topology.clients_netns.clone();
    let (tx, rx) = mpsc::channel::<DialOutcome>();
    let (hang_up, hang_up_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("emulator".into())
        .spawn(move || emulator_thread(&netns, config, &tx, hang_up_rx))
        .context("cannot start the emulator's thread")?;
    loop {
        if interrupted.load(Ordering::Relaxed) {
            bail!("interrupted while dialling");
        }
        match rx.recv_timeout(POLL) {
            Ok(Ok((sessions, report))) => {
                return Ok(Dialled {
                    sessions,
                    report,
                    hang_up: Some(hang_up),
                    thread: Some(thread),
                });
            }
            Ok(Err(err)) => return Err(err),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the emulator's thread ended without a result")
            }
        }
    }
}

fn emulator_thread(
    netns: &str,
    config: DialConfig,
    tx: &mpsc::Sender<DialOutcome>,
    hang_up: tokio::sync::oneshot::Receiver<()>,
) -> HangUpReport {
    let started = enter(netns).and_then(|()| {
        // Built on this thread, after setns: the runtime's threads inherit the namespace.
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the emulator's async runtime")
    });
    let runtime = match started {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = tx.send(Err(err));
            return HangUpReport::default();
        }
    };
    runtime.block_on(async move {
        let mut progress = DialProgressView::new(config.clients);
        let dialled = Emulator::dial(config, |p| progress.update(p)).await;
        progress.finish();
        match dialled {
            Ok(emulator) => {
                let _ = tx.send(Ok((
                    emulator.sessions().to_vec(),
                    emulator.report().clone(),
                )));
                // Either an explicit hang-up or the caller gone: hang up either way.
                let _ = hang_up.await;
                emulator.hang_up_all().await
            }
            Err(err) => {
                let _ = tx.send(Err(anyhow!(err).context("the emulator could not dial")));
                HangUpReport::default()
            }
        }
    })
}

/// Moves the calling thread into network namespace `netns`.
fn enter(netns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{netns}");
    let file = std::fs::File::open(&path)
        .with_context(|| format!("network namespace {netns}: cannot open {path}"))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("cannot enter network namespace {netns} (root?)"))
}

impl Dialled {
    /// The established sessions.
    pub fn sessions(&self) -> &[DialledSession] {
        &self.sessions
    }

    /// Hangs every client up (Call-Clear-Request, Stop-Control-Connection) and waits.
    pub fn hang_up(mut self) -> anyhow::Result<HangUpReport> {
        if let Some(hang_up) = self.hang_up.take() {
            let _ = hang_up.send(());
        }
        let thread = self
            .thread
            .take()
            .ok_or_else(|| anyhow!("already hung up"))?;
        thread
            .join()
            .map_err(|_| anyhow!("the emulator's thread panicked"))
    }
}

impl Drop for Dialled {
    fn drop(&mut self) {
        if let Some(hang_up) = self.hang_up.take() {
            let _ = hang_up.send(());
        }
    }
}

/// How the clients' upstream frames leave the clients' namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SenderKind {
    /// sendmmsg(2) on a raw IPv4 socket (the kernel adds the Ethernet header).
    Sendmmsg,
    /// AF_XDP TX on the clients' veth (copy mode), whole frames.
    AfXdp,
}

/// The traffic of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct TrafficSpec {
    /// Packet sizes (inner IPv4 length).
    pub sizes: SizeMix,
    /// Packets per session and direction.
    pub packets_per_session: u64,
    /// Packets per second offered over all sessions, each direction.
    pub rate_pps: u64,
    /// Upstream sender.
    pub sender: SenderKind,
    /// Send upstream.
    pub upstream: bool,
    /// Send downstream.
    pub downstream: bool,
}

/// Runs `spec`'s traffic over every dialled session: upstream from the clients to the
/// inside host, then downstream from the inside host to the clients, every packet
/// verified, the datapath's workers sampled around each direction.
pub fn traffic(
    topology: &Topology,
    dialled: &Dialled,
    spec: &TrafficSpec,
    backend: Backend,
) -> anyhow::Result<TrafficReport> {
    if dialled.sessions.is_empty() {
        bail!("no session is up: nothing to carry traffic");
    }
    let l2 = L2Addresses {
        client_mac: topology::CLIENTS_MAC,
        server_mac: topology::SERVER_MAC,
    };
    let (mut txs, mut rxs): (Vec<_>, Vec<_>) = dialled
        .sessions
        .iter()
        .map(|s| {
            let session = TrafficSession::shared(
                s.index,
                Arc::clone(&s.call),
                s.established.client_tunnel_address,
                s.server,
                l2,
                topology::INSIDE_HOST,
            );
            session.check_sizes(spec.sizes)?;
            Ok((session.tx, session.rx))
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let clients = Some(topology.clients_netns.as_str());
    let inside_ns = Some(topology.inside_netns.as_str());
    let inside = in_netns(inside_ns, || {
        Ok(bind_inside(SocketAddrV4::new(
            topology::INSIDE_HOST,
            UPSTREAM_PORT,
        ))?)
    })?;
    let udp = in_netns(inside_ns, || Ok(bind_downstream(topology::INSIDE_HOST)?))?;
    let gre = in_netns(clients, || Ok(open_gre_sink()?))?;
    let mut out: Box<dyn FrameOut> = match spec.sender {
        SenderKind::Sendmmsg => {
            Box::new(RawIpSender::new(in_netns(clients, || Ok(open_raw_ip()?))?))
        }
        SenderKind::AfXdp => {
            let config = XskConfig {
                mode: BindMode::Copy,
                ..XskConfig::default()
            };
            Box::new(in_netns(clients, || {
                Ok(XskSender::open(topology::CLIENTS_INTERFACE, config)?)
            })?)
        }
    };
    let probe = topology.datapath_pid().map(|pid| DatapathProbe {
        socket: topology.datapath_socket(),
        pid,
    });
    let plan = SendPlan {
        packets_per_session: spec.packets_per_session,
        rate_pps: spec.rate_pps,
        batch: 32,
        sizes: spec.sizes,
        impairment: Impairment::default(),
    };
    let mppe = match dialled
        .sessions
        .first()
        .and_then(|s| s.established.transmit)
    {
        Some(keys) => {
            let bits = match keys.strength {
                MppeStrength::Bits40 => 40,
                MppeStrength::Bits56 => 56,
                MppeStrength::Bits128 => 128,
            };
            let mode = if keys.mode == MppeMode::Stateless {
                "stateless"
            } else {
                "stateful"
            };
            format!("{bits}-{mode}")
        }
        None => "none".into(),
    };
    let (bind_mode, sender) = match (backend, spec.sender) {
        (Backend::Xdp, SenderKind::Sendmmsg) => ("copy", "sendmmsg"),
        (Backend::Xdp, SenderKind::AfXdp) => ("copy", "af_xdp"),
        (Backend::Socket, SenderKind::Sendmmsg) => ("n/a", "sendmmsg"),
        (Backend::Socket, SenderKind::AfXdp) => ("n/a", "af_xdp"),
    };
    let report = run::run(
        &mut txs,
        &mut rxs,
        &plan,
        spec.upstream.then_some(Upstream {
            out: out.as_mut(),
            sink: &inside,
        }),
        spec.downstream.then_some(Downstream {
            socket: &udp,
            sink: &gre,
        }),
        probe.as_ref(),
        Conditions::new(&mppe, backend.as_str(), bind_mode, sender),
    )?;
    Ok(report)
}
