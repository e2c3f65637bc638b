//! The TUN readers: one thread per TUN queue reads the packets the kernel sends to clients
//! (its own replies, ICMP errors, anything it routes to the client pool) and hands each, as
//! [`Handed::Kernel`], to the worker that may encapsulate it: the call's owner when the call
//! is stateful, else the worker with the reader's index. Encapsulation, sequence numbers
//! and transmission therefore stay on the workers: a stateful call keeps one owner and one
//! order, whatever the packet's way in.
//!
//! A reader wakes at least once per poll timeout to see the stop flag. A handed packet waits
//! in the worker's inbox until the worker's next turn (at most its poll timeout, 1 ms).

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Handed, WorkerCall};
use crate::calls::CallTable;
use crate::calls::handoff::{HandOff, HandOffError, WorkerId};
use crate::tun::TunQueue;

/// The largest packet read from the TUN (its MTU is at most this in practice; a longer one
/// arrives truncated and the encapsulation's length check drops it).
const READ_BUFFER: usize = 9216;

/// What the readers counted (monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunReaderStats {
    /// Packets read from the TUN.
    pub read: u64,
    /// Handed to a worker.
    pub handed: u64,
    /// Not IPv4, or too short to have a destination.
    pub not_ipv4: u64,
    /// To an address that is no established call's client.
    pub unknown_client: u64,
    /// The worker's inbox was full: dropped.
    pub inbox_full: u64,
}

#[derive(Debug, Default)]
struct Counters {
    read: AtomicU64,
    handed: AtomicU64,
    not_ipv4: AtomicU64,
    unknown_client: AtomicU64,
    inbox_full: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The running readers.
#[derive(Debug)]
pub struct TunReaders {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl TunReaders {
    /// One reader thread per queue, handing packets into `handoff` (one inbox per worker).
    pub fn spawn(
        queues: &Arc<[TunQueue]>,
        calls: &Arc<CallTable<WorkerCall>>,
        handoff: &Arc<HandOff<Handed>>,
        poll_timeout: Duration,
    ) -> io::Result<TunReaders> {
        let mut readers = TunReaders {
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
            threads: Vec::new(),
        };
        for index in 0..queues.len() {
            let (queues, calls, handoff) =
                (Arc::clone(queues), Arc::clone(calls), Arc::clone(handoff));
            let (stop, counters) = (Arc::clone(&readers.stop), Arc::clone(&readers.counters));
            // On an error, dropping `readers` stops the threads already started.
            let thread = std::thread::Builder::new()
                .name(format!("xpptp-tun{index}"))
                .spawn(move || {
                    let Some(queue) = queues.get(index) else {
                        return Ok(());
                    };
                    let reader = Reader {
                        queue,
                        index,
                        calls: &calls,
                        handoff: &handoff,
                        counters: &counters,
                    };
                    reader.run(&stop, poll_timeout)
                })?;
            readers.threads.push(thread);
        }
        Ok(readers)
    }

    /// The counts so far, all readers.
    pub fn stats(&self) -> TunReaderStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TunReaderStats {
            read: get(&c.read),
            handed: get(&c.handed),
            not_ipv4: get(&c.not_ipv4),
            unknown_client: get(&c.unknown_client),
            inbox_full: get(&c.inbox_full),
        }
    }

    /// Stops the threads (within one poll timeout) and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!("a TUN reader stopped on an error: {err}"),
                Err(_) => tracing::error!("a TUN reader panicked"),
            }
        }
    }
}

impl Drop for TunReaders {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Reader<'a> {
    queue: &'a TunQueue,
    index: usize,
    calls: &'a CallTable<WorkerCall>,
    handoff: &'a HandOff<Handed>,
    counters: &'a Counters,
}

impl Reader<'_> {
    fn run(&self, stop: &AtomicBool, poll_timeout: Duration) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BUFFER];
        while !stop.load(Ordering::Relaxed) {
            if !self.queue.wait_readable(poll_timeout)? {
                continue;
            }
            loop {
                let len = match self.queue.recv(&mut buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if let Some(packet) = buf.get(..len) {
                    self.hand(packet);
                }
            }
        }
        Ok(())
    }

    /// Hands one packet from the kernel to the worker that encapsulates it.
    fn hand(&self, packet: &[u8]) {
        let c = self.counters;
        Counters::bump(&c.read);
        // IPv6 (router solicitations and the like, when the device has IPv6) is not ours.
        let dst = match (packet.first().map(|b| b >> 4), packet.get(16..20)) {
            (Some(4), Some(&[a, b, c, d])) => Ipv4Addr::new(a, b, c, d),
            _ => {
                Counters::bump(&c.not_ipv4);
                return;
            }
        };
        let guard = self.calls.get_by_address(dst);
        let Some(entry) = guard.as_ref() else {
            Counters::bump(&c.unknown_client);
            return;
        };
        let workers = self.handoff.workers().max(1);
        let worker = entry.state().owner().unwrap_or_else(|| {
            // Below `workers`, which fits a WorkerId (HandOff::new's bound).
            WorkerId::try_from(self.index % workers).unwrap_or(0)
        });
        match self.handoff.send(worker, Handed::Kernel(packet.to_vec())) {
            Ok(()) => Counters::bump(&c.handed),
            Err(HandOffError::Full(_) | HandOffError::NoSuchWorker(_)) => {
                Counters::bump(&c.inbox_full)
            }
        }
    }
}
