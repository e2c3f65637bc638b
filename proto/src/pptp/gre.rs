//! The GRE layer of one PPTP call: sequence numbers, acknowledgments and the receive window
//! (RFC 2637 section 4).
//!
//! Three pieces, from the smallest up:
//!
//! * [`ReceiveWindow`]: which of the peer's sequence numbers we have accepted. Small, `Copy`
//!   and allocation-free, so the datapath's fast path keeps one per call too.
//! * [`SendSequencer`]: our next sequence number, the acknowledgment we owe the peer, the
//!   highest of our numbers the peer has acknowledged and its receive window.
//! * [`GreChannel`]: one call while the control plane owns its numbering (during PPP
//!   negotiation), sans-I/O: bytes in, PPP frames out, GRE packets out, a delayed-ack timer.
//!   When the call is established, [`GreChannel::snapshot`] is what the hand-over to the
//!   datapath carries; the datapath continues the numbering from there, and
//!   [`GreChannel::from_snapshot`] takes a call back (re-adoption after a restart).
//!
//! What real peers do, and so what this module does:
//!
//! * Numbering: pptp-linux starts its sequence numbers at 1, Poptop and the Linux `pptp`
//!   module at 0; the initial value is the caller's choice. Numbers wrap at 2^32 and are
//!   compared in serial-number arithmetic (RFC 1982, [`seq_after`]/[`seq_diff`]).
//! * Acknowledgments: the Acknowledgment Number is the highest sequence number received
//!   (section 4.2.5: one ack covers everything up to it). It rides on our next data packet
//!   when we have one, otherwise a pure ack (no S, no payload) goes out after
//!   [`GreConfig::ack_delay`].
//! * Out-of-order packets (section 4.3): the RFC lets a receiver discard them or reorder
//!   them. We accept a late packet once if it is still inside the window and report it as
//!   not in order; [`GreConfig::deliver_reordered`] decides whether the PPP layer sees it.
//! * Flow control and congestion (sections 4.2 and 4.4): we never retransmit and never hold a
//!   packet back. The peer's window is reported ([`SendSequencer::window_full`]) for the
//!   caller to act on, and the round-trip time is estimated as in section 4.4.1
//!   ([`GreChannel::rtt`]) for statistics; the window is not closed on a time-out
//!   (section 4.4.2), as neither Linux's `pptp` module nor accel-ppp does it.

use core::fmt;
use core::time::Duration;
use std::time::Instant;

use crate::pptp::control::CallEstablished;
use crate::wire;
use crate::wire::gre::{GrePacket, GreRepr, seq_after, seq_diff};

/// What a [`ReceiveWindow`] says about one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// First time seen. `in_order` is true when it is after every number accepted so far
    /// (numbers skipped on the way were lost or are still on their way), false when it is a
    /// late arrival inside the window.
    Accept {
        /// After everything accepted so far.
        in_order: bool,
    },
    /// Inside the window and already accepted (section 4.3: discard silently).
    Duplicate,
    /// Behind the window: too old to tell whether it was seen, so refused.
    Stale,
}

impl Verdict {
    /// Whether the packet is to be processed.
    #[inline]
    pub const fn is_accept(self) -> bool {
        matches!(self, Verdict::Accept { .. })
    }
}

/// The peer's sequence numbers we accepted: the highest, plus a bitmap of the `64 * WORDS`
/// numbers up to and including it. Modelled on boringtun's replay window
/// (`noise/session.rs`), with 32-bit wrapping numbers.
///
/// * A number after the highest (RFC 1982) is accepted in order and moves the window; the
///   numbers skipped are forgotten as they fall off the back.
/// * A number at most `BITS - 1` behind the highest is accepted once (late arrival), then a
///   [`Verdict::Duplicate`].
/// * Anything further behind is [`Verdict::Stale`].
/// * Before the first packet every number is accepted: the peer picks its initial number.
///
/// **Jumps forward are never refused**, however large (up to 2^31 - 1, the most serial
/// arithmetic can call "after"); a jump of `BITS` or more clears the bitmap. Reasons:
/// a jump means lost packets, and refusing the packets after a long outage would kill the
/// call for good (pptp-linux discards anything more than 300 ahead as "bogus" and never
/// recovers from such a burst; Linux's `pptp` module accepts any larger number, as we do).
/// PPTP never restarts its numbering within a call, so a jump is never a new epoch. The
/// window is no defence against forged packets either: GRE sequence numbers are neither
/// secret nor authenticated (MPPE has no integrity check), so a forger who gets past the
/// source address and call ID checks can pick any number; those checks are the defence.
///
/// `WORDS` is 1 to 16 (64 to 1024 packets; checked at compile time). Size: 8 * WORDS + 8
/// bytes, i.e. 16 bytes for the default 64-packet window, 136 bytes for 1024. No
/// allocation, no loops over the bitmap except when the window moves with `WORDS > 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiveWindow<const WORDS: usize = 1> {
    /// Highest number accepted; meaningless until bit 0 is set.
    highest: u32,
    /// Bit `i` (bit `i % 64` of word `i / 64`) is set when `highest - i` was accepted.
    /// Bit 0 is set exactly when something has been accepted.
    bits: [u64; WORDS],
}

/// The widest window: 1024 packets (136 bytes).
pub type ReceiveWindow1024 = ReceiveWindow<16>;

impl<const WORDS: usize> Default for ReceiveWindow<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> ReceiveWindow<WORDS> {
    /// Packets the window covers, the highest included.
    pub const BITS: u32 = 64 * WORDS as u32;

    const WORDS_IN_RANGE: () = assert!(
        WORDS >= 1 && WORDS <= 16,
        "ReceiveWindow: WORDS must be 1..=16"
    );

    /// A window that has accepted nothing: the first number will be accepted in order.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::WORDS_IN_RANGE;
        ReceiveWindow {
            highest: 0,
            bits: [0; WORDS],
        }
    }

    /// A window whose highest accepted number is `highest`, with every number behind it
    /// taken as already seen (so refused). For taking over a call whose receive history is
    /// known only as its highest number (see [`GreSnapshot`]): late packets from before the
    /// hand-over are dropped rather than risk delivering one twice.
    pub const fn starting_at(highest: u32) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::WORDS_IN_RANGE;
        ReceiveWindow {
            highest,
            bits: [u64::MAX; WORDS],
        }
    }

    /// The highest number accepted, `None` before the first.
    #[inline]
    pub fn highest(&self) -> Option<u32> {
        if self.started() {
            Some(self.highest)
        } else {
            None
        }
    }

    #[inline]
    fn started(&self) -> bool {
        self.bits.first().is_some_and(|word| word & 1 != 0)
    }

    /// Whether bit `back` (number `highest - back`) is set; `back < BITS`.
    #[inline]
    fn bit(&self, back: u32) -> bool {
        let word = (back / 64) as usize;
        self.bits
            .get(word)
            .is_some_and(|w| (w >> (back % 64)) & 1 != 0)
    }

    /// What [`Self::accept`] would answer, without recording anything.
    #[inline]
    pub fn check(&self, seq: u32) -> Verdict {
        if !self.started() || seq_after(seq, self.highest) {
            return Verdict::Accept { in_order: true };
        }
        // Not after: 0 ..= 2^31 behind.
        let back = self.highest.wrapping_sub(seq);
        if back >= Self::BITS {
            Verdict::Stale
        } else if self.bit(back) {
            Verdict::Duplicate
        } else {
            Verdict::Accept { in_order: false }
        }
    }

    /// Checks `seq` and, when accepted, records it (moving the window if it is the new
    /// highest).
    #[inline]
    pub fn accept(&mut self, seq: u32) -> Verdict {
        let verdict = self.check(seq);
        match verdict {
            Verdict::Accept { in_order: true } => {
                let by = if self.started() {
                    seq.wrapping_sub(self.highest)
                } else {
                    u32::MAX
                };
                self.shift(by);
                if let Some(word) = self.bits.first_mut() {
                    *word |= 1;
                }
                self.highest = seq;
            }
            Verdict::Accept { in_order: false } => {
                let back = self.highest.wrapping_sub(seq);
                if let Some(word) = self.bits.get_mut((back / 64) as usize) {
                    *word |= 1 << (back % 64);
                }
            }
            Verdict::Duplicate | Verdict::Stale => {}
        }
        verdict
    }

    /// Moves the window `by` numbers forward: bit `i` becomes bit `i + by`.
    #[inline]
    fn shift(&mut self, by: u32) {
        if by >= Self::BITS {
            self.bits = [0; WORDS];
            return;
        }
        let words = (by / 64) as usize;
        let bits = by % 64;
        for i in (0..WORDS).rev() {
            let src = i.checked_sub(words);
            let high = src.and_then(|j| self.bits.get(j)).copied().unwrap_or(0);
            let low = if bits == 0 {
                0
            } else {
                src.and_then(|j| j.checked_sub(1))
                    .and_then(|j| self.bits.get(j))
                    .map_or(0, |w| w >> (64 - bits))
            };
            if let Some(word) = self.bits.get_mut(i) {
                *word = (high << bits) | low;
            }
        }
    }
}

/// What an incoming Acknowledgment Number did to our send bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckOutcome {
    /// Acknowledged `newly` more of our packets.
    Advanced {
        /// How many packets this ack newly covers.
        newly: u32,
    },
    /// Not after the highest ack so far (a repeat, or reordered): nothing changes.
    Old,
    /// Acknowledges a number we have not sent: ignored.
    Bogus,
}

/// Send-side numbering and acknowledgment bookkeeping of one call (RFC 2637 section 4.2).
///
/// Holds our next sequence number, the acknowledgment we owe (the highest peer number
/// accepted in order and not yet acknowledged), the highest of our numbers the peer has
/// acknowledged, and the peer's Packet Receive Window Size from its OCRQ/OCRP.
///
/// The window is information, not a brake: [`Self::window_full`] says when the peer's
/// window is used up and the caller decides. Real clients advertise small windows
/// (pptp-linux 3, Windows 64) and acknowledge lazily (pptp-linux waits up to 0.5 s for a
/// single packet), so a concentrator that stopped sending at the window would stall; Linux's
/// `pptp` module ignores the window entirely.
///
/// `Copy`, 20 bytes, no allocation: the datapath keeps one per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendSequencer {
    next_seq: u32,
    /// Highest of our numbers acknowledged; `next_seq - 1` when nothing is outstanding
    /// (also before anything was sent).
    peer_acked: u32,
    ack_owed: Option<u32>,
    peer_window: u16,
}

impl SendSequencer {
    /// Starts numbering at `initial_seq` (pptp-linux 1, Poptop 0), with the peer's receive
    /// window (0 when unknown: never full).
    pub const fn new(initial_seq: u32, peer_window: u16) -> Self {
        SendSequencer {
            next_seq: initial_seq,
            peer_acked: initial_seq.wrapping_sub(1),
            ack_owed: None,
            peer_window,
        }
    }

    /// Rebuilds the bookkeeping from its parts (see [`GreSnapshot`]).
    pub const fn from_parts(
        next_seq: u32,
        peer_acked: u32,
        ack_owed: Option<u32>,
        peer_window: u16,
    ) -> Self {
        SendSequencer {
            next_seq,
            peer_acked,
            ack_owed,
            peer_window,
        }
    }

    /// The sequence number our next data packet carries.
    #[inline]
    pub const fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// The highest of our sequence numbers the peer acknowledged (`next_seq - 1` when
    /// nothing is outstanding).
    #[inline]
    pub const fn peer_acked(&self) -> u32 {
        self.peer_acked
    }

    /// The acknowledgment we owe, if any: what our next packet should carry.
    #[inline]
    pub const fn ack_owed(&self) -> Option<u32> {
        self.ack_owed
    }

    /// The peer's Packet Receive Window Size (0: unknown).
    #[inline]
    pub const fn peer_window(&self) -> u16 {
        self.peer_window
    }

    /// Sets the peer's window (from its OCRQ/OCRP).
    #[inline]
    pub fn set_peer_window(&mut self, window: u16) {
        self.peer_window = window;
    }

    /// How many of our packets the peer has not acknowledged.
    #[inline]
    pub const fn unacked(&self) -> u32 {
        self.next_seq.wrapping_sub(self.peer_acked).wrapping_sub(1)
    }

    /// Whether the peer's window is used up (section 4.2: a strict sender would wait).
    /// Never true while the window is unknown (0).
    #[inline]
    pub const fn window_full(&self) -> bool {
        self.peer_window != 0 && self.unacked() >= self.peer_window as u32
    }

    /// Records a peer number the receive window accepted in order: we now owe its ack.
    #[inline]
    pub fn note_received(&mut self, seq: u32) {
        self.ack_owed = Some(seq);
    }

    /// Takes the numbers for our next data packet: its sequence number and the ack to
    /// piggyback, if one is owed (then no longer owed).
    #[inline]
    pub fn next_data(&mut self) -> (u32, Option<u32>) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        (seq, self.ack_owed.take())
    }

    /// Takes the owed ack for a pure acknowledgment.
    #[inline]
    pub fn take_ack(&mut self) -> Option<u32> {
        self.ack_owed.take()
    }

    /// Processes an Acknowledgment Number received from the peer.
    #[inline]
    pub fn on_ack(&mut self, ack: u32) -> AckOutcome {
        let newly = seq_diff(ack, self.peer_acked);
        if newly <= 0 {
            return AckOutcome::Old;
        }
        let last_sent = self.next_seq.wrapping_sub(1);
        if seq_after(ack, last_sent) {
            return AckOutcome::Bogus;
        }
        self.peer_acked = ack;
        AckOutcome::Advanced {
            newly: newly.unsigned_abs(),
        }
    }
}

/// Settings of a [`GreChannel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreConfig {
    /// How long an owed acknowledgment waits for a data packet to ride on before a pure ack
    /// goes out. Default 50 ms, what Poptop does in the reference capture (its pure acks
    /// follow the client's packet by 51-52 ms). The RFC asks for prompt acks; pptp-linux
    /// waits 0.5 s when one packet is owed and acks at once when more are; Linux's `pptp`
    /// module sends no pure acks at all (acks only ride on data).
    pub ack_delay: Duration,
    /// Our Packet Receive Window Size, as advertised in our OCRQ/OCRP. When this many
    /// packets are owed an ack, a pure ack goes out at once: a peer that honours the window
    /// cannot send more until it is acknowledged. 0 disables this.
    pub recv_window: u16,
    /// Whether a late packet accepted inside the window ([`Verdict::Accept`] with
    /// `in_order: false`) is delivered to PPP. The RFC (section 4.3) allows discarding or
    /// reordering; PPP's control protocols and IP both cope with the occasional reordered
    /// frame, so the default delivers it. `false` drops it as [`DropReason::Reordered`].
    pub deliver_reordered: bool,
}

impl Default for GreConfig {
    fn default() -> Self {
        GreConfig {
            ack_delay: Duration::from_millis(50),
            recv_window: 64,
            deliver_reordered: true,
        }
    }
}

/// Why [`GreChannel::handle_packet`] dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not a valid PPTP GRE packet ([`GreRepr::parse`]'s error).
    Malformed(wire::Error),
    /// For another call: the Call ID is not ours.
    WrongCallId {
        /// The Call ID the packet carried.
        call_id: u16,
    },
    /// Already accepted (section 4.3: discard silently). Its ack was processed.
    Duplicate {
        /// Its sequence number.
        seq: u32,
    },
    /// Behind the receive window. Its ack was processed.
    Stale {
        /// Its sequence number.
        seq: u32,
    },
    /// A late arrival inside the window, dropped because
    /// [`GreConfig::deliver_reordered`] is off. Recorded as received.
    Reordered {
        /// Its sequence number.
        seq: u32,
    },
    /// A sequence number but no payload: numbered and acknowledged, nothing to deliver.
    EmptyPayload {
        /// Its sequence number.
        seq: u32,
    },
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(error) => write!(f, "malformed GRE packet: {error}"),
            DropReason::WrongCallId { call_id } => write!(f, "GRE for call ID {call_id}"),
            DropReason::Duplicate { seq } => write!(f, "duplicate GRE sequence number {seq}"),
            DropReason::Stale { seq } => write!(f, "GRE sequence number {seq} behind the window"),
            DropReason::Reordered { seq } => write!(f, "out-of-order GRE sequence number {seq}"),
            DropReason::EmptyPayload { seq } => write!(f, "GRE packet {seq} without payload"),
        }
    }
}

/// Dropped packets, by [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    /// [`DropReason::Malformed`].
    pub malformed: u64,
    /// [`DropReason::WrongCallId`].
    pub wrong_call_id: u64,
    /// [`DropReason::Duplicate`].
    pub duplicate: u64,
    /// [`DropReason::Stale`].
    pub stale: u64,
    /// [`DropReason::Reordered`].
    pub reordered: u64,
    /// [`DropReason::EmptyPayload`].
    pub empty_payload: u64,
}

impl DropCounters {
    fn count(&mut self, reason: &DropReason) {
        let slot = match reason {
            DropReason::Malformed(_) => &mut self.malformed,
            DropReason::WrongCallId { .. } => &mut self.wrong_call_id,
            DropReason::Duplicate { .. } => &mut self.duplicate,
            DropReason::Stale { .. } => &mut self.stale,
            DropReason::Reordered { .. } => &mut self.reordered,
            DropReason::EmptyPayload { .. } => &mut self.empty_payload,
        };
        *slot = slot.saturating_add(1);
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.malformed
            .saturating_add(self.wrong_call_id)
            .saturating_add(self.duplicate)
            .saturating_add(self.stale)
            .saturating_add(self.reordered)
            .saturating_add(self.empty_payload)
    }
}

/// Counters of one [`GreChannel`]. Bytes are PPP payload bytes (GRE headers excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GreCounters {
    /// PPP frames delivered ([`Received::Frame`]).
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Pure acknowledgments received.
    pub rx_pure_acks: u64,
    /// Frames delivered out of order (late arrivals inside the window).
    pub rx_reordered: u64,
    /// Peer sequence numbers skipped and not (yet) filled in by a late arrival.
    pub rx_lost: u64,
    /// Acks for numbers we never sent ([`AckOutcome::Bogus`]), ignored.
    pub rx_bogus_acks: u64,
    /// Data packets we built.
    pub tx_packets: u64,
    /// Their PPP bytes.
    pub tx_bytes: u64,
    /// Pure acknowledgments we built.
    pub tx_pure_acks: u64,
    /// Packets dropped, by reason.
    pub drops: DropCounters,
}

/// What [`GreChannel::handle_packet`] accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// A PPP frame for the PPP link, borrowed from the packet.
    Frame {
        /// The PPP frame (exactly Payload Length bytes).
        ppp: &'a [u8],
        /// Its sequence number.
        seq: u32,
        /// False for a late arrival inside the window.
        in_order: bool,
    },
    /// A pure acknowledgment; the bookkeeping is done.
    Ack {
        /// The Acknowledgment Number.
        ack: u32,
    },
}

/// [`GreChannel::encapsulate`] was given a frame longer than Payload Length can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameTooLong {
    /// The frame's length.
    pub len: usize,
}

impl fmt::Display for FrameTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PPP frame of {} bytes exceeds GRE's 65535", self.len)
    }
}

impl core::error::Error for FrameTooLong {}

/// A call's GRE numbering at the hand-over from the control plane to the datapath (and back
/// for re-adoption): enough to continue both directions without a gap or a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreSnapshot {
    /// Our Call ID (in the GRE packets we receive).
    pub local_call_id: u16,
    /// The peer's Call ID (in the GRE packets we send).
    pub peer_call_id: u16,
    /// The sequence number of our next data packet.
    pub next_seq: u32,
    /// The highest of our numbers the peer acknowledged.
    pub peer_acked: u32,
    /// The ack our next packet should carry (the peer's highest number, not yet
    /// acknowledged), if one is owed.
    pub ack_owed: Option<u32>,
    /// The peer's highest sequence number we accepted; `None` before its first packet.
    /// The receiver seeds its window with it ([`ReceiveWindow::starting_at`]).
    pub recv_highest: Option<u32>,
    /// The peer's Packet Receive Window Size (0: unknown).
    pub peer_recv_window: u16,
}

/// Round-trip estimate from acknowledgments (RFC 2637 section 4.4.1), timing one packet at a
/// time so that no per-packet state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RttEstimator {
    /// The packet being timed: its number and when it was sent.
    timed: Option<(u32, Instant)>,
    /// Smoothed round-trip time (the RFC's Average) and mean deviation (Deviation).
    average: Option<Duration>,
    deviation: Duration,
}

impl RttEstimator {
    fn on_send(&mut self, seq: u32, now: Instant) {
        if self.timed.is_none() {
            self.timed = Some((seq, now));
        }
    }

    fn on_ack(&mut self, ack: u32, now: Instant) {
        let Some((seq, sent)) = self.timed else {
            return;
        };
        if seq_after(seq, ack) {
            return;
        }
        self.timed = None;
        let sample = now.saturating_duration_since(sent);
        match self.average {
            None => {
                self.average = Some(sample);
                self.deviation = sample / 2;
            }
            Some(average) => {
                // Average += (Sample - Average) / 8; Deviation += (|Diff| - Deviation) / 4.
                let diff = sample.abs_diff(average);
                let average = if sample >= average {
                    average.saturating_add(diff / 8)
                } else {
                    average.saturating_sub(diff / 8)
                };
                let deviation = if diff >= self.deviation {
                    self.deviation.saturating_add((diff - self.deviation) / 4)
                } else {
                    self.deviation.saturating_sub((self.deviation - diff) / 4)
                };
                self.average = Some(average);
                self.deviation = deviation;
            }
        }
    }
}

/// The GRE side of one PPTP call while the control plane owns its numbering.
///
/// Sans-I/O, time passed in. Order of calls:
///
/// 1. Inputs: [`Self::handle_packet`] for each GRE packet addressed to this call (IP header
///    removed), [`Self::encapsulate`] for each PPP frame to send, [`Self::handle_timeout`]
///    when the deadline from [`Self::poll_timeout`] has passed.
/// 2. After every input, drain [`Self::poll_transmit`] (pure acks) until it returns `None`.
/// 3. Then re-arm the timer from [`Self::poll_timeout`].
///
/// At most one pure ack is queued at a time (a newer ack replaces it), so the peer cannot
/// grow the output. Nothing allocates except the caller's output vectors.
#[derive(Debug, Clone)]
pub struct GreChannel {
    local_call_id: u16,
    peer_call_id: u16,
    config: GreConfig,
    window: ReceiveWindow,
    sequencer: SendSequencer,
    /// When the owed ack goes out as a pure ack.
    ack_deadline: Option<Instant>,
    /// Packets accepted in order since we last sent an ack.
    owed_count: u32,
    /// A pure ack built by the timer or the window rule, waiting for `poll_transmit`.
    queued_ack: Option<u32>,
    rtt: RttEstimator,
    counters: GreCounters,
}

impl GreChannel {
    /// A channel for a new call: our Call ID (the one we receive), the peer's (the one we
    /// send), our first sequence number. The peer's receive window starts unknown; see
    /// [`Self::set_peer_recv_window`] or [`Self::from_call`].
    pub fn new(local_call_id: u16, peer_call_id: u16, initial_seq: u32, config: GreConfig) -> Self {
        GreChannel {
            local_call_id,
            peer_call_id,
            config,
            window: ReceiveWindow::new(),
            sequencer: SendSequencer::new(initial_seq, 0),
            ack_deadline: None,
            owed_count: 0,
            queued_ack: None,
            rtt: RttEstimator::default(),
            counters: GreCounters::default(),
        }
    }

    /// A channel for a call the control connection reports established.
    pub fn from_call(call: &CallEstablished, initial_seq: u32, config: GreConfig) -> Self {
        let mut channel = Self::new(call.local_call_id, call.peer_call_id, initial_seq, config);
        channel.set_peer_recv_window(call.peer_recv_window);
        channel
    }

    /// Takes a call back from its snapshot (re-adoption). An owed ack is due `ack_delay`
    /// after `now`.
    pub fn from_snapshot(now: Instant, snapshot: &GreSnapshot, config: GreConfig) -> Self {
        let window = match snapshot.recv_highest {
            Some(highest) => ReceiveWindow::starting_at(highest),
            None => ReceiveWindow::new(),
        };
        let sequencer = SendSequencer::from_parts(
            snapshot.next_seq,
            snapshot.peer_acked,
            snapshot.ack_owed,
            snapshot.peer_recv_window,
        );
        GreChannel {
            local_call_id: snapshot.local_call_id,
            peer_call_id: snapshot.peer_call_id,
            config,
            window,
            sequencer,
            ack_deadline: snapshot
                .ack_owed
                .map(|_| now.checked_add(config.ack_delay).unwrap_or(now)),
            owed_count: u32::from(snapshot.ack_owed.is_some()),
            queued_ack: None,
            rtt: RttEstimator::default(),
            counters: GreCounters::default(),
        }
    }

    /// The numbering to hand over: our next sequence number, the ack owed (including one
    /// queued but not yet polled), the peer's highest number and window.
    pub fn snapshot(&self) -> GreSnapshot {
        GreSnapshot {
            local_call_id: self.local_call_id,
            peer_call_id: self.peer_call_id,
            next_seq: self.sequencer.next_seq(),
            peer_acked: self.sequencer.peer_acked(),
            ack_owed: self.sequencer.ack_owed().or(self.queued_ack),
            recv_highest: self.window.highest(),
            peer_recv_window: self.sequencer.peer_window(),
        }
    }

    /// Our Call ID.
    pub fn local_call_id(&self) -> u16 {
        self.local_call_id
    }

    /// The peer's Call ID.
    pub fn peer_call_id(&self) -> u16 {
        self.peer_call_id
    }

    /// Sets the peer's Packet Receive Window Size (from its OCRQ/OCRP).
    pub fn set_peer_recv_window(&mut self, window: u16) {
        self.sequencer.set_peer_window(window);
    }

    /// The send-side bookkeeping ([`SendSequencer::window_full`] and friends).
    pub fn sequencer(&self) -> &SendSequencer {
        &self.sequencer
    }

    /// The receive window.
    pub fn receive_window(&self) -> &ReceiveWindow {
        &self.window
    }

    /// Counters.
    pub fn counters(&self) -> &GreCounters {
        &self.counters
    }

    /// Smoothed round-trip time from the peer's acknowledgments (section 4.4.1), once one
    /// of our packets has been acknowledged.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.average
    }

    /// The RFC's adaptive acknowledgment time-out, Average + 4 * Deviation (section 4.4.1),
    /// for information: we never retransmit.
    pub fn ack_timeout(&self) -> Option<Duration> {
        self.rtt
            .average
            .map(|average| average.saturating_add(self.rtt.deviation.saturating_mul(4)))
    }

    fn drop_packet(&mut self, reason: DropReason) -> DropReason {
        self.counters.drops.count(&reason);
        reason
    }

    /// Processes one GRE packet (from the GRE header on; trailing bytes after the payload
    /// are ignored): parse, Call ID, acknowledgment, receive window. Returns the PPP frame
    /// to hand to the PPP link, a pure ack, or why the packet was dropped.
    ///
    /// The ack of a packet that is then dropped as a duplicate, stale or reordered packet
    /// still counts: acks only move forward, so an old one is harmless.
    pub fn handle_packet<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
    ) -> Result<Received<'a>, DropReason> {
        let packet = GrePacket::new_unchecked(bytes);
        let repr = match GreRepr::parse(&packet) {
            Ok(repr) => repr,
            Err(error) => return Err(self.drop_packet(DropReason::Malformed(error))),
        };
        if repr.call_id != self.local_call_id {
            return Err(self.drop_packet(DropReason::WrongCallId {
                call_id: repr.call_id,
            }));
        }
        if let Some(ack) = repr.ack {
            match self.sequencer.on_ack(ack) {
                AckOutcome::Advanced { .. } => self.rtt.on_ack(ack, now),
                AckOutcome::Old => {}
                AckOutcome::Bogus => {
                    self.counters.rx_bogus_acks = self.counters.rx_bogus_acks.saturating_add(1)
                }
            }
        }
        let Some(seq) = repr.seq else {
            // GreRepr::parse guarantees an ack when there is no sequence number.
            self.counters.rx_pure_acks = self.counters.rx_pure_acks.saturating_add(1);
            return Ok(Received::Ack {
                ack: repr.ack.unwrap_or_default(),
            });
        };
        let previous = self.window.highest();
        let in_order = match self.window.accept(seq) {
            Verdict::Accept { in_order: true } => {
                if let Some(previous) = previous {
                    let skipped = seq.wrapping_sub(previous).wrapping_sub(1);
                    self.counters.rx_lost = self.counters.rx_lost.saturating_add(skipped.into());
                }
                self.ack_owed(now, seq);
                true
            }
            Verdict::Accept { in_order: false } => {
                self.counters.rx_lost = self.counters.rx_lost.saturating_sub(1);
                if !self.config.deliver_reordered {
                    return Err(self.drop_packet(DropReason::Reordered { seq }));
                }
                self.counters.rx_reordered = self.counters.rx_reordered.saturating_add(1);
                false
            }
            Verdict::Duplicate => return Err(self.drop_packet(DropReason::Duplicate { seq })),
            Verdict::Stale => return Err(self.drop_packet(DropReason::Stale { seq })),
        };
        let ppp = packet.payload();
        if ppp.is_empty() {
            return Err(self.drop_packet(DropReason::EmptyPayload { seq }));
        }
        self.counters.rx_packets = self.counters.rx_packets.saturating_add(1);
        self.counters.rx_bytes = self.counters.rx_bytes.saturating_add(ppp.len() as u64);
        Ok(Received::Frame { ppp, seq, in_order })
    }

    /// We now owe an ack for `seq`: arm the delayed ack, or queue it at once when the
    /// peer's window toward us is used up.
    fn ack_owed(&mut self, now: Instant, seq: u32) {
        self.sequencer.note_received(seq);
        self.owed_count = self.owed_count.saturating_add(1);
        let window = u32::from(self.config.recv_window);
        if window != 0 && self.owed_count >= window {
            self.queue_pure_ack();
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now.checked_add(self.config.ack_delay).unwrap_or(now));
        }
    }

    fn queue_pure_ack(&mut self) {
        if let Some(ack) = self.sequencer.take_ack() {
            self.queued_ack = Some(ack);
        }
        self.ack_deadline = None;
        self.owed_count = 0;
    }

    /// Appends a GRE data packet carrying `ppp_frame` to `out`: header with our next
    /// sequence number and, when one is owed, the piggybacked ack; then the frame. `out` is
    /// appended to, so the caller may have put an IP header in it already. Returns the
    /// header written.
    ///
    /// Never blocks on the peer's window; check [`SendSequencer::window_full`] if you care.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        ppp_frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<GreRepr, FrameTooLong> {
        let payload_len = u16::try_from(ppp_frame.len()).map_err(|_| FrameTooLong {
            len: ppp_frame.len(),
        })?;
        let (seq, owed) = self.sequencer.next_data();
        // A queued pure ack not yet polled rides on this packet instead.
        let ack = owed.or(self.queued_ack.take());
        if ack.is_some() {
            self.ack_deadline = None;
            self.owed_count = 0;
        }
        let repr = GreRepr {
            call_id: self.peer_call_id,
            seq: Some(seq),
            ack,
            payload_len,
        };
        emit_header(&repr, out);
        out.extend_from_slice(ppp_frame);
        self.rtt.on_send(seq, now);
        self.counters.tx_packets = self.counters.tx_packets.saturating_add(1);
        self.counters.tx_bytes = self
            .counters
            .tx_bytes
            .saturating_add(ppp_frame.len() as u64);
        Ok(repr)
    }

    /// When [`Self::handle_timeout`] must next be called: the delayed ack's deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ack_deadline
    }

    /// Acts on the delayed-ack timer: once its deadline has passed, the owed ack is queued
    /// as a pure ack for [`Self::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ack_deadline.is_some_and(|deadline| deadline <= now) {
            self.queue_pure_ack();
        }
    }

    /// Appends the queued pure ack (12 bytes) to `out` and returns its header, or `None`
    /// when there is nothing to send.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<GreRepr> {
        let ack = self.queued_ack.take()?;
        let repr = GreRepr::pure_ack(self.peer_call_id, ack);
        emit_header(&repr, out);
        self.counters.tx_pure_acks = self.counters.tx_pure_acks.saturating_add(1);
        Some(repr)
    }
}

/// Appends `repr`'s header to `out`.
fn emit_header(repr: &GreRepr, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + repr.header_len(), 0);
    if let Some(header) = out.get_mut(start..) {
        // Cannot fail: the slot is exactly header_len bytes and every repr built here has a
        // sequence number or an ack, and a payload only with a sequence number.
        let emitted = repr.emit(&mut GrePacket::new_unchecked(header));
        debug_assert!(emitted.is_ok());
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    fn base() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A GRE packet as a peer would send it to call `call_id`.
    fn peer_packet(call_id: u16, seq: Option<u32>, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let repr = GreRepr {
            call_id,
            seq,
            ack,
            payload_len: payload.len() as u16,
        };
        let mut bytes = vec![0u8; repr.header_len()];
        repr.emit(&mut GrePacket::new_unchecked(&mut bytes[..]))
            .unwrap();
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Server role as in the reference capture: Poptop's call ID 0, pptp-linux's 0x73ad,
    /// Poptop numbering from 0.
    fn server_channel(initial_seq: u32) -> GreChannel {
        let mut channel = GreChannel::new(0, 0x73ad, initial_seq, GreConfig::default());
        channel.set_peer_recv_window(3);
        channel
    }

    fn client_sends(channel: &mut GreChannel, now: Instant, seq: u32) -> Result<u32, DropReason> {
        let bytes = peer_packet(0, Some(seq), None, &[0xc0, 0x21, 0x09]);
        channel
            .handle_packet(now, &bytes)
            .map(|received| match received {
                Received::Frame { seq, .. } => seq,
                Received::Ack { .. } => panic!("data packet taken for an ack"),
            })
    }

    // ---- ReceiveWindow ----

    #[test]
    fn window_sizes() {
        assert_eq!(core::mem::size_of::<ReceiveWindow>(), 16);
        assert_eq!(core::mem::size_of::<ReceiveWindow1024>(), 136);
        assert_eq!(core::mem::size_of::<SendSequencer>(), 20);
        assert_eq!(ReceiveWindow::<1>::BITS, 64);
        assert_eq!(ReceiveWindow1024::BITS, 1024);
    }

    #[test]
    fn window_first_packet_any_number() {
        for first in [0u32, 1, 0x8000_0000, u32::MAX] {
            let mut window = ReceiveWindow::<1>::new();
            assert_eq!(window.highest(), None);
            assert_eq!(window.accept(first), Verdict::Accept { in_order: true });
            assert_eq!(window.highest(), Some(first));
            assert_eq!(window.accept(first), Verdict::Duplicate);
        }
    }

    #[test]
    fn window_in_order_then_duplicates() {
        let mut window = ReceiveWindow::<1>::new();
        for seq in 1..=10 {
            assert_eq!(window.accept(seq), Verdict::Accept { in_order: true });
        }
        for seq in 1..=10 {
            assert_eq!(window.accept(seq), Verdict::Duplicate, "seq {seq}");
        }
        assert_eq!(window.highest(), Some(10));
    }

    #[test]
    fn window_reordered_accepted_once() {
        let mut window = ReceiveWindow::<1>::new();
        assert!(window.accept(1).is_accept());
        assert_eq!(window.accept(4), Verdict::Accept { in_order: true });
        assert_eq!(window.check(3), Verdict::Accept { in_order: false });
        assert_eq!(window.accept(3), Verdict::Accept { in_order: false });
        assert_eq!(window.accept(3), Verdict::Duplicate);
        assert_eq!(window.accept(2), Verdict::Accept { in_order: false });
        assert_eq!(window.accept(2), Verdict::Duplicate);
        assert_eq!(window.highest(), Some(4));
    }

    #[test]
    fn window_stale_behind() {
        let mut window = ReceiveWindow::<1>::new();
        assert!(window.accept(100).is_accept());
        // 63 behind is the oldest slot; 64 behind has fallen off.
        assert_eq!(window.check(37), Verdict::Accept { in_order: false });
        assert_eq!(window.check(36), Verdict::Stale);
        assert_eq!(window.accept(0), Verdict::Stale);
        // Exactly half the number space away: not after, so stale.
        assert_eq!(window.check(100 + 0x8000_0000), Verdict::Stale);
    }

    #[test]
    fn window_jumps_forward() {
        let mut window = ReceiveWindow::<1>::new();
        assert!(window.accept(10).is_accept());
        // A jump inside the window keeps what was seen.
        assert_eq!(window.accept(60), Verdict::Accept { in_order: true });
        assert_eq!(window.accept(10), Verdict::Duplicate);
        assert_eq!(window.accept(11), Verdict::Accept { in_order: false });
        // A jump beyond the window clears it: everything behind is new or stale.
        assert_eq!(window.accept(1000), Verdict::Accept { in_order: true });
        assert_eq!(window.accept(999), Verdict::Accept { in_order: false });
        assert_eq!(window.accept(60), Verdict::Stale);
        // The largest forward jump serial arithmetic allows is accepted.
        assert_eq!(
            window.accept(1000 + 0x7fff_ffff),
            Verdict::Accept { in_order: true }
        );
        assert_eq!(window.highest(), Some(1000 + 0x7fff_ffff));
    }

    #[test]
    fn window_wraps_at_2_32() {
        let mut window = ReceiveWindow::<1>::new();
        assert!(window.accept(u32::MAX - 2).is_accept());
        assert_eq!(window.accept(u32::MAX), Verdict::Accept { in_order: true });
        assert_eq!(window.accept(1), Verdict::Accept { in_order: true });
        assert_eq!(window.accept(0), Verdict::Accept { in_order: false });
        assert_eq!(
            window.accept(u32::MAX - 1),
            Verdict::Accept { in_order: false }
        );
        assert_eq!(window.accept(u32::MAX), Verdict::Duplicate);
        assert_eq!(window.accept(u32::MAX - 2), Verdict::Duplicate);
        assert_eq!(window.accept(u32::MAX - 70), Verdict::Stale);
        assert_eq!(window.highest(), Some(1));
    }

    #[test]
    fn window_1024_shifts_across_words() {
        let mut window = ReceiveWindow1024::new();
        assert!(window.accept(0).is_accept());
        assert!(window.accept(5).is_accept());
        // Move by 70 (one word and six bits), then 64, then 1.
        assert!(window.accept(75).is_accept());
        assert!(window.accept(139).is_accept());
        assert!(window.accept(140).is_accept());
        for seq in [0, 5, 75, 139, 140] {
            assert_eq!(window.check(seq), Verdict::Duplicate, "seq {seq}");
        }
        for seq in [1, 4, 6, 74, 76, 138] {
            assert_eq!(
                window.check(seq),
                Verdict::Accept { in_order: false },
                "seq {seq}"
            );
        }
        assert!(window.accept(140 + 1023).is_accept());
        assert_eq!(window.check(140), Verdict::Duplicate);
        assert_eq!(window.check(139), Verdict::Stale);
    }

    #[test]
    fn window_starting_at_refuses_the_past() {
        let mut window = ReceiveWindow::<1>::starting_at(500);
        assert_eq!(window.highest(), Some(500));
        assert_eq!(window.accept(500), Verdict::Duplicate);
        assert_eq!(window.accept(480), Verdict::Duplicate);
        assert_eq!(window.accept(400), Verdict::Stale);
        assert_eq!(window.accept(502), Verdict::Accept { in_order: true });
        assert_eq!(window.accept(501), Verdict::Accept { in_order: false });
    }

    /// The window's answer, computed from the set of everything accepted.
    fn model_verdict(
        accepted: &std::collections::HashSet<u32>,
        highest: Option<u32>,
        bits: u32,
        seq: u32,
    ) -> Verdict {
        match highest {
            None => Verdict::Accept { in_order: true },
            Some(h) if seq_after(seq, h) => Verdict::Accept { in_order: true },
            Some(h) if h.wrapping_sub(seq) >= bits => Verdict::Stale,
            Some(_) if accepted.contains(&seq) => Verdict::Duplicate,
            Some(_) => Verdict::Accept { in_order: false },
        }
    }

    fn check_against_model<const W: usize>(start: u32, steps: &[i64]) {
        let mut window = ReceiveWindow::<W>::new();
        let mut accepted = std::collections::HashSet::new();
        let mut highest = None;
        for &step in steps {
            let seq = start.wrapping_add(step as u32);
            let expected = model_verdict(&accepted, highest, ReceiveWindow::<W>::BITS, seq);
            assert_eq!(window.accept(seq), expected, "seq {seq}");
            if let Verdict::Accept { in_order } = expected {
                accepted.insert(seq);
                if in_order {
                    highest = Some(seq);
                    // What falls off the back is forgotten: after a wrap of the number
                    // space the same number is a new packet.
                    let bits = ReceiveWindow::<W>::BITS;
                    accepted.retain(|&x| seq.wrapping_sub(x) < bits);
                }
            }
            assert_eq!(window.highest(), highest);
        }
    }

    proptest! {
        #[test]
        fn permutations_within_window_accepted_once(
            start in any::<u32>(),
            order in Just((0u32..64).collect::<Vec<_>>()).prop_shuffle(),
            repeats in proptest::collection::vec((0usize..64, 0usize..64), 0..40),
        ) {
            // Every number of a 64-packet span, shuffled, some sent again later.
            let mut sends: Vec<u32> = order.clone();
            for (from, to) in repeats {
                let again = sends[from.min(sends.len() - 1)];
                sends.insert(to.min(sends.len()), again);
            }
            let mut window = ReceiveWindow::<1>::new();
            // The first packet sets the window's base: start with the lowest so that the
            // whole span fits.
            prop_assert!(window.accept(start).is_accept());
            let mut seen = std::collections::HashSet::from([0u32]);
            for offset in sends {
                let verdict = window.accept(start.wrapping_add(offset));
                if seen.insert(offset) {
                    prop_assert!(verdict.is_accept(), "offset {} refused: {:?}", offset, verdict);
                } else {
                    prop_assert_eq!(verdict, Verdict::Duplicate, "offset {}", offset);
                }
            }
            prop_assert_eq!(seen.len(), 64);
            prop_assert_eq!(window.highest(), Some(start.wrapping_add(63)));
        }

        #[test]
        fn window_matches_model(
            start in any::<u32>(),
            steps in proptest::collection::vec(
                prop_oneof![0i64..200, -2000i64..3000, any::<u32>().prop_map(i64::from)],
                1..120,
            ),
        ) {
            check_against_model::<1>(start, &steps);
            check_against_model::<2>(start, &steps);
            check_against_model::<16>(start, &steps);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_packets_are_counted_never_panic(
            packets in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..24),
                    (any::<Option<u32>>(), any::<Option<u32>>(), 0usize..4).prop_map(
                        |(seq, ack, len)| {
                            let ack = if seq.is_none() { Some(ack.unwrap_or(0)) } else { ack };
                            let len = if seq.is_none() { 0 } else { len };
                            peer_packet(0, seq, ack, &[0x21; 4][..len])
                        }
                    ),
                ],
                0..40,
            ),
        ) {
            let now = base();
            let mut channel = server_channel(0);
            let mut out = Vec::new();
            for (i, bytes) in packets.iter().enumerate() {
                let now = now + ms(i as u64);
                let _ = channel.handle_packet(now, bytes);
                channel.handle_timeout(now);
                while channel.poll_transmit(&mut out).is_some() {}
                channel.encapsulate(now, &[0xc0, 0x21], &mut out).unwrap();
            }
            let c = channel.counters();
            prop_assert_eq!(
                c.rx_packets + c.rx_pure_acks + c.drops.total(),
                packets.len() as u64
            );
        }
    }

    // ---- SendSequencer ----

    #[test]
    fn sequencer_numbers_and_acks() {
        let mut seq = SendSequencer::new(1, 3);
        assert_eq!(seq.unacked(), 0);
        assert!(!seq.window_full());
        // Nothing sent yet: an ack for 1 acknowledges a packet we never sent.
        assert_eq!(seq.on_ack(1), AckOutcome::Bogus);
        assert_eq!(seq.next_data(), (1, None));
        seq.note_received(7);
        assert_eq!(seq.ack_owed(), Some(7));
        assert_eq!(seq.next_data(), (2, Some(7)));
        assert_eq!(seq.ack_owed(), None);
        assert_eq!(seq.next_data(), (3, None));
        assert_eq!(seq.unacked(), 3);
        assert!(seq.window_full());
        assert_eq!(seq.on_ack(2), AckOutcome::Advanced { newly: 2 });
        assert_eq!(seq.unacked(), 1);
        assert!(!seq.window_full());
        assert_eq!(seq.on_ack(1), AckOutcome::Old);
        assert_eq!(seq.on_ack(2), AckOutcome::Old);
        assert_eq!(seq.on_ack(4), AckOutcome::Bogus);
        assert_eq!(seq.peer_acked(), 2);
        assert_eq!(seq.on_ack(3), AckOutcome::Advanced { newly: 1 });
        assert_eq!(seq.unacked(), 0);
    }

    #[test]
    fn sequencer_wraps_and_unknown_window() {
        let mut seq = SendSequencer::new(u32::MAX, 0);
        assert_eq!(seq.next_data().0, u32::MAX);
        assert_eq!(seq.next_data().0, 0);
        assert_eq!(seq.next_seq(), 1);
        assert_eq!(seq.unacked(), 2);
        assert!(!seq.window_full(), "an unknown window is never full");
        assert_eq!(seq.on_ack(0), AckOutcome::Advanced { newly: 2 });
        assert_eq!(seq.unacked(), 0);
        seq.set_peer_window(1);
        seq.next_data();
        assert!(seq.window_full());
    }

    // ---- GreChannel: byte-exact output ----

    // From the reference capture (Debian pptp-linux client, Poptop server): Poptop's LCP
    // Echo-Request with an ack piggybacked (frame 25), its Echo-Reply with no ack owed
    // (frame 28) and a pure ack (frame 67).
    use crate::testing::reference::gre::{
        SERVER_ECHO_REPLY as SERVER_DATA, SERVER_ECHO_REQUEST as SERVER_DATA_ACK, SERVER_PURE_ACK,
    };

    #[test]
    fn encapsulate_with_piggybacked_ack() {
        let now = base();
        let mut channel = server_channel(2);
        assert_eq!(client_sends(&mut channel, now, 3), Ok(3));
        let mut out = Vec::new();
        let repr = channel
            .encapsulate(now, &SERVER_DATA_ACK[16..], &mut out)
            .unwrap();
        assert_eq!(out, SERVER_DATA_ACK);
        assert_eq!(repr.seq, Some(2));
        assert_eq!(repr.ack, Some(3));
        // The ack went out: no timer, nothing more owed.
        assert_eq!(channel.poll_timeout(), None);
        assert_eq!(channel.sequencer().ack_owed(), None);
    }

    #[test]
    fn encapsulate_without_ack_appends() {
        let now = base();
        let mut channel = server_channel(4);
        // An outer header already in the buffer stays in front.
        let mut out = vec![0x45, 0x00];
        channel
            .encapsulate(now, &SERVER_DATA[12..], &mut out)
            .unwrap();
        assert_eq!(&out[..2], &[0x45, 0x00]);
        assert_eq!(&out[2..], &SERVER_DATA[..]);
        assert_eq!(channel.counters().tx_packets, 1);
        assert_eq!(channel.counters().tx_bytes, 10);
    }

    #[test]
    fn pure_ack_after_delay() {
        let now = base();
        let mut channel = server_channel(0);
        assert_eq!(client_sends(&mut channel, now, 20), Ok(20));
        let mut out = Vec::new();
        assert_eq!(channel.poll_transmit(&mut out), None);
        assert_eq!(channel.poll_timeout(), Some(now + ms(50)));
        channel.handle_timeout(now + ms(49));
        assert_eq!(channel.poll_transmit(&mut out), None);
        channel.handle_timeout(now + ms(50));
        assert_eq!(
            channel.poll_transmit(&mut out),
            Some(GreRepr::pure_ack(0x73ad, 20))
        );
        assert_eq!(out, SERVER_PURE_ACK);
        assert_eq!(channel.poll_transmit(&mut out), None);
        assert_eq!(channel.poll_timeout(), None);
        assert_eq!(channel.counters().tx_pure_acks, 1);
    }

    #[test]
    fn data_before_the_deadline_carries_the_ack() {
        let now = base();
        let mut channel = server_channel(0);
        client_sends(&mut channel, now, 1).unwrap();
        client_sends(&mut channel, now + ms(10), 2).unwrap();
        // The deadline is from the first packet owed an ack.
        assert_eq!(channel.poll_timeout(), Some(now + ms(50)));
        let mut out = Vec::new();
        let repr = channel
            .encapsulate(now + ms(20), &[0xc0, 0x21], &mut out)
            .unwrap();
        assert_eq!(repr.ack, Some(2));
        assert_eq!(channel.poll_timeout(), None);
        channel.handle_timeout(now + ms(100));
        assert_eq!(channel.poll_transmit(&mut out), None);
    }

    #[test]
    fn queued_pure_ack_rides_on_data() {
        let now = base();
        let mut channel = server_channel(0);
        client_sends(&mut channel, now, 1).unwrap();
        channel.handle_timeout(now + ms(50));
        // Not polled yet; data goes first and carries it.
        let mut out = Vec::new();
        let repr = channel
            .encapsulate(now + ms(51), &[0x80, 0x21], &mut out)
            .unwrap();
        assert_eq!(repr.ack, Some(1));
        assert_eq!(channel.poll_transmit(&mut out), None);
    }

    #[test]
    fn full_receive_window_acks_at_once() {
        let now = base();
        let config = GreConfig {
            recv_window: 3,
            ..GreConfig::default()
        };
        let mut channel = GreChannel::new(0, 0x73ad, 0, config);
        let mut out = Vec::new();
        client_sends(&mut channel, now, 1).unwrap();
        client_sends(&mut channel, now, 2).unwrap();
        assert_eq!(channel.poll_transmit(&mut out), None);
        client_sends(&mut channel, now, 3).unwrap();
        assert_eq!(
            channel.poll_transmit(&mut out),
            Some(GreRepr::pure_ack(0x73ad, 3))
        );
        assert_eq!(channel.poll_timeout(), None);
    }

    #[test]
    fn peer_acks_and_window() {
        let now = base();
        let mut channel = server_channel(0);
        let mut out = Vec::new();
        for _ in 0..3 {
            channel.encapsulate(now, &[0xc0, 0x21], &mut out).unwrap();
        }
        assert!(channel.sequencer().window_full());
        assert_eq!(channel.rtt(), None);
        let ack = peer_packet(0, None, Some(1), &[]);
        assert_eq!(
            channel.handle_packet(now + ms(30), &ack),
            Ok(Received::Ack { ack: 1 })
        );
        assert_eq!(channel.sequencer().unacked(), 1);
        assert!(!channel.sequencer().window_full());
        assert_eq!(channel.rtt(), Some(ms(30)));
        assert_eq!(channel.ack_timeout(), Some(ms(30) + ms(15) * 4));
        // An ack for a packet we never sent is ignored and counted.
        let bogus = peer_packet(0, None, Some(9), &[]);
        assert!(channel.handle_packet(now, &bogus).is_ok());
        assert_eq!(channel.counters().rx_bogus_acks, 1);
        assert_eq!(channel.sequencer().peer_acked(), 1);
        assert_eq!(channel.counters().rx_pure_acks, 2);
    }

    #[test]
    fn drops_by_reason() {
        let now = base();
        let mut channel = server_channel(0);
        assert_eq!(client_sends(&mut channel, now, 5), Ok(5));
        assert_eq!(
            client_sends(&mut channel, now, 5),
            Err(DropReason::Duplicate { seq: 5 })
        );
        client_sends(&mut channel, now, 200).unwrap();
        assert_eq!(
            client_sends(&mut channel, now, 5),
            Err(DropReason::Stale { seq: 5 })
        );
        let other_call = peer_packet(7, Some(201), None, &[1]);
        assert_eq!(
            channel.handle_packet(now, &other_call),
            Err(DropReason::WrongCallId { call_id: 7 })
        );
        assert_eq!(
            channel.handle_packet(now, &other_call[..5]),
            Err(DropReason::Malformed(wire::Error::Truncated))
        );
        let empty = peer_packet(0, Some(201), Some(0), &[]);
        assert_eq!(
            channel.handle_packet(now, &empty),
            Err(DropReason::EmptyPayload { seq: 201 })
        );
        // The empty packet was still numbered: it is owed an ack and is now a duplicate.
        assert_eq!(channel.sequencer().ack_owed(), Some(201));
        assert_eq!(
            channel.handle_packet(now, &empty),
            Err(DropReason::Duplicate { seq: 201 })
        );
        let drops = channel.counters().drops;
        assert_eq!(
            drops,
            DropCounters {
                malformed: 1,
                wrong_call_id: 1,
                duplicate: 2,
                stale: 1,
                reordered: 0,
                empty_payload: 1,
            }
        );
        assert_eq!(drops.total(), 6);
        assert_eq!(channel.counters().rx_packets, 2);
        assert_eq!(channel.counters().rx_lost, 194);
        assert!(DropReason::Stale { seq: 5 }.to_string().contains("behind"));
    }

    #[test]
    fn reordered_frames_delivered_once_or_dropped() {
        let now = base();
        let mut channel = server_channel(0);
        client_sends(&mut channel, now, 1).unwrap();
        client_sends(&mut channel, now, 3).unwrap();
        assert_eq!(channel.counters().rx_lost, 1);
        let late = peer_packet(0, Some(2), None, &[0x21, 0x45]);
        assert_eq!(
            channel.handle_packet(now, &late),
            Ok(Received::Frame {
                ppp: &[0x21, 0x45],
                seq: 2,
                in_order: false
            })
        );
        assert_eq!(channel.counters().rx_lost, 0);
        assert_eq!(channel.counters().rx_reordered, 1);
        // A late packet does not lower the ack owed.
        assert_eq!(channel.sequencer().ack_owed(), Some(3));
        assert_eq!(
            channel.handle_packet(now, &late),
            Err(DropReason::Duplicate { seq: 2 })
        );

        let config = GreConfig {
            deliver_reordered: false,
            ..GreConfig::default()
        };
        let mut strict = GreChannel::new(0, 0x73ad, 0, config);
        client_sends(&mut strict, now, 1).unwrap();
        client_sends(&mut strict, now, 3).unwrap();
        assert_eq!(
            strict.handle_packet(now, &late),
            Err(DropReason::Reordered { seq: 2 })
        );
        assert_eq!(
            strict.handle_packet(now, &late),
            Err(DropReason::Duplicate { seq: 2 })
        );
    }

    #[test]
    fn numbering_wraps_through_the_channel() {
        let now = base();
        let mut channel = server_channel(u32::MAX);
        client_sends(&mut channel, now, u32::MAX - 1).unwrap();
        client_sends(&mut channel, now, u32::MAX).unwrap();
        client_sends(&mut channel, now, 0).unwrap();
        let mut out = Vec::new();
        let first = channel.encapsulate(now, &[1], &mut out).unwrap();
        let second = channel.encapsulate(now, &[1], &mut out).unwrap();
        assert_eq!((first.seq, first.ack), (Some(u32::MAX), Some(0)));
        assert_eq!((second.seq, second.ack), (Some(0), None));
        let ack = peer_packet(0, Some(1), Some(0), &[1]);
        assert!(channel.handle_packet(now, &ack).is_ok());
        assert_eq!(channel.sequencer().unacked(), 0);
        assert_eq!(
            client_sends(&mut channel, now, u32::MAX),
            Err(DropReason::Duplicate { seq: u32::MAX })
        );
    }

    #[test]
    fn frame_too_long() {
        let mut channel = server_channel(0);
        let mut out = Vec::new();
        let frame = vec![0u8; 65536];
        assert_eq!(
            channel.encapsulate(base(), &frame, &mut out),
            Err(FrameTooLong { len: 65536 })
        );
        assert!(out.is_empty());
        // The number was not used.
        assert_eq!(channel.sequencer().next_seq(), 0);
        assert!(channel.encapsulate(base(), &frame[1..], &mut out).is_ok());
    }

    #[test]
    fn snapshot_and_readoption() {
        let now = base();
        let call = CallEstablished {
            local_call_id: 0,
            peer_call_id: 0x73ad,
            peer_recv_window: 3,
            peer_packet_delay: 0,
            connect_speed: 10_000_000,
        };
        let mut channel = GreChannel::from_call(&call, 0, GreConfig::default());
        let mut out = Vec::new();
        client_sends(&mut channel, now, 1).unwrap();
        channel.encapsulate(now, &[0xc0, 0x21], &mut out).unwrap();
        client_sends(&mut channel, now, 2).unwrap();
        let snapshot = channel.snapshot();
        assert_eq!(
            snapshot,
            GreSnapshot {
                local_call_id: 0,
                peer_call_id: 0x73ad,
                next_seq: 1,
                peer_acked: u32::MAX,
                ack_owed: Some(2),
                recv_highest: Some(2),
                peer_recv_window: 3,
            }
        );
        // A queued, unpolled pure ack is part of the snapshot too.
        channel.handle_timeout(now + ms(50));
        assert_eq!(channel.snapshot(), snapshot);

        let later = now + ms(200);
        let mut adopted = GreChannel::from_snapshot(later, &snapshot, GreConfig::default());
        assert_eq!(adopted.snapshot(), snapshot);
        assert_eq!(adopted.poll_timeout(), Some(later + ms(50)));
        let repr = adopted.encapsulate(later, &[0xc0, 0x21], &mut out).unwrap();
        assert_eq!((repr.seq, repr.ack), (Some(1), Some(2)));
        assert_eq!(
            client_sends(&mut adopted, later, 1),
            Err(DropReason::Duplicate { seq: 1 })
        );
        assert_eq!(client_sends(&mut adopted, later, 3), Ok(3));
    }

    // ---- The reference session ----

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Dir {
        /// pptp-linux client to Poptop.
        C,
        /// Poptop to the client.
        S,
    }
    use Dir::{C, S};

    /// Frame, time in µs, direction, payload length, sequence number, ack number.
    type CapturedGre = (u32, u64, Dir, usize, Option<u32>, Option<u32>);

    /// Every GRE packet of the reference capture (Debian pptp-linux client, Poptop server):
    /// frame, time in µs, direction, payload length, sequence and ack numbers. Listed with
    /// `tshark -Y gre -T fields -e gre.sequence_number -e gre.ack_number ...`.
    #[rustfmt::skip]
    static REFERENCE_GRE: [CapturedGre; 60] = [
    (20, 2280934, C, 24, Some(1), None),
    (21, 2419697, S, 29, Some(0), None),
    (22, 2427735, C, 29, Some(2), None),
    (23, 2435363, S, 24, Some(1), Some(2)),
    (24, 2440457, C, 10, Some(3), Some(1)),
    (25, 2445919, S, 10, Some(2), Some(3)),
    (26, 2451138, C, 10, Some(4), Some(2)),
    (27, 2452877, S, 28, Some(3), Some(4)),
    (28, 2461392, S, 10, Some(4), None),
    (29, 2462747, C, 0, None, Some(4)),
    (30, 2471709, C, 64, Some(5), None),
    (31, 2493056, S, 65, Some(5), Some(5)),
    (32, 2507026, C, 12, Some(6), Some(5)),
    (33, 2509606, S, 12, Some(6), Some(6)),
    (34, 2519508, C, 12, Some(7), Some(6)),
    (35, 2522355, S, 12, Some(7), Some(7)),
    (36, 2535312, C, 18, Some(8), Some(7)),
    (37, 2539094, S, 12, Some(8), Some(8)),
    (38, 2543487, C, 16, Some(9), Some(8)),
    (39, 2545121, S, 16, Some(9), Some(9)),
    (40, 2554097, C, 12, Some(10), Some(9)),
    (41, 2556248, S, 12, Some(10), Some(10)),
    (42, 2560116, S, 16, Some(11), None),
    (43, 2560869, C, 0, None, Some(11)),
    (44, 2564107, C, 16, Some(11), None),
    (45, 2566806, C, 12, Some(12), None),
    (46, 2574717, S, 53, Some(12), Some(12)),
    (47, 2579508, C, 53, Some(13), Some(12)),
    (48, 2605236, S, 12, Some(13), Some(13)),
    (49, 2664680, C, 12, Some(14), Some(13)),
    (50, 2670067, S, 12, Some(14), Some(14)),
    (51, 3172141, C, 0, None, Some(14)),
    (54, 5357334, C, 89, Some(15), None),
    (55, 5361289, S, 89, Some(15), Some(15)),
    (56, 5558211, C, 89, Some(16), Some(15)),
    (57, 5561136, S, 89, Some(16), Some(16)),
    (58, 5759999, C, 89, Some(17), Some(16)),
    (59, 5762771, S, 89, Some(17), Some(17)),
    (60, 5960842, C, 89, Some(18), Some(17)),
    (61, 5963176, S, 89, Some(18), Some(18)),
    (62, 6162878, C, 89, Some(19), Some(18)),
    (63, 6166068, S, 89, Some(19), Some(19)),
    (64, 6383526, S, 89, Some(20), None),
    (65, 6384511, C, 0, None, Some(20)),
    (66, 6386122, C, 89, Some(20), None),
    (67, 6437397, S, 0, None, Some(20)),
    (68, 6584310, S, 89, Some(21), None),
    (69, 6586458, C, 89, Some(21), Some(21)),
    (70, 6637984, S, 0, None, Some(21)),
    (71, 6655007, C, 53, Some(22), None),
    (72, 6707386, S, 0, None, Some(22)),
    (73, 6785009, S, 89, Some(22), None),
    (74, 6786887, C, 89, Some(23), Some(22)),
    (75, 6838561, S, 0, None, Some(23)),
    (76, 7143219, C, 21, Some(24), None),
    (77, 7149634, C, 21, Some(25), None),
    (78, 7169443, S, 53, Some(23), Some(25)),
    (79, 7197286, S, 8, Some(24), None),
    (80, 7200035, C, 0, None, Some(24)),
    (81, 7210483, S, 8, Some(25), None),
    ];

    #[test]
    fn reference_session_numbering_in_server_role() {
        let t0 = base();
        // Poptop numbers from 0 and advertised a window of 3.
        let config = GreConfig {
            recv_window: 3,
            ..GreConfig::default()
        };
        let mut channel = GreChannel::new(0, 0x73ad, 0, config);
        channel.set_peer_recv_window(3);
        let mut highest_client = None;
        let mut acks_sent: Vec<u32> = Vec::new();
        let mut out = Vec::new();

        let mut drain = |channel: &mut GreChannel, highest: Option<u32>, acks: &mut Vec<u32>| {
            while let Some(repr) = channel.poll_transmit(&mut out) {
                assert_eq!(repr.ack, highest, "a pure ack acknowledges the highest seq");
                acks.extend(repr.ack);
            }
        };

        for &(frame, us, dir, len, seq, ack) in REFERENCE_GRE.iter() {
            let now = t0 + Duration::from_micros(us);
            channel.handle_timeout(now);
            drain(&mut channel, highest_client, &mut acks_sent);
            let payload = vec![0x21u8; len];
            match (dir, seq) {
                (C, _) => {
                    let bytes = peer_packet(0, seq, ack, &payload);
                    let received = channel.handle_packet(now, &bytes);
                    match seq {
                        Some(seq) => {
                            assert_eq!(
                                received,
                                Ok(Received::Frame {
                                    ppp: &payload,
                                    seq,
                                    in_order: true
                                }),
                                "frame {frame}"
                            );
                            highest_client = Some(seq);
                        }
                        None => assert_eq!(received, Ok(Received::Ack { ack: ack.unwrap() })),
                    }
                    drain(&mut channel, highest_client, &mut acks_sent);
                }
                (S, Some(poptop_seq)) => {
                    let mut packet = Vec::new();
                    let repr = channel.encapsulate(now, &payload, &mut packet).unwrap();
                    assert_eq!(repr.seq, Some(poptop_seq), "frame {frame}");
                    if let Some(ours) = repr.ack {
                        assert_eq!(Some(ours), highest_client, "frame {frame}");
                        acks_sent.push(ours);
                    }
                    if let (Some(ours), Some(poptops)) = (repr.ack, ack) {
                        assert_eq!(ours, poptops, "frame {frame}");
                    }
                }
                (S, None) => {
                    // Poptop's pure ack: ours for the same number went out by now (our
                    // delay is 50 ms, Poptop's about 51 ms).
                    let poptops = ack.unwrap();
                    assert!(acks_sent.contains(&poptops), "frame {frame}: ack {poptops}");
                }
            }
        }
        // Once the delay is over, every client packet has been acknowledged.
        let end = t0 + Duration::from_secs(10);
        channel.handle_timeout(end);
        drain(&mut channel, highest_client, &mut acks_sent);
        assert_eq!(highest_client, Some(25));
        assert_eq!(acks_sent.last(), Some(&25));
        assert!(acks_sent.windows(2).all(|w| seq_after(w[1], w[0])));
        assert_eq!(channel.sequencer().ack_owed(), None);
        assert_eq!(channel.poll_timeout(), None);

        let counters = channel.counters();
        assert_eq!(counters.rx_packets, 25);
        assert_eq!(counters.rx_pure_acks, 5);
        assert_eq!(counters.rx_lost, 0);
        assert_eq!(counters.drops.total(), 0);
        assert_eq!(counters.rx_bogus_acks, 0);
        assert_eq!(counters.tx_packets, 26);
        // The client acknowledged up to our 24; 25 (frame 81) was the last packet.
        assert_eq!(channel.sequencer().peer_acked(), 24);
        assert_eq!(channel.sequencer().unacked(), 1);
        assert!(channel.rtt().is_some());
        let snapshot = channel.snapshot();
        assert_eq!(snapshot.next_seq, 26);
        assert_eq!(snapshot.recv_highest, Some(25));
    }
}
