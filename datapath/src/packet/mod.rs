//! The worker's per-packet processing: pure functions over caller-owned buffers.
//!
//! * [`decap`] (upstream, client to network): an Ethernet frame carrying the call's GRE in,
//!   the inner IPv4 packet's place in the same buffer out ([`DecapVerdict`]).
//! * [`encap`] (downstream, network to client): an inner IPv4 packet placed after
//!   [`ENCAP_HEADROOM`] free bytes in, the finished Ethernet frame's place out
//!   ([`EncapVerdict`]); [`pure_ack`] builds a GRE acknowledgment without payload, and
//!   [`ppp_control`] a GRE packet carrying one of the control plane's PPP frames.
//!
//! No sockets, no threads, no clock, no allocation: the AF_XDP loop and the call table call
//! these with a UMEM frame and the call's [`CallState`]. Every refusal is a [`DropReason`],
//! which the worker counts per reason.
//!
//! # Who may touch what ([`CallState`])
//!
//! A call's state is three parts with different owners:
//!
//! * [`CallConfig`]: written once when the call is established, then read-only. Any worker
//!   reads it, concurrently, without synchronisation beyond the call table's publication.
//! * [`Upstream`] (receive window, MPPE decryptor, upstream counters): `&mut`, so one worker
//!   at a time. Stateful MPPE: one owning worker, packets in order (the RC4 state runs on
//!   from packet to packet); other workers hand the call's upstream packets over. Stateless
//!   MPPE: the sequential part (window check, key-chain position) still needs exclusive
//!   access, but it is cheap; the per-packet RC4 work only needs the packet's key
//!   (`MppeDecryptor::stateless_key` + `crypto::mppe::stateless_decrypt`), so a later
//!   batch path may run the RC4 on any worker. [`decap`] does both steps in one call.
//! * [`Downstream`] (send sequencer, MPPE encryptor, IPv4 identification, counters): the
//!   same rule, for the downstream worker.
//! * [`AckExchange`]: the only state both directions write. Upstream learns which peer
//!   sequence number we owe an ack for and which of our numbers the peer acknowledged;
//!   downstream piggybacks the ack and keeps the send bookkeeping
//!   ([`SendSequencer`](xpptp_proto::pptp::gre::SendSequencer)). Two atomics, so the
//!   upstream and downstream owners may be different workers, with no lock.
//!
//! # Buffers
//!
//! * Upstream: the frame starts at the Ethernet header (what AF_XDP delivers), with 0 to 2
//!   VLAN tags (802.1Q / 802.1ad). Decryption is in place; the inner packet is returned as a
//!   range of the same buffer, TTL already decremented when it is to be forwarded.
//! * Downstream: the inner packet at `inner` in the buffer, with at least
//!   [`ENCAP_HEADROOM`] bytes before it; the headers are written in front of it and the
//!   frame ends where the inner packet ends.

mod decap;
mod encap;

use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU64, Ordering};

use xpptp_proto::crypto::mppe::{MppeDecryptor, MppeEncryptor};
use xpptp_proto::pptp::gre::{ReceiveWindow, SendSequencer};
use xpptp_proto::session::Established;
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Repr, Ipv4Template};

pub use decap::{DecapVerdict, OuterGre, decap, decap_parsed, parse_outer};
pub use encap::{EncapVerdict, L2Header, encap, ppp_control, ppp_control_len, pure_ack};

/// Ethernet header without VLAN tags.
pub const ETHERNET_LEN: usize = 14;
/// One 802.1Q / 802.1ad tag.
pub const VLAN_TAG_LEN: usize = 4;
/// The longest link-layer header [`L2Header`] holds: Ethernet with two VLAN tags.
pub const L2_HEADER_MAX: usize = ETHERNET_LEN + 2 * VLAN_TAG_LEN;
/// Outer IPv4 (no options), GRE with sequence and ack, PPP address/control, PPP protocol
/// `0x00FD`, MPPE header, and the inner protocol `0x0021` inside the ciphertext.
pub const TUNNEL_OVERHEAD_MAX: usize = 20 + 16 + 2 + 2 + 2 + 2;
/// Free bytes [`encap`] needs before the inner packet in the worst case: 66 = 22 (Ethernet
/// and two VLAN tags) + 20 (IPv4) + 16 (GRE with sequence and ack) + 2 (PPP address and
/// control, when ACFC is off) + 2 (PPP protocol 0x00FD) + 2 (MPPE header) + 2 (the inner
/// protocol 0x0021, encrypted). An AF_XDP frame handed to encap must have its inner packet
/// at or after this offset (the worker receives downstream packets at an offset of at least
/// `ENCAP_HEADROOM - ETHERNET_LEN` into the frame, or moves them).
pub const ENCAP_HEADROOM: usize = L2_HEADER_MAX + TUNNEL_OVERHEAD_MAX;

/// TTL of the outer IPv4 header we send (Linux's default).
pub const OUTER_TTL: u8 = 64;

/// Why a packet was dropped. Every drop names one; the worker counts them by
/// [`index`](Self::index) (per worker, not per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Frame shorter than its headers, or a length field pointing past the buffer.
    Truncated,
    /// Not IPv4 after the link-layer header, or more than two VLAN tags.
    NotIpv4,
    /// Outer IPv4 header invalid: version, header length, total length or checksum.
    BadOuterIpv4,
    /// Outer IPv4 fragment: the fast path does not reassemble (the kernel may).
    OuterFragment,
    /// Outer protocol is not GRE.
    NotGre,
    /// GRE fields a PPTP packet never has (version, protocol type, flag bits).
    BadGre,
    /// The GRE call ID is not the one of the call state given.
    CallIdMismatch,
    /// The outer source address is not the call's peer (RFC 2637 leaves this to us;
    /// without it anyone could inject into a call whose ID they guess).
    Spoofed,
    /// The outer destination address is not ours for this call.
    WrongDestination,
    /// GRE sequence number already accepted.
    Duplicate,
    /// GRE sequence number behind the receive window.
    Stale,
    /// PPP header malformed (control field, protocol field).
    BadPpp,
    /// Plain IPv4 on a call that requires MPPE in this direction.
    Unencrypted,
    /// MPPE on a call without MPPE in this direction.
    UnexpectedMppe,
    /// The MPPE decryptor refused the packet (repeated, late, too far ahead, wrong bits,
    /// or waiting for a flushed packet after a Reset-Request was asked for).
    Mppe,
    /// A network-layer protocol other than IPv4 whose NCP we do not run (IPv6 before
    /// IPV6CP was rejected, VJ): RFC 1661 section 2 says discard silently.
    NetworkProtocolNotOpen,
    /// Inner IPv4 invalid: version, lengths, header checksum.
    BadInnerIpv4,
    /// Inner source address is not the client's tunnel address.
    InnerSpoofed,
    /// TTL 0 or 1 on a packet to be forwarded (ICMP Time Exceeded is the control path's).
    TtlExpired,
    /// Inner packet longer than the tunnel MTU (ICMP Fragmentation Needed is later work).
    ExceedsMtu,
    /// Downstream: not enough headroom before the inner packet, or a range outside the
    /// buffer (a caller bug, counted rather than panicking).
    NoHeadroom,
}

impl DropReason {
    /// Number of reasons: the size of a per-reason counter array.
    pub const COUNT: usize = DropReason::NoHeadroom as usize + 1;

    /// Every reason, in index order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Truncated,
        DropReason::NotIpv4,
        DropReason::BadOuterIpv4,
        DropReason::OuterFragment,
        DropReason::NotGre,
        DropReason::BadGre,
        DropReason::CallIdMismatch,
        DropReason::Spoofed,
        DropReason::WrongDestination,
        DropReason::Duplicate,
        DropReason::Stale,
        DropReason::BadPpp,
        DropReason::Unencrypted,
        DropReason::UnexpectedMppe,
        DropReason::Mppe,
        DropReason::NetworkProtocolNotOpen,
        DropReason::BadInnerIpv4,
        DropReason::InnerSpoofed,
        DropReason::TtlExpired,
        DropReason::ExceedsMtu,
        DropReason::NoHeadroom,
    ];

    /// Index into a `[_; DropReason::COUNT]` counter array.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for stats output.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::BadOuterIpv4 => "bad_outer_ipv4",
            DropReason::OuterFragment => "outer_fragment",
            DropReason::NotGre => "not_gre",
            DropReason::BadGre => "bad_gre",
            DropReason::CallIdMismatch => "call_id_mismatch",
            DropReason::Spoofed => "spoofed",
            DropReason::WrongDestination => "wrong_destination",
            DropReason::Duplicate => "duplicate",
            DropReason::Stale => "stale",
            DropReason::BadPpp => "bad_ppp",
            DropReason::Unencrypted => "unencrypted",
            DropReason::UnexpectedMppe => "unexpected_mppe",
            DropReason::Mppe => "mppe",
            DropReason::NetworkProtocolNotOpen => "network_protocol_not_open",
            DropReason::BadInnerIpv4 => "bad_inner_ipv4",
            DropReason::InnerSpoofed => "inner_spoofed",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::ExceedsMtu => "exceeds_mtu",
            DropReason::NoHeadroom => "no_headroom",
        }
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What never changes while a call is up. Read by any worker.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Our call ID: the one in the GRE packets we receive.
    pub local_call_id: u16,
    /// The peer's call ID: the one in the GRE packets we send.
    pub peer_call_id: u16,
    /// The client's outer address; upstream packets from elsewhere are [`DropReason::Spoofed`].
    pub peer_addr: Ipv4Addr,
    /// Our outer address for this call (the one the client's control connection reached).
    pub local_addr: Ipv4Addr,
    /// The client's tunnel address: downstream packets to it belong to this call.
    pub client_tunnel_addr: Ipv4Addr,
    /// Our tunnel address, if IPCP gave one: upstream packets to it are for the
    /// concentrator itself ([`DecapVerdict::Local`], TTL untouched).
    pub server_tunnel_addr: Option<Ipv4Addr>,
    /// Inner IP MTU towards the client (the peer's MRU less the MPPE overhead).
    pub mtu: u16,
    /// We may leave out PPP address/control on what we send.
    pub acfc: bool,
    /// We may send one-octet PPP protocol fields.
    pub pfc: bool,
    /// Drop upstream packets whose inner source is not [`client_tunnel_addr`](Self::client_tunnel_addr)
    /// ([`DropReason::InnerSpoofed`]). On by default; off for a client that routes a
    /// network behind it.
    pub check_inner_source: bool,
    /// The outer IPv4 header we send, precomputed.
    pub outer: Ipv4Template,
}

impl CallConfig {
    /// The largest MSS a TCP SYN through this call may announce.
    pub fn max_mss(&self) -> u16 {
        xpptp_proto::wire::tcp::ipv4_mss_for_mtu(self.mtu)
    }
}

/// Counters of one direction of one call. Plain integers: only the direction's owner
/// writes them; readers take a snapshot through the call table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirCounters {
    /// Packets delivered (forwarded, local or to control) / sent.
    pub packets: u64,
    /// Their bytes: the inner IP packet (or PPP frame for control).
    pub bytes: u64,
    /// Packets dropped, every reason (the worker counts them by reason).
    pub dropped: u64,
}

/// The upstream (client to network) state of a call. One `&mut` owner at a time.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The peer's GRE sequence numbers accepted (RFC 2637 section 4.3).
    pub window: ReceiveWindow,
    /// `None`: the call carries plain IPv4 upstream.
    pub mppe: Option<MppeDecryptor>,
    /// Highest acknowledgment the peer sent, so that a reordered older one is not passed on.
    pub peer_ack: Option<u32>,
    pub counters: DirCounters,
}

/// The downstream (network to client) state of a call. One `&mut` owner at a time.
#[derive(Debug, Clone)]
pub struct Downstream {
    /// Our sequence numbers and the peer's acknowledgments of them.
    pub sequencer: SendSequencer,
    /// `None`: the call carries plain IPv4 downstream.
    pub mppe: Option<MppeEncryptor>,
    /// Identification of the next outer IPv4 header.
    pub ident: u16,
    pub counters: DirCounters,
}

/// What the two directions tell each other: the ack we owe the peer (written by upstream,
/// taken by downstream) and the peer's latest acknowledgment of our packets (written by
/// upstream, applied by downstream). Each word is `1 << 32 | number`, or 0 for none.
///
/// Relaxed atomics are enough: each word is a self-contained value and nothing else is
/// published through it. Several upstream writers (stateless calls processed on several
/// workers) may race; the last store wins, which at worst acknowledges a slightly lower
/// number, which the peer's next ack or our next packet corrects.
#[derive(Debug, Default)]
pub struct AckExchange {
    owed: AtomicU64,
    peer_acked: AtomicU64,
}

const PRESENT: u64 = 1 << 32;

impl AckExchange {
    /// Nothing owed, nothing acknowledged, or the numbers a hand-over carries.
    pub fn new(owed: Option<u32>) -> Self {
        AckExchange {
            owed: AtomicU64::new(owed.map_or(0, |n| PRESENT | u64::from(n))),
            peer_acked: AtomicU64::new(0),
        }
    }

    /// Upstream: we accepted the peer's `seq` in order and owe its ack.
    #[inline]
    pub fn note_received(&self, seq: u32) {
        self.owed.store(PRESENT | u64::from(seq), Ordering::Relaxed);
    }

    /// Upstream: the peer acknowledged our `ack`.
    #[inline]
    pub fn note_peer_ack(&self, ack: u32) {
        self.peer_acked
            .store(PRESENT | u64::from(ack), Ordering::Relaxed);
    }

    /// Whether an ack is owed (for the worker's pure-ack timer).
    #[inline]
    pub fn ack_owed(&self) -> bool {
        self.owed.load(Ordering::Relaxed) != 0
    }

    /// Downstream: moves what upstream learnt into the sequencer. A load first, so that the
    /// common case (nothing new) writes nothing to a line the other direction's worker uses.
    #[inline]
    pub fn apply(&self, sequencer: &mut SendSequencer) {
        if self.owed.load(Ordering::Relaxed) != 0 {
            let owed = self.owed.swap(0, Ordering::Relaxed);
            if owed != 0 {
                sequencer.note_received(owed as u32);
            }
        }
        if self.peer_acked.load(Ordering::Relaxed) != 0 {
            let acked = self.peer_acked.swap(0, Ordering::Relaxed);
            if acked != 0 {
                // Old or bogus acks change nothing; the outcome is only informative.
                let _ = sequencer.on_ack(acked as u32);
            }
        }
    }
}

/// One established call as the fast path keeps it. The call table holds one per call and
/// hands out `&CallConfig` to anyone, `&mut Upstream` / `&mut Downstream` to the owner of
/// each direction (see the module documentation).
#[derive(Debug)]
pub struct CallState {
    pub config: CallConfig,
    pub upstream: Upstream,
    pub downstream: Downstream,
    pub acks: AckExchange,
}

impl CallState {
    /// The state of a call the control plane established, acting as the server: `local_addr`
    /// is our outer address the client talks to.
    ///
    /// The GRE numbering continues from the hand-over snapshot: the receive window starts at
    /// the peer's highest number (older ones refused), the sequencer at our next number.
    /// MPPE starts from the start keys at count 0 (the control plane sends no MPPE packet
    /// before the hand-over).
    pub fn from_established(est: &Established, local_addr: Ipv4Addr) -> CallState {
        let gre = &est.gre;
        let window = gre
            .recv_highest
            .map_or_else(ReceiveWindow::new, ReceiveWindow::starting_at);
        let outer = Ipv4Template::new(&Ipv4Repr {
            src_addr: local_addr,
            dst_addr: est.peer_address,
            protocol: IpProtocol::Gre,
            payload_len: 0,
            ttl: OUTER_TTL,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        });
        CallState {
            config: CallConfig {
                local_call_id: est.local_call_id,
                peer_call_id: est.peer_call_id,
                peer_addr: est.peer_address,
                local_addr,
                client_tunnel_addr: est.client_tunnel_address,
                server_tunnel_addr: est.server_tunnel_address,
                mtu: est.mtu,
                acfc: est.acfc,
                pfc: est.pfc,
                check_inner_source: true,
                outer,
            },
            upstream: Upstream {
                window,
                mppe: est
                    .receive
                    .map(|k| MppeDecryptor::new(&k.start_key, k.strength, k.mode)),
                peer_ack: None,
                counters: DirCounters::default(),
            },
            downstream: Downstream {
                sequencer: SendSequencer::from_parts(
                    gre.next_seq,
                    gre.peer_acked,
                    None,
                    gre.peer_recv_window,
                ),
                mppe: est
                    .transmit
                    .map(|k| MppeEncryptor::new(&k.start_key, k.strength, k.mode)),
                ident: 0,
                counters: DirCounters::default(),
            },
            acks: AckExchange::new(gre.ack_owed),
        }
    }
}
