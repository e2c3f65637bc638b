//! The fifteen PPTP control messages of RFC 2637 section 2, as owned structs.
//!
//! Every message has a fixed length, so each struct is `Copy` and holds its text fields in
//! [`FixedStr`]s: a parsed message does not borrow the receive buffer. Fields are named after
//! the RFC's; reserved fields are not kept (see the [module docs](super) for why parsing does
//! not insist on them being zero).
//!
//! The bodies are read and written in RFC field order through a small cursor that checks
//! every access, so a layout mistake can only give an error, never a panic; the byte-literal
//! tests pin every offset.

use core::fmt;

use super::{
    BearerCapabilities, BearerType, ControlHeader, ControlMessageType, DisconnectResult,
    EchoResult, ErrorCode, FixedStr, FramingCapabilities, FramingType, HEADER_LEN,
    IncomingCallResult, MAGIC_COOKIE, MAX_MESSAGE_LEN, MessageType, OutgoingCallResult,
    StartResult, StopReason, StopResult,
};
use crate::wire::{Error, Result};

/// Reads a message body front to back; every read checks the remaining length.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(Error::Truncated)?;
        self.rest = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8> {
        let [byte] = self.take::<1>()?;
        Ok(byte)
    }

    fn u16(&mut self) -> Result<u16> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.take().map(u32::from_be_bytes)
    }

    fn text<const N: usize>(&mut self) -> Result<FixedStr<N>> {
        self.take().map(FixedStr::from_raw)
    }

    /// Skips a reserved field.
    fn reserved<const N: usize>(&mut self) -> Result<()> {
        self.take::<N>().map(drop)
    }
}

/// Writes a message front to back; every write checks the remaining room.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> Result<()> {
        let dst = self
            .buf
            .get_mut(self.pos..)
            .and_then(|rest| rest.first_chunk_mut::<N>())
            .ok_or(Error::BufferTooSmall)?;
        *dst = bytes;
        // Cannot overflow: pos + N <= buf.len().
        self.pos += N;
        Ok(())
    }

    fn u8(&mut self, value: u8) -> Result<()> {
        self.put([value])
    }

    fn u16(&mut self, value: u16) -> Result<()> {
        self.put(value.to_be_bytes())
    }

    fn u32(&mut self, value: u32) -> Result<()> {
        self.put(value.to_be_bytes())
    }

    fn text<const N: usize>(&mut self, value: &FixedStr<N>) -> Result<()> {
        self.put(*value.raw())
    }

    fn reserved<const N: usize>(&mut self) -> Result<()> {
        self.put([0; N])
    }

    fn bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

/// Start-Control-Connection-Request (SCCRQ, RFC 2637 section 2.1): opens the control
/// connection. Sent by the PNS (the client, pptp-linux) or the PAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StartControlConnectionRequest {
    /// Protocol Version, [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION) (1.0).
    pub protocol_version: u16,
    /// Framing Capabilities of the sender.
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities of the sender.
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels: total sessions the PAC can support (0 from a PNS).
    pub max_channels: u16,
    /// Firmware Revision of the PAC, or the PNS driver version.
    pub firmware_revision: u16,
    /// Host Name of the sender (64 octets).
    pub host_name: FixedStr<64>,
    /// Vendor String (64 octets).
    pub vendor: FixedStr<64>,
}

impl StartControlConnectionRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let protocol_version = r.u16()?;
        r.reserved::<2>()?;
        Ok(StartControlConnectionRequest {
            protocol_version,
            framing_capabilities: r.u32()?.into(),
            bearer_capabilities: r.u32()?.into(),
            max_channels: r.u16()?,
            firmware_revision: r.u16()?,
            host_name: r.text()?,
            vendor: r.text()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.protocol_version)?;
        w.reserved::<2>()?;
        w.u32(self.framing_capabilities.bits())?;
        w.u32(self.bearer_capabilities.bits())?;
        w.u16(self.max_channels)?;
        w.u16(self.firmware_revision)?;
        w.text(&self.host_name)?;
        w.text(&self.vendor)
    }
}

/// Start-Control-Connection-Reply (SCCRP, RFC 2637 section 2.2): the answer to an SCCRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StartControlConnectionReply {
    /// Protocol Version, [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION) (1.0).
    pub protocol_version: u16,
    /// Result Code.
    pub result: StartResult,
    /// Error Code, [`ErrorCode::NoError`] unless `result` is a general error.
    pub error: ErrorCode,
    /// Framing Capabilities of the sender.
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities of the sender.
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels: total sessions the PAC can support.
    pub max_channels: u16,
    /// Firmware Revision.
    pub firmware_revision: u16,
    /// Host Name of the sender (64 octets).
    pub host_name: FixedStr<64>,
    /// Vendor String (64 octets).
    pub vendor: FixedStr<64>,
}

impl StartControlConnectionReply {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(StartControlConnectionReply {
            protocol_version: r.u16()?,
            result: r.u8()?.into(),
            error: r.u8()?.into(),
            framing_capabilities: r.u32()?.into(),
            bearer_capabilities: r.u32()?.into(),
            max_channels: r.u16()?,
            firmware_revision: r.u16()?,
            host_name: r.text()?,
            vendor: r.text()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.protocol_version)?;
        w.u8(self.result.into())?;
        w.u8(self.error.into())?;
        w.u32(self.framing_capabilities.bits())?;
        w.u32(self.bearer_capabilities.bits())?;
        w.u16(self.max_channels)?;
        w.u16(self.firmware_revision)?;
        w.text(&self.host_name)?;
        w.text(&self.vendor)
    }
}

/// Stop-Control-Connection-Request (StopCCRQ, RFC 2637 section 2.3): closes the control
/// connection and implicitly clears every call on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopControlConnectionRequest {
    /// Reason.
    pub reason: StopReason,
}

impl StopControlConnectionRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let reason = r.u8()?.into();
        r.reserved::<3>()?;
        Ok(StopControlConnectionRequest { reason })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.reason.into())?;
        w.reserved::<3>()
    }
}

/// Stop-Control-Connection-Reply (StopCCRP, RFC 2637 section 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopControlConnectionReply {
    /// Result Code.
    pub result: StopResult,
    /// Error Code.
    pub error: ErrorCode,
}

impl StopControlConnectionReply {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let result = r.u8()?.into();
        let error = r.u8()?.into();
        r.reserved::<2>()?;
        Ok(StopControlConnectionReply { result, error })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.result.into())?;
        w.u8(self.error.into())?;
        w.reserved::<2>()
    }
}

/// Echo-Request (RFC 2637 section 2.5): keep-alive of the control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoRequest {
    /// Identifier, copied into the Echo-Reply.
    pub identifier: u32,
}

impl EchoRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(EchoRequest {
            identifier: r.u32()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u32(self.identifier)
    }
}

/// Echo-Reply (RFC 2637 section 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoReply {
    /// Identifier of the Echo-Request answered.
    pub identifier: u32,
    /// Result Code.
    pub result: EchoResult,
    /// Error Code.
    pub error: ErrorCode,
}

impl EchoReply {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let identifier = r.u32()?;
        let result = r.u8()?.into();
        let error = r.u8()?.into();
        r.reserved::<2>()?;
        Ok(EchoReply {
            identifier,
            result,
            error,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u32(self.identifier)?;
        w.u8(self.result.into())?;
        w.u8(self.error.into())?;
        w.reserved::<2>()
    }
}

/// Outgoing-Call-Request (OCRQ, RFC 2637 section 2.7): the PNS asks for a call. This is
/// what a VPN client (pptp-linux, Windows) sends to open its tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutgoingCallRequest {
    /// Call ID the sender picked: the peer puts it in the Call ID (key) field of the GRE
    /// packets it sends on this call.
    pub call_id: u16,
    /// Call Serial Number, for logging only.
    pub call_serial_number: u16,
    /// Minimum BPS acceptable.
    pub min_bps: u32,
    /// Maximum BPS acceptable.
    pub max_bps: u32,
    /// Bearer Type.
    pub bearer_type: BearerType,
    /// Framing Type.
    pub framing_type: FramingType,
    /// Packet Receive Window Size: GRE packets the sender can buffer for this call.
    pub recv_window_size: u16,
    /// Packet Processing Delay, in 1/10 s.
    pub packet_processing_delay: u16,
    /// Phone Number Length: valid digits in `phone_number`, as sent (see
    /// [`phone_number_digits`](Self::phone_number_digits)).
    pub phone_number_len: u16,
    /// Phone Number (64 octets).
    pub phone_number: FixedStr<64>,
    /// Subaddress (64 octets).
    pub subaddress: FixedStr<64>,
}

impl OutgoingCallRequest {
    /// The phone number as Phone Number Length cuts it, never past the text.
    pub fn phone_number_digits(&self) -> &[u8] {
        self.phone_number.prefix(self.phone_number_len)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let call_id = r.u16()?;
        let call_serial_number = r.u16()?;
        let min_bps = r.u32()?;
        let max_bps = r.u32()?;
        let bearer_type = r.u32()?.into();
        let framing_type = r.u32()?.into();
        let recv_window_size = r.u16()?;
        let packet_processing_delay = r.u16()?;
        let phone_number_len = r.u16()?;
        r.reserved::<2>()?;
        Ok(OutgoingCallRequest {
            call_id,
            call_serial_number,
            min_bps,
            max_bps,
            bearer_type,
            framing_type,
            recv_window_size,
            packet_processing_delay,
            phone_number_len,
            phone_number: r.text()?,
            subaddress: r.text()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.call_id)?;
        w.u16(self.call_serial_number)?;
        w.u32(self.min_bps)?;
        w.u32(self.max_bps)?;
        w.u32(self.bearer_type.into())?;
        w.u32(self.framing_type.into())?;
        w.u16(self.recv_window_size)?;
        w.u16(self.packet_processing_delay)?;
        w.u16(self.phone_number_len)?;
        w.reserved::<2>()?;
        w.text(&self.phone_number)?;
        w.text(&self.subaddress)
    }
}

/// Outgoing-Call-Reply (OCRP, RFC 2637 section 2.8): the PAC's answer to an OCRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutgoingCallReply {
    /// Call ID the sender (PAC) picked for this call.
    pub call_id: u16,
    /// Peer's Call ID: the Call ID of the OCRQ answered.
    pub peer_call_id: u16,
    /// Result Code.
    pub result: OutgoingCallResult,
    /// Error Code.
    pub error: ErrorCode,
    /// Cause Code: Q.931 cause of a failed ISDN call, else 0.
    pub cause_code: u16,
    /// Connect Speed in bits per second.
    pub connect_speed: u32,
    /// Packet Receive Window Size of the sender.
    pub recv_window_size: u16,
    /// Packet Processing Delay, in 1/10 s.
    pub packet_processing_delay: u16,
    /// Physical Channel ID, vendor specific, for logging.
    pub physical_channel_id: u32,
}

impl OutgoingCallReply {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OutgoingCallReply {
            call_id: r.u16()?,
            peer_call_id: r.u16()?,
            result: r.u8()?.into(),
            error: r.u8()?.into(),
            cause_code: r.u16()?,
            connect_speed: r.u32()?,
            recv_window_size: r.u16()?,
            packet_processing_delay: r.u16()?,
            physical_channel_id: r.u32()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.call_id)?;
        w.u16(self.peer_call_id)?;
        w.u8(self.result.into())?;
        w.u8(self.error.into())?;
        w.u16(self.cause_code)?;
        w.u32(self.connect_speed)?;
        w.u16(self.recv_window_size)?;
        w.u16(self.packet_processing_delay)?;
        w.u32(self.physical_channel_id)
    }
}

/// Incoming-Call-Request (ICRQ, RFC 2637 section 2.9): the PAC announces a call it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncomingCallRequest {
    /// Call ID the sender (PAC) picked.
    pub call_id: u16,
    /// Call Serial Number, for logging only.
    pub call_serial_number: u16,
    /// Call Bearer Type (analog or digital).
    pub bearer_type: BearerType,
    /// Physical Channel ID, vendor specific.
    pub physical_channel_id: u32,
    /// Dialed Number Length: valid digits in `dialed_number`, as sent.
    pub dialed_number_len: u16,
    /// Dialing Number Length: valid digits in `dialing_number`, as sent.
    pub dialing_number_len: u16,
    /// Dialed Number (DNIS, 64 octets).
    pub dialed_number: FixedStr<64>,
    /// Dialing Number (CLID, 64 octets).
    pub dialing_number: FixedStr<64>,
    /// Subaddress (64 octets).
    pub subaddress: FixedStr<64>,
}

impl IncomingCallRequest {
    /// The dialed number as Dialed Number Length cuts it, never past the text.
    pub fn dialed_number_digits(&self) -> &[u8] {
        self.dialed_number.prefix(self.dialed_number_len)
    }

    /// The dialing number as Dialing Number Length cuts it, never past the text.
    pub fn dialing_number_digits(&self) -> &[u8] {
        self.dialing_number.prefix(self.dialing_number_len)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(IncomingCallRequest {
            call_id: r.u16()?,
            call_serial_number: r.u16()?,
            bearer_type: r.u32()?.into(),
            physical_channel_id: r.u32()?,
            dialed_number_len: r.u16()?,
            dialing_number_len: r.u16()?,
            dialed_number: r.text()?,
            dialing_number: r.text()?,
            subaddress: r.text()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.call_id)?;
        w.u16(self.call_serial_number)?;
        w.u32(self.bearer_type.into())?;
        w.u32(self.physical_channel_id)?;
        w.u16(self.dialed_number_len)?;
        w.u16(self.dialing_number_len)?;
        w.text(&self.dialed_number)?;
        w.text(&self.dialing_number)?;
        w.text(&self.subaddress)
    }
}

/// Incoming-Call-Reply (ICRP, RFC 2637 section 2.10): the PNS's answer to an ICRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncomingCallReply {
    /// Call ID the sender (PNS) picked.
    pub call_id: u16,
    /// Peer's Call ID: the Call ID of the ICRQ answered.
    pub peer_call_id: u16,
    /// Result Code.
    pub result: IncomingCallResult,
    /// Error Code.
    pub error: ErrorCode,
    /// Packet Receive Window Size of the sender.
    pub recv_window_size: u16,
    /// Packet Transmit Delay, in 1/10 s.
    pub packet_transmit_delay: u16,
}

impl IncomingCallReply {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let call_id = r.u16()?;
        let peer_call_id = r.u16()?;
        let result = r.u8()?.into();
        let error = r.u8()?.into();
        let recv_window_size = r.u16()?;
        let packet_transmit_delay = r.u16()?;
        r.reserved::<2>()?;
        Ok(IncomingCallReply {
            call_id,
            peer_call_id,
            result,
            error,
            recv_window_size,
            packet_transmit_delay,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.call_id)?;
        w.u16(self.peer_call_id)?;
        w.u8(self.result.into())?;
        w.u8(self.error.into())?;
        w.u16(self.recv_window_size)?;
        w.u16(self.packet_transmit_delay)?;
        w.reserved::<2>()
    }
}

/// Incoming-Call-Connected (ICCN, RFC 2637 section 2.11): the PAC's answer to an ICRP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncomingCallConnected {
    /// Peer's Call ID: the Call ID of the ICRP.
    pub peer_call_id: u16,
    /// Connect Speed in bits per second.
    pub connect_speed: u32,
    /// Packet Receive Window Size of the sender.
    pub recv_window_size: u16,
    /// Packet Transmit Delay, in 1/10 s.
    pub packet_transmit_delay: u16,
    /// Framing Type (async or sync).
    pub framing_type: FramingType,
}

impl IncomingCallConnected {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let peer_call_id = r.u16()?;
        r.reserved::<2>()?;
        Ok(IncomingCallConnected {
            peer_call_id,
            connect_speed: r.u32()?,
            recv_window_size: r.u16()?,
            packet_transmit_delay: r.u16()?,
            framing_type: r.u32()?.into(),
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.peer_call_id)?;
        w.reserved::<2>()?;
        w.u32(self.connect_speed)?;
        w.u16(self.recv_window_size)?;
        w.u16(self.packet_transmit_delay)?;
        w.u32(self.framing_type.into())
    }
}

/// Call-Clear-Request (CCRQ, RFC 2637 section 2.12): the PNS hangs up a call. pptp-linux
/// sends it and closes TCP without waiting for the CDN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallClearRequest {
    /// Call ID of the sender (PNS) for the call to clear.
    pub call_id: u16,
}

impl CallClearRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let call_id = r.u16()?;
        r.reserved::<2>()?;
        Ok(CallClearRequest { call_id })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.call_id)?;
        w.reserved::<2>()
    }
}

/// Call-Disconnect-Notify (CDN, RFC 2637 section 2.13): the PAC reports a call gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallDisconnectNotify {
    /// Call ID of the sender (PAC) for the call.
    pub call_id: u16,
    /// Result Code.
    pub result: DisconnectResult,
    /// Error Code.
    pub error: ErrorCode,
    /// Cause Code: Q.931 cause for an ISDN call, else 0.
    pub cause_code: u16,
    /// Call Statistics: vendor-specific text for logs (128 octets).
    pub call_statistics: FixedStr<128>,
}

impl CallDisconnectNotify {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let call_id = r.u16()?;
        let result = r.u8()?.into();
        let error = r.u8()?.into();
        let cause_code = r.u16()?;
        r.reserved::<2>()?;
        Ok(CallDisconnectNotify {
            call_id,
            result,
            error,
            cause_code,
            call_statistics: r.text()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.call_id)?;
        w.u8(self.result.into())?;
        w.u8(self.error.into())?;
        w.u16(self.cause_code)?;
        w.reserved::<2>()?;
        w.text(&self.call_statistics)
    }
}

/// WAN-Error-Notify (WEN, RFC 2637 section 2.14): the PAC's cumulative error counters for
/// a call, sent at most once a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WanErrorNotify {
    /// Peer's Call ID: the PNS's Call ID for the call.
    pub peer_call_id: u16,
    /// CRC Errors.
    pub crc_errors: u32,
    /// Framing Errors.
    pub framing_errors: u32,
    /// Hardware Overruns.
    pub hardware_overruns: u32,
    /// Buffer Overruns.
    pub buffer_overruns: u32,
    /// Time-out Errors.
    pub timeout_errors: u32,
    /// Alignment Errors.
    pub alignment_errors: u32,
}

impl WanErrorNotify {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let peer_call_id = r.u16()?;
        r.reserved::<2>()?;
        Ok(WanErrorNotify {
            peer_call_id,
            crc_errors: r.u32()?,
            framing_errors: r.u32()?,
            hardware_overruns: r.u32()?,
            buffer_overruns: r.u32()?,
            timeout_errors: r.u32()?,
            alignment_errors: r.u32()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.peer_call_id)?;
        w.reserved::<2>()?;
        w.u32(self.crc_errors)?;
        w.u32(self.framing_errors)?;
        w.u32(self.hardware_overruns)?;
        w.u32(self.buffer_overruns)?;
        w.u32(self.timeout_errors)?;
        w.u32(self.alignment_errors)
    }
}

/// Set-Link-Info (SLI, RFC 2637 section 2.15): the PNS passes the PPP-negotiated async
/// control character maps to the PAC. pppd's pptp plugin sends it after LCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetLinkInfo {
    /// Peer's Call ID: the PAC's Call ID for the call.
    pub peer_call_id: u16,
    /// Send ACCM.
    pub send_accm: u32,
    /// Receive ACCM.
    pub recv_accm: u32,
}

impl SetLinkInfo {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let peer_call_id = r.u16()?;
        r.reserved::<2>()?;
        Ok(SetLinkInfo {
            peer_call_id,
            send_accm: r.u32()?,
            recv_accm: r.u32()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.peer_call_id)?;
        w.reserved::<2>()?;
        w.u32(self.send_accm)?;
        w.u32(self.recv_accm)
    }
}

/// Longest body an [`UnknownMessage`] can carry: what fits in [`MAX_MESSAGE_LEN`].
const MAX_UNKNOWN_BODY: usize = MAX_MESSAGE_LEN - HEADER_LEN;

/// A control message of a type this crate does not know, kept whole (header fields aside)
/// so the control connection can log it or answer it.
///
/// [`Message::parse`] produces it only for unknown Control Message Types. Built by hand it
/// may carry any type, a known one included, with any body: that is how a test client sends
/// a known message with a wrong length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownMessage {
    control_message_type: u16,
    body_len: u8,
    /// `body[body_len..]` is always zero, so the derived equality is the body's.
    body: [u8; MAX_UNKNOWN_BODY],
}

impl UnknownMessage {
    /// The longest body: [`MAX_MESSAGE_LEN`] - [`HEADER_LEN`] = 208 octets.
    pub const MAX_BODY_LEN: usize = MAX_UNKNOWN_BODY;

    /// A message of Control Message Type `control_message_type` with `body` after the
    /// header. `Malformed` if the body is longer than [`Self::MAX_BODY_LEN`].
    pub fn new(control_message_type: u16, body: &[u8]) -> Result<Self> {
        let body_len =
            u8::try_from(body.len()).map_err(|_| Error::Malformed("PPTP message too long"))?;
        let mut message = UnknownMessage {
            control_message_type,
            body_len,
            body: [0; MAX_UNKNOWN_BODY],
        };
        message
            .body
            .get_mut(..body.len())
            .ok_or(Error::Malformed("PPTP message too long"))?
            .copy_from_slice(body);
        Ok(message)
    }

    /// Control Message Type, as received.
    pub fn control_message_type(&self) -> ControlMessageType {
        self.control_message_type.into()
    }

    /// Everything after the 12-octet header.
    pub fn body(&self) -> &[u8] {
        self.body
            .get(..usize::from(self.body_len))
            .unwrap_or_default()
    }
}

impl fmt::Debug for UnknownMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnknownMessage")
            .field("control_message_type", &self.control_message_type)
            .field("body", &self.body())
            .finish()
    }
}

macro_rules! messages {
    ($( $variant:ident ),+ $(,)?) => {
        /// One PPTP control message (RFC 2637 section 2).
        ///
        /// Variants are named like [`ControlMessageType`]'s and hold the struct of the same
        /// name. `From` converts each struct into its variant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Message {
            $(
                #[doc = concat!("A [`", stringify!($variant), "`].")]
                $variant($variant),
            )+
            /// A control message of a type this crate does not know.
            Unknown(UnknownMessage),
        }

        impl Message {
            /// The Control Message Type this message is sent as.
            pub fn message_type(&self) -> ControlMessageType {
                match self {
                    $( Message::$variant(_) => ControlMessageType::$variant, )+
                    Message::Unknown(message) => message.control_message_type(),
                }
            }

            /// Octets [`emit`](Self::emit) writes: the type's fixed length, or header plus
            /// body for an [`UnknownMessage`]. At most [`MAX_MESSAGE_LEN`].
            pub fn buffer_len(&self) -> usize {
                match self {
                    $( Message::$variant(_) => $variant::LENGTH, )+
                    Message::Unknown(message) => HEADER_LEN + message.body().len(),
                }
            }

            fn read_known(
                message_type: ControlMessageType,
                r: &mut Reader<'_>,
            ) -> Option<Result<Message>> {
                match message_type {
                    $( ControlMessageType::$variant =>
                        Some($variant::read(r).map(Message::$variant)), )+
                    ControlMessageType::Unknown(_) => None,
                }
            }

            fn write_body(&self, w: &mut Writer<'_>) -> Result<()> {
                match self {
                    $( Message::$variant(message) => message.write(w), )+
                    Message::Unknown(message) => w.bytes(message.body()),
                }
            }
        }

        $(
            impl $variant {
                /// The Control Message Type of this message.
                pub const MESSAGE_TYPE: ControlMessageType = ControlMessageType::$variant;

                /// The exact total length of this message, header included.
                pub const LENGTH: usize = match ControlMessageType::$variant.message_len() {
                    Some(len) => len,
                    None => 0,
                };
            }

            impl From<$variant> for Message {
                fn from(message: $variant) -> Message {
                    Message::$variant(message)
                }
            }
        )+
    };
}

messages! {
    StartControlConnectionRequest,
    StartControlConnectionReply,
    StopControlConnectionRequest,
    StopControlConnectionReply,
    EchoRequest,
    EchoReply,
    OutgoingCallRequest,
    OutgoingCallReply,
    IncomingCallRequest,
    IncomingCallReply,
    IncomingCallConnected,
    CallClearRequest,
    CallDisconnectNotify,
    WanErrorNotify,
    SetLinkInfo,
}

impl From<UnknownMessage> for Message {
    fn from(message: UnknownMessage) -> Message {
        Message::Unknown(message)
    }
}

impl Message {
    /// Parses the control message at the start of `data`. Octets after its Length are
    /// ignored: on a stream they are the next message ([`StreamDecoder`](super::StreamDecoder)
    /// does the cutting).
    ///
    /// Errors, in the order checked:
    /// * `Truncated`: fewer than 12 octets, or fewer than Length;
    /// * `Malformed`: Length outside 12..=220 or a bad Magic Cookie (framing lost, see
    ///   [`ControlHeader::check_framing`]); a PPTP Message Type other than 1 and 2; a known
    ///   Control Message Type whose Length is not [`ControlMessageType::message_len`];
    /// * `Unsupported`: a management message (PPTP Message Type 2).
    ///
    /// An unknown Control Message Type is not an error: it gives [`Message::Unknown`].
    /// Reserved fields are not checked.
    pub fn parse(data: &[u8]) -> Result<Message> {
        let len = ControlHeader::new_unchecked(data).check_framing()?;
        let header = ControlHeader::new_checked(data)?;
        match header.message_type() {
            MessageType::Control => {}
            MessageType::Management => return Err(Error::Unsupported("PPTP management message")),
            MessageType::Unknown(_) => return Err(Error::Malformed("PPTP message type")),
        }
        let control_message_type = header.control_message_type();
        let body = header.body();
        match control_message_type.message_len() {
            None => UnknownMessage::new(control_message_type.into(), body).map(Message::Unknown),
            Some(expected) if expected != len => Err(Error::Malformed(
                "PPTP length does not match control message type",
            )),
            Some(_) => {
                let mut r = Reader { rest: body };
                Message::read_known(control_message_type, &mut r)
                    .unwrap_or(Err(Error::Malformed("PPTP control message type")))
            }
        }
    }

    /// Writes the whole message (header included) at the start of `buf` and returns the
    /// octets written, [`buffer_len`](Self::buffer_len). `BufferTooSmall` if `buf` is
    /// shorter; nothing after `buffer_len` octets is touched. Reserved fields are written
    /// as zero.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let mut w = Writer { buf: out, pos: 0 };
        w.u16(u16::try_from(len).map_err(|_| Error::Malformed("PPTP message too long"))?)?;
        w.u16(MessageType::Control.into())?;
        w.u32(MAGIC_COOKIE)?;
        w.u16(self.message_type().into())?;
        w.reserved::<2>()?;
        self.write_body(&mut w)?;
        Ok(w.pos)
    }
}

#[cfg(test)]
pub(super) mod test {
    use super::super::PROTOCOL_VERSION;
    use super::*;
    use proptest::prelude::*;

    /// Hex to bytes; whitespace separates fields for the reader and is ignored.
    pub fn h(parts: &[&str]) -> Vec<u8> {
        let digits: String = parts.concat().split_whitespace().collect();
        hex::decode(digits).unwrap()
    }

    /// `n` zero octets in hex.
    pub fn z(n: usize) -> String {
        "00".repeat(n)
    }

    // The reference capture's control messages (frames 12, 14, 16, 18 and 82), between
    // Debian pptp-linux 1.10.0 (client) and Debian Poptop pptpd 1.4.0 (server); below, what
    // they mean.
    use crate::testing::reference::pptp as capture;

    pub fn capture_sccrq() -> Message {
        Message::StartControlConnectionRequest(StartControlConnectionRequest {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: FramingCapabilities::ASYNC | FramingCapabilities::SYNC,
            bearer_capabilities: BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL,
            max_channels: 65535,
            firmware_revision: 1,
            host_name: FixedStr::new("local"),
            vendor: FixedStr::new("cananian"),
        })
    }

    pub fn capture_sccrp() -> Message {
        Message::StartControlConnectionReply(StartControlConnectionReply {
            protocol_version: PROTOCOL_VERSION,
            result: StartResult::Success,
            error: ErrorCode::NoError,
            framing_capabilities: FramingCapabilities::NONE,
            bearer_capabilities: BearerCapabilities::NONE,
            max_channels: 1,
            firmware_revision: 1,
            host_name: FixedStr::new("local"),
            vendor: FixedStr::new("linux"),
        })
    }

    pub fn capture_ocrq() -> Message {
        Message::OutgoingCallRequest(OutgoingCallRequest {
            call_id: 0x73ad,
            call_serial_number: 0,
            min_bps: 2400,
            max_bps: 10_000_000,
            bearer_type: BearerType::Any,
            framing_type: FramingType::Any,
            recv_window_size: 3,
            packet_processing_delay: 0,
            phone_number_len: 0,
            phone_number: FixedStr::empty(),
            subaddress: FixedStr::empty(),
        })
    }

    pub fn capture_ocrp() -> Message {
        Message::OutgoingCallReply(OutgoingCallReply {
            call_id: 0,
            peer_call_id: 0x73ad,
            result: OutgoingCallResult::Connected,
            error: ErrorCode::NoError,
            cause_code: 0,
            connect_speed: 10_000_000,
            recv_window_size: 3,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        })
    }

    pub fn capture_ccrq() -> Message {
        Message::CallClearRequest(CallClearRequest { call_id: 0x73ad })
    }

    /// Every message type as (wire bytes, meaning): the capture's five, then hand-made
    /// literals for the rest, written field by field from the RFC 2637 layouts.
    pub fn literals() -> Vec<(Vec<u8>, Message)> {
        vec![
            (h(&[capture::SCCRQ]), capture_sccrq()),
            (h(&[capture::SCCRP]), capture_sccrp()),
            (
                h(&["0010 0001 1a2b3c4d 0003 0000", "02 00 0000"]),
                Message::StopControlConnectionRequest(StopControlConnectionRequest {
                    reason: StopReason::StopProtocol,
                }),
            ),
            (
                h(&["0010 0001 1a2b3c4d 0004 0000", "02 03 0000"]),
                Message::StopControlConnectionReply(StopControlConnectionReply {
                    result: StopResult::GeneralError,
                    error: ErrorCode::BadValue,
                }),
            ),
            (
                h(&["0010 0001 1a2b3c4d 0005 0000", "01020304"]),
                Message::EchoRequest(EchoRequest {
                    identifier: 0x0102_0304,
                }),
            ),
            (
                h(&["0014 0001 1a2b3c4d 0006 0000", "01020304 01 00 0000"]),
                Message::EchoReply(EchoReply {
                    identifier: 0x0102_0304,
                    result: EchoResult::Ok,
                    error: ErrorCode::NoError,
                }),
            ),
            (h(&[capture::OCRQ]), capture_ocrq()),
            (h(&[capture::OCRP]), capture_ocrp()),
            (
                h(&[
                    "00dc 0001 1a2b3c4d 0009 0000",
                    "1234 0007 00000002 0000beef 0004 0003",
                    "35353531",
                    &z(60),
                    "313233",
                    &z(61),
                    "737562",
                    &z(61),
                ]),
                Message::IncomingCallRequest(IncomingCallRequest {
                    call_id: 0x1234,
                    call_serial_number: 7,
                    bearer_type: BearerType::Digital,
                    physical_channel_id: 0xbeef,
                    dialed_number_len: 4,
                    dialing_number_len: 3,
                    dialed_number: FixedStr::new("5551"),
                    dialing_number: FixedStr::new("123"),
                    subaddress: FixedStr::new("sub"),
                }),
            ),
            (
                h(&[
                    "0018 0001 1a2b3c4d 000a 0000",
                    "4321 1234 01 00 0040 0005 0000",
                ]),
                Message::IncomingCallReply(IncomingCallReply {
                    call_id: 0x4321,
                    peer_call_id: 0x1234,
                    result: IncomingCallResult::Connect,
                    error: ErrorCode::NoError,
                    recv_window_size: 64,
                    packet_transmit_delay: 5,
                }),
            ),
            (
                h(&[
                    "001c 0001 1a2b3c4d 000b 0000",
                    "1234 0000 05f5e100 0040 000a 00000001",
                ]),
                Message::IncomingCallConnected(IncomingCallConnected {
                    peer_call_id: 0x1234,
                    connect_speed: 100_000_000,
                    recv_window_size: 64,
                    packet_transmit_delay: 10,
                    framing_type: FramingType::Async,
                }),
            ),
            (h(&[capture::CCRQ]), capture_ccrq()),
            (
                h(&[
                    "0094 0001 1a2b3c4d 000d 0000",
                    "4321 04 00 0010 0000",
                    "7374617473",
                    &z(123),
                ]),
                Message::CallDisconnectNotify(CallDisconnectNotify {
                    call_id: 0x4321,
                    result: DisconnectResult::Request,
                    error: ErrorCode::NoError,
                    cause_code: 16,
                    call_statistics: FixedStr::new("stats"),
                }),
            ),
            (
                h(&[
                    "0028 0001 1a2b3c4d 000e 0000",
                    "1234 0000 00000001 00000002 00000003 00000004 00000005 00000006",
                ]),
                Message::WanErrorNotify(WanErrorNotify {
                    peer_call_id: 0x1234,
                    crc_errors: 1,
                    framing_errors: 2,
                    hardware_overruns: 3,
                    buffer_overruns: 4,
                    timeout_errors: 5,
                    alignment_errors: 6,
                }),
            ),
            (
                h(&[
                    "0018 0001 1a2b3c4d 000f 0000",
                    "1234 0000 ffffffff 00000000",
                ]),
                Message::SetLinkInfo(SetLinkInfo {
                    peer_call_id: 0x1234,
                    send_accm: 0xffff_ffff,
                    recv_accm: 0,
                }),
            ),
        ]
    }

    fn arb_text<const N: usize>() -> impl Strategy<Value = FixedStr<N>> {
        proptest::collection::vec(any::<u8>(), 0..=N).prop_map(|b| FixedStr::from_bytes(&b))
    }

    /// Any message, every field random (unknown codes included).
    pub fn arb_message() -> impl Strategy<Value = Message> {
        let sccrq = (
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_flat_map(|f| (Just(f), arb_text::<64>(), arb_text::<64>()))
            .prop_map(|((v, fc, bc, mc, fw), host, vendor)| {
                Message::from(StartControlConnectionRequest {
                    protocol_version: v,
                    framing_capabilities: fc.into(),
                    bearer_capabilities: bc.into(),
                    max_channels: mc,
                    firmware_revision: fw,
                    host_name: host,
                    vendor,
                })
            });
        let sccrp = (
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            arb_text::<64>(),
            arb_text::<64>(),
        )
            .prop_map(|(v, rc, ec, fc, bc, mc, fw, host, vendor)| {
                Message::from(StartControlConnectionReply {
                    protocol_version: v,
                    result: rc.into(),
                    error: ec.into(),
                    framing_capabilities: fc.into(),
                    bearer_capabilities: bc.into(),
                    max_channels: mc,
                    firmware_revision: fw,
                    host_name: host,
                    vendor,
                })
            });
        let stop = any::<u8>()
            .prop_map(|r| Message::from(StopControlConnectionRequest { reason: r.into() }));
        let stop_reply = (any::<u8>(), any::<u8>()).prop_map(|(r, e)| {
            Message::from(StopControlConnectionReply {
                result: r.into(),
                error: e.into(),
            })
        });
        let echo = any::<u32>().prop_map(|identifier| Message::from(EchoRequest { identifier }));
        let echo_reply = (any::<u32>(), any::<u8>(), any::<u8>()).prop_map(|(i, r, e)| {
            Message::from(EchoReply {
                identifier: i,
                result: r.into(),
                error: e.into(),
            })
        });
        let ocrq = (
            (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
            ),
            arb_text::<64>(),
            arb_text::<64>(),
        )
            .prop_map(|((id, sn, min, max), (bt, ft, win, ppd, pl), phone, sub)| {
                Message::from(OutgoingCallRequest {
                    call_id: id,
                    call_serial_number: sn,
                    min_bps: min,
                    max_bps: max,
                    bearer_type: bt.into(),
                    framing_type: ft.into(),
                    recv_window_size: win,
                    packet_processing_delay: ppd,
                    phone_number_len: pl,
                    phone_number: phone,
                    subaddress: sub,
                })
            });
        let ocrp = (
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
        )
            .prop_map(|(id, peer, r, e, cause, speed, win, ppd, chan)| {
                Message::from(OutgoingCallReply {
                    call_id: id,
                    peer_call_id: peer,
                    result: r.into(),
                    error: e.into(),
                    cause_code: cause,
                    connect_speed: speed,
                    recv_window_size: win,
                    packet_processing_delay: ppd,
                    physical_channel_id: chan,
                })
            });
        let icrq = (
            (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()),
            (any::<u16>(), any::<u16>()),
            (arb_text::<64>(), arb_text::<64>(), arb_text::<64>()),
        )
            .prop_map(|((id, sn, bt, chan), (l1, l2), (dialed, dialing, sub))| {
                Message::from(IncomingCallRequest {
                    call_id: id,
                    call_serial_number: sn,
                    bearer_type: bt.into(),
                    physical_channel_id: chan,
                    dialed_number_len: l1,
                    dialing_number_len: l2,
                    dialed_number: dialed,
                    dialing_number: dialing,
                    subaddress: sub,
                })
            });
        let icrp = (
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(id, peer, r, e, win, ptd)| {
                Message::from(IncomingCallReply {
                    call_id: id,
                    peer_call_id: peer,
                    result: r.into(),
                    error: e.into(),
                    recv_window_size: win,
                    packet_transmit_delay: ptd,
                })
            });
        let iccn = (
            any::<u16>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
        )
            .prop_map(|(peer, speed, win, ptd, ft)| {
                Message::from(IncomingCallConnected {
                    peer_call_id: peer,
                    connect_speed: speed,
                    recv_window_size: win,
                    packet_transmit_delay: ptd,
                    framing_type: ft.into(),
                })
            });
        let ccrq = any::<u16>().prop_map(|call_id| Message::from(CallClearRequest { call_id }));
        let cdn = (
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            arb_text::<128>(),
        )
            .prop_map(|(id, r, e, cause, stats)| {
                Message::from(CallDisconnectNotify {
                    call_id: id,
                    result: r.into(),
                    error: e.into(),
                    cause_code: cause,
                    call_statistics: stats,
                })
            });
        let wen = (any::<u16>(), any::<[u32; 6]>()).prop_map(|(peer, c)| {
            Message::from(WanErrorNotify {
                peer_call_id: peer,
                crc_errors: c[0],
                framing_errors: c[1],
                hardware_overruns: c[2],
                buffer_overruns: c[3],
                timeout_errors: c[4],
                alignment_errors: c[5],
            })
        });
        let sli = (any::<u16>(), any::<u32>(), any::<u32>()).prop_map(|(peer, s, r)| {
            Message::from(SetLinkInfo {
                peer_call_id: peer,
                send_accm: s,
                recv_accm: r,
            })
        });
        let unknown = (
            16u16..,
            proptest::collection::vec(any::<u8>(), 0..=UnknownMessage::MAX_BODY_LEN),
        )
            .prop_map(|(ty, body)| Message::from(UnknownMessage::new(ty, &body).unwrap()));
        prop_oneof![
            sccrq, sccrp, stop, stop_reply, echo, echo_reply, ocrq, ocrp, icrq, icrp, iccn, ccrq,
            cdn, wen, sli, unknown,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn emit_then_parse(message in arb_message()) {
            let mut buf = [0u8; MAX_MESSAGE_LEN];
            let n = message.emit(&mut buf).unwrap();
            prop_assert_eq!(n, message.buffer_len());
            prop_assert_eq!(Message::parse(&buf[..n]), Ok(message));
        }

        #[test]
        fn parse_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..260)) {
            // Never panics; what parses emits to something that parses the same.
            if let Ok(message) = Message::parse(&bytes) {
                let mut buf = [0u8; MAX_MESSAGE_LEN];
                let n = message.emit(&mut buf).unwrap();
                prop_assert_eq!(Message::parse(&buf[..n]), Ok(message));
            }
        }
    }

    #[test]
    fn literals_cover_every_type_in_order() {
        let literals = literals();
        assert_eq!(literals.len(), 15);
        for (i, (bytes, message)) in literals.iter().enumerate() {
            let ty = ControlMessageType::from(u16::try_from(i + 1).unwrap());
            assert_eq!(message.message_type(), ty);
            assert_eq!(ty.message_len(), Some(bytes.len()));
            assert_eq!(message.buffer_len(), bytes.len());
        }
    }

    #[test]
    fn parse_literals() {
        for (bytes, message) in literals() {
            assert_eq!(
                Message::parse(&bytes),
                Ok(message),
                "{}",
                message.message_type()
            );
        }
    }

    #[test]
    fn emit_literals() {
        for (bytes, message) in literals() {
            let mut buf = [0xa5u8; MAX_MESSAGE_LEN + 8];
            assert_eq!(message.emit(&mut buf), Ok(bytes.len()));
            assert_eq!(
                &buf[..bytes.len()],
                &bytes[..],
                "{}",
                message.message_type()
            );
            // Nothing written past the message.
            assert!(buf[bytes.len()..].iter().all(|&b| b == 0xa5));
        }
    }

    #[test]
    fn capture_fields() {
        let Ok(Message::StartControlConnectionRequest(sccrq)) =
            Message::parse(&h(&[capture::SCCRQ]))
        else {
            panic!("SCCRQ");
        };
        assert_eq!(sccrq.host_name, "local");
        assert_eq!(sccrq.vendor.as_str(), Some("cananian"));
        assert!(
            sccrq
                .framing_capabilities
                .contains(FramingCapabilities::SYNC)
        );
        let Ok(Message::OutgoingCallRequest(ocrq)) = Message::parse(&h(&[capture::OCRQ])) else {
            panic!("OCRQ");
        };
        assert_eq!(ocrq.phone_number_digits(), b"");
        assert_eq!(OutgoingCallRequest::LENGTH, 168);
        assert_eq!(
            OutgoingCallRequest::MESSAGE_TYPE,
            ControlMessageType::OutgoingCallRequest
        );
    }

    #[test]
    fn ocrq_with_phone_number() {
        let bytes = h(&[
            "00a8 0001 1a2b3c4d 0007 0000",
            "0001 0002 0000012c 0000ea60 00000001 00000001 0010 0000 0007 0000",
            "35353531323334",
            &z(57),
            "3132",
            &z(62),
        ]);
        let message = Message::OutgoingCallRequest(OutgoingCallRequest {
            call_id: 1,
            call_serial_number: 2,
            min_bps: 300,
            max_bps: 60000,
            bearer_type: BearerType::Analog,
            framing_type: FramingType::Async,
            recv_window_size: 16,
            packet_processing_delay: 0,
            phone_number_len: 7,
            phone_number: FixedStr::new("5551234"),
            subaddress: FixedStr::new("12"),
        });
        assert_eq!(Message::parse(&bytes), Ok(message));
        let mut buf = [0u8; 168];
        assert_eq!(message.emit(&mut buf), Ok(168));
        assert_eq!(&buf[..], &bytes[..]);
    }

    #[test]
    fn icrq_digits() {
        let (_, message) = &literals()[8];
        let Message::IncomingCallRequest(icrq) = message else {
            panic!("ICRQ");
        };
        assert_eq!(icrq.dialed_number_digits(), b"5551");
        assert_eq!(icrq.dialing_number_digits(), b"123");
    }

    #[test]
    fn every_wrong_length_is_malformed() {
        for ty in 1..=15u16 {
            let expected = ControlMessageType::from(ty).message_len().unwrap();
            for len in HEADER_LEN..=MAX_MESSAGE_LEN {
                if len == expected {
                    continue;
                }
                let mut bytes = vec![0u8; len];
                bytes[..2].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
                bytes[2..12].copy_from_slice(&h(&["0001 1a2b3c4d", &format!("{ty:04x}"), "0000"]));
                assert_eq!(
                    Message::parse(&bytes),
                    Err(Error::Malformed(
                        "PPTP length does not match control message type"
                    )),
                    "type {ty} length {len}"
                );
            }
        }
    }

    #[test]
    fn length_outside_framing_limits() {
        for len in (0..HEADER_LEN).chain([MAX_MESSAGE_LEN + 1, 0x1000, 0xffff]) {
            let mut bytes = h(&[capture::CCRQ]);
            bytes.resize(len.max(16), 0);
            bytes[..2].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            assert!(
                matches!(Message::parse(&bytes), Err(Error::Malformed(_))),
                "length {len}"
            );
        }
    }

    #[test]
    fn bad_cookie() {
        for (mut bytes, _) in literals() {
            bytes[7] ^= 0x01;
            assert_eq!(
                Message::parse(&bytes),
                Err(Error::Malformed("PPTP magic cookie"))
            );
        }
    }

    #[test]
    fn truncated() {
        for (bytes, message) in literals() {
            for len in 0..bytes.len() {
                assert_eq!(
                    Message::parse(&bytes[..len]),
                    Err(Error::Truncated),
                    "{} cut to {len}",
                    message.message_type()
                );
            }
        }
    }

    #[test]
    fn trailing_octets_ignored() {
        let mut bytes = h(&[capture::CCRQ, capture::OCRP]);
        assert_eq!(Message::parse(&bytes), Ok(capture_ccrq()));
        bytes.truncate(20);
        assert_eq!(Message::parse(&bytes), Ok(capture_ccrq()));
    }

    #[test]
    fn management_and_unknown_pptp_message_types() {
        let mut bytes = h(&[capture::CCRQ]);
        bytes[3] = 2;
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::Unsupported("PPTP management message"))
        );
        bytes[3] = 3;
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::Malformed("PPTP message type"))
        );
        bytes[3] = 0;
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::Malformed("PPTP message type"))
        );
    }

    #[test]
    fn unknown_control_message_type_is_kept() {
        let bytes = h(&["0012 0001 1a2b3c4d 0010 0000", "deadbeef cafe"]);
        let message = Message::parse(&bytes).unwrap();
        assert_eq!(message.message_type(), ControlMessageType::Unknown(16));
        let Message::Unknown(unknown) = message else {
            panic!("not unknown");
        };
        assert_eq!(unknown.body(), &[0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe]);
        assert_eq!(message.buffer_len(), 18);
        let mut buf = [0u8; 18];
        assert_eq!(message.emit(&mut buf), Ok(18));
        assert_eq!(&buf[..], &bytes[..]);

        // A bare header is a valid unknown message too.
        let bytes = h(&["000c 0001 1a2b3c4d ffff 0000"]);
        let message = Message::parse(&bytes).unwrap();
        assert_eq!(
            message,
            Message::Unknown(UnknownMessage::new(0xffff, &[]).unwrap())
        );
        // And the longest.
        let mut bytes = vec![0x55u8; MAX_MESSAGE_LEN];
        bytes[..12].copy_from_slice(&h(&["00dc 0001 1a2b3c4d 0063 0000"]));
        let Ok(Message::Unknown(unknown)) = Message::parse(&bytes) else {
            panic!("longest unknown");
        };
        assert_eq!(unknown.body().len(), UnknownMessage::MAX_BODY_LEN);
    }

    #[test]
    fn unknown_message_body_limit() {
        assert!(UnknownMessage::new(99, &[0; 208]).is_ok());
        assert_eq!(
            UnknownMessage::new(99, &[0; 209]),
            Err(Error::Malformed("PPTP message too long"))
        );
        assert_eq!(
            UnknownMessage::new(99, &[0; 300]),
            Err(Error::Malformed("PPTP message too long"))
        );
    }

    #[test]
    fn unknown_message_with_known_type_emits_wrong_length() {
        // How a test client sends a known type with a bad length.
        let message = Message::from(UnknownMessage::new(5, &[0; 8]).unwrap());
        let mut buf = [0u8; 20];
        assert_eq!(message.emit(&mut buf), Ok(20));
        assert_eq!(
            Message::parse(&buf),
            Err(Error::Malformed(
                "PPTP length does not match control message type"
            ))
        );
    }

    #[test]
    fn reserved_fields_ignored_on_parse_and_zeroed_on_emit() {
        let clean = h(&[capture::SCCRQ]);
        let mut dirty = clean.clone();
        dirty[10] = 0xff; // Reserved0
        dirty[11] = 0x01;
        dirty[14] = 0x12; // Reserved1
        dirty[15] = 0x34;
        assert_eq!(Message::parse(&dirty), Ok(capture_sccrq()));
        assert_eq!(
            ControlHeader::new_checked(&dirty[..]).unwrap().reserved0(),
            0xff01
        );
        let mut buf = [0u8; 156];
        capture_sccrq().emit(&mut buf).unwrap();
        assert_eq!(&buf[..], &clean[..]);
    }

    #[test]
    fn text_padding_kept_through_parse_and_emit() {
        let mut bytes = h(&[capture::SCCRQ]);
        bytes[28 + 10] = b'x'; // After "local\0" in Host Name.
        let message = Message::parse(&bytes).unwrap();
        let Message::StartControlConnectionRequest(sccrq) = message else {
            panic!("SCCRQ");
        };
        assert_eq!(sccrq.host_name, "local");
        let mut buf = [0u8; 156];
        message.emit(&mut buf).unwrap();
        assert_eq!(&buf[..], &bytes[..]);
    }

    #[test]
    fn emit_buffer_too_small() {
        for (bytes, message) in literals() {
            let mut buf = vec![0u8; bytes.len() - 1];
            assert_eq!(message.emit(&mut buf), Err(Error::BufferTooSmall));
            assert_eq!(message.emit(&mut []), Err(Error::BufferTooSmall));
        }
    }
}
