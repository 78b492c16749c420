//! ringflow-api: the public surface of ringflow.
//!
//! Today it exposes the foundation — rings, shared-memory segments and the
//! waiting primitives — under stable paths. Flows, listeners, groups and
//! calls are built here on top of them (they must never reach past this crate
//! into ring internals that are not re-exported below).

pub use ringflow_core::{Deadline, PeerWatch, WaitOutcome};
/// Lock-free rings over a byte region (SPSC, MPSC, broadcast).
pub use ringflow_ring as ring;
/// Shared-memory segments and validated layouts.
pub use ringflow_shm as shm;
