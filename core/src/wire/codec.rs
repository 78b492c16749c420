//! Encoding frames into bytes and decoding them back, over buffers the
//! caller owns. The decoder treats every byte as hostile: it checks a header
//! completely (kind, flags, reserved bits, length against its limit and
//! against the kind) before asking for the body, so a forged length is
//! refused after 8 bytes instead of being waited for or buffered.
//!
//! It must never allocate (a decoded frame borrows from the input; a test
//! under a counting allocator holds it to that), never panic, and never
//! return without progress: `Ok(Some(_))` always consumes at least a header.

use super::bytes::{Reader, Writer};
use super::crc32c::crc32c;
use super::error::{EncodeError, WireError};
use super::frame::{
    CallMark, Frame, Kind, OpenResult, CRC_LEN, DATA_FIXED, DATA_PREFIX_LEN, FLAG_CALL_PART, FLAG_CALL_TURN,
    FLAG_CRC32C, FLAG_STAMP, HEADER_LEN, OPEN_FIXED, QOS_LEN, STAMP_LEN,
};
use crate::control::validate_name;

/// Default body limit: a 1 MiB message (the `data` QoS preset's largest)
/// with its `Data` fields. Engines set it from the largest `max_msg` they
/// grant.
pub const DEFAULT_MAX_FRAME_LEN: u32 = (1 << 20) + DATA_FIXED;

/// Whether an encoded frame carries a CRC32C trailer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Checksum {
    /// No trailer: TCP's own checksum is trusted.
    #[default]
    None,
    /// A CRC32C of header and body follows the body. Send it only if the
    /// handshake agreed on [`crate::wire::Features::CRC32C`].
    Crc32c,
}

impl Checksum {
    const fn trailer_len(self) -> usize {
        match self {
            Checksum::None => 0,
            Checksum::Crc32c => CRC_LEN,
        }
    }

    const fn flags(self) -> u8 {
        match self {
            Checksum::None => 0,
            Checksum::Crc32c => FLAG_CRC32C,
        }
    }
}

/// Whether the decoder accepts frames without a CRC32C.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CrcPolicy {
    /// Frames may or may not carry one; those that do are verified. A bit
    /// flip that clears the flag itself then goes unnoticed in that frame
    /// (its trailer is read as the next header, which almost always fails).
    #[default]
    Optional,
    /// Every frame must carry one ([`WireError::MissingCrc`] otherwise): for
    /// connections that carry flows whose QoS asks for no bit errors.
    Required,
}

/// Bytes `frame` takes on the wire, after checking that it can be encoded.
pub fn encoded_len(frame: &Frame<'_>, checksum: Checksum) -> Result<usize, EncodeError> {
    Ok(frame_total(body_len(frame)?, checksum))
}

/// Encodes `frame` at the start of `out` and returns the bytes written. It
/// allocates nothing, for the engine's registered buffers; on error nothing
/// has been written.
pub fn encode_into(frame: &Frame<'_>, checksum: Checksum, out: &mut [u8]) -> Result<usize, EncodeError> {
    let body = body_len(frame)?;
    let total = frame_total(body, checksum);
    let available = out.len();
    let Some(out) = out.get_mut(..total) else {
        return Err(EncodeError::BufferTooSmall { needed: total, available });
    };
    let mut w = Writer::new(out);
    w.u32(body);
    w.u8(frame.kind() as u8);
    let stamped = matches!(frame, Frame::Data { stamp, .. } if *stamp != 0);
    let call = if let Frame::Data { call, .. } = frame { call.wire_flags() } else { 0 };
    w.u8(checksum.flags() | call | if stamped { FLAG_STAMP } else { 0 });
    w.u16(0);
    match *frame {
        Frame::Open { flow_id, name, qos } => {
            w.u32(flow_id);
            w.bytes(&qos);
            // `body_len` validated the name, which bounds it far below 256.
            w.u8(name.len() as u8);
            w.bytes(name.as_bytes());
        }
        Frame::OpenAck { flow_id, result, qos } => {
            w.u32(flow_id);
            w.u16(result as u16);
            w.bytes(&qos);
        }
        Frame::Data { flow_id, seq, stamp, payload, .. } => {
            w.u32(flow_id);
            w.u64(seq);
            if stamp != 0 {
                w.u64(stamp);
            }
            w.bytes(payload);
        }
        Frame::Ack { flow_id, cumulative_seq: seq }
        | Frame::Close { flow_id, last_seq: seq }
        | Frame::Resume { flow_id, next_expected_seq: seq }
        | Frame::Gone { flow_id, last_seq: seq }
        | Frame::Reset { flow_id, consumed_seq: seq } => {
            w.u32(flow_id);
            w.u64(seq);
        }
        Frame::Keepalive { ts_ns } => w.u64(ts_ns),
        Frame::Cluster { payload } => w.bytes(payload),
    }
    if checksum == Checksum::Crc32c {
        let (covered, trailer) = out.split_at_mut(total - CRC_LEN);
        trailer.copy_from_slice(&crc32c(0, covered).to_le_bytes());
    }
    Ok(total)
}

/// Appends `frame` to `out` and returns the bytes appended.
pub fn encode(frame: &Frame<'_>, checksum: Checksum, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let len = encoded_len(frame, checksum)?;
    let start = out.len();
    out.resize(start + len, 0);
    let written = encode_into(frame, checksum, &mut out[start..]);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// Header and fixed fields of a `Data` frame whose payload the caller
/// writes from where it lies (a gather write or SEND_ZC straight from a
/// ring), so a large message is never copied to be framed. With
/// [`Checksum::Crc32c`] the frame ends with [`data_crc`] of the same bytes.
pub fn data_prefix(
    flow_id: u32,
    seq: u64,
    payload_len: usize,
    checksum: Checksum,
) -> Result<[u8; DATA_PREFIX_LEN], EncodeError> {
    let body_len = payload_len.saturating_add(DATA_FIXED as usize);
    let body = u32::try_from(body_len).map_err(|_| EncodeError::TooLarge { body_len })?;
    let mut out = [0u8; DATA_PREFIX_LEN];
    let mut w = Writer::new(&mut out);
    w.u32(body);
    w.u8(Kind::Data as u8);
    w.u8(checksum.flags());
    w.u16(0);
    w.u32(flow_id);
    w.u64(seq);
    Ok(out)
}

/// The CRC32C trailer of a `Data` frame written as `prefix` then `payload`.
pub fn data_crc(prefix: &[u8; DATA_PREFIX_LEN], payload: &[u8]) -> [u8; CRC_LEN] {
    crc32c(crc32c(0, prefix), payload).to_le_bytes()
}

/// Header, body and trailer (saturating where `usize` is 32 bits, so that
/// the buffer check then fails).
fn frame_total(body: u32, checksum: Checksum) -> usize {
    (body as usize).saturating_add(HEADER_LEN + checksum.trailer_len())
}

/// The body length of `frame`, checking that it can be encoded.
fn body_len(frame: &Frame<'_>) -> Result<u32, EncodeError> {
    let len = match frame {
        Frame::Open { name, .. } => {
            validate_name(name).map_err(EncodeError::BadName)?;
            OPEN_FIXED as usize + name.len()
        }
        Frame::Data { payload, stamp, .. } => {
            let stamp_len = if *stamp != 0 { STAMP_LEN } else { 0 };
            payload.len().saturating_add(DATA_FIXED as usize + stamp_len)
        }
        Frame::Cluster { payload } => {
            let (min, max) = Kind::Cluster.body_bounds();
            if payload.len() < min as usize || payload.len() > max as usize {
                return Err(EncodeError::ClusterLen { len: payload.len() });
            }
            payload.len()
        }
        other => other.kind().body_bounds().0 as usize,
    };
    u32::try_from(len).map_err(|_| EncodeError::TooLarge { body_len: len })
}

/// A checked frame header.
struct Header {
    len: u32,
    kind: Kind,
    crc: bool,
    /// A `Data` frame carrying its sender's stamp.
    stamped: bool,
    /// A `Data` frame's call mark.
    call: CallMark,
    /// Header, body and trailer.
    total: usize,
}

/// Decodes frames from buffers the caller fills. Stateless apart from its
/// settings: the caller keeps unconsumed bytes and calls again with more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decoder {
    max_frame_len: u32,
    crc: CrcPolicy,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl Decoder {
    /// A decoder that refuses bodies longer than `max_frame_len` bytes.
    pub const fn new(max_frame_len: u32) -> Decoder {
        Decoder { max_frame_len, crc: CrcPolicy::Optional }
    }

    /// The same decoder with another CRC policy.
    pub const fn crc_policy(self, crc: CrcPolicy) -> Decoder {
        Decoder { crc, ..self }
    }

    /// The body limit.
    pub const fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Checks the header at the start of `buf` and returns the whole frame's
    /// length (header, body, trailer), so a reader knows how much to await;
    /// `Ok(None)` until the header is there.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, WireError> {
        Ok(self.header(buf)?.map(|h| h.total))
    }

    /// Decodes the frame at the start of `buf`: `Ok(None)` if more bytes are
    /// needed, else the frame (borrowing from `buf`) and the bytes it took.
    /// An error means the stream is unusable from here: close the connection.
    pub fn decode<'b>(&self, buf: &'b [u8]) -> Result<Option<(Frame<'b>, usize)>, WireError> {
        let Some(header) = self.header(buf)? else {
            return Ok(None);
        };
        let Some(bytes) = buf.get(..header.total) else {
            return Ok(None);
        };
        let body_end = HEADER_LEN + header.len as usize;
        if header.crc {
            let covered = &bytes[..body_end];
            let computed = crc32c(0, covered);
            let carried = Reader(&bytes[body_end..]).u32();
            if computed != carried {
                return Err(WireError::BadCrc { computed, carried });
            }
        }
        let frame = body(header.kind, header.stamped, header.call, &bytes[HEADER_LEN..body_end])?;
        Ok(Some((frame, header.total)))
    }

    /// The frames of a buffer that must hold whole frames only, such as a
    /// UDP datagram: a frame cut short at its end is an error
    /// ([`WireError::Truncated`]) rather than a wait for more. Iteration
    /// stops after the first error.
    pub fn frames<'b>(&self, buf: &'b [u8]) -> Frames<'b> {
        Frames { decoder: *self, rest: buf, failed: false }
    }

    fn header(&self, buf: &[u8]) -> Result<Option<Header>, WireError> {
        let Some(bytes) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let mut r = Reader(bytes);
        let (len, code, flags, reserved) = (r.u32(), r.u8(), r.u8(), r.u16());
        let kind = Kind::from_code(code).ok_or(WireError::UnknownKind(code))?;
        let known =
            if kind == Kind::Data { FLAG_CRC32C | FLAG_STAMP | FLAG_CALL_TURN | FLAG_CALL_PART } else { FLAG_CRC32C };
        // Both call marks at once is no frame an encoder makes.
        let both = FLAG_CALL_TURN | FLAG_CALL_PART;
        if flags & !known != 0 || flags & both == both {
            return Err(WireError::UnknownFlags(flags));
        }
        let call = if flags & FLAG_CALL_TURN != 0 {
            CallMark::Turn
        } else if flags & FLAG_CALL_PART != 0 {
            CallMark::Part
        } else {
            CallMark::Plain
        };
        let stamped = flags & FLAG_STAMP != 0;
        if reserved != 0 {
            return Err(WireError::ReservedNotZero(reserved));
        }
        let crc = flags & FLAG_CRC32C != 0;
        if !crc && self.crc == CrcPolicy::Required {
            return Err(WireError::MissingCrc { kind });
        }
        let too_long = WireError::FrameTooLong { len, max: self.max_frame_len };
        if len > self.max_frame_len {
            return Err(too_long);
        }
        let (mut min, max) = kind.body_bounds();
        if stamped {
            min += STAMP_LEN as u32;
        }
        if len < min {
            return Err(WireError::BodyTooShort { kind, len, min });
        }
        if len > max {
            return Err(WireError::TrailingBytes { kind, extra: len - max });
        }
        let trailer = if crc { CRC_LEN } else { 0 };
        // Cannot overflow a 64-bit usize; a 32-bit one gets an error.
        let total = usize::try_from(len).ok().and_then(|l| l.checked_add(HEADER_LEN + trailer)).ok_or(too_long)?;
        Ok(Some(Header { len, kind, crc, stamped, call, total }))
    }
}

/// Parses a body whose length the header check has put within the kind's
/// bounds.
fn body(kind: Kind, stamped: bool, call: CallMark, body: &[u8]) -> Result<Frame<'_>, WireError> {
    let mut r = Reader(body);
    Ok(match kind {
        Kind::Open => {
            let flow_id = r.u32();
            let qos: [u8; QOS_LEN] = r.array();
            let name_len = u32::from(r.u8());
            let name = r.rest();
            let have = name.len() as u32;
            if have < name_len {
                return Err(WireError::BodyTooShort { kind, len: body.len() as u32, min: OPEN_FIXED + name_len });
            }
            if have > name_len {
                return Err(WireError::TrailingBytes { kind, extra: have - name_len });
            }
            let name = std::str::from_utf8(name).map_err(|_| WireError::NameNotUtf8)?;
            validate_name(name).map_err(WireError::BadName)?;
            Frame::Open { flow_id, name, qos }
        }
        Kind::OpenAck => {
            let flow_id = r.u32();
            let code = r.u16();
            let result = OpenResult::from_code(code).ok_or(WireError::UnknownOpenResult(code))?;
            Frame::OpenAck { flow_id, result, qos: r.array() }
        }
        Kind::Data => {
            let (flow_id, seq) = (r.u32(), r.u64());
            // A zero stamp on the wire would read as "not stamped": keep it
            // as the (harmless) smallest stamp instead.
            let stamp = if stamped { r.u64().max(1) } else { 0 };
            Frame::Data { flow_id, seq, stamp, call, payload: r.rest() }
        }
        Kind::Ack => Frame::Ack { flow_id: r.u32(), cumulative_seq: r.u64() },
        Kind::Close => Frame::Close { flow_id: r.u32(), last_seq: r.u64() },
        Kind::Resume => Frame::Resume { flow_id: r.u32(), next_expected_seq: r.u64() },
        Kind::Gone => Frame::Gone { flow_id: r.u32(), last_seq: r.u64() },
        Kind::Reset => Frame::Reset { flow_id: r.u32(), consumed_seq: r.u64() },
        Kind::Keepalive => Frame::Keepalive { ts_ns: r.u64() },
        Kind::Cluster => Frame::Cluster { payload: r.rest() },
    })
}

/// Iterator over the whole frames of a buffer; see [`Decoder::frames`].
#[derive(Clone, Debug)]
pub struct Frames<'b> {
    decoder: Decoder,
    rest: &'b [u8],
    failed: bool,
}

impl<'b> Frames<'b> {
    /// Bytes not decoded yet.
    pub fn remainder(&self) -> &'b [u8] {
        self.rest
    }
}

impl<'b> Iterator for Frames<'b> {
    type Item = Result<Frame<'b>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        let outcome = match self.decoder.decode(rest) {
            Ok(Some((frame, used))) => {
                self.rest = &rest[used..];
                return Some(Ok(frame));
            }
            Ok(None) => {
                let needed = match self.decoder.frame_len(rest) {
                    Ok(Some(total)) => total,
                    _ => HEADER_LEN,
                };
                WireError::Truncated { needed, have: rest.len() }
            }
            Err(e) => e,
        };
        self.failed = true;
        Some(Err(outcome))
    }
}
