//! A connected pair of flows inside one process (libdill's `ipc_pair`):
//! both ends at once, without a name or a listener — for threads of one
//! service, for tests, and for the engine, which holds one end of every
//! remote flow while the application holds the other.

use std::sync::Arc;

use crate::control::ControlConn;
use crate::flow::handshake::Established;
use crate::flow::{FlowMemory, Qos, Role};

use super::{FlowEnd, FlowOptions, StatsSetup};
use crate::flow::error::AllocError;

impl FlowEnd {
    /// Two connected ends of a new flow with `qos` (granted as asked: there
    /// is no listener to lower it).
    pub fn pair(qos: &Qos) -> Result<(FlowEnd, FlowEnd), AllocError> {
        FlowEnd::pair_with(qos, FlowOptions::new())
    }

    /// [`pair`](Self::pair) with options (spin, caller-supplied memory).
    pub fn pair_with(qos: &Qos, opts: FlowOptions) -> Result<(FlowEnd, FlowEnd), AllocError> {
        let qos = qos.validate().map_err(AllocError::InvalidQos)?;
        // Both ends live in this process: fence-free publishing needs only
        // this process's registration.
        let mode = crate::membarrier::preferred_wake_mode();
        let dir = opts.dir().ok();
        let memory = FlowMemory::create("pair", &qos, mode, opts.memory).map_err(AllocError::Memory)?;
        let io = |e: std::io::Error| {
            if crate::flow::error::is_resource_limit(&e) {
                AllocError::ResourceLimit(e)
            } else {
                AllocError::Io(e)
            }
        };
        // The pair's only descriptors: one control socket per end (the
        // memory's memfd closed once mapped).
        let (conn_a, conn_b) = ControlConn::pair().map_err(io)?;
        let a = Established { memory: Arc::clone(&memory), qos, from_other_host: false };
        let b = Established { memory, qos, from_other_host: false };
        let stats = StatsSetup { dir: dir.as_ref().map(|d| d.path()), latency: opts.latency, prefault: opts.prefault };
        let name = opts.name.as_deref().unwrap_or("(pair)");
        let a = FlowEnd::from_parts(conn_a, a, Role::Initiator, name, opts.spin, stats)?;
        let b = FlowEnd::from_parts(conn_b, b, Role::Acceptor, name, opts.spin, stats)?;
        Ok((a, b))
    }
}
