//! ringflow-api: the public surface of ringflow.
//!
//! - [`Listener`] / [`Flow`]: named flows between processes of one host
//!   (Ouroboros flows, libdill IPC): allocate by name with a [`Qos`], send
//!   and receive, zero-copy loans and in-place receives, passed
//!   descriptors, lingering dealloc; request/reply that turns a flow
//!   around ([`Flow::call`], [`Flow::reply_and_receive`]: Fluke's reliable
//!   IPC, with errors that name the [`Phase`] a call broke in).
//! - [`Group`]: process groups on one host (join, multicast, one stream of
//!   events, a readiness descriptor).
//! - [`FlowSet`]: wait on many flows and group members at once.
//! - With feature `tokio`: `AsyncFlow`, `AsyncListener` and `AsyncGroup`,
//!   async forms of every waiting operation, woken through the readiness
//!   descriptors (a runtime thread never parks in ringflow), each future
//!   cancel-safe or saying exactly what dropping it loses.
//!
//! Every operation that can wait, control operations included (alloc,
//! accept, dealloc, a set's wait), has four forms over one implementation
//! (crossbeam-channel's convention): `op` blocks, `try_op` never waits
//! (`WouldBlock`), `op_deadline` takes a [`Deadline`], `op_timeout` a
//! [`Duration`](std::time::Duration) (`TimedOut` after either).
//! - The foundation (rings, segments, waiting primitives) under stable paths.
//!
//! ```
//! # extern crate ringflow_api as ringflow; // (the `ringflow` package re-exports this crate)
//! # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
//! use ringflow::{Flow, Qos};
//!
//! // Both ends of a flow in one process (libdill's `ipc_pair`); across
//! // processes, one side binds a `Listener` and the other `Flow::alloc`s.
//! let (mut a, mut b) = Flow::pair(&Qos::data())?;
//! let mut loan = a.loan(5)?; // zero copy: write in place, then send
//! loan.copy_from_slice(b"hello");
//! loan.send()?;
//! assert_eq!(&*b.recv_ref()?, b"hello"); // read in place
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate must never reach into ring internals that are not re-exported
//! below, and never trust a byte of shared memory or of a peer's socket.

#![deny(missing_docs)]

#[cfg(feature = "tokio")]
mod aio;
mod batch;
mod call;
mod flow;
mod group;
mod listener;
mod poller;
pub mod remote;
mod set;
pub mod stats;

#[cfg(feature = "tokio")]
pub use aio::{AsyncFlow, AsyncGroup, AsyncListener};
pub use flow::Flow;
pub use group::{flow_join, Group};
pub use listener::{Listener, ListenerOptions};
/// The engine's configuration (`ringflow.toml`, `RINGFLOW_*`, builder).
pub use ringflow_core::config;
pub use ringflow_core::config::{ConfigError, EngineConfig};
pub use ringflow_core::control::Permit;
pub use ringflow_core::control::{DirError, NameError, SendError as ControlSendError};
pub use ringflow_core::doctor;
pub use ringflow_core::engine::EngineError;
pub use ringflow_core::flow::end::{FlowOptions, FlowStats, RecvBuf, SendBuf, DEFAULT_SPIN, REQUEST_REPLY_WINDOW};
pub use ringflow_core::flow::error::{
    AcceptError, AllocError, BindError, Corruption, DeallocError, RecvError, SendError,
};
pub use ringflow_core::flow::handshake::Refusal;
pub use ringflow_core::flow::{CallError, FlowSetupError, MemorySupply, Phase, Qos, QosError, QosLimits};
pub use ringflow_core::group::{
    Change, ChangeKind, Event, GroupLoan, GroupOptions, GroupStats, Guarantee, JoinError, LeaveError, McastError,
    Member, Message, RecvError as GroupRecvError, SlowMember, View,
};
pub use ringflow_core::{Deadline, PeerWatch, WaitOutcome};
/// Lock-free rings over a byte region (SPSC, MPSC, broadcast).
pub use ringflow_ring as ring;
/// Shared-memory segments and validated layouts.
pub use ringflow_shm as shm;
pub use set::{FlowSet, Interest, Ready, SetError};
