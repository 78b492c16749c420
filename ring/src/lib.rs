//! Lock-free rings over a raw byte region: the data path of ringflow.
//!
//! Three rings, each written once and generic over its memory ([`Region`]), so
//! the same code runs on the heap (unit tests, loom models) and in a shared
//! memory segment mapped by several processes:
//!
//! - [`spsc`]: single producer, single consumer, variable-length frames,
//!   zero-copy on both sides, batch commit and batch release.
//! - [`mpsc`]: many producers claim space with one atomic read-modify-write,
//!   one consumer; a claim abandoned by a dead producer can be skipped.
//! - [`broadcast`]: one or many producers, many consumers with a cursor each;
//!   reliable (back-pressure at the slowest consumer) or lossy (a lapped
//!   consumer learns exactly how many bytes it missed).
//!
//! This crate performs no I/O and no system call. Waking a sleeper is the
//! caller's job: operations that may need to wake someone return [`Notify`].
//!
//! # What a peer can and cannot do to you
//!
//! Everything read from the region is untrusted: another process maps it
//! writable and may be buggy, malicious or dead. The rings' own decisions
//! (where a frame starts, how long it is, when a loop ends, what is free)
//! come only from control words read atomically and validated before use:
//! a corrupt region yields [`Corrupt`] (or `Empty` / `Full`), never an
//! access outside the region, a panic, or a loop that does not end (a walk
//! over peer-written frames covers at most one lap of the ring per call; a
//! compare-and-swap retry on a shared tail gives up after a fixed number of
//! attempts with `Full`).
//!
//! Payload bytes are different. A payload read in place
//! ([`FrameRef::payload`], [`pool::ReadSlot::payload`],
//! [`broadcast::ReadGuard::payload`]) is a `&[u8]` over memory the peer can
//! still write, and a copy ([`FrameRef::copy_to`], `read_into`) reads such
//! memory too. An honest peer never writes a frame it has published until
//! it is released, so with honest peers the bytes are stable. A misbehaving
//! peer can change them while you read: in Rust's memory model a write from
//! another process under a live `&[u8]` is a data race, which no library
//! can rule out for memory it shares with a process it does not control.
//! What ringflow guarantees is that none of its own lengths, offsets or
//! loop bounds ever comes from payload bytes; what you get is bytes that a
//! misbehaving peer may change under you. So with a peer you do not trust:
//! read each byte once (parse once), copy out what you validate and act on
//! the copy, never on a second read of the shared bytes.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod arm;
pub mod broadcast;
mod control;
pub mod copy;
mod error;
pub mod frame;
pub mod guard;
#[cfg(all(test, not(loom)))]
mod hostile_tests;
pub mod linger;
pub mod mpsc;
pub mod pool;
pub mod ready;
mod region;
#[cfg(all(test, not(loom)))]
mod review_tests;
pub mod spsc;
mod sync;
pub mod wake;

pub use control::{WakeMode, MAX_CAPACITY, MIN_CAPACITY};
pub use error::{AttachError, ClaimError, CommitError, Corrupt, ReadError};
pub use frame::FrameRef;
#[cfg(not(loom))]
pub use region::RawRegion;
pub use region::{HeapRegion, Region};
pub use wake::{Notify, WaitPoint};

/// The size of one block of the control area. Two cache lines, so that the
/// adjacent-line prefetcher does not make neighbouring blocks share traffic.
pub const BLOCK: usize = 128;
