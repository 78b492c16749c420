//! ringflow-core: the layer that makes system calls on behalf of the rings.
//!
//! This part: futex wait/wake across processes and the parking wait
//! that blocking operations build on. (The engine, its threads, io_uring and
//! config come with later work.) It never interprets shared memory itself:
//! the rings do, and hand it futex words.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod control;
pub mod flow;
pub mod futex;
pub mod membarrier;
pub mod peer;
pub mod wait;
pub mod wire;

pub use peer::PeerWatch;
pub use wait::{notify, wait_until, Deadline, WaitOutcome};
