//! The call table: every established call, found by our call ID (upstream GRE) or by the
//! client's tunnel address (downstream IPv4), read by every worker without locks.
//!
//! # Who may do what (the rules the rest of the datapath relies on)
//!
//! * **Readers** are the workers. [`CallTable::get`] and [`CallTable::get_by_address`] never
//!   block, never allocate and never take a lock: each is one or two `arc-swap` loads. The
//!   returned [`CallGuard`] keeps the entry alive for as long as the worker holds it, even if
//!   the command path removes or replaces the call meanwhile: no reader ever sees freed
//!   memory. Hold a guard for one packet (or one batch of the same call), not longer: a
//!   thread that holds more than a few guards at once makes further loads fall back to a
//!   reference-count increment (correct, only slower), and a held guard delays the old
//!   entry's release.
//! * **The writer** is the command path, and there is exactly one: [`CallTable::new`] returns
//!   the only [`CallTableWriter`], whose methods take `&mut self`. Establish, remove and
//!   replace publish a whole new [`Call`] with one atomic store; a reader sees the old entry
//!   or the new one, never a mixture. The previous entry is freed when the last guard on it
//!   is dropped (reference counting through `arc-swap`, no grace period to wait for).
//! * **Entries are immutable once published.** [`Call::state`] is shared by every worker at
//!   once, so whatever in it changes per packet must be one of:
//!   - an atomic that any worker may update: the GRE transmit sequence number and the
//!     per-call packet/byte counters of a stateless direction (`fetch_add`), and the
//!     precomputed MPPE key chain, which depends only on the start key (design.md "The fast
//!     path") and is read-only once computed;
//!   - state owned by exactly one worker, which then lives *outside* the table, in that
//!     worker's private per-call storage keyed by ([`Call::call_id`], [`Call::generation`]):
//!     the RC4 state of a stateful MPPE direction and the GRE receive window of a direction
//!     that keeps one. A packet of that direction which arrives on another worker is handed to
//!     the owner through [`handoff::HandOff`] (bounded; a full queue drops and counts).
//!
//!   The generation changes on every establish and replace, so a worker whose private state
//!   was built for an earlier call on the same call ID sees the mismatch and starts afresh.
//! * **The two indexes agree through the entry.** The address index maps a tunnel address to
//!   a call ID; [`CallTable::get_by_address`] then loads that slot and returns the call only
//!   if the entry's own [`Call::client_address`] is the address asked for. The writer updates
//!   the slot and the index in an order that makes every intermediate state either a miss or
//!   the right call (see [`CallTableWriter`]), never another client's call.
//!
//! # Why `arc-swap` per slot, and not crossbeam-epoch
//!
//! Both give lock-free reads with safe reclamation. crossbeam-epoch needs `unsafe` at every
//! dereference (`Shared::deref`, `Guard::defer_destroy`), and the datapath keeps `unsafe` to
//! its AF_XDP ring module; `arc-swap` gives the same guarantee with a safe API. Its load
//! costs a thread-local "debt" slot write instead of an epoch pin, and it needs no reference
//! count increment in the common case, so workers sharing one busy stateless call do not
//! bounce a reference count's cache line between cores. Freeing is immediate once the last
//! guard goes, where an epoch scheme would wait for every worker to pass a quiescent point.
//!
//! # Memory
//!
//! Measured by `tests/calls_memory.rs` (counting allocator, and RSS on glibc):
//! * fixed: 65,536 slots and 65,536 address buckets of one pointer each, 1 MiB, allocated by
//!   [`CallTable::new`];
//! * per established call, beside `size_of::<T>()`: 72 bytes requested in two allocations
//!   (the `Arc<Call<T>>`: two counts, call ID, address and generation, 32 bytes; the
//!   address bucket, 40 bytes), 96 bytes as glibc malloc holds them (RSS grew 96 B per call
//!   over 65,535 calls);
//! * so 65,535 calls cost 1 MiB + 65,535 x (96 B + T rounded to malloc's 16 bytes): about
//!   7 MiB of table overhead at full capacity.

pub mod address;
pub mod handoff;

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::{ArcSwapOption, Guard};

use self::address::AddressIndex;

/// One slot per possible local call ID (RFC 2637 call IDs are 16 bits).
pub const CALL_SLOTS: usize = 1 << 16;

/// The most calls the table holds: every call ID but 0, which is reserved (it is the empty
/// value of PPTP's call ID fields and of the XDP call map's slots).
pub const MAX_CALLS: usize = CALL_SLOTS - 1;

/// An established call as the table publishes it: its keys and the caller's per-call state.
///
/// `T` is the fast path's per-call state (peer address, GRE numbering start, MPPE key chain,
/// owners, counters); the table only needs it to be `Send + Sync`. Read the rules in the
/// [module documentation](self) before putting anything mutable in it.
#[derive(Debug)]
pub struct Call<T> {
    call_id: u16,
    client_address: Ipv4Addr,
    generation: u64,
    state: T,
}

impl<T> Call<T> {
    /// Our call ID: the slot, and the key of the GRE packets the peer sends us.
    pub fn call_id(&self) -> u16 {
        self.call_id
    }

    /// The client's tunnel address: the key of downstream packets.
    pub fn client_address(&self) -> Ipv4Addr {
        self.client_address
    }

    /// Distinguishes this publication from every other one of this table (establish and
    /// replace each take a new number): a worker keys its private per-call state with
    /// (call ID, generation).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The caller's per-call state.
    pub fn state(&self) -> &T {
        &self.state
    }
}

impl<T> std::ops::Deref for Call<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.state
    }
}

/// What a look-up returns: `None` inside when there is no such call. Holding it keeps the
/// call's entry alive (see the module documentation for how long to hold it).
///
/// ```
/// use std::net::Ipv4Addr;
/// use xpptp_datapath::calls::CallTable;
///
/// let (table, mut writer) = CallTable::<&str>::new();
/// writer.establish(7, Ipv4Addr::new(10, 0, 0, 7), "state").unwrap();
/// let guard = table.get(7);
/// let Some(call) = guard.as_ref() else { panic!("unknown call: drop the packet") };
/// assert_eq!(*call.state(), "state");
/// assert!(table.get(8).as_ref().is_none());
/// ```
pub type CallGuard<T> = Guard<Option<Arc<Call<T>>>>;

/// Why the writer refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// Call ID 0 is reserved.
    CallIdZero,
    /// `establish` on a call ID that has a call: remove or replace it first.
    CallIdInUse(u16),
    /// Another call already carries this tunnel address.
    AddressInUse {
        /// The address asked for.
        address: Ipv4Addr,
        /// The call that has it.
        call_id: u16,
    },
    /// `replace` on a call ID that has no call.
    NoSuchCall(u16),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::CallIdZero => f.write_str("call ID 0 is reserved"),
            TableError::CallIdInUse(id) => write!(f, "call ID {id} already has a call"),
            TableError::AddressInUse { address, call_id } => {
                write!(
                    f,
                    "tunnel address {address} already belongs to call {call_id}"
                )
            }
            TableError::NoSuchCall(id) => write!(f, "no call with ID {id}"),
        }
    }
}

impl std::error::Error for TableError {}

/// A refused change, with the state it would have published (so an expensive state, such
/// as a precomputed key chain, is not lost).
#[derive(Debug)]
pub struct Rejected<T> {
    /// Why.
    pub error: TableError,
    /// The state passed in.
    pub state: T,
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: fmt::Debug> std::error::Error for Rejected<T> {}

/// The calls, shared by every worker (`Arc<CallTable<T>>`). Only the [`CallTableWriter`]
/// changes it.
pub struct CallTable<T> {
    /// Index = our call ID. Slot 0 stays empty.
    slots: Box<[ArcSwapOption<Call<T>>]>,
    by_address: AddressIndex,
    /// Number of calls, for listing and stats; written by the writer only.
    len: AtomicUsize,
}

impl<T> fmt::Debug for CallTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallTable")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> CallTable<T> {
    /// An empty table and its one writer (the command path's).
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Arc<CallTable<T>>, CallTableWriter<T>) {
        let table = Arc::new(CallTable {
            slots: (0..CALL_SLOTS).map(|_| ArcSwapOption::empty()).collect(),
            by_address: AddressIndex::new(),
            len: AtomicUsize::new(0),
        });
        let writer = CallTableWriter {
            table: Arc::clone(&table),
            next_generation: 1,
        };
        (table, writer)
    }

    /// The call with our call ID `call_id` (upstream look-up). Lock-free.
    pub fn get(&self, call_id: u16) -> CallGuard<T> {
        match self.slots.get(usize::from(call_id)) {
            Some(slot) => slot.load(),
            // Unreachable: there is a slot for every u16.
            None => Guard::from_inner(None),
        }
    }

    /// The call whose client tunnel address is `address` (downstream look-up). Lock-free.
    ///
    /// Returns the call only if its entry carries `address`, so a look-up racing with a
    /// remove or a replace yields a miss or the right call, never another client's.
    pub fn get_by_address(&self, address: Ipv4Addr) -> CallGuard<T> {
        let Some(call_id) = self.by_address.get(address) else {
            return Guard::from_inner(None);
        };
        let guard = self.get(call_id);
        match guard.as_ref() {
            Some(call) if call.client_address == address => guard,
            _ => Guard::from_inner(None),
        }
    }

    /// The call, with its own reference count: for the command path (listing, final
    /// counters), not for the per-packet path.
    pub fn get_full(&self, call_id: u16) -> Option<Arc<Call<T>>> {
        self.slots.get(usize::from(call_id))?.load_full()
    }

    /// Number of calls.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the table has no call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every call, in call ID order, each loaded as it is when the walk reaches it (a
    /// snapshot per call, not of the whole table). For listing; it visits all 65,536 slots.
    pub fn calls(&self) -> impl Iterator<Item = Arc<Call<T>>> + '_ {
        self.slots.iter().filter_map(|slot| slot.load_full())
    }
}

/// The one writer of a [`CallTable`] (the command path's; `&mut self` makes it the only one).
///
/// Publication order, which [`CallTable::get_by_address`] relies on:
/// * establish: store the slot, then add the address to the index;
/// * remove: take the address out of the index, then empty the slot;
/// * replace: add the new address (if it changes), swap the slot, then take the old address
///   out. An address look-up in between finds the slot holding an entry with another address
///   and reports a miss.
pub struct CallTableWriter<T> {
    table: Arc<CallTable<T>>,
    next_generation: u64,
}

impl<T> fmt::Debug for CallTableWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallTableWriter")
            .field("table", &self.table)
            .field("next_generation", &self.next_generation)
            .finish()
    }
}

impl<T> CallTableWriter<T> {
    /// The table this writer changes (clone the `Arc` for each worker).
    pub fn table(&self) -> &Arc<CallTable<T>> {
        &self.table
    }

    fn slot(&self, call_id: u16) -> Option<&ArcSwapOption<Call<T>>> {
        if call_id == 0 {
            return None;
        }
        self.table.slots.get(usize::from(call_id))
    }

    fn new_call(&mut self, call_id: u16, client_address: Ipv4Addr, state: T) -> Arc<Call<T>> {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        Arc::new(Call {
            call_id,
            client_address,
            generation,
            state,
        })
    }

    /// Which call has `address`, if any (the writer's view, always current).
    fn address_owner(&self, address: Ipv4Addr) -> Option<u16> {
        self.table.by_address.get(address)
    }

    /// Publishes a new call. Fails if the call ID is 0 or taken, or the address belongs to
    /// another call.
    pub fn establish(
        &mut self,
        call_id: u16,
        client_address: Ipv4Addr,
        state: T,
    ) -> Result<Arc<Call<T>>, Rejected<T>> {
        let reject = |error, state| Err(Rejected { error, state });
        let Some(slot) = self.slot(call_id) else {
            return reject(TableError::CallIdZero, state);
        };
        if slot.load().is_some() {
            return reject(TableError::CallIdInUse(call_id), state);
        }
        if let Some(owner) = self.address_owner(client_address) {
            return reject(
                TableError::AddressInUse {
                    address: client_address,
                    call_id: owner,
                },
                state,
            );
        }
        let call = self.new_call(call_id, client_address, state);
        if let Some(slot) = self.slot(call_id) {
            slot.store(Some(Arc::clone(&call)));
        }
        self.table.by_address.insert(client_address, call_id);
        self.table.len.fetch_add(1, Ordering::Relaxed);
        Ok(call)
    }

    /// Takes a call out and returns it (its counters are final once the workers drop their
    /// guards). Readers that still hold it keep it alive; it is freed after the last one.
    pub fn remove(&mut self, call_id: u16) -> Option<Arc<Call<T>>> {
        let current = self.slot(call_id)?.load_full()?;
        self.table
            .by_address
            .remove(current.client_address, call_id);
        let old = self.slot(call_id)?.swap(None);
        self.table.len.fetch_sub(1, Ordering::Relaxed);
        old
    }

    /// Publishes a new entry for an existing call ID in one store (new state, possibly a new
    /// tunnel address, a new generation) and returns the previous entry.
    pub fn replace(
        &mut self,
        call_id: u16,
        client_address: Ipv4Addr,
        state: T,
    ) -> Result<Arc<Call<T>>, Rejected<T>> {
        let reject = |error, state| Err(Rejected { error, state });
        let Some(slot) = self.slot(call_id) else {
            return reject(TableError::CallIdZero, state);
        };
        let Some(current) = slot.load_full() else {
            return reject(TableError::NoSuchCall(call_id), state);
        };
        let old_address = current.client_address;
        if old_address != client_address {
            if let Some(owner) = self.address_owner(client_address) {
                return reject(
                    TableError::AddressInUse {
                        address: client_address,
                        call_id: owner,
                    },
                    state,
                );
            }
            self.table.by_address.insert(client_address, call_id);
        }
        let call = self.new_call(call_id, client_address, state);
        let previous = match self.slot(call_id) {
            Some(slot) => slot.swap(Some(call)),
            None => None,
        };
        if old_address != client_address {
            self.table.by_address.remove(old_address, call_id);
        }
        Ok(previous.unwrap_or(current))
    }
}
