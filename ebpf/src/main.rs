//! xpptp's XDP program: the first look at every frame on the concentrator's interfaces.
//!
//! It steers the GRE of established PPTP calls to the AF_XDP socket of the frame's receive
//! queue, where a datapath worker handles it, and passes everything else to the kernel:
//!
//! * upstream: Enhanced GRE v1 (RFC 2637 section 4.1) for a call the call map marks
//!   established, from the call's peer, carrying MPPE (PPP 0x00FD), plain IP (0x0021, if the
//!   call allows it), nothing (a pure acknowledgment), or another PPP protocol (LCP echo,
//!   CCP Reset-Request, Terminate: the datapath owns an established call's GRE numbering,
//!   so its worker takes the frame and hands it to the control plane);
//! * downstream: IPv4 whose destination is a client's tunnel address (client map).
//!
//! The PPP negotiation of calls not yet established, GRE of unknown calls, spoofed GRE and
//! all other traffic (ping, ssh, TCP 1723) go to the kernel, where the control plane or the
//! host handles them. Every frame
//! is counted in one verdict slot of a per-CPU array (`xpptp_ebpf_types::Slot`).
//!
//! Built for `bpfel-unknown-none` by datapath's build script; on the host this file compiles
//! to an empty program so that `cargo ... --workspace` (and clippy) work.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

use aya_ebpf::{
    bindings::xdp_action::{XDP_ABORTED, XDP_PASS},
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use xpptp_ebpf_types::{
    CALL_MAP_ENTRIES, CLIENT_MAP_ENTRIES, CallEntry, ClientEntry, ClientKey, Counter, Slot,
    XSK_MAP_ENTRIES,
};

/// Established calls, indexed by our call ID: the peer's address and flags. Written by the
/// datapath on establish/remove; a zeroed slot is an unknown call.
#[map]
static CALLS: Array<CallEntry> = Array::with_max_entries(CALL_MAP_ENTRIES, 0);

/// Clients' tunnel addresses of established calls: downstream IPv4 to them is steered.
#[map]
static CLIENTS: HashMap<ClientKey, ClientEntry> = HashMap::with_max_entries(CLIENT_MAP_ENTRIES, 0);

/// AF_XDP sockets, one per receive queue, at key = queue index (a redirect reaches only the
/// socket bound to the queue the frame arrived on).
#[map]
static XSKS: XskMap = XskMap::with_max_entries(XSK_MAP_ENTRIES, 0);

/// Packets and bytes per verdict slot (`Slot`), per CPU so counting never contends.
#[map]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(Slot::COUNT, 0);

const ETH_HEADER_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100; // 802.1Q
const ETHERTYPE_QINQ: u16 = 0x88A8; // 802.1ad service tag
const VLAN_TAG_LEN: usize = 4;

const IPPROTO_GRE: u8 = 47;
/// Flags (MF) and fragment offset bits of the IPv4 flags/offset word.
const IPV4_FRAGMENT_MASK: u16 = 0x3FFF;

const GRE_HEADER_LEN: usize = 8;
const GRE_PROTOCOL_PPP: u16 = 0x880B;
const GRE_FLAG_SEQ: u16 = 0x1000;
const GRE_FLAG_ACK: u16 = 0x0080;
/// Every bit of the flags/version word except S and A: C=0 R=0 K=1 s=0 recursion=0 flags=0
/// version=1 is the only Enhanced GRE PPTP accepts (RFC 2637 section 4.1).
const GRE_FIXED_MASK: u16 = !(GRE_FLAG_SEQ | GRE_FLAG_ACK);
const GRE_FIXED_BITS: u16 = 0x2001;

const PPP_ADDRESS: u8 = 0xFF;
const PPP_CONTROL: u8 = 0x03;
const PPP_COMPRESSED: u16 = 0x00FD; // MPPE/CCP compressed datagram, RFC 3078
const PPP_IPV4: u16 = 0x0021;

#[xdp]
pub fn xpptp(ctx: XdpContext) -> u32 {
    match try_xpptp(&ctx) {
        Ok(action) => action,
        Err(Truncated) => {
            count(&ctx, Slot::AbortedTruncated);
            XDP_ABORTED
        }
    }
}

/// A header the program must read runs past the end of the frame.
struct Truncated;

/// What to do with a frame: steer it to the worker, or pass it with a reason.
enum Verdict {
    /// Steer to the AF_XDP socket; `datagram_end` is the offset where the IPv4 datagram
    /// ends by its Total Length.
    Redirect {
        slot: Slot,
        datagram_end: usize,
    },
    Pass(Slot),
}

fn try_xpptp(ctx: &XdpContext) -> Result<u32, Truncated> {
    let verdict = classify(ctx)?;
    Ok(match verdict {
        Verdict::Pass(slot) => {
            count(ctx, slot);
            XDP_PASS
        }
        Verdict::Redirect { slot, datagram_end } => {
            // The worker may rely on the whole IPv4 datagram being in the frame (Ethernet
            // padding may follow it). Checked last, after every header read: done first,
            // LLVM would drop the reads' own bounds checks as implied by it, and the
            // verifier, which cannot see that implication, would reject the program.
            if datagram_end > frame_len(ctx) {
                return Err(Truncated);
            }
            count(ctx, slot);
            match XSKS.redirect(ctx.rx_queue_index(), u64::from(XDP_PASS)) {
                Ok(action) => action,
                Err(_) => {
                    count(ctx, Slot::RedirectNoSocket);
                    XDP_PASS
                }
            }
        }
    })
}

fn classify(ctx: &XdpContext) -> Result<Verdict, Truncated> {
    // Ethernet, then at most two VLAN tags (802.1ad outer, 802.1Q inner, or two 802.1Q).
    let mut ethertype = read_u16(ctx, ETH_HEADER_LEN - 2)?;
    let mut ip = ETH_HEADER_LEN;
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        ethertype = read_u16(ctx, ip + 2)?;
        ip += VLAN_TAG_LEN;
    }
    if ethertype != ETHERTYPE_IPV4 {
        return Ok(Verdict::Pass(Slot::PassNotIpv4));
    }

    let [version_ihl, _tos] = read::<2>(ctx, ip)?;
    let ip_header_len = usize::from(version_ihl & 0x0F) * 4;
    if version_ihl >> 4 != 4 || ip_header_len < 20 {
        return Ok(Verdict::Pass(Slot::PassBadIpv4));
    }
    let total_len = usize::from(read_u16(ctx, ip + 2)?);
    if total_len < ip_header_len {
        return Ok(Verdict::Pass(Slot::PassBadIpv4));
    }
    if read_u16(ctx, ip + 6)? & IPV4_FRAGMENT_MASK != 0 {
        return Ok(Verdict::Pass(Slot::PassFragment));
    }
    let [_ttl, protocol] = read::<2>(ctx, ip + 8)?;
    let src = read_addr(ctx, ip + 12)?;
    let dst = read_addr(ctx, ip + 16)?;
    let redirect = |slot| Verdict::Redirect {
        slot,
        datagram_end: ip + total_len,
    };

    // Downstream first: a client's tunnel address is never the concentrator's own, so a hit
    // is traffic for a client whatever its protocol (GRE included).
    if CLIENTS.get_ptr(ClientKey { addr: dst }).is_some() {
        return Ok(redirect(Slot::DownstreamClient));
    }
    if protocol != IPPROTO_GRE {
        return Ok(Verdict::Pass(Slot::PassOtherIpv4));
    }

    let gre = ip + ip_header_len;
    let flags_version = read_u16(ctx, gre)?;
    let gre_protocol = read_u16(ctx, gre + 2)?;
    if flags_version & GRE_FIXED_MASK != GRE_FIXED_BITS || gre_protocol != GRE_PROTOCOL_PPP {
        return Ok(Verdict::Pass(Slot::PassGreOther));
    }
    let payload_len = usize::from(read_u16(ctx, gre + 4)?);
    let call_id = read_u16(ctx, gre + 6)?;

    let Some(call) = CALLS.get(u32::from(call_id)) else {
        return Ok(Verdict::Pass(Slot::PassUnknownCall));
    };
    if !call.is_established() {
        return Ok(Verdict::Pass(Slot::PassUnknownCall));
    }
    if call.peer_addr != src {
        return Ok(Verdict::Pass(Slot::PassSpoofed));
    }

    let has_seq = flags_version & GRE_FLAG_SEQ != 0;
    let has_ack = flags_version & GRE_FLAG_ACK != 0;
    let header_len = GRE_HEADER_LEN + if has_seq { 4 } else { 0 } + if has_ack { 4 } else { 0 };
    // The payload the Key field announces must lie inside the datagram.
    if ip_header_len + header_len + payload_len > total_len {
        return Ok(Verdict::Pass(Slot::PassGreOther));
    }
    if !has_seq {
        // Without a sequence number there is no payload: a pure ack (RFC 2637 section 4.4).
        return Ok(if has_ack && payload_len == 0 {
            redirect(Slot::UpstreamAck)
        } else {
            Verdict::Pass(Slot::PassGreOther)
        });
    }
    if payload_len == 0 {
        return Ok(Verdict::Pass(Slot::PassGreOther));
    }

    // PPP header: optional FF 03 (ACFC), then a one-byte (PFC, odd) or two-byte protocol.
    // Read as one 4-byte window: every frame we steer has at least 4 bytes of PPP (MPPE
    // adds a 2-byte header and data, IPv4 a 20-byte header).
    let window = read::<4>(ctx, gre + header_len)?;
    let (protocol, ppp_len) = match window {
        [PPP_ADDRESS, PPP_CONTROL, first, _] if first & 1 == 1 => (u16::from(first), 3),
        [PPP_ADDRESS, PPP_CONTROL, high, low] => (u16::from_be_bytes([high, low]), 4),
        [PPP_ADDRESS, ..] => return Ok(Verdict::Pass(Slot::PassGreOther)),
        [first, ..] if first & 1 == 1 => (u16::from(first), 1),
        [high, low, ..] => (u16::from_be_bytes([high, low]), 2),
    };
    if ppp_len > payload_len {
        return Ok(Verdict::Pass(Slot::PassGreOther));
    }
    Ok(match protocol {
        PPP_COMPRESSED => redirect(Slot::UpstreamMppe),
        PPP_IPV4 if call.allows_plain_ip() => redirect(Slot::UpstreamPlainIp),
        PPP_IPV4 => Verdict::Pass(Slot::PassPlainIpRefused),
        _ => redirect(Slot::UpstreamPppControl),
    })
}

#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

/// The one bounds check: a pointer to `N` bytes at `offset`, if they lie inside the frame.
///
/// `N` is at least 2: for one byte LLVM turns `p + 1 > end` into `p >= end`, from which the
/// verifier learns no range when `offset` is variable, and rejects the program.
#[inline(always)]
fn ptr_at<const N: usize>(ctx: &XdpContext, offset: usize) -> Result<*const [u8; N], Truncated> {
    const { assert!(N >= 2) };
    let start = ctx.data();
    if start + offset + N > ctx.data_end() {
        return Err(Truncated);
    }
    Ok((start + offset) as *const [u8; N])
}

#[inline(always)]
fn read<const N: usize>(ctx: &XdpContext, offset: usize) -> Result<[u8; N], Truncated> {
    let ptr = ptr_at::<N>(ctx, offset)?;
    // SAFETY: ptr_at checked that the N bytes lie inside the frame, which the kernel keeps
    // mapped for the program's run; [u8; N] has alignment 1 and every bit pattern is valid.
    Ok(unsafe { ptr.read() })
}

#[inline(always)]
fn read_u16(ctx: &XdpContext, offset: usize) -> Result<u16, Truncated> {
    Ok(u16::from_be_bytes(read::<2>(ctx, offset)?))
}

#[inline(always)]
fn read_addr(ctx: &XdpContext, offset: usize) -> Result<[u8; 4], Truncated> {
    read::<4>(ctx, offset)
}

#[inline(always)]
fn count(ctx: &XdpContext, slot: Slot) {
    if let Some(counter) = COUNTERS.get_ptr_mut(slot.index()) {
        let len = frame_len(ctx) as u64;
        // SAFETY: the pointer is this CPU's value of the per-CPU array, valid for the run;
        // XDP programs are not preempted on their CPU, so nothing else writes it meanwhile.
        unsafe {
            (*counter).packets = (*counter).packets.wrapping_add(1);
            (*counter).bytes = (*counter).bytes.wrapping_add(len);
        }
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable call into here, so it is never run.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
