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
//! Everything read from the region is untrusted: a corrupt region yields
//! [`Corrupt`], never a panic or undefined behaviour.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod arm;
pub mod broadcast;
mod control;
mod error;
pub mod frame;
pub mod linger;
pub mod mpsc;
pub mod pool;
mod region;
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
