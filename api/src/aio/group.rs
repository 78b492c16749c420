//! [`AsyncGroup`]: a group member whose receive is a future.

use std::io;
use std::os::fd::OwnedFd;

use ringflow_core::group::{Event, RecvError};
use tokio::io::unix::AsyncFd;

use super::{register, signalled};
use crate::Group;

/// A [`Group`] member for tokio: [`recv`](Self::recv) awaits the member's
/// readiness descriptor (Corosync's `cpg_fd_get`) instead of parking.
///
/// Multicasts go through [`get_mut`](Self::get_mut): `try_mcast`, or
/// `mcast` on groups whose slow members are lapped or evicted (it never
/// waits there); a `Block` group's `mcast` waits for the slowest member,
/// and the descriptor says nothing about room, so that wait has no async
/// form.
pub struct AsyncGroup {
    // The registration, over a duplicate of the descriptor it owns (see
    // `register`).
    fd: AsyncFd<OwnedFd>,
    group: Group,
}

impl AsyncGroup {
    /// Wraps `group`, registering its readiness descriptor with the current
    /// runtime's reactor (call it from a task, or within `Runtime::enter`:
    /// like tokio's own types, it panics elsewhere).
    /// This starts the member's watcher thread
    /// ([`Group::ready_fd`]), which is where an error comes from.
    pub fn new(group: Group) -> io::Result<AsyncGroup> {
        let fd = register(group.ready_fd()?)?;
        Ok(AsyncGroup { fd, group })
    }

    /// The member.
    pub fn get_ref(&self) -> &Group {
        &self.group
    }

    /// The member, for its multicasts and other methods.
    pub fn get_mut(&mut self) -> &mut Group {
        &mut self.group
    }

    /// The member back, its descriptor unregistered from the reactor.
    pub fn into_inner(self) -> Group {
        let AsyncGroup { fd, group } = self;
        drop(fd);
        group
    }

    /// The next event ([`Group::recv`]): a message (read in place until
    /// dropped), a view, or a loss.
    ///
    /// Cancel-safe: an event is taken only by the call that returns it; a
    /// future dropped while it waits leaves the next event for the next
    /// receive.
    pub async fn recv(&mut self) -> Result<Event<'_>, RecvError> {
        loop {
            {
                // A receive that finds nothing arms the descriptor and looks
                // again (the member's handshake with its watcher, in
                // ringflow-core's group/ready.rs): an event that came before
                // the arm is found, one that comes after signals it.
                let group: *mut Group = &mut self.group;
                // SAFETY: `group` points to our own field, borrowed mutably
                // through `self` for as long as the returned event lives.
                // The event is returned at once and the field is not
                // touched again; on the other path the result is an error
                // that borrows nothing, so the borrow ends here, before the
                // next look. (This is the conditional return of a borrow
                // that the borrow checker cannot yet accept in a loop,
                // rust-lang/rust#54663; Polonius accepts it.) The pointer
                // does not live across the await below.
                match unsafe { &mut *group }.try_recv() {
                    Err(RecvError::WouldBlock) => {}
                    done => return done,
                }
            }
            signalled(&self.fd).await.map_err(RecvError::Io)?;
        }
    }
}

impl std::fmt::Debug for AsyncGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncGroup").finish_non_exhaustive()
    }
}
