//! The flow handshake on a fresh control connection, and the control
//! packets that follow it.
//!
//! ```text
//! initiator                               acceptor
//!   HELLO(requested qos)            ──▶
//!                                   ◀──    GRANT(granted qos) | REFUSE(reason)
//!   SEGMENT(len) + memfd            ──▶
//!                                   ◀──    READY(len) [+ memfd] | REFUSE(reason)
//! ```
//!
//! A flow an engine allocates for a remote open says so in its HELLO (code
//! bit `FROM_OTHER_HOST`); a listener that does not take flows from other
//! hosts refuses it with `PermissionDenied`. The bit is the engine's word:
//! the engine runs as a user the listener's permit already admits, and a
//! local process that leaves the bit out gains nothing it did not have.
//!
//! An acceptor that supplies the memory of the direction it receives on
//! says so in its GRANT (code bit `ACCEPTOR_MEMORY`): the initiator's
//! segment then holds the rest of the flow, and READY carries the
//! acceptor's segment (its length in the body, its memfd), which the
//! initiator validates as the acceptor validated its own: sealed, of the
//! announced size, with the geometry the grant implies.
//!
//! Every packet is a fixed 48-byte record (magic and version first), sent as
//! one SOCK_SEQPACKET message. Everything received is validated: a peer may
//! be buggy, hostile or another version. After the handshake the socket
//! also carries 1-byte readiness signals (see `readiness`), which are
//! never a packet.
//!
//! Version 2 dropped the readiness descriptors version 1 passed with
//! SEGMENT and READY (the control socket is the readiness channel now).

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use ringflow_ring::WakeMode;
use ringflow_shm::Segment;

use super::memory::{FlowMemory, Fresh, Geometry, Holds, MemorySupply};
use super::qos::{Qos, QosError, QosLimits, ENCODED_LEN};
use super::FlowSetupError;
use crate::control::{ControlConn, RecvError, SendError};
use crate::wait::Deadline;

const MAGIC: [u8; 6] = *b"RFLOW\0";
/// Version of the control protocol; a peer of another version is refused.
pub const PROTOCOL_VERSION: u16 = 2;
/// Bytes of every control packet.
pub const PACKET_LEN: usize = 48;

/// Control packet types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The initiator's opening: the QoS it asks for.
    Hello = 1,
    /// The acceptor's yes: the granted QoS.
    Grant = 2,
    /// The acceptor's no: a refusal code.
    Refuse = 3,
    /// The initiator's segment: its length, with the memfd.
    Segment = 4,
    /// The acceptor mapped and checked the segment: the flow is up (with
    /// its own segment when it supplies memory).
    Ready = 5,
    /// Data phase: file descriptors of the next message carrying `FLAG_FDS`.
    Fds = 6,
}

/// Why a side refused a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer's credentials are not allowed to connect.
    PermissionDenied,
    /// The request made no sense (bad QoS).
    InvalidQos,
    /// The listener has no room for another flow.
    ResourceLimit,
    /// The segment could not be mapped or validated.
    BadSegment,
    /// Another protocol version.
    Version,
    /// A reason this version does not know.
    Other(u32),
}

impl Refusal {
    fn code(self) -> u32 {
        match self {
            Refusal::PermissionDenied => 1,
            Refusal::InvalidQos => 2,
            Refusal::ResourceLimit => 3,
            Refusal::BadSegment => 4,
            Refusal::Version => 5,
            Refusal::Other(c) => c,
        }
    }

    fn from_code(c: u32) -> Refusal {
        match c {
            1 => Refusal::PermissionDenied,
            2 => Refusal::InvalidQos,
            3 => Refusal::ResourceLimit,
            4 => Refusal::BadSegment,
            5 => Refusal::Version,
            c => Refusal::Other(c),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PermissionDenied => f.write_str("permission denied"),
            Refusal::InvalidQos => f.write_str("invalid QoS"),
            Refusal::ResourceLimit => f.write_str("resource limit reached"),
            Refusal::BadSegment => f.write_str("shared memory segment refused"),
            Refusal::Version => f.write_str("protocol version mismatch"),
            Refusal::Other(c) => write!(f, "refused (reason {c})"),
        }
    }
}

impl std::error::Error for Refusal {}

/// A decoded control packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The packet type.
    pub kind: Kind,
    /// Refusal code, fd count, or 0.
    pub code: u32,
    /// QoS bytes (HELLO, GRANT) or the segment length (SEGMENT) in the
    /// first 8 bytes.
    pub body: [u8; ENCODED_LEN],
}

impl Packet {
    /// A packet of `kind` with `code` and an empty body.
    pub fn new(kind: Kind, code: u32) -> Packet {
        Packet { kind, code, body: [0; ENCODED_LEN] }
    }

    fn with_qos(kind: Kind, qos: &Qos) -> Packet {
        Packet { body: qos.encode(), ..Packet::new(kind, 0) }
    }

    fn segment(len: usize) -> Packet {
        let mut p = Packet::new(Kind::Segment, 0);
        p.body[..8].copy_from_slice(&(len as u64).to_le_bytes());
        p
    }

    fn segment_len(&self) -> Option<usize> {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.body[..8]);
        usize::try_from(u64::from_le_bytes(w)).ok()
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; PACKET_LEN] {
        let mut out = [0u8; PACKET_LEN];
        out[..6].copy_from_slice(&MAGIC);
        out[6..8].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        out[8] = self.kind as u8;
        out[12..16].copy_from_slice(&self.code.to_le_bytes());
        out[16..].copy_from_slice(&self.body);
        out
    }

    /// Parses bytes from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Packet, HandshakeError> {
        if bytes.len() != PACKET_LEN || bytes[..6] != MAGIC {
            return Err(HandshakeError::Protocol("not a ringflow control packet"));
        }
        if u16::from_le_bytes([bytes[6], bytes[7]]) != PROTOCOL_VERSION {
            return Err(HandshakeError::Version { found: u16::from_le_bytes([bytes[6], bytes[7]]) });
        }
        let kind = match bytes[8] {
            1 => Kind::Hello,
            2 => Kind::Grant,
            3 => Kind::Refuse,
            4 => Kind::Segment,
            5 => Kind::Ready,
            6 => Kind::Fds,
            _ => return Err(HandshakeError::Protocol("unknown control packet type")),
        };
        let mut body = [0u8; ENCODED_LEN];
        body.copy_from_slice(&bytes[16..]);
        Ok(Packet { kind, code: u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]), body })
    }
}

/// Why a handshake failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer said no.
    Refused(Refusal),
    /// The peer speaks another protocol version.
    Version {
        /// The version the peer speaks.
        found: u16,
    },
    /// The peer sent something that is not the protocol.
    Protocol(&'static str),
    /// The peer granted something we did not ask for.
    BadGrant,
    /// The QoS requested is invalid.
    Qos(QosError),
    /// The deadline passed.
    TimedOut,
    /// The peer hung up.
    PeerGone,
    /// The flow's memory could not be made or mapped.
    Memory(FlowSetupError),
    /// The memory this side supplies for the flow was refused (too small,
    /// not fresh) or could not be made: this side's failure, not the peer's.
    OwnMemory(FlowSetupError),
    /// This side could not send a packet as it was made (a bug here, never
    /// the peer's doing).
    Send(SendError),
    /// The control socket failed.
    Io(std::io::Error),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Refused(r) => write!(f, "peer refused the flow: {r}"),
            HandshakeError::Version { found } => {
                write!(f, "peer speaks control protocol version {found}, this is {PROTOCOL_VERSION}")
            }
            HandshakeError::Protocol(what) => write!(f, "peer broke the control protocol: {what}"),
            HandshakeError::BadGrant => f.write_str("peer granted a QoS that was not asked for"),
            HandshakeError::Qos(e) => write!(f, "{e}"),
            HandshakeError::TimedOut => f.write_str("handshake timed out"),
            HandshakeError::PeerGone => f.write_str("peer hung up during the handshake"),
            HandshakeError::Memory(e) => write!(f, "flow memory: {e}"),
            HandshakeError::OwnMemory(e) => write!(f, "this side's flow memory: {e}"),
            HandshakeError::Send(e) => write!(f, "control packet not sent: {e}"),
            HandshakeError::Io(e) => write!(f, "control socket: {e}"),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::Memory(e) | HandshakeError::OwnMemory(e) => Some(e),
            HandshakeError::Io(e) => Some(e),
            HandshakeError::Qos(e) => Some(e),
            HandshakeError::Send(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FlowSetupError> for HandshakeError {
    fn from(e: FlowSetupError) -> Self {
        HandshakeError::Memory(e)
    }
}

impl From<SendError> for HandshakeError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::PeerGone => HandshakeError::PeerGone,
            SendError::WouldBlock | SendError::TimedOut => HandshakeError::TimedOut,
            SendError::Io { source } => HandshakeError::Io(source),
            e @ (SendError::Empty | SendError::TooManyFds { .. } | SendError::TooLarge { .. }) => {
                HandshakeError::Send(e)
            }
        }
    }
}

fn from_recv(e: RecvError) -> HandshakeError {
    match e {
        RecvError::PeerGone => HandshakeError::PeerGone,
        RecvError::TimedOut | RecvError::WouldBlock => HandshakeError::TimedOut,
        RecvError::Truncated { .. } | RecvError::FdsTruncated { .. } => {
            HandshakeError::Protocol("oversized control packet")
        }
        RecvError::Io { source, .. } => HandshakeError::Io(source),
    }
}

/// Sends one packet (and fds), waiting for room in the peer's queue only
/// until `deadline`.
pub fn send(
    conn: &ControlConn,
    p: &Packet,
    fds: &[std::os::fd::BorrowedFd<'_>],
    deadline: Deadline,
) -> Result<(), HandshakeError> {
    Ok(conn.send_deadline(&p.encode(), fds, deadline)?)
}

/// Receives one packet, with up to `fds.len()` descriptors.
pub fn recv(conn: &ControlConn, fds: &mut [Option<OwnedFd>], deadline: Deadline) -> Result<Packet, HandshakeError> {
    let mut buf = [0u8; PACKET_LEN + 1];
    let got = conn.recv(&mut buf, fds, deadline.remaining()).map_err(from_recv)?;
    Packet::decode(&buf[..got.len])
}

fn expect(p: Packet, kind: Kind) -> Result<Packet, HandshakeError> {
    match p.kind {
        k if k == kind => Ok(p),
        Kind::Refuse => Err(HandshakeError::Refused(Refusal::from_code(p.code))),
        _ => Err(HandshakeError::Protocol("unexpected control packet")),
    }
}

/// HELLO / GRANT code bit: this side's process is registered for
/// `membarrier(GLOBAL_EXPEDITED)`, so its publishers may skip their fence.
const CAN_MEMBARRIER: u32 = 1;
/// GRANT code bit: the acceptor supplies the memory of the direction it
/// receives on, and sends it with READY.
const ACCEPTOR_MEMORY: u32 = 2;
/// HELLO code bit: an engine allocates this flow for an open that came
/// from another host.
const FROM_OTHER_HOST: u32 = 4;

/// Where a flow being allocated comes from, as the listener is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A process of this host.
    ThisHost,
    /// Another host, through this host's engine.
    OtherHost,
}
/// Every GRANT code bit this version knows.
const GRANT_BITS: u32 = CAN_MEMBARRIER | ACCEPTOR_MEMORY;

fn offer_membarrier() -> u32 {
    if crate::membarrier::preferred_wake_mode() == WakeMode::Membarrier {
        CAN_MEMBARRIER
    } else {
        0
    }
}

/// A flow both sides have mapped.
pub struct Established {
    /// The flow's mapped memory (both directions' rings and pools).
    pub memory: Arc<FlowMemory>,
    /// The granted QoS.
    pub qos: Qos,
    /// The accepting side: the initiator said it brings the flow from
    /// another host (an engine, bit `FROM_OTHER_HOST`). Always false for
    /// the initiating side.
    pub from_other_host: bool,
}

/// The allocating side: asks for `qos`, lays the flow out in `memory` (or a
/// new memfd) with the granted QoS and hands it over. Returns once the
/// acceptor has mapped it.
pub fn initiate(
    conn: &ControlConn,
    name: &str,
    qos: &Qos,
    memory: Option<Segment>,
    origin: Origin,
    deadline: Deadline,
) -> Result<Established, HandshakeError> {
    let qos = qos.validate().map_err(HandshakeError::Qos)?;
    let offer = offer_membarrier();
    let from = if origin == Origin::OtherHost { FROM_OTHER_HOST } else { 0 };
    let hello = Packet { code: offer | from, ..Packet::with_qos(Kind::Hello, &qos) };
    if let Err(e) = send(conn, &hello, &[], deadline) {
        // A listener that refuses us at once (permissions) may have hung
        // up before our request went out: its refusal is still queued.
        return match recv(conn, &mut [], Deadline::Now) {
            Ok(p) if p.kind == Kind::Refuse => Err(HandshakeError::Refused(Refusal::from_code(p.code))),
            _ => Err(e),
        };
    }
    let grant = expect(recv(conn, &mut [], deadline)?, Kind::Grant)?;
    let granted = Qos::decode(&grant.body).map_err(|_| HandshakeError::BadGrant)?;
    if !qos.admits(&granted) || grant.code & !GRANT_BITS != 0 {
        return Err(HandshakeError::BadGrant);
    }
    // Fence-free publishing only when both processes are registered.
    let mode = if grant.code & offer & CAN_MEMBARRIER != 0 { WakeMode::Membarrier } else { WakeMode::Fenced };
    let split = grant.code & ACCEPTOR_MEMORY != 0;
    let holds = if split { Holds::InitiatorPart } else { Holds::Whole };
    let segment = FlowMemory::lay_out(name, &granted, mode, memory, holds).map_err(HandshakeError::OwnMemory)?;
    send(conn, &Packet::segment(segment.len()), &[segment.fd()], deadline)?;
    let mut fds = [None];
    let ready = expect(recv(conn, &mut fds, deadline)?, Kind::Ready)?;
    let [rx_fd] = fds;
    let acceptor_rx = match (split, rx_fd) {
        (false, None) => None,
        (true, Some(fd)) => {
            let len = ready.segment_len().ok_or(HandshakeError::Protocol("segment length out of range"))?;
            Some(Segment::from_fd(fd, Some(len)).map_err(FlowSetupError::from)?)
        }
        (false, Some(_)) => return Err(HandshakeError::Protocol("ready packet with memory that was not granted")),
        (true, None) => return Err(HandshakeError::Protocol("ready packet without the memory the grant announced")),
    };
    // The acceptor may have attached its sides since READY: not fresh.
    let memory = FlowMemory::assemble(segment, acceptor_rx, &granted, mode, Fresh::No)?;
    Ok(Established { memory, qos: granted, from_other_host: false })
}

/// The accepting side: reads the request, grants within `limits`, maps the
/// segment the initiator sends and confirms. With `rx_memory` the direction
/// this side receives on lives in a segment it supplies, sized for the
/// grant; a supplied segment that is refused (too small, not fresh) refuses
/// the flow (`ResourceLimit` to the peer, `OwnMemory` here). A flow from
/// another host is refused (`PermissionDenied`) unless `other_hosts`. A
/// refusal is sent to the peer before the error is returned.
pub fn respond(
    conn: &ControlConn,
    limits: &QosLimits,
    rx_memory: Option<&MemorySupply>,
    other_hosts: bool,
    deadline: Deadline,
) -> Result<Established, HandshakeError> {
    let refuse = |r: Refusal| {
        let _ = send(conn, &Packet::new(Kind::Refuse, r.code()), &[], deadline);
        r
    };
    let hello = match recv(conn, &mut [], deadline) {
        Err(e @ HandshakeError::Version { .. }) => {
            refuse(Refusal::Version);
            return Err(e);
        }
        other => expect(other?, Kind::Hello)?,
    };
    if hello.code & FROM_OTHER_HOST != 0 && !other_hosts {
        return Err(HandshakeError::Refused(refuse(Refusal::PermissionDenied)));
    }
    let Ok(asked) = Qos::decode(&hello.body) else {
        return Err(HandshakeError::Refused(refuse(Refusal::InvalidQos)));
    };
    let granted = asked.grant(limits);
    let both = hello.code & offer_membarrier() & CAN_MEMBARRIER;
    let mode = if both != 0 { WakeMode::Membarrier } else { WakeMode::Fenced };
    let own_rx = match rx_memory {
        Some(supply) => {
            let supplied = Geometry::for_qos(&granted)
                .segment_len_holding(Holds::AcceptorRx)
                .and_then(|len| supply.get(len).map_err(FlowSetupError::from))
                .and_then(|seg| FlowMemory::lay_out("", &granted, mode, Some(seg), Holds::AcceptorRx));
            match supplied {
                Ok(seg) => Some(seg),
                Err(e) => {
                    refuse(Refusal::ResourceLimit);
                    return Err(HandshakeError::OwnMemory(e));
                }
            }
        }
        None => None,
    };
    let code = both | if own_rx.is_some() { ACCEPTOR_MEMORY } else { 0 };
    send(conn, &Packet { code, ..Packet::with_qos(Kind::Grant, &granted) }, &[], deadline)?;
    let mut fds = [None];
    let seg = expect(recv(conn, &mut fds, deadline)?, Kind::Segment)?;
    let [Some(fd)] = fds else {
        refuse(Refusal::BadSegment);
        return Err(HandshakeError::Protocol("segment packet without a memfd"));
    };
    let Some(len) = seg.segment_len() else {
        refuse(Refusal::BadSegment);
        return Err(HandshakeError::Protocol("segment length out of range"));
    };
    let ready = Packet { kind: Kind::Ready, ..Packet::segment(own_rx.as_ref().map_or(0, Segment::len)) };
    // The supplied segment's memfd goes with READY, after the flow is
    // assembled (which closes the segments' own descriptors): a copy for it.
    let rx_fd = match own_rx.as_ref().map(Segment::try_clone_fd).transpose() {
        Ok(fd) => fd,
        Err(e) => {
            refuse(Refusal::ResourceLimit);
            return Err(HandshakeError::Io(e));
        }
    };
    let memory = Segment::from_fd(fd, Some(len))
        .map_err(FlowSetupError::from)
        .and_then(|s| FlowMemory::assemble(s, own_rx, &granted, mode, Fresh::Yes))
        .inspect_err(|_| {
            refuse(Refusal::BadSegment);
        })?;
    match &rx_fd {
        Some(rx) => send(conn, &ready, &[rx.as_fd()], deadline)?,
        None => send(conn, &ready, &[], deadline)?,
    }
    Ok(Established { memory, qos: granted, from_other_host: hello.code & FROM_OTHER_HOST != 0 })
}

/// Tells a peer that just connected that it is refused (permission,
/// limits). Its request is read first: closing a Unix socket with unread
/// data resets the connection, and the peer would see the reset instead of
/// the reason.
pub fn refuse(conn: &ControlConn, r: Refusal) {
    let brief = Deadline::after(std::time::Duration::from_millis(200));
    let _ = recv(conn, &mut [], brief);
    let _ = send(conn, &Packet::new(Kind::Refuse, r.code()), &[], brief);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_garbage_is_refused() {
        let p = Packet::with_qos(Kind::Hello, &Qos::voice());
        assert_eq!(Packet::decode(&p.encode()).unwrap(), p);
        assert_eq!(Packet::segment(12345).segment_len(), Some(12345));
        assert!(matches!(Packet::decode(&[0u8; PACKET_LEN]), Err(HandshakeError::Protocol(_))));
        assert!(matches!(Packet::decode(&p.encode()[..20]), Err(HandshakeError::Protocol(_))));
        let mut v = p.encode();
        v[6] = 9;
        assert!(matches!(Packet::decode(&v), Err(HandshakeError::Version { found: 9 })));
        let mut k = p.encode();
        k[8] = 77;
        assert!(matches!(Packet::decode(&k), Err(HandshakeError::Protocol(_))));
        for code in 1..=6 {
            assert_eq!(Refusal::from_code(Refusal::from_code(code).code()), Refusal::from_code(code));
        }
    }
}
