//! The machinery of named flows on one host: QoS and its negotiation, the
//! flow's shared memory (rings per direction), the handshake on the control
//! socket, the watcher that notices a dead peer, and the flow end and
//! listener built from them. The public `Flow` and `Listener` types
//! (ringflow-api) are thin wrappers of [`end::FlowEnd`] and
//! [`listener::FlowListener`].

pub mod call;
pub mod end;
pub mod error;
pub mod handshake;
pub mod hostile;
pub mod listener;
pub mod memory;
pub mod qos;
pub mod readiness;
pub mod watch;

use std::fmt;

use ringflow_ring::AttachError;
use ringflow_shm::{BuildError, CreateError, LayoutError, OpenError, WriteHeaderError};

pub use call::{CallError, Phase, FLAG_PART, FLAG_TURN};
pub use memory::{
    FlowMemory, Fresh, Geometry, Holds, MemorySupply, Role, Sides, SidesMut, DESCRIPTOR_LEN, FLAG_BULK, FLAG_FDS,
};
pub use qos::{Qos, QosError, QosLimits};

/// Why a flow's shared memory could not be made or mapped.
#[derive(Debug)]
#[non_exhaustive]
pub enum FlowSetupError {
    /// Creating the memfd failed (or caller-supplied memory was unusable).
    Create(CreateError),
    /// The peer's memfd was refused (not sealed, wrong size...).
    Open(OpenError),
    /// The layout does not fit in a segment.
    Build(BuildError),
    /// The header could not be written (segment too small, not fresh).
    WriteHeader(WriteHeaderError),
    /// The peer's header is invalid.
    Layout(LayoutError),
    /// A ring refused the region.
    Ring(AttachError),
    /// The segment's regions do not match the granted QoS.
    Geometry,
}

impl fmt::Display for FlowSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowSetupError::Create(e) => write!(f, "cannot create the flow's segment: {e}"),
            FlowSetupError::Open(e) => write!(f, "peer's segment refused: {e}"),
            FlowSetupError::Build(e) => write!(f, "flow layout: {e}"),
            FlowSetupError::WriteHeader(e) => write!(f, "cannot lay the flow out in its memory: {e}"),
            FlowSetupError::Layout(e) => write!(f, "peer's segment header: {e}"),
            FlowSetupError::Ring(e) => write!(f, "flow ring: {e}"),
            FlowSetupError::Geometry => f.write_str("segment regions do not match the granted QoS"),
        }
    }
}

impl std::error::Error for FlowSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FlowSetupError::Create(e) => Some(e),
            FlowSetupError::Open(e) => Some(e),
            FlowSetupError::Build(e) => Some(e),
            FlowSetupError::WriteHeader(e) => Some(e),
            FlowSetupError::Layout(e) => Some(e),
            FlowSetupError::Ring(e) => Some(e),
            FlowSetupError::Geometry => None,
        }
    }
}

macro_rules! from_error {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for FlowSetupError {
            fn from(e: $t) -> Self {
                FlowSetupError::$v(e)
            }
        }
    )*};
}
from_error!(CreateError => Create, OpenError => Open, BuildError => Build, WriteHeaderError => WriteHeader,
    LayoutError => Layout, AttachError => Ring);
