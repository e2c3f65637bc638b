//! The map keys, values and counter slots that xpptp's XDP program (`ebpf/`) and user space
//! (`datapath/`) share.
//!
//! Every type is `#[repr(C)]` with explicit padding, so both sides agree on the layout byte for
//! byte; with the `user` feature they implement `aya::Pod` so aya can copy them in and out of
//! maps. IPv4 addresses are stored as their four octets in network order (`[u8; 4]`), exactly
//! as they sit in the packet, so the XDP program compares them without byte swapping.
#![no_std]

/// Number of entries of the call map: one per possible local call ID (RFC 2637 call IDs are
/// 16 bits), so the map is an array indexed by call ID and a look-up never hashes.
pub const CALL_MAP_ENTRIES: u32 = 1 << 16;

/// Largest number of clients (tunnel addresses) the client map holds.
pub const CLIENT_MAP_ENTRIES: u32 = 1 << 16;

/// Largest number of NIC receive queues the XSKMAP covers (one AF_XDP socket per queue).
pub const XSK_MAP_ENTRIES: u32 = 256;

/// Map names in the object, for user space's `Ebpf::map_mut`.
pub mod map_name {
    /// `Array<CallEntry>`, index = local call ID.
    pub const CALLS: &str = "CALLS";
    /// `HashMap<ClientKey, ClientEntry>`.
    pub const CLIENTS: &str = "CLIENTS";
    /// `XskMap`, index = receive queue.
    pub const XSKS: &str = "XSKS";
    /// `PerCpuArray<Counter>`, index = [`Slot`](super::Slot).
    pub const COUNTERS: &str = "COUNTERS";
}

/// Name of the XDP program in the object.
pub const PROGRAM_NAME: &str = "xpptp";

/// Bits of [`CallEntry::flags`].
pub mod call_flags {
    /// The datapath owns the call: its data goes to the AF_XDP sockets. Clear while control
    /// still negotiates PPP (and in every unused slot), so those frames reach the kernel.
    pub const ESTABLISHED: u32 = 1 << 0;
    /// The call may carry plain (unencrypted) IPv4, PPP protocol 0x0021. Without it only
    /// MPPE is steered and a plain IP frame goes to the kernel, where control drops it.
    pub const ALLOW_PLAIN_IP: u32 = 1 << 1;
}

/// One slot of the call map, indexed by our (the receiver's) call ID, which is what the
/// Enhanced GRE header carries (RFC 2637 section 4.1, Key field low half).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallEntry {
    /// The peer's (PAC/PNS) IPv4 address, network order: GRE from any other source is spoofed.
    pub peer_addr: [u8; 4],
    /// [`call_flags`] bits.
    pub flags: u32,
}

impl CallEntry {
    /// An established call from `peer_addr` with the given [`call_flags`].
    pub const fn established(peer_addr: [u8; 4], extra_flags: u32) -> CallEntry {
        CallEntry {
            peer_addr,
            flags: call_flags::ESTABLISHED | extra_flags,
        }
    }

    /// Whether the datapath owns this call.
    pub const fn is_established(&self) -> bool {
        self.flags & call_flags::ESTABLISHED != 0
    }

    /// Whether plain IP (PPP 0x0021) is steered for this call.
    pub const fn allows_plain_ip(&self) -> bool {
        self.flags & call_flags::ALLOW_PLAIN_IP != 0
    }
}

/// Key of the client map: a client's tunnel address (assigned by IPCP), network order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClientKey {
    pub addr: [u8; 4],
}

/// Value of the client map: which call carries traffic to this tunnel address.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientEntry {
    /// Our call ID of the call (the index in the call map).
    pub call_id: u16,
    /// Explicit padding, always zero.
    pub _pad: u16,
    /// Reserved for per-client flags; zero today.
    pub flags: u32,
}

/// Packets and bytes counted in one slot on one CPU. Bytes are whole frames as XDP sees them
/// (Ethernet header included).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    /// Sum of per-CPU values, as user space reads a per-CPU array.
    pub fn sum<'a>(values: impl IntoIterator<Item = &'a Counter>) -> Counter {
        values
            .into_iter()
            .fold(Counter::default(), |acc, c| Counter {
                packets: acc.packets.wrapping_add(c.packets),
                bytes: acc.bytes.wrapping_add(c.bytes),
            })
    }
}

/// The verdict counter slots, Katran style: every frame the program sees is counted in
/// exactly one verdict slot, plus [`Slot::RedirectNoSocket`] when a redirect fell back.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// GRE of an established call carrying MPPE (PPP 0x00FD): redirected.
    UpstreamMppe = 0,
    /// GRE of an established call carrying plain IP (PPP 0x0021), allowed for the call.
    UpstreamPlainIp = 1,
    /// A pure GRE acknowledgment (no sequence number, no payload) of an established call.
    UpstreamAck = 2,
    /// IPv4 whose destination is a client's tunnel address: redirected for encryption.
    DownstreamClient = 3,
    /// Counted in addition to one of the four above when the XSKMAP had no socket for the
    /// frame's receive queue and the frame was passed to the kernel instead.
    RedirectNoSocket = 4,
    /// Not IPv4 (ARP, IPv6, LLDP, ...) or more than two VLAN tags: passed.
    PassNotIpv4 = 5,
    /// An IPv4 fragment: passed, the kernel reassembles.
    PassFragment = 6,
    /// IPv4 that is neither GRE nor for a client (ping, ssh, TCP 1723 ...): passed.
    PassOtherIpv4 = 7,
    /// GRE that is not Enhanced GRE v1 carrying PPP, or with inconsistent flags or lengths.
    PassGreOther = 8,
    /// Enhanced GRE for a call ID that is unused or not yet established (PPP negotiation).
    PassUnknownCall = 9,
    /// Enhanced GRE of an established call from a source other than the call's peer.
    PassSpoofed = 10,
    /// PPP of an established call that is neither MPPE nor IP: LCP, CCP, IPCP, IPV6CP, ...
    /// Redirected: the datapath owns an established call's GRE numbering, so its worker
    /// records the sequence number and acks it, then hands the frame to the control plane.
    UpstreamPppControl = 11,
    /// Plain IP (0x0021) on a call that does not allow it.
    PassPlainIpRefused = 12,
    /// An IPv4 header with a bad version, header length or total length: passed, the
    /// kernel drops and counts it.
    PassBadIpv4 = 13,
    /// A header ran past the end of the frame: aborted (dropped, `xdp:xdp_exception` trace).
    AbortedTruncated = 14,
}

impl Slot {
    /// Number of slots: the counter map's size.
    pub const COUNT: u32 = 15;

    /// Every slot, in index order.
    pub const ALL: [Slot; Slot::COUNT as usize] = [
        Slot::UpstreamMppe,
        Slot::UpstreamPlainIp,
        Slot::UpstreamAck,
        Slot::DownstreamClient,
        Slot::RedirectNoSocket,
        Slot::PassNotIpv4,
        Slot::PassFragment,
        Slot::PassOtherIpv4,
        Slot::PassGreOther,
        Slot::PassUnknownCall,
        Slot::PassSpoofed,
        Slot::UpstreamPppControl,
        Slot::PassPlainIpRefused,
        Slot::PassBadIpv4,
        Slot::AbortedTruncated,
    ];

    /// The slot's index in the counter map.
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// A stable snake_case name, for stats output and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            Slot::UpstreamMppe => "upstream_mppe",
            Slot::UpstreamPlainIp => "upstream_plain_ip",
            Slot::UpstreamAck => "upstream_ack",
            Slot::DownstreamClient => "downstream_client",
            Slot::RedirectNoSocket => "redirect_no_socket",
            Slot::PassNotIpv4 => "pass_not_ipv4",
            Slot::PassFragment => "pass_fragment",
            Slot::PassOtherIpv4 => "pass_other_ipv4",
            Slot::PassGreOther => "pass_gre_other",
            Slot::PassUnknownCall => "pass_unknown_call",
            Slot::PassSpoofed => "pass_spoofed",
            Slot::UpstreamPppControl => "upstream_ppp_control",
            Slot::PassPlainIpRefused => "pass_plain_ip_refused",
            Slot::PassBadIpv4 => "pass_bad_ipv4",
            Slot::AbortedTruncated => "aborted_truncated",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all four): #[repr(C)], only integer fields and byte arrays, no implicit
    // padding (sizes 8, 4, 8 and 16 bytes, every field naturally aligned), so every bit
    // pattern is a valid value and no uninitialised byte is ever copied.
    unsafe impl aya::Pod for super::CallEntry {}
    unsafe impl aya::Pod for super::ClientKey {}
    unsafe impl aya::Pod for super::ClientEntry {}
    unsafe impl aya::Pod for super::Counter {}
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<CallEntry>(), 8);
        assert_eq!(core::mem::size_of::<ClientKey>(), 4);
        assert_eq!(core::mem::size_of::<ClientEntry>(), 8);
        assert_eq!(core::mem::size_of::<Counter>(), 16);
    }

    #[test]
    fn slots_are_dense_and_named_uniquely() {
        for (i, slot) in Slot::ALL.iter().enumerate() {
            assert_eq!(slot.index() as usize, i);
            for other in &Slot::ALL[..i] {
                assert_ne!(slot.name(), other.name());
            }
        }
    }

    #[test]
    fn counter_sum_adds_every_cpu() {
        let per_cpu = [
            Counter {
                packets: 1,
                bytes: 60,
            },
            Counter {
                packets: 2,
                bytes: 100,
            },
        ];
        assert_eq!(
            Counter::sum(&per_cpu),
            Counter {
                packets: 3,
                bytes: 160
            }
        );
    }
}
