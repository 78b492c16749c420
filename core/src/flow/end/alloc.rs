//! Making a flow end: allocating one to a name (here or, through an
//! engine, on another host), and assembling one from an established
//! handshake.

use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::control::{ConnectError, ControlConn};
use crate::flow::handshake::{self, Established, HandshakeError, Refusal};
use crate::flow::watch;
use crate::flow::{FlowSetupError, Geometry, Qos, Role};
use crate::stats::{Slot, SlotKind};
use crate::Deadline;
use ringflow_shm::Segment;

use super::shared::FlowShared;
use super::{FlowEnd, FlowOptions, Wakers, DEFAULT_SPIN};
use crate::flow::error::{is_resource_limit, AllocError, Corruption};

impl FlowEnd {
    /// Allocates a flow to the listener bound to `name`, asking for `qos`;
    /// waits until the listener accepts or `deadline` passes. The granted
    /// QoS (sizes may be lowered) is [`qos`](Self::qos). A name of the form
    /// `name@host:port` reaches a listener on another host through the
    /// process's embedded engine (see [`crate::remote`]); so does a plain
    /// name no listener of this host has bound, when the engine
    /// configuration's `net.peers` knows where it lives.
    pub fn alloc(name: &str, qos: &Qos, deadline: Deadline) -> Result<FlowEnd, AllocError> {
        FlowEnd::alloc_with(name, qos, deadline, FlowOptions::new())
    }

    /// [`alloc`](Self::alloc) with options (spin, runtime directory,
    /// caller-supplied memory).
    pub fn alloc_with(name: &str, qos: &Qos, deadline: Deadline, opts: FlowOptions) -> Result<FlowEnd, AllocError> {
        let qos = qos.validate().map_err(AllocError::InvalidQos)?;
        if crate::remote::is_remote(name) {
            return crate::remote::alloc_embedded(name, &qos, deadline, opts);
        }
        let mut opts = opts;
        match FlowEnd::alloc_local(name, &qos, deadline, &mut opts) {
            // A flow from another host is for this host's listeners only:
            // the engine never relays a stranger's open to its peers.
            Err(AllocError::NotFound { .. }) if !opts.from_other_host => {
                crate::remote::alloc_through_peers(name, &qos, deadline, opts)
            }
            done => done,
        }
    }

    /// A flow to the listener bound to `name` on this host, never looked
    /// for elsewhere. `opts` keeps its memory unless a listener was found.
    pub(crate) fn alloc_local(
        name: &str,
        qos: &Qos,
        deadline: Deadline,
        opts: &mut FlowOptions,
    ) -> Result<FlowEnd, AllocError> {
        let qos = qos.validate().map_err(AllocError::InvalidQos)?;
        crate::control::validate_name(name).map_err(AllocError::InvalidName)?;
        let dir = opts.dir().map_err(AllocError::RuntimeDir)?;
        let conn = ControlConn::connect_deadline(&dir, name, deadline).map_err(|e| match e {
            ConnectError::Name(n) => AllocError::InvalidName(n),
            ConnectError::NotFound { name, dir } => AllocError::NotFound { name, dir: Some(dir) },
            ConnectError::PermissionDenied { .. } => AllocError::PermissionDenied,
            ConnectError::PathTooLong(p) => AllocError::PathTooLong { path: p.path, len: p.len, max: p.max },
            ConnectError::TimedOut if deadline == Deadline::Now => AllocError::WouldBlock,
            ConnectError::TimedOut => AllocError::TimedOut,
            ConnectError::Io { source, .. } if is_resource_limit(&source) => AllocError::ResourceLimit(source),
            ConnectError::Io { source, .. } => AllocError::Io(source),
        })?;
        let origin = if opts.from_other_host { handshake::Origin::OtherHost } else { handshake::Origin::ThisHost };
        let est =
            handshake::initiate(&conn, name, &qos, opts.memory.take(), origin, deadline).map_err(|e| match e {
                HandshakeError::TimedOut if deadline == Deadline::Now => AllocError::WouldBlock,
                e => alloc_error(e),
            })?;
        let stats = StatsSetup { dir: Some(dir.path()), latency: opts.latency, prefault: opts.prefault };
        Ok(FlowEnd::from_parts(conn, est, Role::Initiator, name, opts.spin, stats)?)
    }

    /// Segment bytes a flow granted `qos` needs (for caller-supplied memory).
    pub fn segment_len_for(qos: &Qos) -> Result<usize, AllocError> {
        let qos = qos.validate().map_err(AllocError::InvalidQos)?;
        Geometry::for_qos(&qos).segment_len().map_err(AllocError::Memory)
    }

    /// A fresh segment for a flow granted at most `qos` (what
    /// [`FlowOptions::memory`] takes).
    pub(crate) fn segment_for(qos: &Qos) -> Result<Segment, AllocError> {
        let len = FlowEnd::segment_len_for(qos)?;
        Segment::create(&ringflow_shm::SegmentOptions::new("ringflow:remote", len))
            .map_err(|e| AllocError::Memory(crate::flow::FlowSetupError::Create(e)))
    }

    /// Builds a flow over memory both sides have mapped.
    pub(crate) fn from_parts(
        conn: ControlConn,
        est: Established,
        role: Role,
        name: &str,
        spin: Option<Duration>,
        stats: StatsSetup<'_>,
    ) -> Result<FlowEnd, FromPartsError> {
        let Established { memory, qos, from_other_host } = est;
        let sides = memory.sides(role)?;
        let wakers = {
            let (tx, _) = sides.tx();
            let (rx, rx_bulk) = sides.rx();
            Wakers {
                peer_data: tx.data_wait().futex_word() as usize,
                peer_space: [rx.space_wait().futex_word() as usize, rx_bulk.space_wait().futex_word() as usize],
                space_armed: memory.rx_space_armed(role) as *const _ as usize,
                data_armed: memory.tx_armed(role) as *const _ as usize,
                consumed: memory.rx_consumed(role) as *const _ as usize,
                peer_event: conn.as_raw_fd(),
            }
        };
        let geometry = memory.geometry();
        if stats.prefault.unwrap_or_else(crate::flow::memory::prefault_default) {
            // Best effort: without it the pages fault in as they are touched.
            let _ = memory.prefault();
        }
        let shared = Arc::new(FlowShared::new(memory, role)?);
        let hook: Arc<dyn watch::HangUp> = shared.clone();
        let watch = watch::watch(conn.as_raw_fd(), Arc::downgrade(&hook))?;
        let peer = conn.peer_cred().ok();
        let info = match role {
            Role::Initiator => 1,
            Role::Acceptor => 2,
        };
        let peer_pid = peer.map_or(0, |c| u64::from(c.pid));
        let slot = match stats.dir {
            Some(dir) => Slot::open(dir, SlotKind::Flow, name, info, peer_pid),
            None => Slot::on_heap(),
        };
        let latency = stats.latency.unwrap_or_else(crate::stats::latency_default);
        if latency {
            // Calibrate the clock now, not on the first receive.
            crate::clock::init();
        }
        Ok(FlowEnd {
            sides: ManuallyDrop::new(sides),
            wakers,
            shared,
            geometry,
            qos,
            spin: spin.unwrap_or(DEFAULT_SPIN),
            slot,
            latency,
            pending: None,
            name: name.to_owned(),
            peer,
            _watch: watch,
            conn,
            invoker: None,
            abandoned: false,
            // An accepted flow an engine brings from another host (an
            // initiated one is marked by whoever bridges it).
            crosses_hosts: from_other_host,
            preamble: super::Preamble::default(),
            turn: super::turn::Turn::new(role == Role::Initiator),
        })
    }
}

/// Where a new flow's statistics go: the stats file of a runtime
/// directory (or the heap), and whether it records latencies; and whether
/// its rings are prefaulted (`None`: the process defaults).
#[derive(Clone, Copy, Default)]
pub(crate) struct StatsSetup<'a> {
    pub dir: Option<&'a Path>,
    pub latency: Option<bool>,
    pub prefault: Option<bool>,
}

/// Why an accepted or allocated flow could not be assembled.
#[derive(Debug)]
pub(crate) enum FromPartsError {
    Ring(ringflow_ring::AttachError),
    Watch(std::io::Error),
}

impl From<ringflow_ring::AttachError> for FromPartsError {
    fn from(e: ringflow_ring::AttachError) -> Self {
        FromPartsError::Ring(e)
    }
}

impl From<FromPartsError> for AllocError {
    fn from(e: FromPartsError) -> Self {
        match e {
            FromPartsError::Ring(r) => AllocError::Memory(FlowSetupError::Ring(r)),
            FromPartsError::Watch(e) => AllocError::Io(e),
        }
    }
}

impl From<std::io::Error> for FromPartsError {
    fn from(e: std::io::Error) -> Self {
        FromPartsError::Watch(e)
    }
}

fn alloc_error(e: HandshakeError) -> AllocError {
    match e {
        HandshakeError::Refused(Refusal::PermissionDenied) => AllocError::PermissionDenied,
        HandshakeError::Refused(r) => AllocError::Refused(r),
        HandshakeError::Version { found } => {
            AllocError::CorruptPeer(Corruption::Protocol(format!("listener speaks control protocol version {found}")))
        }
        HandshakeError::Protocol(what) => AllocError::CorruptPeer(Corruption::Protocol(what.to_owned())),
        HandshakeError::BadGrant => {
            AllocError::CorruptPeer(Corruption::Protocol("granted a QoS that was not asked for".into()))
        }
        HandshakeError::Qos(q) => AllocError::InvalidQos(q),
        HandshakeError::TimedOut => AllocError::TimedOut,
        HandshakeError::PeerGone => AllocError::PeerGone,
        HandshakeError::Memory(m) | HandshakeError::OwnMemory(m) => AllocError::Memory(m),
        HandshakeError::Io(e) if is_resource_limit(&e) => AllocError::ResourceLimit(e),
        HandshakeError::Io(e) => AllocError::Io(e),
        HandshakeError::Send(e) => AllocError::ControlSend(e),
    }
}
