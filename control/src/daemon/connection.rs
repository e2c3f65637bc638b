//! One control connection's task: proto's server [`Connection`] on the TCP stream and the
//! [`Session`] of its call (one call per connection). See the [daemon docs](super) for
//! the life of a session; this file follows proto's calling order: after every input,
//! drain what the machines want to send, then their events, then re-arm the timer.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use xpptp_proto::command::MppeInfo;
use xpptp_proto::control_api::Negotiated;
use xpptp_proto::ppp::auth::{Lookup, LookupId, SecretAnswer, SecretRequest};
use xpptp_proto::ppp::lcp::LcpNegotiated;
use xpptp_proto::ppp::link::{Link, LinkRandom};
use xpptp_proto::pptp::control::{CallEstablished, CloseCause, Connection, Event};
use xpptp_proto::session::{Cause, Established, Session, SessionEvent, SessionParams};
use xpptp_proto::wire::chap::MsChapErrorCode;
use xpptp_proto::wire::pptp::{ErrorCode, OutgoingCallResult, StopReason};

use super::admission::{Online, Refusal, StartingSlot};
use super::{AddressSource, CallEntry, CallIdLease, CallInput, SessionInfo, SessionPhase, Shared};
use crate::datapath::DatapathError;
use crate::pool::{AddressRule, PoolError};

/// Inputs (GRE, punted frames, commands) waiting for one call's task.
const INPUT_QUEUE: usize = 256;
/// A peer that leaves a control message unread this long (its TCP window closed) is
/// treated as gone: the task must not stall its session's timers behind it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// `N` random octets from the OS.
fn random<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes)
}

/// Text of a user name for logs (names are not secrets; they may not be UTF-8).
fn user_text(user: Option<&[u8]>) -> String {
    user.map(|u| String::from_utf8_lossy(u).into_owned())
        .unwrap_or_default()
}

/// Marks a session's listing as ending.
fn finishing(info: &mut SessionInfo) {
    info.phase = SessionPhase::Finishing;
}

/// What a session negotiated, for the control socket (no keys).
fn negotiated(established: &Established, lcp: Option<&LcpNegotiated>) -> Negotiated {
    let mppe = |state: Option<xpptp_proto::session::MppeKeyState>| {
        state.map(|s| MppeInfo {
            strength: s.strength,
            mode: s.mode,
        })
    };
    let names = established.name_servers;
    Negotiated {
        peer_mru: established.peer_mru,
        our_mru: established.our_mru,
        mtu: established.mtu,
        our_magic: lcp.map_or(0, |l| l.our_magic),
        peer_magic: lcp.map_or(0, |l| l.peer_magic),
        acfc: established.acfc,
        pfc: established.pfc,
        auth_method: established.auth_method.map(Into::into),
        server_tunnel_address: established.server_tunnel_address,
        client_tunnel_address: established.client_tunnel_address,
        primary_dns: names.primary_dns,
        secondary_dns: names.secondary_dns,
        primary_nbns: names.primary_nbns,
        secondary_nbns: names.secondary_nbns,
        transmit: mppe(established.transmit),
        receive: mppe(established.receive),
        peer_recv_window: established.peer_recv_window,
    }
}

/// A client address from the pool, given back on drop.
struct AddressLease {
    peer: Ipv4Addr,
    pool: Arc<dyn AddressSource>,
}

impl Drop for AddressLease {
    fn drop(&mut self) {
        self.pool.release(self.peer);
    }
}

/// What the link's secret lookup and address assigner share with the task.
#[derive(Default)]
struct AuthShared {
    /// Lookups the link asked for: (id, user, our server name).
    pending: Vec<(LookupId, Vec<u8>, Vec<u8>)>,
    /// The user last looked up (the one being authenticated) and the addresses it may
    /// have (`None`: unknown user).
    user: Option<Vec<u8>>,
    rule: Option<AddressRule>,
    /// The client's address, once assigned.
    address: Option<AddressLease>,
    /// Why no address could be assigned.
    alloc_error: Option<PoolError>,
    /// The admission limits refused the user before its password was checked: the
    /// failure is not the user's, it does not extend a back-off.
    refused: bool,
}

fn lock(shared: &Mutex<AuthShared>) -> MutexGuard<'_, AuthShared> {
    // Every critical section leaves the fields consistent on its own.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connection's call.
struct Call {
    lease: CallIdLease,
    peer_call_id: u16,
    session: Session,
    auth: Arc<Mutex<AuthShared>>,
    /// Pushed to the datapath (to be removed from it at the end).
    pushed: bool,
    /// [`Settings::session_timeout`](super::Settings::session_timeout)'s deadline.
    session_deadline: Option<Instant>,
    /// The user, once authenticated and admitted (one-session-per-user bookkeeping).
    online: Option<Vec<u8>>,
}

impl Call {
    fn id(&self) -> u16 {
        self.lease.id()
    }

    fn user(&self) -> String {
        user_text(
            self.session
                .link()
                .user()
                .or(lock(&self.auth).user.as_deref()),
        )
    }
}

struct Task {
    shared: Arc<Shared>,
    peer: SocketAddrV4,
    conn: Connection,
    write: OwnedWriteHalf,
    tcp_open: bool,
    /// TCP bytes not yet taken by the connection (it takes no more while its queues are
    /// full).
    unread: Vec<u8>,
    /// The Call ID of an accepted call whose session is not built yet.
    pending_lease: Option<CallIdLease>,
    call: Option<Call>,
    input: mpsc::Sender<CallInput>,
    shutting_down: bool,
    /// Counts against `max_starting` until the session is established.
    starting: StartingSlot,
}

/// Serves one control connection until it and its call are over.
pub(super) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddrV4,
    starting: StartingSlot,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut read, write) = stream.into_split();
    let (input, mut inputs) = mpsc::channel(INPUT_QUEUE);
    let now = Instant::now();
    let mut task = Task {
        conn: Connection::server(shared.settings.control_config(), now.into_std()),
        shared,
        peer,
        write,
        tcp_open: true,
        unread: Vec::new(),
        pending_lease: None,
        call: None,
        input,
        shutting_down: false,
        starting,
    };
    tracing::debug!(peer = %peer, "control connection opened");
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        task.process().await;
        if task.conn.is_closed() && task.call.is_none() {
            break;
        }
        let deadline = task.next_deadline();
        tokio::select! {
            read = read.read(&mut buffer), if task.tcp_open && task.unread.is_empty() => {
                match read {
                    Ok(n) if n > 0 => task.unread.extend_from_slice(buffer.get(..n).unwrap_or_default()),
                    _ => task.tcp_lost(),
                }
            }
            Some(input) = inputs.recv() => task.on_input(input),
            () = sleep_until(deadline) => task.on_timeout(),
            changed = shutdown.wait_for(|stop| *stop), if !task.shutting_down => {
                let _ = changed;
                task.begin_shutdown();
            }
        }
    }
    if task.tcp_open {
        let _ = task.write.shutdown().await;
    }
    tracing::debug!(peer = %peer, "control connection task done");
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Task {
    fn now() -> std::time::Instant {
        Instant::now().into_std()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let call = self.call.as_ref();
        [
            self.conn.poll_timeout().map(Instant::from_std),
            call.and_then(|c| c.session.poll_timeout().map(Instant::from_std)),
            call.and_then(|c| c.session_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn tcp_lost(&mut self) {
        self.tcp_open = false;
        self.unread.clear();
        self.conn.handle_tcp_closed(Self::now());
    }

    fn on_input(&mut self, input: CallInput) {
        let now = Self::now();
        let Some(call) = self.call.as_mut() else {
            return;
        };
        match input {
            CallInput::Gre(packet) => call.session.handle_gre(now, &packet),
            CallInput::Ppp(frame) => call.session.handle_frame(now, &frame),
            CallInput::ResetRequestNeeded => {
                call.session.send_reset_request(now);
            }
            CallInput::Terminate(cause) => {
                tracing::info!(
                    user = %call.user(),
                    local_call_id = call.id(),
                    peer_call_id = call.peer_call_id,
                    peer = %self.peer.ip(),
                    %cause,
                    "terminating session"
                );
                call.session.close(now, cause);
                self.shared.update_info(call.id(), finishing);
            }
        }
    }

    fn on_timeout(&mut self) {
        let now = Self::now();
        let tokio_now = Instant::now();
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
        if let Some(call) = self.call.as_mut() {
            if call.session.poll_timeout().is_some_and(|t| t <= now) {
                call.session.handle_timeout(now);
            }
            if call.session_deadline.is_some_and(|t| t <= tokio_now) {
                call.session_deadline = None;
                call.session.close(now, Cause::SessionTimeout);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let now = Self::now();
        match self.call.as_mut() {
            Some(call) => {
                call.session.close(now, Cause::Shutdown);
                self.shared.update_info(call.id(), finishing);
            }
            None => self.conn.stop(now, StopReason::LocalShutdown),
        }
    }

    /// Runs both machines until neither has anything to say.
    async fn process(&mut self) {
        loop {
            let mut moved = false;
            let now = Self::now();
            if !self.unread.is_empty() && !self.conn.is_closed() {
                let taken = self.conn.handle_bytes(now, &self.unread);
                self.unread.drain(..taken.min(self.unread.len()));
                moved |= taken > 0;
            } else if self.conn.is_closed() {
                self.unread.clear();
            }
            while let Some(bytes) = self.conn.poll_transmit() {
                moved = true;
                if self.tcp_open {
                    let write = self.write.write_all(&bytes);
                    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::debug!(peer = %self.peer, %error, "control connection write failed");
                            self.tcp_lost();
                        }
                        Err(_) => {
                            tracing::debug!(peer = %self.peer, "peer does not read its control connection");
                            self.tcp_lost();
                        }
                    }
                }
            }
            while let Some(event) = self.conn.poll_event() {
                moved = true;
                self.on_control_event(event);
            }
            moved |= self.process_session().await;
            if !moved {
                return;
            }
        }
    }

    fn on_control_event(&mut self, event: Event) {
        let now = Self::now();
        let peer = self.peer.ip();
        match event {
            Event::Established(info) => tracing::debug!(
                peer = %peer,
                host = %info.host_name,
                vendor = %info.vendor,
                "control connection up"
            ),
            Event::ConnectionRequested(_) => {
                // ask_admission is off: not raised. Accept rather than hang.
                let _ = self.conn.accept(now);
            }
            Event::CallRequested(ocrq) => {
                self.on_call_requested(ocrq.call_id, ocrq.recv_window_size)
            }
            Event::CallEstablished(call) => self.start_session(&call),
            Event::CallCleared { cause, .. } => {
                if let Some(call) = self.call.as_mut() {
                    call.session.lower_down(now, Cause::from_call_clear(&cause));
                    self.shared.update_info(call.id(), finishing);
                }
            }
            Event::Closed(cause) => {
                if cause == CloseCause::StartTimeout {
                    self.shared
                        .admission
                        .refusals()
                        .count(Refusal::StartTimeout);
                    tracing::warn!(peer = %peer, reason = %Refusal::StartTimeout, "connection refused");
                }
                tracing::debug!(peer = %peer, %cause, "control connection closed");
                if let Some(call) = self.call.as_mut() {
                    call.session
                        .lower_down(now, Cause::from_connection_close(&cause));
                    self.shared.update_info(call.id(), finishing);
                }
            }
            Event::LinkInfo { .. } | Event::WanError { .. } => {}
            Event::Ignored {
                message_type,
                reason,
            } => tracing::debug!(peer = %peer, ?message_type, %reason, "control message ignored"),
            Event::Rejected(rejected) => {
                tracing::debug!(peer = %peer, ?rejected, "malformed control message")
            }
        }
    }

    fn refuse(&mut self, peer_call_id: u16, reason: Refusal) {
        self.shared.admission.refusals().count(reason);
        tracing::warn!(peer = %self.peer.ip(), peer_call_id, %reason, "call refused");
        let _ = self.conn.refuse_call(
            Self::now(),
            peer_call_id,
            OutgoingCallResult::GeneralError,
            ErrorCode::NoResource,
        );
    }

    fn on_call_requested(&mut self, peer_call_id: u16, recv_window: u16) {
        if self.shutting_down {
            return self.refuse(peer_call_id, Refusal::ShuttingDown);
        }
        let max = usize::try_from(self.shared.settings.limits.max_sessions).unwrap_or(usize::MAX);
        if self.shared.calls().len() >= max {
            return self.refuse(peer_call_id, Refusal::MaxSessions);
        }
        let Some(start) = random::<2>() else {
            return self.refuse(peer_call_id, Refusal::NoCallId);
        };
        let Some(lease) = self.shared.call_ids.allocate(u16::from_be_bytes(start)) else {
            return self.refuse(peer_call_id, Refusal::NoCallId);
        };
        let id = lease.id();
        if self
            .conn
            .accept_call(Self::now(), peer_call_id, id, recv_window)
            .is_ok()
        {
            // CallEstablished follows at once and takes the lease.
            self.pending_lease = Some(lease);
        }
    }

    fn start_session(&mut self, established: &CallEstablished) {
        let now = Self::now();
        let Some(lease) = self.pending_lease.take() else {
            return;
        };
        let Some(seed) = random::<32>() else {
            tracing::error!("no randomness from the OS; dropping the call");
            let _ =
                self.conn
                    .disconnect_call(now, lease.id(), Cause::LinkFailed.disconnect_result());
            return;
        };
        let auth = Arc::new(Mutex::new(AuthShared::default()));
        let lookups = Arc::clone(&auth);
        let secrets = move |request: &SecretRequest<'_>| {
            lock(&lookups).pending.push((
                request.id,
                request.user.to_vec(),
                request.server_name.to_vec(),
            ));
            Lookup::Pending
        };
        let assigner_state = Arc::clone(&auth);
        let pool = Arc::clone(&self.shared.pool);
        // The client's requested address is not honoured: the pool hands out round robin
        // and fixed addresses come from chap-secrets (see pool.rs).
        let assigner = move |_requested: Option<Ipv4Addr>| {
            let mut state = lock(&assigner_state);
            let rule = state.rule.clone().unwrap_or(AddressRule::Refused);
            match pool.allocate(&rule) {
                Ok(lease) => {
                    state.address = Some(AddressLease {
                        peer: lease.peer,
                        pool: Arc::clone(&pool),
                    });
                    Some(lease.peer)
                }
                Err(error) => {
                    state.alloc_error = Some(error);
                    None
                }
            }
        };
        let link = Link::server(
            self.shared.settings.link_config(
                self.conn
                    .peer_info()
                    .map(|p| p.vendor.as_bytes())
                    .unwrap_or_default(),
            ),
            Box::new(secrets),
            Box::new(assigner),
            LinkRandom::from_seed(seed),
        );
        let params = SessionParams::from_call(established, *self.peer.ip());
        let id = lease.id();
        let session = Session::new(now, params, link);
        self.shared.calls().insert(
            id,
            CallEntry {
                input: self.input.clone(),
                info: SessionInfo {
                    local_call_id: id,
                    peer_call_id: established.peer_call_id,
                    peer: *self.peer.ip(),
                    phase: SessionPhase::Starting,
                    user: None,
                    started: std::time::Instant::now(),
                    peer_vendor: self
                        .conn
                        .peer_info()
                        .map(|p| p.vendor.to_string())
                        .unwrap_or_default(),
                    negotiated: None,
                },
            },
        );
        self.shared
            .gre
            .add_route(id, *self.peer.ip(), self.input.clone());
        tracing::info!(
            local_call_id = id,
            peer_call_id = established.peer_call_id,
            peer = %self.peer.ip(),
            "call accepted, negotiating PPP"
        );
        self.call = Some(Call {
            lease,
            peer_call_id: established.peer_call_id,
            session,
            auth,
            pushed: false,
            session_deadline: self
                .shared
                .settings
                .session_timeout
                .and_then(|t| Instant::now().checked_add(t)),
            online: None,
        });
    }

    /// Answers pending secret lookups, sends what the session queued, acts on its events.
    /// Returns whether anything happened.
    async fn process_session(&mut self) -> bool {
        let mut moved = false;
        let Some(call) = self.call.as_mut() else {
            return false;
        };
        let now = Self::now();
        let pending = std::mem::take(&mut lock(&call.auth).pending);
        for (id, user, server) in pending {
            moved = true;
            let admitted = self.shared.admission.check_user(&user, now);
            let entry = self.shared.secrets.lookup(&user, &server);
            let answer = {
                let mut state = lock(&call.auth);
                state.rule = entry.as_ref().map(|e| e.addresses.clone());
                state.user = Some(user);
                match (admitted, entry) {
                    (Err(reason), _) => {
                        state.refused = true;
                        tracing::warn!(
                            user = %user_text(state.user.as_deref()),
                            local_call_id = call.lease.id(),
                            peer = %self.peer.ip(),
                            %reason,
                            "authentication refused"
                        );
                        // A guesser in back-off sees what a wrong password gets.
                        SecretAnswer::Rejected(match reason {
                            Refusal::DuplicateUser => MsChapErrorCode::NoDialinPermission,
                            _ => MsChapErrorCode::AuthenticationFailure,
                        })
                    }
                    (Ok(()), Some(entry)) => SecretAnswer::Secret(entry.secret),
                    (Ok(()), None) => SecretAnswer::UnknownUser,
                }
            };
            call.session.provide_secret(now, id, answer);
        }
        let peer = *self.peer.ip();
        let id = call.id();
        if call.session.is_handed_over() {
            while let Some(frame) = call.session.poll_frame() {
                moved = true;
                if let Err(error) = self.shared.datapath.send_ppp(id, frame) {
                    tracing::debug!(local_call_id = id, %error, "PPP frame to the datapath dropped");
                }
            }
        } else {
            while let Some(packet) = call.session.poll_transmit() {
                moved = true;
                if let Err(error) = self.shared.gre.send(peer, &packet).await {
                    tracing::debug!(local_call_id = id, %error, "GRE send failed");
                }
            }
        }
        let events: Vec<SessionEvent> = std::iter::from_fn(|| call.session.poll_event()).collect();
        for event in events {
            moved = true;
            match event {
                SessionEvent::Authenticated { user } => {
                    tracing::info!(
                        user = %user_text(Some(&user)),
                        local_call_id = id,
                        peer_call_id = self.call.as_ref().map_or(0, |c| c.peer_call_id),
                        peer = %peer,
                        "authenticated"
                    );
                    let name = user.clone();
                    self.shared.update_info(id, |info| info.user = Some(name));
                    self.admit_user(user);
                }
                SessionEvent::Established(established) => self.on_established(*established).await,
                SessionEvent::ResetRequested => tracing::debug!(
                    local_call_id = id,
                    "peer asked for a CCP reset (the datapath's encryptor restarts its flush)"
                ),
                SessionEvent::Terminated(cause) => self.end_call(cause).await,
            }
        }
        moved
    }

    /// The duplicate-user policy, once the password is verified.
    fn admit_user(&mut self, user: Vec<u8>) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let id = call.id();
        let peer = *self.peer.ip();
        match self.shared.admission.authenticated(&user, peer, id) {
            Online::Admitted => call.online = Some(user),
            Online::Replace(others) => {
                for other in others {
                    tracing::info!(
                        user = %user_text(Some(&user)),
                        local_call_id = other,
                        replaced_by = id,
                        "session replaced by a new session of the same user"
                    );
                    let input = self.shared.calls().get(&other).map(|c| c.input.clone());
                    if let Some(input) = input {
                        let _ = input.try_send(CallInput::Terminate(Cause::OperatorTerminate));
                    }
                }
                call.online = Some(user);
            }
            Online::Denied => {
                tracing::warn!(
                    user = %user_text(Some(&user)),
                    local_call_id = id,
                    peer = %peer,
                    reason = %Refusal::DuplicateUser,
                    "session refused"
                );
                lock(&call.auth).refused = true;
                call.session.close(Self::now(), Cause::OperatorTerminate);
                self.shared.update_info(id, finishing);
            }
        }
    }

    async fn on_established(&mut self, mut established: Established) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let id = call.id();
        // Everything queued before the event went out above: the numbers the datapath
        // continues from are the session's now.
        established.gre = call.session.hand_over();
        self.shared.gre.remove_route(id);
        let user = user_text(established.user.as_deref());
        let address = established.client_tunnel_address;
        let mppe = established
            .transmit
            .map(|t| format!("{:?} {:?}", t.strength, t.mode))
            .unwrap_or_else(|| "none".into());
        let repush = call.pushed;
        call.pushed = true;
        if !repush {
            self.shared.counters.setups.fetch_add(1, Ordering::Relaxed);
        }
        let negotiated = negotiated(&established, call.session.link().lcp().negotiated());
        let user_name = established.user.clone();
        self.shared.update_info(id, |info| {
            info.phase = SessionPhase::Established;
            info.user = user_name.or(info.user.take());
            info.negotiated = Some(negotiated);
        });
        self.starting.release();
        match self.shared.datapath.establish(established).await {
            Ok(()) => tracing::info!(
                %user,
                local_call_id = id,
                peer_call_id = call.peer_call_id,
                peer = %self.peer.ip(),
                client_address = %address,
                %mppe,
                renegotiated = repush,
                "session established"
            ),
            Err(DatapathError::NotConnected) => tracing::warn!(
                %user,
                local_call_id = id,
                peer_call_id = call.peer_call_id,
                peer = %self.peer.ip(),
                client_address = %address,
                "session established but the datapath is not connected; it gets the call \
                 when it comes back"
            ),
            Err(error) => {
                tracing::error!(
                    %user,
                    local_call_id = id,
                    peer_call_id = call.peer_call_id,
                    peer = %self.peer.ip(),
                    %error,
                    "datapath refused the call; ending the session"
                );
                call.session.close(Self::now(), Cause::LinkFailed);
                self.shared.update_info(id, finishing);
            }
        }
    }

    /// The session is over: out of the datapath, CDN and StopCCRQ to the peer, then the
    /// address and the Call ID go back.
    async fn end_call(&mut self, cause: Cause) {
        let Some(call) = self.call.take() else {
            return;
        };
        let id = call.id();
        let now = Self::now();
        let (address, alloc_error, refused, user) = {
            let state = lock(&call.auth);
            (
                state.address.as_ref().map(|a| a.peer),
                state.alloc_error.clone(),
                state.refused,
                state.user.clone(),
            )
        };
        if let Some(error) = alloc_error {
            self.shared.admission.refusals().count(Refusal::NoAddress);
            tracing::warn!(user = %call.user(), local_call_id = id, reason = %Refusal::NoAddress, %error, "no address for the client");
        }
        if matches!(cause, Cause::AuthFailed(_)) {
            self.shared
                .counters
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        if let (Cause::AuthFailed(_), false, Some(user)) = (&cause, refused, &user) {
            self.shared
                .admission
                .auth_failed(user, *self.peer.ip(), std::time::Instant::now());
        }
        if let Some(user) = &call.online {
            self.shared.admission.session_ended(user, id);
        }
        tracing::info!(
            user = %call.user(),
            local_call_id = id,
            peer_call_id = call.peer_call_id,
            peer = %self.peer.ip(),
            client_address = ?address,
            %cause,
            "session ended"
        );
        self.shared.gre.remove_route(id);
        self.shared.calls().remove(&id);
        if call.pushed
            && let Err(error) = self.shared.datapath.remove(id).await
        {
            tracing::warn!(local_call_id = id, %error, "could not remove the call from the datapath");
        }
        if self.conn.call(id).is_some() {
            let _ = self
                .conn
                .disconnect_call(now, id, cause.disconnect_result());
        }
        self.conn.stop(now, cause.stop_reason());
        // Dropping the call releases the address lease, then the Call ID.
        drop(call);
    }
}
