//! Admission and abuse limits ([`Limits`]): connections per source address per minute,
//! control connections being set up, failed-authentication back-off per user and per
//! source, one session per user; and the [`Refusals`] counters of every refusal by reason.
//!
//! The decisions take the time as an argument so that they are tested without waiting;
//! the daemon passes `Instant::now()`. One mutex guards the tables: every critical section
//! is a few map operations, taken once per connection or authentication, never per packet.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{AuthBackoff, DuplicateUser, Limits};

/// The connection-rate window.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Why a connection, call or authentication was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_sessions` calls exist.
    MaxSessions,
    /// `max_starting` control connections are being set up.
    MaxStarting,
    /// The source opened `connections_per_source_per_minute` connections this minute.
    SourceRate,
    /// No Start-Control-Connection-Request within the start timeout.
    StartTimeout,
    /// The user has a session and `duplicate_user = "deny"`.
    DuplicateUser,
    /// The user failed to authenticate too often; it waits out its back-off.
    UserBackoff,
    /// The source address failed to authenticate too often; it waits out its back-off.
    SourceBackoff,
    /// No address for the user (pool exhausted, fixed addresses in use, none allowed).
    NoAddress,
    /// No call ID free, or no randomness from the OS.
    NoCallId,
    /// The daemon is shutting down.
    ShuttingDown,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Refusal; 10] = [
        Refusal::MaxSessions,
        Refusal::MaxStarting,
        Refusal::SourceRate,
        Refusal::StartTimeout,
        Refusal::DuplicateUser,
        Refusal::UserBackoff,
        Refusal::SourceBackoff,
        Refusal::NoAddress,
        Refusal::NoCallId,
        Refusal::ShuttingDown,
    ];

    /// The reason as logs and metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::MaxSessions => "max_sessions",
            Refusal::MaxStarting => "max_starting",
            Refusal::SourceRate => "source_rate",
            Refusal::StartTimeout => "start_timeout",
            Refusal::DuplicateUser => "duplicate_user",
            Refusal::UserBackoff => "user_backoff",
            Refusal::SourceBackoff => "source_backoff",
            Refusal::NoAddress => "no_address",
            Refusal::NoCallId => "no_call_id",
            Refusal::ShuttingDown => "shutting_down",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Refusals so far, by reason (what the CLI and metrics read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefusalCounts {
    /// [`Refusal::MaxSessions`].
    pub max_sessions: u64,
    /// [`Refusal::MaxStarting`].
    pub max_starting: u64,
    /// [`Refusal::SourceRate`].
    pub source_rate: u64,
    /// [`Refusal::StartTimeout`].
    pub start_timeout: u64,
    /// [`Refusal::DuplicateUser`].
    pub duplicate_user: u64,
    /// [`Refusal::UserBackoff`].
    pub user_backoff: u64,
    /// [`Refusal::SourceBackoff`].
    pub source_backoff: u64,
    /// [`Refusal::NoAddress`].
    pub no_address: u64,
    /// [`Refusal::NoCallId`].
    pub no_call_id: u64,
    /// [`Refusal::ShuttingDown`].
    pub shutting_down: u64,
}

impl RefusalCounts {
    /// The count of `reason`.
    pub fn get(&self, reason: Refusal) -> u64 {
        match reason {
            Refusal::MaxSessions => self.max_sessions,
            Refusal::MaxStarting => self.max_starting,
            Refusal::SourceRate => self.source_rate,
            Refusal::StartTimeout => self.start_timeout,
            Refusal::DuplicateUser => self.duplicate_user,
            Refusal::UserBackoff => self.user_backoff,
            Refusal::SourceBackoff => self.source_backoff,
            Refusal::NoAddress => self.no_address,
            Refusal::NoCallId => self.no_call_id,
            Refusal::ShuttingDown => self.shutting_down,
        }
    }
}

/// The refusal counters.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; Refusal::ALL.len()],
}

impl Refusals {
    /// Counts one refusal.
    pub fn count(&self, reason: Refusal) {
        if let Some(counter) = self.counts.get(reason as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> RefusalCounts {
        let get = |r: Refusal| {
            self.counts
                .get(r as usize)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        };
        RefusalCounts {
            max_sessions: get(Refusal::MaxSessions),
            max_starting: get(Refusal::MaxStarting),
            source_rate: get(Refusal::SourceRate),
            start_timeout: get(Refusal::StartTimeout),
            duplicate_user: get(Refusal::DuplicateUser),
            user_backoff: get(Refusal::UserBackoff),
            source_backoff: get(Refusal::SourceBackoff),
            no_address: get(Refusal::NoAddress),
            no_call_id: get(Refusal::NoCallId),
            shutting_down: get(Refusal::ShuttingDown),
        }
    }
}

/// Consecutive authentication failures of one user or source.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// Refused until then.
    until: Option<Instant>,
}

impl Failures {
    fn record(&mut self, now: Instant, policy: &AuthBackoff) {
        self.count = self.count.saturating_add(1);
        self.last = now;
        if self.count >= policy.after_failures {
            let doublings = (self.count - policy.after_failures).min(31);
            let period = policy
                .initial
                .saturating_mul(1u32 << doublings)
                .min(policy.max);
            self.until = now.checked_add(period);
        }
    }

    fn blocks(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}

/// The source's connections in the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

#[derive(Debug, Default)]
struct Tables {
    windows: HashMap<Ipv4Addr, Window>,
    starting: u32,
    user_failures: HashMap<Vec<u8>, Failures>,
    source_failures: HashMap<Ipv4Addr, Failures>,
    /// Authenticated users' live calls (local call IDs).
    online: HashMap<Vec<u8>, Vec<u16>>,
    last_prune: Option<Instant>,
}

/// A connection refused at accept: the reason, and whether it is the first refusal of this
/// source in the current rate window (later ones are counted but not logged, so that a
/// flood does not flood the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub reason: Refusal,
    /// Log it.
    pub log: bool,
}

/// The admission state of one daemon.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    tables: Mutex<Tables>,
    refusals: Refusals,
}

/// A control connection being set up; counts against `max_starting` until dropped or
/// [`Admission::established`].
#[derive(Debug)]
pub struct StartingSlot {
    admission: Arc<Admission>,
    held: bool,
}

impl StartingSlot {
    /// The connection reached an established session: it no longer counts as starting.
    pub fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            let mut tables = self.admission.lock();
            tables.starting = tables.starting.saturating_sub(1);
        }
    }
}

impl Drop for StartingSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// What authenticating a user found about its other sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Online {
    /// Go ahead.
    Admitted,
    /// Go ahead after ending these sessions (`duplicate_user = "replace"`).
    Replace(Vec<u16>),
    /// Refused: the user has a session (`duplicate_user = "deny"`).
    Denied,
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            tables: Mutex::new(Tables::default()),
            refusals: Refusals::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Each critical section is a few map updates: a poisoned lock is consistent.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The refusal counters.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// A new TCP connection from `source`: the source's back-off, its connection rate,
    /// and the connections being set up. The refusal is counted.
    pub fn admit_connection(
        self: &Arc<Self>,
        source: Ipv4Addr,
        now: Instant,
    ) -> Result<StartingSlot, Refused> {
        let result = self.decide_connection(source, now);
        if let Err(refused) = result {
            self.refusals.count(refused.reason);
        }
        result.map(|()| StartingSlot {
            admission: Arc::clone(self),
            held: true,
        })
    }

    fn decide_connection(&self, source: Ipv4Addr, now: Instant) -> Result<(), Refused> {
        let limits = &self.limits;
        let mut tables = self.lock();
        prune(&mut tables, now, limits);
        if tables
            .source_failures
            .get(&source)
            .is_some_and(|f| f.blocks(now))
        {
            return Err(Refused {
                reason: Refusal::SourceBackoff,
                log: true,
            });
        }
        if limits.connections_per_source_per_minute > 0 {
            let window = tables.windows.entry(source).or_insert(Window {
                start: now,
                count: 0,
            });
            if now.saturating_duration_since(window.start) >= RATE_WINDOW {
                *window = Window {
                    start: now,
                    count: 0,
                };
            }
            window.count = window.count.saturating_add(1);
            if window.count > limits.connections_per_source_per_minute {
                return Err(Refused {
                    reason: Refusal::SourceRate,
                    log: window.count == limits.connections_per_source_per_minute + 1,
                });
            }
        }
        if tables.starting >= limits.max_starting {
            return Err(Refused {
                reason: Refusal::MaxStarting,
                log: true,
            });
        }
        tables.starting += 1;
        Ok(())
    }

    /// Before `user` is authenticated: its back-off, and `duplicate_user = "deny"` when it
    /// has a session. The refusal is counted.
    pub fn check_user(&self, user: &[u8], now: Instant) -> Result<(), Refusal> {
        let tables = self.lock();
        let refusal = if tables
            .user_failures
            .get(user)
            .is_some_and(|f| f.blocks(now))
        {
            Some(Refusal::UserBackoff)
        } else if self.limits.duplicate_user == DuplicateUser::Deny
            && tables.online.get(user).is_some_and(|c| !c.is_empty())
        {
            Some(Refusal::DuplicateUser)
        } else {
            None
        };
        drop(tables);
        match refusal {
            Some(refusal) => {
                self.refusals.count(refusal);
                Err(refusal)
            }
            None => Ok(()),
        }
    }

    /// `user` from `source` failed to authenticate.
    pub fn auth_failed(&self, user: &[u8], source: Ipv4Addr, now: Instant) {
        let policy = self.limits.auth_backoff;
        let fresh = Failures {
            count: 0,
            last: now,
            until: None,
        };
        let mut tables = self.lock();
        tables
            .user_failures
            .entry(user.to_vec())
            .or_insert(fresh)
            .record(now, &policy);
        tables
            .source_failures
            .entry(source)
            .or_insert(fresh)
            .record(now, &policy);
    }

    /// `user` from `source` authenticated as call `call`: its failures are forgotten and
    /// the duplicate-user policy decides about its other sessions (a denial is counted).
    pub fn authenticated(&self, user: &[u8], source: Ipv4Addr, call: u16) -> Online {
        let mut tables = self.lock();
        tables.user_failures.remove(user);
        tables.source_failures.remove(&source);
        let calls = tables.online.entry(user.to_vec()).or_default();
        let others: Vec<u16> = calls.iter().copied().filter(|c| *c != call).collect();
        let verdict = match self.limits.duplicate_user {
            _ if others.is_empty() => Online::Admitted,
            DuplicateUser::Allow => Online::Admitted,
            DuplicateUser::Replace => Online::Replace(others),
            // Two sessions of the user authenticated at once (both passed check_user).
            DuplicateUser::Deny => Online::Denied,
        };
        if verdict == Online::Denied {
            drop(tables);
            self.refusals.count(Refusal::DuplicateUser);
        } else if !calls.contains(&call) {
            calls.push(call);
        }
        verdict
    }

    /// Call `call` of `user` ended.
    pub fn session_ended(&self, user: &[u8], call: u16) {
        let mut tables = self.lock();
        if let Some(calls) = tables.online.get_mut(user) {
            calls.retain(|c| *c != call);
            if calls.is_empty() {
                tables.online.remove(user);
            }
        }
    }
}

/// Forgets rate windows and failure records that no longer matter, once per window.
fn prune(tables: &mut Tables, now: Instant, limits: &Limits) {
    if tables
        .last_prune
        .is_some_and(|last| now.saturating_duration_since(last) < RATE_WINDOW)
    {
        return;
    }
    tables.last_prune = Some(now);
    tables
        .windows
        .retain(|_, w| now.saturating_duration_since(w.start) < RATE_WINDOW);
    // A failure older than the longest back-off no longer counts towards one.
    let keep = limits.auth_backoff.max.max(RATE_WINDOW);
    let fresh = |f: &Failures| f.blocks(now) || now.saturating_duration_since(f.last) < keep;
    tables.user_failures.retain(|_, f| fresh(f));
    tables.source_failures.retain(|_, f| fresh(f));
}

#[cfg(test)]
mod test {
    use super::*;

    const SOURCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn limits() -> Limits {
        Limits {
            max_starting: 2,
            connections_per_source_per_minute: 3,
            auth_backoff: AuthBackoff {
                after_failures: 2,
                initial: Duration::from_secs(5),
                max: Duration::from_secs(12),
            },
            ..Limits::default()
        }
    }

    #[test]
    fn connections_per_source_per_minute_and_the_log_once_rule() {
        let admission = Admission::new(Limits {
            max_starting: 100,
            ..limits()
        });
        let t0 = Instant::now();
        let _held: Vec<_> = (0..3)
            .map(|_| admission.admit_connection(SOURCE, t0).unwrap())
            .collect();
        let refused = admission.admit_connection(SOURCE, t0).unwrap_err();
        assert_eq!(
            refused,
            Refused {
                reason: Refusal::SourceRate,
                log: true
            }
        );
        assert!(!admission.admit_connection(SOURCE, t0).unwrap_err().log);
        assert!(admission.admit_connection(OTHER, t0).is_ok(), "per source");
        let later = t0 + RATE_WINDOW;
        assert!(
            admission.admit_connection(SOURCE, later).is_ok(),
            "new window"
        );
        assert_eq!(admission.refusals().snapshot().source_rate, 2);
    }

    #[test]
    fn connections_being_set_up_are_limited_until_established() {
        let admission = Admission::new(limits());
        let now = Instant::now();
        let mut first = admission.admit_connection(SOURCE, now).unwrap();
        let second = admission.admit_connection(OTHER, now).unwrap();
        assert_eq!(
            admission.admit_connection(OTHER, now).unwrap_err().reason,
            Refusal::MaxStarting
        );
        first.release();
        let third = admission.admit_connection(OTHER, now).unwrap();
        drop((second, third));
        assert!(admission.admit_connection(SOURCE, now).is_ok());
        assert_eq!(admission.refusals().snapshot().max_starting, 1);
    }

    #[test]
    fn failed_authentication_backs_off_exponentially_per_user_and_source() {
        let admission = Admission::new(Limits {
            max_starting: 100,
            connections_per_source_per_minute: 0,
            ..limits()
        });
        let t0 = Instant::now();
        admission.auth_failed(b"alice", SOURCE, t0);
        assert!(
            admission.check_user(b"alice", t0).is_ok(),
            "below after_failures"
        );
        admission.auth_failed(b"alice", SOURCE, t0);
        assert_eq!(
            admission.check_user(b"alice", t0),
            Err(Refusal::UserBackoff)
        );
        assert_eq!(
            admission.admit_connection(SOURCE, t0).unwrap_err().reason,
            Refusal::SourceBackoff
        );
        assert!(admission.admit_connection(OTHER, t0).is_ok());
        let t5 = t0 + Duration::from_secs(5);
        assert!(admission.check_user(b"alice", t5).is_ok(), "5 s served");
        admission.auth_failed(b"alice", SOURCE, t5);
        let t14 = t5 + Duration::from_secs(9);
        assert!(
            admission.check_user(b"alice", t14).is_err(),
            "doubled to 10 s"
        );
        let t15 = t5 + Duration::from_secs(10);
        assert!(admission.check_user(b"alice", t15).is_ok());
        admission.auth_failed(b"alice", SOURCE, t15);
        let capped = t15 + Duration::from_secs(12);
        assert!(
            admission.check_user(b"alice", capped).is_ok(),
            "20 s capped at 12 s"
        );
        admission.auth_failed(b"alice", SOURCE, capped);
        assert_eq!(
            admission.authenticated(b"alice", SOURCE, 7),
            Online::Admitted
        );
        assert!(
            admission.check_user(b"alice", capped).is_ok(),
            "success resets"
        );
        assert!(admission.admit_connection(SOURCE, capped).is_ok());
        let counts = admission.refusals().snapshot();
        assert_eq!((counts.user_backoff, counts.source_backoff), (2, 1));
    }

    #[test]
    fn one_session_per_user_deny_replace_allow() {
        let deny = Admission::new(Limits {
            duplicate_user: DuplicateUser::Deny,
            ..limits()
        });
        let now = Instant::now();
        assert_eq!(deny.authenticated(b"bob", SOURCE, 1), Online::Admitted);
        assert_eq!(deny.check_user(b"bob", now), Err(Refusal::DuplicateUser));
        assert_eq!(deny.authenticated(b"bob", OTHER, 2), Online::Denied, "race");
        assert_eq!(deny.refusals().snapshot().duplicate_user, 2);
        deny.session_ended(b"bob", 1);
        assert!(deny.check_user(b"bob", now).is_ok());

        let replace = Admission::new(Limits {
            duplicate_user: DuplicateUser::Replace,
            ..limits()
        });
        assert_eq!(replace.authenticated(b"bob", SOURCE, 1), Online::Admitted);
        assert!(replace.check_user(b"bob", now).is_ok());
        assert_eq!(
            replace.authenticated(b"bob", OTHER, 2),
            Online::Replace(vec![1])
        );
        replace.session_ended(b"bob", 1);
        assert_eq!(replace.authenticated(b"bob", OTHER, 2), Online::Admitted);

        let allow = Admission::new(limits());
        assert_eq!(allow.authenticated(b"bob", SOURCE, 1), Online::Admitted);
        assert_eq!(allow.authenticated(b"bob", OTHER, 2), Online::Admitted);
    }

    #[test]
    fn counters_are_by_reason() {
        let refusals = Refusals::default();
        for reason in Refusal::ALL {
            refusals.count(reason);
        }
        refusals.count(Refusal::NoAddress);
        let counts = refusals.snapshot();
        for reason in Refusal::ALL {
            let want = if reason == Refusal::NoAddress { 2 } else { 1 };
            assert_eq!(counts.get(reason), want, "{reason}");
        }
    }
}
