//! The daemon: TCP 1723, one task per control connection, the raw GRE socket, the
//! datapath connection, and shutdown.
//!
//! # A session's life here
//!
//! 1. [`Daemon::run_until`] accepts a TCP connection and spawns its task
//!    (`connection.rs`), which runs proto's server [`Connection`]. On the peer's
//!    Outgoing-Call-Request the task takes a local Call ID from the shared [`CallIds`]
//!    (unique among live calls, random start) and accepts the call.
//! 2. The call's [`Session`] (proto) negotiates PPP over GRE: the task sends through the
//!    shared [`GreSocket`] and receives what its receive task routes by Call ID (from the
//!    call's peer only). The user's secret comes from the [`SecretSource`] (the link's
//!    lookup answers `Pending`; the task looks up and calls `provide_secret`), the
//!    client's address from the [`AddressSource`] once the user is authenticated.
//! 3. On `Established` the task hands the GRE numbering over, pushes the call to the
//!    datapath ([`DatapathClient::establish`]) and from then on sends the session's PPP
//!    frames through the datapath (`send_ppp`) and feeds it the frames the datapath punts.
//! 4. Whatever ends the session (peer's CCRQ, LCP Terminate, TCP loss, echo failure,
//!    session timeout, [`DaemonHandle::terminate`], shutdown), the task removes the call
//!    from the datapath, sends Call-Disconnect-Notify and Stop-Control-Connection-Request
//!    (one call per control connection, as Poptop), and then releases the address and the
//!    Call ID, in that order.
//!
//! Shutdown ([`run`]: SIGTERM or SIGINT) closes every session with [`Cause::Shutdown`] (LCP
//! Terminate, CDN, StopCCRQ), waits for them at most [`Settings::shutdown_timeout`], then
//! removes from the datapath whatever is left and exits.

mod admission;
mod call_ids;
mod connection;
mod gre;
mod idle;
mod sources;

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use xpptp_proto::control_api::Negotiated;
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::ppp::auth::{self, AuthPolicy};
use xpptp_proto::ppp::ccp::MppePolicy;
use xpptp_proto::ppp::fsm::FsmConfig;
use xpptp_proto::ppp::ipcp::{IpcpServerConfig, NameServers};
use xpptp_proto::ppp::lcp::LcpConfig;
use xpptp_proto::ppp::link::ServerConfig;
use xpptp_proto::pptp::control;
use xpptp_proto::session::Cause;

use admission::Admission;
pub use admission::{Refusal, RefusalCounts};
pub use call_ids::{CallIdLease, CallIds};
pub use gre::GreCounters;
use gre::GreSocket;
pub use sources::{
    AddressSource, ChapSecrets, ReloadSummary, SecretSource, SharedPool, UserSecret,
};

use crate::api::ControlServer;
use crate::config::{Config, Limits};
use crate::datapath::{DatapathClient, DatapathEvent};
use crate::metrics::MetricsServer;

pub use crate::config::DEFAULT_DATAPATH_SOCKET;
/// How often the datapath's call counters are read for the idle timeout, at most.
pub const DEFAULT_IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Everything the daemon needs from the configuration, in proto's types.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TCP address and port to listen on (pptpd `listen`; port 1723). Its address, when
    /// not 0.0.0.0, is also the local address of the raw GRE socket.
    pub listen: SocketAddrV4,
    /// Our end of every tunnel, sent in IPCP (pptpd `localip`); `None` sends none.
    pub local_tunnel_address: Option<Ipv4Addr>,
    /// The PPTP control connection: echo interval and timeout (RFC 2637 keepalive), start,
    /// stop and call timeouts (pptpd `stimeout`), what we announce. `max_calls` is forced
    /// to 1: one call per control connection, as every real client dials.
    pub control: control::Config,
    /// LCP: MRU, LCP echo interval and failures (pppd `lcp-echo-interval`,
    /// `lcp-echo-failure`), restart timers.
    pub lcp: LcpConfig,
    /// Authentication methods the peer may use (pppd `require-*`, `refuse-*`).
    pub auth: AuthPolicy,
    /// The authenticator: our pppd `name`, retries, timeout, messages.
    pub authenticator: auth::ServerConfig,
    /// DNS and WINS servers given to clients (pppd `ms-dns`, `ms-wins`).
    pub name_servers: NameServers,
    /// MPPE policy (pppd `require-mppe-128`, `mppe-stateful`, ...).
    pub mppe: MppePolicy,
    /// IPCP and CCP timers and counters.
    pub ncp_fsm: FsmConfig,
    /// End a session after this long (pppd `maxconnect`); `None`: no limit.
    pub session_timeout: Option<Duration>,
    /// End a session whose datapath packet counters have not moved for this long (pppd
    /// `idle`); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How often the datapath's per-call counters are read for the idle timeout.
    pub idle_check_interval: Duration,
    /// Admission and abuse limits (sessions, sessions being set up, connection rate per
    /// source, one session per user, authentication back-off). The start timeout is
    /// `control.start_timeout`.
    pub limits: Limits,
    /// The datapath's command socket.
    pub datapath_socket: PathBuf,
    /// The control socket for the `xpptp` tool ([`crate::api`]); `None`: none.
    pub control_socket: Option<PathBuf>,
    /// On shutdown, wait at most this long for sessions to close cleanly.
    pub shutdown_timeout: Duration,
    /// Where to serve Prometheus metrics ([`crate::metrics`]); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// The stateful MPPE scheme for a peer announcing `vendor` (see [`Settings::link_config`]).
pub fn stateful_scheme(vendor: &[u8]) -> MppeMode {
    const LINUX_VENDORS: [&[u8]; 1] = [b"cananian"];
    if LINUX_VENDORS.iter().any(|v| vendor.eq_ignore_ascii_case(v)) {
        MppeMode::StatefulLinux
    } else {
        MppeMode::Stateful
    }
}

impl Default for Settings {
    /// Poptop's defaults: port 1723 on every address, MS-CHAPv2 with MPPE-128 required.
    fn default() -> Settings {
        let link = ServerConfig::default();
        Settings {
            listen: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1723),
            local_tunnel_address: None,
            control: control::Config::default(),
            lcp: link.lcp,
            auth: link.auth,
            authenticator: link.authenticator,
            name_servers: NameServers::default(),
            mppe: link.mppe,
            ncp_fsm: link.ncp_fsm,
            session_timeout: None,
            idle_timeout: None,
            idle_check_interval: DEFAULT_IDLE_CHECK_INTERVAL,
            limits: Limits::default(),
            datapath_socket: PathBuf::from(DEFAULT_DATAPATH_SOCKET),
            control_socket: None,
            shutdown_timeout: Duration::from_secs(10),
            metrics_listen: None,
        }
    }
}

impl Settings {
    /// The daemon's settings from the configuration.
    pub fn from_config(config: &Config) -> Result<Settings, DaemonError> {
        let SocketAddr::V4(listen) = config.listen else {
            return Err(DaemonError::Ipv6Listen(config.listen));
        };
        let local = config.addresses.local.first().copied();
        if config.addresses.local.len() > 1 {
            tracing::warn!(
                locals = config.addresses.local.len(),
                "a list of local addresses is not paired with the pool yet: every session \
                 uses the first one ({})",
                local.map(|l| l.to_string()).unwrap_or_default()
            );
        }
        let link = config.link_config(local.unwrap_or(Ipv4Addr::UNSPECIFIED));
        Ok(Settings {
            listen,
            local_tunnel_address: local,
            control: config.pptp_config(),
            lcp: link.lcp,
            auth: link.auth,
            authenticator: link.authenticator,
            name_servers: link.ipcp.name_servers,
            mppe: link.mppe,
            ncp_fsm: link.ncp_fsm,
            session_timeout: config.timeouts.session,
            idle_timeout: config.timeouts.idle,
            idle_check_interval: config
                .timeouts
                .idle
                .map_or(DEFAULT_IDLE_CHECK_INTERVAL, |idle| {
                    (idle / 2).clamp(Duration::from_secs(1), DEFAULT_IDLE_CHECK_INTERVAL)
                }),
            limits: config.limits,
            datapath_socket: config.datapath_socket.clone(),
            control_socket: Some(config.control_socket.clone()),
            shutdown_timeout: Settings::default().shutdown_timeout,
            metrics_listen: config.metrics,
        })
    }

    /// The PPP link settings of one session with a peer whose PPTP software announced
    /// itself as `vendor` (SCCRQ Vendor String).
    ///
    /// Stateful MPPE comes in two schemes that CCP cannot tell apart: RFC 3078's (Windows,
    /// RouterOS) and Linux ppp_mppe's, which also changes the key on every flushed packet.
    /// Sending the wrong one garbles every packet after the first flush, so the scheme is
    /// picked per call from the peer's PPTP vendor string: pptp-linux (the Linux client,
    /// also under NetworkManager) announces "cananian", its author's name.
    pub fn link_config(&self, vendor: &[u8]) -> ServerConfig {
        let mut mppe = self.mppe;
        mppe.stateful_mode = stateful_scheme(vendor);
        ServerConfig {
            lcp: self.lcp.clone(),
            auth: self.auth,
            authenticator: self.authenticator.clone(),
            ipcp: IpcpServerConfig {
                local_address: self.local_tunnel_address,
                name_servers: self.name_servers,
            },
            mppe,
            ncp_fsm: self.ncp_fsm,
        }
    }

    /// The control connection settings (one call per connection).
    pub fn control_config(&self) -> control::Config {
        control::Config {
            max_calls: 1,
            ..self.control.clone()
        }
    }
}

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The TCP listener could not be opened.
    #[error(
        "cannot listen on {address}: {source}; is another PPTP server (pptpd) running, or is the address not local?"
    )]
    Listen {
        /// The address.
        address: SocketAddrV4,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration asks for an IPv6 listener.
    #[error(
        "cannot listen on {0}: PPTP here is IPv4 only; give an IPv4 address (listen in \
         pptpd.conf or xpptp.toml)"
    )]
    Ipv6Listen(SocketAddr),
    /// The raw GRE socket could not be opened.
    #[error("{0}")]
    GreSocket(#[source] std::io::Error),
    /// The control socket could not be opened.
    #[error("{0}")]
    ControlSocket(#[source] crate::api::ListenError),
    /// The metrics listener could not be opened.
    #[error(
        "cannot serve metrics on {address}: {source}; is the port in use, or the address not \
         local? (set [metrics] listen or --metrics-listen to another)"
    )]
    MetricsListen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The raw GRE socket failed while running.
    #[error("GRE socket failed: {0}")]
    GreReceive(#[source] std::io::Error),
    /// The tokio runtime or a signal handler could not be set up.
    #[error("cannot set up the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What a session task receives besides TCP.
#[derive(Debug)]
pub(crate) enum CallInput {
    /// A GRE packet of the call (before the hand-over).
    Gre(Vec<u8>),
    /// A PPP control frame the datapath punted (after the hand-over).
    Ppp(Vec<u8>),
    /// The datapath's stateful MPPE receiver lost sync.
    ResetRequestNeeded,
    /// End the session (operator).
    Terminate(Cause),
}

/// A live call as the rest of the daemon sees it.
#[derive(Debug, Clone)]
struct CallEntry {
    input: mpsc::Sender<CallInput>,
    info: SessionInfo,
}

/// Where a session is in its life (for listings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPhase {
    /// Call accepted, PPP negotiating.
    Starting,
    /// Handed over to the datapath.
    Established,
    /// Ending (terminate asked, peer hung up, timeout, shutdown).
    Finishing,
}

/// A session, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Our Call ID.
    pub local_call_id: u16,
    /// The peer's Call ID.
    pub peer_call_id: u16,
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// Where it is.
    pub phase: SessionPhase,
    /// The user, once it has given a name.
    pub user: Option<Vec<u8>>,
    /// When the call was accepted.
    pub started: std::time::Instant,
    /// The PPTP vendor string the peer announced.
    pub peer_vendor: String,
    /// What was negotiated, once established (no keys).
    pub negotiated: Option<Negotiated>,
}

/// Control-plane counters since the daemon started (the control socket's `GetStats`).
#[derive(Debug, Default)]
pub struct DaemonCounters {
    /// Sessions that reached established (renegotiations not counted).
    pub setups: AtomicU64,
    /// Sessions that ended in an authentication failure.
    pub auth_failures: AtomicU64,
}

/// State every task shares.
struct Shared {
    settings: Settings,
    secrets: Arc<dyn SecretSource>,
    pool: Arc<dyn AddressSource>,
    call_ids: Arc<CallIds>,
    admission: Arc<Admission>,
    gre: Arc<GreSocket>,
    datapath: DatapathClient,
    calls: Mutex<HashMap<u16, CallEntry>>,
    counters: DaemonCounters,
    started: std::time::Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("listen", &self.settings.listen)
            .field("calls", &self.calls().len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn calls(&self) -> MutexGuard<'_, HashMap<u16, CallEntry>> {
        // Single inserts and removes: a poisoned map is consistent.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Updates the listing of call `id`, if it is live.
    fn update_info(&self, id: u16, update: impl FnOnce(&mut SessionInfo)) {
        if let Some(entry) = self.calls().get_mut(&id) {
            update(&mut entry.info);
        }
    }
}

/// A running daemon's controls (for the CLI socket and tests); cheap to clone.
#[derive(Debug, Clone)]
pub struct DaemonHandle {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl DaemonHandle {
    /// The live sessions.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions: Vec<_> = self
            .shared
            .calls()
            .values()
            .map(|c| c.info.clone())
            .collect();
        sessions.sort_by_key(|s| s.local_call_id);
        sessions
    }

    /// Ends the session with this local Call ID ([`Cause::OperatorTerminate`]); `false`
    /// if there is none.
    pub fn terminate(&self, local_call_id: u16) -> bool {
        let input = self
            .shared
            .calls()
            .get(&local_call_id)
            .map(|c| c.input.clone());
        input.is_some_and(|input| {
            input
                .try_send(CallInput::Terminate(Cause::OperatorTerminate))
                .is_ok()
        })
    }

    /// Starts a graceful shutdown ([`Daemon::run_until`] then returns).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// The datapath connection.
    pub fn datapath(&self) -> &DatapathClient {
        &self.shared.datapath
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> RefusalCounts {
        self.shared.admission.refusals().snapshot()
    }

    /// The GRE receive counters.
    pub fn gre_counters(&self) -> &GreCounters {
        self.shared.gre.counters()
    }

    /// Set-ups and authentication failures so far.
    pub fn counters(&self) -> &DaemonCounters {
        &self.shared.counters
    }

    /// When the daemon was bound.
    pub fn started(&self) -> std::time::Instant {
        self.shared.started
    }
}

/// A bound daemon, not yet serving.
#[derive(Debug)]
pub struct Daemon {
    handle: DaemonHandle,
    listener: TcpListener,
    events: mpsc::Receiver<DatapathEvent>,
    control: Option<ControlServer>,
    metrics: Option<MetricsServer>,
}

impl Daemon {
    /// Opens the listener and the GRE socket and starts the datapath connection (on the
    /// current tokio runtime).
    pub async fn bind(
        settings: Settings,
        secrets: Arc<dyn SecretSource>,
        pool: Arc<dyn AddressSource>,
    ) -> Result<Daemon, DaemonError> {
        let listener = TcpListener::bind(SocketAddr::V4(settings.listen))
            .await
            .map_err(|source| DaemonError::Listen {
                address: settings.listen,
                source,
            })?;
        let gre = GreSocket::open(*settings.listen.ip()).map_err(DaemonError::GreSocket)?;
        let control = match &settings.control_socket {
            Some(path) => Some(
                ControlServer::bind(path)
                    .await
                    .map_err(DaemonError::ControlSocket)?,
            ),
            None => None,
        };
        let metrics = match settings.metrics_listen {
            Some(address) => Some(
                MetricsServer::bind(address)
                    .await
                    .map_err(|source| DaemonError::MetricsListen { address, source })?,
            ),
            None => None,
        };
        let (datapath, events) = DatapathClient::start(&settings.datapath_socket);
        let admission = Admission::new(settings.limits);
        let shared = Arc::new(Shared {
            settings,
            secrets,
            pool,
            call_ids: CallIds::new(),
            admission,
            gre,
            datapath,
            calls: Mutex::new(HashMap::new()),
            counters: DaemonCounters::default(),
            started: std::time::Instant::now(),
        });
        Ok(Daemon {
            handle: DaemonHandle {
                shared,
                shutdown: watch::channel(false).0,
            },
            listener,
            events,
            control,
            metrics,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address the metrics endpoint is bound to, if it serves.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(MetricsServer::local_addr)
    }

    /// A handle on the daemon.
    pub fn handle(&self) -> DaemonHandle {
        self.handle.clone()
    }

    /// Serves until `stop` completes or [`DaemonHandle::shutdown`] is called, then shuts
    /// down gracefully.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let Daemon {
            handle,
            listener,
            events,
            control,
            metrics,
        } = self;
        let shared = Arc::clone(&handle.shared);
        let mut background = JoinSet::new();
        if let Some(control) = control {
            // Dropped (and its file removed) when the background tasks are shut down.
            background.spawn(control.serve(handle.clone()));
        }
        if let Some(metrics) = metrics {
            background.spawn(metrics.serve(handle.clone()));
        }
        background.spawn(dispatch_datapath_events(Arc::clone(&shared), events));
        if let Some(idle) = shared.settings.idle_timeout {
            background.spawn(end_idle_sessions(Arc::clone(&shared), idle));
        }
        let mut gre_task = tokio::spawn(Arc::clone(&shared.gre).receive_loop());
        let mut sessions = JoinSet::new();
        let mut shutdown = handle.shutdown.subscribe();
        tokio::pin!(stop);
        tracing::info!(listen = %shared.settings.listen, "xpptp-control serving");
        let result = loop {
            tokio::select! {
                () = &mut stop => break Ok(()),
                _ = shutdown.wait_for(|stop| *stop) => break Ok(()),
                gre = &mut gre_task => break Err(match gre {
                    Ok(Err(error)) => DaemonError::GreReceive(error),
                    Ok(Ok(())) => DaemonError::GreReceive(std::io::ErrorKind::UnexpectedEof.into()),
                    Err(join) => DaemonError::GreReceive(std::io::Error::other(join)),
                }),
                accepted = listener.accept() => match accepted {
                    Ok((stream, SocketAddr::V4(peer))) => {
                        match shared.admission.admit_connection(*peer.ip(), std::time::Instant::now()) {
                            Ok(starting) => {
                                sessions.spawn(connection::serve(
                                    Arc::clone(&shared),
                                    stream,
                                    peer,
                                    starting,
                                    handle.shutdown.subscribe(),
                                ));
                            }
                            Err(refused) => {
                                if refused.log {
                                    tracing::warn!(
                                        peer = %peer.ip(),
                                        reason = %refused.reason,
                                        "connection refused"
                                    );
                                }
                                drop(stream);
                            }
                        }
                    }
                    Ok((_, peer)) => tracing::debug!(%peer, "IPv6 peer ignored: PPTP here is IPv4 only"),
                    Err(error) => {
                        // EMFILE and the like: wait a little rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        };
        drop(listener);
        tracing::info!(
            sessions = sessions.len(),
            "shutting down: closing every session"
        );
        handle.shutdown.send_replace(true);
        let wait = async { while sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(shared.settings.shutdown_timeout, wait)
            .await
            .is_err()
        {
            tracing::warn!(
                left = sessions.len(),
                timeout = ?shared.settings.shutdown_timeout,
                "sessions did not close in time; dropping them"
            );
            sessions.shutdown().await;
        }
        for call in shared.datapath.established_calls() {
            if let Err(error) = shared.datapath.remove(call).await {
                tracing::warn!(local_call_id = call, %error, "could not remove a call from the datapath");
            }
        }
        gre_task.abort();
        background.shutdown().await;
        tracing::info!("xpptp-control stopped");
        result
    }
}

/// Routes the datapath's events to the calls' tasks.
async fn dispatch_datapath_events(shared: Arc<Shared>, mut events: mpsc::Receiver<DatapathEvent>) {
    while let Some(event) = events.recv().await {
        let (call, input) = match event {
            DatapathEvent::PppFromPeer(m) => (m.call, CallInput::Ppp(m.frame)),
            DatapathEvent::ResetRequestNeeded(m) => (m.call, CallInput::ResetRequestNeeded),
        };
        let sender = shared.calls().get(&call).map(|c| c.input.clone());
        match sender {
            Some(sender) => {
                if sender.try_send(input).is_err() {
                    tracing::debug!(
                        local_call_id = call,
                        "call input queue full; datapath frame dropped"
                    );
                }
            }
            None => tracing::debug!(local_call_id = call, "datapath frame for no live call"),
        }
    }
}

/// Reads the datapath's call counters every `idle_check_interval` and ends the sessions
/// idle for `idle` ([`Cause::IdleTimeout`]).
async fn end_idle_sessions(shared: Arc<Shared>, idle: Duration) {
    let mut tracker = idle::IdleTracker::new(idle);
    let mut tick = tokio::time::interval(shared.settings.idle_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let calls = match shared.datapath.list_calls().await {
            Ok(calls) => calls,
            Err(error) => {
                tracing::debug!(%error, "no call counters from the datapath this round");
                continue;
            }
        };
        let counters: Vec<(u16, u64)> = calls
            .iter()
            .map(|c| {
                let packets = c.upstream.packets.saturating_add(c.downstream.packets);
                (c.local_call_id, packets)
            })
            .collect();
        for call in tracker.observe(std::time::Instant::now(), &counters) {
            let input = shared.calls().get(&call).map(|c| c.input.clone());
            if let Some(input) = input {
                let _ = input.try_send(CallInput::Terminate(Cause::IdleTimeout));
            }
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT, on a runtime of its own. SIGHUP reloads
/// chap-secrets ([`reload_secrets`]).
pub fn run(
    settings: Settings,
    secrets: Arc<ChapSecrets>,
    pool: Arc<SharedPool>,
) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Runtime)?;
        let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Runtime)?;
        let source: Arc<dyn SecretSource> = Arc::clone(&secrets) as Arc<dyn SecretSource>;
        let addresses: Arc<dyn AddressSource> = Arc::clone(&pool) as Arc<dyn AddressSource>;
        let daemon = Daemon::bind(settings, source, addresses).await?;
        daemon
            .run_until(async {
                loop {
                    tokio::select! {
                        _ = term.recv() => break tracing::info!("SIGTERM received"),
                        _ = int.recv() => break tracing::info!("SIGINT received"),
                        _ = hup.recv() => reload_secrets(&secrets, &pool),
                    }
                }
            })
            .await
    })
}

/// Reads chap-secrets again (SIGHUP) and logs what changed, in counts; sessions keep
/// running. A file that does not load leaves the old table in place.
pub fn reload_secrets(secrets: &ChapSecrets, pool: &SharedPool) {
    let mut warnings = Vec::new();
    match secrets.reload(pool, &mut warnings) {
        Ok(summary) => tracing::info!(
            file = %secrets.path().display(),
            entries = summary.entries,
            entries_before = summary.entries_before,
            users_added = summary.users_added,
            users_removed = summary.users_removed,
            users_changed = summary.users_changed,
            fixed_addresses = summary.fixed_addresses,
            "chap-secrets reloaded"
        ),
        Err(error) => tracing::error!(
            %error,
            "chap-secrets not reloaded; the previous table stays in use"
        ),
    }
    for warning in warnings {
        tracing::warn!(%warning, "chap-secrets");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stateful_scheme_follows_the_peers_pptp_vendor() {
        // pptp-linux's SCCRQ (the reference capture) and Windows' RAS client.
        assert_eq!(stateful_scheme(b"cananian"), MppeMode::StatefulLinux);
        assert_eq!(stateful_scheme(b"Microsoft"), MppeMode::Stateful);
        assert_eq!(stateful_scheme(b""), MppeMode::Stateful);
        let settings = Settings::default();
        assert_eq!(
            settings.link_config(b"cananian").mppe.stateful_mode,
            MppeMode::StatefulLinux
        );
        assert_eq!(
            settings.link_config(b"MikroTik").mppe.stateful_mode,
            MppeMode::Stateful
        );
    }
}
