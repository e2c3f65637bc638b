//! RLIMIT_MEMLOCK: an AF_XDP UMEM is charged to it unless the process has CAP_IPC_LOCK.
//!
//! BPF maps are memcg accounted and need no memlock. Raising the limit needs
//! CAP_SYS_RESOURCE, which containers often lack (this machine: root with CAP_IPC_LOCK but
//! not CAP_SYS_RESOURCE), so a failed raise is only a warning: with CAP_IPC_LOCK the UMEM
//! registers anyway, and without it a registration failure says what to do
//! ([`super::XskError::UmemRegistration`]).

use std::fmt;

/// The process's RLIMIT_MEMLOCK (bytes; `None` is unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemlockLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl fmt::Display for MemlockLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |f: &mut fmt::Formatter<'_>, v: Option<u64>| match v {
            None => f.write_str("unlimited"),
            Some(bytes) => write!(f, "{} KiB", bytes / 1024),
        };
        f.write_str("soft ")?;
        show(f, self.soft)?;
        f.write_str(", hard ")?;
        show(f, self.hard)
    }
}

fn from_rlim(value: libc::rlim_t) -> Option<u64> {
    (value != libc::RLIM_INFINITY).then_some(value)
}

impl MemlockLimit {
    /// The current limit, or `None` if getrlimit fails (it cannot for a valid resource).
    pub fn current() -> Option<MemlockLimit> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `limit`.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
        (rc == 0).then(|| MemlockLimit {
            soft: from_rlim(limit.rlim_cur),
            hard: from_rlim(limit.rlim_max),
        })
    }
}

/// Tries to make RLIMIT_MEMLOCK unlimited. A failure is logged as a warning and otherwise
/// ignored (see the module documentation); the limit in force afterwards is returned.
pub fn raise_memlock_limit() -> Option<MemlockLimit> {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit only reads the valid `unlimited` struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    let now = MemlockLimit::current();
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        let shown = now.map_or_else(|| "unknown".to_owned(), |l| l.to_string());
        tracing::warn!(
            "could not raise RLIMIT_MEMLOCK ({err}; limit stays {shown}): fine with \
             CAP_IPC_LOCK, otherwise every AF_XDP UMEM must fit under the limit"
        );
    }
    now
}
