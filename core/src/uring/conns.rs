//! The connection table both transports keep (the io_uring [`TcpDriver`]
//! and the plain-socket `SocketDriver`): slots addressed by [`ConnId`],
//! reused once free, with a generation per slot so a stale id (of a closed
//! and reused slot) is refused, never taken for the new connection. Each
//! slot holds what every transport tracks of a connection (its socket,
//! whether it is open, who closed it, its peer) and the transport's own
//! I/O state `T`.
//!
//! [`TcpDriver`]: super::TcpDriver

use std::net::SocketAddr;
use std::ops::{Index, IndexMut};
use std::os::fd::OwnedFd;

use super::events::{shutdown, ConnId, TcpError};

/// One slot of the table.
pub(crate) struct Conn<T> {
    pub generation: u32,
    /// `None`: the slot is free.
    pub fd: Option<OwnedFd>,
    /// Not yet closed (by either side); a closed slot may still hold its
    /// socket while the kernel finishes with it.
    pub open: bool,
    /// We shut it down (`close`): its end is `CloseReason::Local`.
    pub closed_locally: bool,
    /// A datagram socket (receive only): an empty datagram or an
    /// ICMP-reported error is not the end of it.
    pub datagram: bool,
    /// The remote address of a stream.
    pub peer: Option<SocketAddr>,
    /// The transport's own state of the connection (queues, armed
    /// operations); reset by the transport before it releases the slot.
    pub io: T,
}

/// The slots, and the free ones.
pub(crate) struct ConnTable<T> {
    slots: Vec<Conn<T>>,
    free: Vec<u32>,
}

impl<T: Default> ConnTable<T> {
    pub fn new() -> Self {
        ConnTable { slots: Vec::new(), free: Vec::new() }
    }

    /// Puts `fd` in a free slot (or a new one) and returns its id. The
    /// slot's `io` is as the transport left it when it released the slot
    /// (or its default).
    pub fn insert(&mut self, fd: OwnedFd, peer: Option<SocketAddr>, datagram: bool) -> ConnId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Conn {
                    generation: 0,
                    fd: None,
                    open: false,
                    closed_locally: false,
                    datagram: false,
                    peer: None,
                    io: T::default(),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let conn = &mut self.slots[index as usize];
        conn.fd = Some(fd);
        conn.open = true;
        conn.closed_locally = false;
        conn.datagram = datagram;
        conn.peer = peer;
        ConnId { index, generation: conn.generation }
    }
}

impl<T> ConnTable<T> {
    /// The slot of a live `id`; a stale or unknown one is `UnknownConn`.
    pub fn lookup(&self, id: ConnId) -> Result<u32, TcpError> {
        match self.slots.get(id.index as usize) {
            Some(c) if c.generation == id.generation && c.fd.is_some() => Ok(id.index),
            _ => Err(TcpError::UnknownConn),
        }
    }

    /// Frees slot `index`: its socket is closed, its id goes stale, and the
    /// slot is reused by a later `insert`.
    pub fn release(&mut self, index: u32) {
        let conn = &mut self.slots[index as usize];
        conn.open = false;
        conn.fd = None;
        conn.generation = conn.generation.wrapping_add(1);
        self.free.push(index);
    }

    /// Shuts `id`'s socket down (its end is then reported as local).
    pub fn close(&mut self, id: ConnId) -> Result<(), TcpError> {
        let index = self.lookup(id)?;
        let conn = &mut self.slots[index as usize];
        conn.closed_locally = true;
        if let Some(fd) = &conn.fd {
            shutdown(fd);
        }
        Ok(())
    }

    /// The remote address of stream `id`.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.slots[self.lookup(id).ok()? as usize].peer
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Conn<T>> {
        self.slots.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Conn<T>> {
        self.slots.iter_mut()
    }
}

impl<T> Index<usize> for ConnTable<T> {
    type Output = Conn<T>;

    fn index(&self, index: usize) -> &Conn<T> {
        &self.slots[index]
    }
}

impl<T> IndexMut<usize> for ConnTable<T> {
    fn index_mut(&mut self, index: usize) -> &mut Conn<T> {
        &mut self.slots[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"))
    }

    #[test]
    fn released_slots_are_reused_and_their_old_ids_refused() {
        let mut t: ConnTable<u8> = ConnTable::new();
        let a = t.insert(fd(), None, false);
        let b = t.insert(fd(), None, true);
        assert_eq!((t.lookup(a), t.lookup(b)), (Ok(a.index), Ok(b.index)));
        assert!(t[b.index as usize].datagram);
        t[a.index as usize].io = 7;
        t.release(a.index);
        assert_eq!(t.lookup(a), Err(TcpError::UnknownConn), "a released id is stale");
        let c = t.insert(fd(), None, false);
        assert_eq!(c.index, a.index, "the free slot is reused");
        assert_ne!(c, a, "under a new generation");
        assert_eq!(t.lookup(a), Err(TcpError::UnknownConn), "the old id stays refused");
        assert_eq!(t.lookup(c), Ok(c.index));
        assert_eq!(t[c.index as usize].io, 7, "the transport resets its own state");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn close_marks_a_local_close_and_unknown_ids_are_refused() {
        let mut t: ConnTable<()> = ConnTable::new();
        let a = t.insert(fd(), None, false);
        t.close(a).expect("close");
        assert!(t[a.index as usize].closed_locally);
        assert_eq!(t.close(ConnId { index: 9, generation: 0 }), Err(TcpError::UnknownConn));
        assert_eq!(t.peer_addr(a), None);
    }
}
