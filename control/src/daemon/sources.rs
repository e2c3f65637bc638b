//! What the daemon asks the configuration for: users' secrets ([`SecretSource`]) and client
//! tunnel addresses ([`AddressSource`]). The configuration side (chap-secrets, the pools)
//! implements both; [`MemorySecrets`] and [`MemoryPool`] are small in-memory versions for
//! tests and embedding.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use xpptp_proto::ppp::auth::{Password, StoredSecret};

/// One user's entry, as a secret store holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSecret {
    /// The secret the authenticator checks the peer's response against.
    pub secret: StoredSecret,
    /// A fixed tunnel address for this user (chap-secrets' fourth column), if any.
    pub address: Option<Ipv4Addr>,
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, not even a hash.
        f.debug_struct("UserSecret")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Where users' secrets come from (chap-secrets). Called from a session's task: it must
/// not block for long (an in-memory table; a slow store answers from a cache).
pub trait SecretSource: Send + Sync + 'static {
    /// The entry for `user` (the CHAP Name as received) and `server` (our pppd `name`, the
    /// second column of chap-secrets), or `None` for an unknown user.
    fn lookup(&self, user: &[u8], server: &[u8]) -> Option<UserSecret>;
}

/// Why no address could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Every address of the pool is in use.
    #[error("address pool exhausted; enlarge the pool (remoteip) or lower the session limit")]
    Exhausted,
    /// The user's fixed address is held by another session.
    #[error("fixed address {0} is in use by another session")]
    InUse(Ipv4Addr),
    /// The user's fixed address is not one this server may hand out.
    #[error("fixed address {0} is not allowed; add it to the pool or fix chap-secrets")]
    NotAllowed(Ipv4Addr),
}

/// Where client tunnel addresses come from (the pools). An address given out is not given
/// again until [`release`](Self::release)d.
pub trait AddressSource: Send + Sync + 'static {
    /// An address for `user`: `fixed` when the user has one (from its [`UserSecret`]),
    /// else one from the pool. `requested` is what the client asked for in IPCP (`None`
    /// for 0.0.0.0); a source may honour it.
    fn allocate(
        &self,
        user: &[u8],
        fixed: Option<Ipv4Addr>,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, AllocError>;

    /// Gives `address` back.
    fn release(&self, address: Ipv4Addr);
}

/// A fixed table of users with clear-text passwords.
#[derive(Default)]
pub struct MemorySecrets {
    users: HashMap<Vec<u8>, UserSecret>,
}

impl fmt::Debug for MemorySecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySecrets")
            .field("users", &self.users.len())
            .finish()
    }
}

impl MemorySecrets {
    /// No users.
    pub fn new() -> MemorySecrets {
        MemorySecrets::default()
    }

    /// Adds (or replaces) `user` with `password` and an optional fixed address.
    pub fn with_user(mut self, user: &str, password: &str, address: Option<Ipv4Addr>) -> Self {
        self.users.insert(
            user.as_bytes().to_vec(),
            UserSecret {
                secret: StoredSecret::Password(Password::new(password)),
                address,
            },
        );
        self
    }
}

impl SecretSource for MemorySecrets {
    /// Any server name matches (chap-secrets' `*`).
    fn lookup(&self, user: &[u8], _server: &[u8]) -> Option<UserSecret> {
        self.users.get(user).cloned()
    }
}

/// A set of free addresses; fixed addresses are allowed when they belong to the set.
#[derive(Debug)]
pub struct MemoryPool {
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    free: BTreeSet<Ipv4Addr>,
    used: BTreeSet<Ipv4Addr>,
}

impl MemoryPool {
    /// A pool of `addresses`.
    pub fn new(addresses: impl IntoIterator<Item = Ipv4Addr>) -> MemoryPool {
        MemoryPool {
            state: Mutex::new(PoolState {
                free: addresses.into_iter().collect(),
                used: BTreeSet::new(),
            }),
        }
    }

    /// Addresses given out now.
    pub fn in_use(&self) -> Vec<Ipv4Addr> {
        self.lock().used.iter().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding the lock leaves consistent sets (every update is one
        // insert/remove pair), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl AddressSource for MemoryPool {
    fn allocate(
        &self,
        _user: &[u8],
        fixed: Option<Ipv4Addr>,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, AllocError> {
        let mut state = self.lock();
        let address = match fixed {
            Some(fixed) if state.used.contains(&fixed) => return Err(AllocError::InUse(fixed)),
            Some(fixed) if !state.free.contains(&fixed) => {
                return Err(AllocError::NotAllowed(fixed));
            }
            Some(fixed) => fixed,
            None => match requested.filter(|r| state.free.contains(r)) {
                Some(requested) => requested,
                None => *state.free.first().ok_or(AllocError::Exhausted)?,
            },
        };
        state.free.remove(&address);
        state.used.insert(address);
        Ok(address)
    }

    fn release(&self, address: Ipv4Addr) {
        let mut state = self.lock();
        if state.used.remove(&address) {
            state.free.insert(address);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn pool_gives_each_address_once_and_takes_it_back() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let pool = MemoryPool::new([a, b]);
        assert_eq!(pool.allocate(b"u", None, Some(b)), Ok(b));
        assert_eq!(pool.allocate(b"u", None, None), Ok(a));
        assert_eq!(pool.allocate(b"u", None, None), Err(AllocError::Exhausted));
        assert_eq!(
            pool.allocate(b"u", Some(a), None),
            Err(AllocError::InUse(a))
        );
        pool.release(a);
        assert_eq!(pool.in_use(), vec![b]);
        assert_eq!(pool.allocate(b"u", Some(a), None), Ok(a));
        let other = Ipv4Addr::new(10, 9, 9, 9);
        assert_eq!(
            pool.allocate(b"u", Some(other), None),
            Err(AllocError::NotAllowed(other))
        );
    }

    #[test]
    fn secrets_know_their_users_and_hide_passwords() {
        let secrets = MemorySecrets::new().with_user("alice", "pw-alice", None);
        let entry = secrets.lookup(b"alice", b"pptpd").map(|e| e.secret);
        assert_eq!(
            entry,
            Some(StoredSecret::Password(Password::new("pw-alice")))
        );
        assert!(secrets.lookup(b"bob", b"pptpd").is_none());
        let shown = format!(
            "{:?}",
            secrets.lookup(b"alice", b"pptpd").map(|e| e.address)
        );
        assert!(!shown.contains("pw-alice"));
    }
}
