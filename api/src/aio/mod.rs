//! Async forms of every waiting operation, for tokio (feature `tokio`):
//! [`AsyncFlow`] (send with back-pressure, receive, loan, call and reply),
//! [`AsyncListener`] (accept), [`AsyncGroup`] (receive, multicast).
//!
//! They wait on the readiness descriptors, not on the futex words: a
//! runtime thread never parks in ringflow. Each operation tries the
//! nonblocking form first; when it would block, it *arms* the descriptor
//! (resets it and tells the peer, through a word of the flow's state area,
//! that the next publish or release of room must signal it), tries once
//! more, and only then awaits readability through tokio's `AsyncFd`. The
//! try after the arm is the handshake's re-check (`ringflow_ring::arm`): a
//! message (or room) that came before the arm is found by it, one that
//! comes after signals the descriptor. A death signals it whatever was
//! armed (the process's watcher), so a task awaiting a dead peer wakes.
//!
//! Cancel safety: what each future loses when dropped is written on it.
//! In short, receives consume nothing unless they return it, sends send
//! nothing unless they return `Ok`, a loan not yet returned claims nothing,
//! and `accept` loses no queued request. `alloc` and the second half of a
//! call are the exceptions, and say so.
//!
//! This module must never block a runtime thread on a futex or a peer,
//! and never hold a borrow of shared memory across an `.await` it does not
//! return.

mod call;
mod flow;
mod group;
mod listener;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

pub use flow::AsyncFlow;
pub use group::AsyncGroup;
pub use listener::AsyncListener;

/// Registers a duplicate of `fd` with the current runtime's reactor, for
/// readability. The duplicate is the registration's own, so it stays open
/// (and the same file description) as long as the registration, whatever
/// becomes of the flow, listener or member it came from: tokio's rule for
/// a registered descriptor holds without any promise from our users (who
/// get `&mut` access to the owner). It is one more descriptor per async
/// end, of the same description: a signal to it is a signal to both.
fn register(fd: BorrowedFd<'_>) -> io::Result<AsyncFd<OwnedFd>> {
    let own = fd.try_clone_to_owned()?;
    // SAFETY: `own` is an open descriptor the `AsyncFd` takes ownership
    // of; nothing else can close it, and `OwnedFd::as_raw_fd` always
    // returns that same descriptor.
    unsafe { AsyncFd::register_with_interest(own, Interest::READABLE) }.map_err(|e| e.into_parts().1)
}

/// Sleeps until the descriptor is signalled, then forgets the signal (so
/// the next sleep waits for a new one). The caller armed and re-checked
/// first. A signal tokio saw before this call (one that was drained since)
/// makes it return at once: a spurious wake, after which the caller tries,
/// arms and re-checks again. Dropping it loses nothing: it holds nothing
/// but tokio's own waiter.
async fn signalled(fd: &AsyncFd<OwnedFd>) -> io::Result<()> {
    let mut guard = fd.readable().await?;
    // Clears tokio's readiness only if no event came since `readable`
    // returned (tokio compares the event tick): a signal that raced this
    // line keeps the descriptor ready for the next sleep.
    guard.clear_ready();
    Ok(())
}
