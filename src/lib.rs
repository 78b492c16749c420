//! ringflow: a lock-free shared-memory and io_uring message transport for
//! latency-sensitive services. Processes on one host find each other by
//! name and exchange messages through rings in shared memory, with no
//! system call and no copy on the data path; an engine carries the same
//! flows to other hosts.
//!
//! Where to start:
//!
//! - [`Listener::bind`] a name and [`Listener::accept`] flows to it;
//!   [`Flow::alloc`] a flow to a name with a [`Qos`]; then
//!   [`send`](Flow::send) / [`recv_into`](Flow::recv_into), or zero copy
//!   with [`loan`](Flow::loan) / [`recv_ref`](Flow::recv_ref).
//! - [`Flow::call`] and [`Flow::reply_and_receive`]: request/reply.
//! - [`FlowSet`]: one thread waiting on many flows and group members.
//! - [`Group::join`]: process groups (multicast, membership views).
//! - [`remote`]: flows to other hosts (`name@host:port`), through an engine.
//!
//! Every operation that can wait has four forms: `op` blocks, `try_op`
//! never waits (`WouldBlock`), `op_deadline` takes a [`Deadline`] and
//! `op_timeout` a [`Duration`](std::time::Duration). Errors are one enum
//! per operation ([`AllocError`], [`SendError`], [`RecvError`], ...).
//!
//! A listener and a client (threads here; the repository's `examples/` has
//! the same across processes):
//!
//! ```
//! # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
//! use std::time::Duration;
//! use ringflow::{Flow, Listener, Qos};
//!
//! let mut listener = Listener::bind("doc-greeter")?;
//! let client = std::thread::spawn(|| -> Result<(), ringflow::SendError> {
//!     let mut flow = Flow::alloc_timeout("doc-greeter", &Qos::data(), Duration::from_secs(5)).expect("listening");
//!     flow.send(b"hello")?;
//!     flow.dealloc().expect("the listener reads it");
//!     Ok(())
//! });
//! let mut flow = listener.accept_timeout(Duration::from_secs(5))?;
//! let msg = flow.recv_ref()?; // read in place, in shared memory
//! assert_eq!(&*msg, b"hello");
//! drop(msg);
//! client.join().expect("client thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This package is the transport alone; the `ringflow` command
//! (benchmarks, engine, doctor, stat) is the package `ringflow-cli`
//! (`cli/`).

#![deny(missing_docs)]

pub use ringflow_api::*;

// The README's example is compiled and run as a doctest, so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// So is the sharing guide's.
#[doc = include_str!("../docs/sharing-and-containers.md")]
#[cfg(doctest)]
pub struct SharingDoctests;
