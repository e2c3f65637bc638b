//! What the daemon asks the configuration for: users' secrets ([`SecretSource`]) and client
//! tunnel addresses ([`AddressSource`]), and their implementations over the configuration's
//! own types: [`ChapSecrets`] (the chap-secrets [`Secrets`] table, swapped whole on SIGHUP)
//! and [`SharedPool`] (the [`AddressPool`] behind a mutex).

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use xpptp_proto::ppp::auth::StoredSecret;

use crate::config::{self, ConfigError, Secrets, Warning};
use crate::pool::{AddressPool, AddressRule, Lease, PoolError};

/// One user's entry, as a secret store holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSecret {
    /// The secret the authenticator checks the peer's response against.
    pub secret: StoredSecret,
    /// The addresses the user may be given (chap-secrets' fourth column).
    pub addresses: AddressRule,
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, not even a hash.
        f.debug_struct("UserSecret")
            .field("addresses", &self.addresses)
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

/// Where client tunnel addresses come from (the pool). An address given out is not given
/// again until [`release`](Self::release)d.
pub trait AddressSource: Send + Sync + 'static {
    /// An address for a user whose entry says `rule`, with our end of the tunnel.
    fn allocate(&self, rule: &AddressRule) -> Result<Lease, PoolError>;

    /// Gives the client address `peer` back.
    fn release(&self, peer: Ipv4Addr);
}

/// The chap-secrets table, read by every session and replaced whole by a reload: a lookup
/// sees the old table or the new one, never a mix, and sessions keep running either way.
pub struct ChapSecrets {
    path: PathBuf,
    table: ArcSwap<Secrets>,
}

impl fmt::Debug for ChapSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChapSecrets")
            .field("path", &self.path)
            .field("entries", &self.table.load().len())
            .finish()
    }
}

/// What a reload changed, for the log (counts only: never a name's secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Entries before.
    pub entries_before: usize,
    /// Entries now.
    pub entries: usize,
    /// Client names (`*` counts as one) that had no entry before.
    pub users_added: usize,
    /// Client names that have no entry any more.
    pub users_removed: usize,
    /// Client names whose entries (server, secret or addresses) changed.
    pub users_changed: usize,
    /// Fixed addresses reserved now.
    pub fixed_addresses: usize,
}

impl ChapSecrets {
    /// The table `secrets`, read from `path` (which [`reload`](Self::reload) reads again).
    pub fn new(path: &Path, secrets: Secrets) -> ChapSecrets {
        ChapSecrets {
            path: path.to_path_buf(),
            table: ArcSwap::from_pointee(secrets),
        }
    }

    /// The file the table comes from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table now.
    pub fn table(&self) -> Arc<Secrets> {
        self.table.load_full()
    }

    /// Reads the file again; on success swaps the table and the pool's reserved (fixed)
    /// addresses. On error the old table stays. Sessions are not touched either way.
    pub fn reload(
        &self,
        pool: &SharedPool,
        warnings: &mut Vec<Warning>,
    ) -> Result<ReloadSummary, ConfigError> {
        let new = config::load_secrets(&self.path, warnings)?;
        let old = self.table.load_full();
        let (old_users, new_users) = (by_client(&old), by_client(&new));
        let fixed = new.fixed_addresses();
        let summary = ReloadSummary {
            entries_before: old.len(),
            entries: new.len(),
            users_added: new_users
                .keys()
                .filter(|u| !old_users.contains_key(*u))
                .count(),
            users_removed: old_users
                .keys()
                .filter(|u| !new_users.contains_key(*u))
                .count(),
            users_changed: new_users
                .iter()
                .filter(|(u, e)| old_users.get(*u).is_some_and(|old| old != *e))
                .count(),
            fixed_addresses: fixed.len(),
        };
        // The pool first: a user added with a fixed address finds it reserved as soon as
        // the new table lets them in.
        pool.lock().set_reserved(fixed);
        self.table.store(Arc::new(new));
        Ok(summary)
    }
}

/// A client's entries as (server, secret, addresses), in file order.
type UserEntries<'a> = Vec<(&'a Option<Vec<u8>>, &'a StoredSecret, &'a AddressRule)>;

/// The entries of `secrets` by client name.
fn by_client(secrets: &Secrets) -> HashMap<&Option<Vec<u8>>, UserEntries<'_>> {
    let mut users: HashMap<_, UserEntries<'_>> = HashMap::new();
    for e in secrets.entries() {
        users
            .entry(&e.client)
            .or_default()
            .push((&e.server, &e.secret, &e.addresses));
    }
    users
}

impl SecretSource for ChapSecrets {
    fn lookup(&self, user: &[u8], server: &[u8]) -> Option<UserSecret> {
        self.table
            .load()
            .lookup(user, server)
            .map(|entry| UserSecret {
                secret: entry.secret.clone(),
                addresses: entry.addresses.clone(),
            })
    }
}

/// The address pool shared by every session's task.
#[derive(Debug)]
pub struct SharedPool {
    pool: Mutex<AddressPool>,
}

impl SharedPool {
    /// Shares `pool`.
    pub fn new(pool: AddressPool) -> SharedPool {
        SharedPool {
            pool: Mutex::new(pool),
        }
    }

    /// The pool, for inspection and for reloads.
    pub fn lock(&self) -> MutexGuard<'_, AddressPool> {
        // Every pool operation leaves it consistent before it can panic (no panicking
        // code runs between a slot's state change and its queue update).
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AddressSource for SharedPool {
    fn allocate(&self, rule: &AddressRule) -> Result<Lease, PoolError> {
        self.lock().allocate(rule)
    }

    fn release(&self, peer: Ipv4Addr) {
        self.lock().release(peer);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use xpptp_proto::ppp::auth::Password;

    fn a(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let path =
                std::env::temp_dir().join(format!("xpptp-sources-{name}-{}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn lookups_give_the_secret_and_the_address_rule() {
        let file = TempFile::new("lookup", "alice * pw-alice 10.0.0.2\nbob pptpd pw-bob *\n");
        let table = config::load_secrets(&file.0, &mut Vec::new()).unwrap();
        let secrets = ChapSecrets::new(&file.0, table);
        let alice = secrets.lookup(b"alice", b"pptpd").unwrap();
        assert_eq!(
            alice.secret,
            StoredSecret::Password(Password::new("pw-alice"))
        );
        assert_eq!(alice.addresses, AddressRule::Fixed(vec![a(2)]));
        assert_eq!(
            secrets.lookup(b"bob", b"pptpd").unwrap().addresses,
            AddressRule::Pool
        );
        assert!(secrets.lookup(b"bob", b"other").is_none());
        assert!(!format!("{alice:?}").contains("pw-alice"));
    }

    #[test]
    fn reload_swaps_the_table_and_the_reservations_or_keeps_both() {
        let file = TempFile::new("reload", "alice * pw 10.0.0.2\n");
        let table = config::load_secrets(&file.0, &mut Vec::new()).unwrap();
        let pool = SharedPool::new(AddressPool::new(&[a(1), a(2)], &[a(254)], [a(2)]).unwrap());
        let secrets = ChapSecrets::new(&file.0, table);
        let first = pool.allocate(&AddressRule::Pool).unwrap();
        assert_eq!(first.peer, a(1));
        assert!(
            pool.allocate(&AddressRule::Pool).is_err(),
            "a(2) is alice's"
        );

        std::fs::write(&file.0, "alice * pw *\ncarol * pw2 *\n").unwrap();
        let summary = secrets.reload(&pool, &mut Vec::new()).unwrap();
        assert_eq!(
            summary,
            ReloadSummary {
                entries_before: 1,
                entries: 2,
                users_added: 1,
                users_removed: 0,
                users_changed: 1,
                fixed_addresses: 0
            }
        );
        assert!(secrets.lookup(b"carol", b"pptpd").is_some());
        assert!(pool.lock().is_leased(a(1)), "the lease survives the reload");
        assert_eq!(pool.allocate(&AddressRule::Pool).unwrap().peer, a(2));

        std::fs::write(&file.0, "alice * pw *\nbroken\n").unwrap();
        let error = secrets.reload(&pool, &mut Vec::new()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("{}:2", file.0.display())),
            "{error}"
        );
        assert!(
            secrets.lookup(b"carol", b"pptpd").is_some(),
            "old table kept"
        );
    }
}
