//! ringflow-core: the layer that makes system calls on behalf of the rings.
//!
//! Futex wait/wake across processes and the parking wait blocking
//! operations build on; the control sockets and setup of named flows; and
//! the engine's parts — configuration, threads and duty cycle, the io_uring
//! driver, the wire protocol codec; the flow end ([`flow::end::FlowEnd`])
//! that implements every flow operation once, for ringflow-api's public
//! `Flow` and for the engine alike; and the engine agent that bridges flows
//! between hosts ([`remote`]). It never interprets a ring's shared memory
//! itself: the rings do, and hand it futex words.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod clock;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod cluster_port;
pub mod config;
pub mod control;
pub mod doctor;
pub mod engine;
pub mod flow;
pub mod futex;
pub mod group;
pub mod json;
mod log;
pub mod membarrier;
pub mod net;
pub mod peer;
pub mod remote;
pub mod stats;
pub mod uring;
pub mod wait;
pub mod wire;
#[cfg(feature = "cluster")]
pub mod xgroup;

pub use peer::PeerWatch;
pub use wait::{membarrier_if_needed, notify, wait_until, wait_until_with, Deadline, WaitOutcome};
