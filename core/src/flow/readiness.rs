//! Readiness: how a flow end that waits outside a blocking call (a set of
//! flows, an event loop, tokio) learns that the flow may have something
//! for it — Corosync's `cpg_fd_get` idea — without a descriptor of its own.
//!
//! The signal travels on the flow's control socket, which each end holds
//! anyway (it set the flow up, carries passed descriptors, and its hang-up
//! tells the process's watcher that the peer died). A reader that found
//! nothing *arms* its direction (a word in the flow's state area); a
//! sender that publishes while the direction is armed disarms it and sends
//! one 1-byte datagram on its end of the control socket — one send per
//! arming, nothing when unarmed. So the end's control socket becomes
//! readable when the peer published to an armed reader, released room to
//! an armed writer, or hung up (exited, crashed, was killed: the kernel
//! makes a hung-up socket readable for good, whatever any shared word
//! says). Sends use `MSG_DONTWAIT`, so a peer that never reads its queue
//! can never block the sender's data path.
//!
//! The control socket also carries the data phase's descriptor packets
//! (`handshake::Kind::Fds`, [`PACKET_LEN`] bytes each), queued before the
//! frame they belong to is committed. [`drain`] takes signal datagrams
//! only and leaves a packet in place for the receive that reads its frame.
//!
//! An application's event loop (`AsRawFd`) gets a descriptor that must
//! also *start* readable and be re-signalled by this side alone (a message
//! that raced the re-arm), which a socket's own end cannot do: for it,
//! and only when asked, [`Polled`] adds an epoll instance over the control
//! socket and a local eventfd (two descriptors, never handed to the peer).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::handshake::PACKET_LEN;

/// A new datagram socket pair: (an end to poll and drain, an end to
/// signal). For a wake-up channel inside one process (the engine's poke);
/// flows signal on their control socket instead.
pub fn new_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`; checked below.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes the peer's end of the connected socket `fd` readable: one 1-byte
/// datagram. Never blocks; a full queue is readable anyway, and a
/// descriptor that is not a socket is ignored.
pub fn signal(fd: RawFd) {
    let one = [1u8];
    // SAFETY: sends one byte from a local buffer; MSG_DONTWAIT never blocks.
    let _ = unsafe { libc::send(fd, one.as_ptr().cast(), 1, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
}

/// Most datagrams one [`drain`] takes. The queue holds one per arming
/// (data, room) from an honest peer, but a peer can send datagrams as fast
/// as we take them: past this many the socket is left readable (a spurious
/// wake for the application, whose next empty receive drains again), never
/// a receive held in the loop.
pub const MAX_DRAIN: usize = 1024;

/// Takes the signal datagrams at the head of the control socket `fd`'s
/// queue (at most [`MAX_DRAIN`]), and stops at a control packet, which
/// stays queued for the receive of its frame. A datagram of any other size
/// is a peer's garbage: taken and dropped (with any descriptor it carried,
/// which the kernel closes). Returns whether a control packet waits.
pub fn drain(fd: RawFd) -> bool {
    drain_with(|| {
        let mut probe = [0u8; 1];
        // SAFETY: peeks into a local buffer; MSG_DONTWAIT never blocks;
        // MSG_TRUNC makes it return the datagram's real length.
        let n = unsafe {
            libc::recv(fd, probe.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT)
        };
        if n <= 0 {
            // Empty (EAGAIN), hung up (0) or failing: nothing to take.
            return Head::Empty;
        }
        if n as usize == PACKET_LEN {
            return Head::Packet;
        }
        // SAFETY: as above, without the peek: takes the datagram (its
        // bytes past the first are dropped, and so are any descriptors).
        unsafe { libc::recv(fd, probe.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) };
        Head::Taken
    })
}

/// What the head of a control socket's queue held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    Empty,
    Packet,
    Taken,
}

/// [`drain`]'s loop over `take` (one look at the queue's head per call),
/// bounded.
fn drain_with(mut take: impl FnMut() -> Head) -> bool {
    for _ in 0..MAX_DRAIN {
        match take() {
            Head::Taken => {}
            Head::Packet => return true,
            Head::Empty => return false,
        }
    }
    false
}

/// The descriptor an event loop polls for one flow end
/// (`AsRawFd for FlowEnd`): an epoll instance watching the flow's control
/// socket (the peer's signals and its hang-up) and a local eventfd (this
/// side's own signals). Made on the first `as_raw_fd`, kept until the flow
/// ends. The eventfd is never handed to the peer: no one else can read it,
/// fill it or clear its `O_NONBLOCK`.
pub struct Polled {
    epoll: OwnedFd,
    own: OwnedFd,
}

impl Polled {
    /// An epoll instance over `conn` (a flow's control socket, which must
    /// outlive it: the kernel drops the registration when `conn` closes)
    /// and a new eventfd.
    pub fn new(conn: RawFd) -> io::Result<Polled> {
        // SAFETY: plain system call; the result is checked.
        let e = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if e < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(e) };
        // SAFETY: plain system call; the result is checked.
        let k = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if k < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let own = unsafe { OwnedFd::from_raw_fd(k) };
        for fd in [conn, own.as_raw_fd()] {
            // Level-triggered inside: the epoll instance polls readable
            // exactly while one of the two is.
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: fd as u64 };
            // SAFETY: `ev` is valid for the call; both descriptors are open.
            if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Polled { epoll, own })
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Makes the descriptor readable (this side's own signal).
    pub fn signal(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a local buffer to our nonblocking
        // eventfd; only we write it, one at a time, so it cannot overflow.
        let _ = unsafe { libc::write(self.own.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// Resets this side's own signal (the control socket is drained by
    /// [`drain`]).
    pub fn reset(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads 8 bytes into a local buffer; nonblocking.
        let _ = unsafe { libc::read(self.own.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that refills the queue as fast as it is drained (here: a
    /// queue that never runs dry) held a receive in `drain` forever.
    #[test]
    fn a_queue_that_never_runs_dry_is_drained_a_bounded_number_of_times() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut calls = 0usize;
            let packet = drain_with(|| {
                calls += 1;
                Head::Taken
            });
            let _ = done.send((calls, packet));
        });
        // A hang guard, not a timing assertion.
        let got = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("drain never returned");
        assert_eq!(got, (MAX_DRAIN, false));
    }

    fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two descriptors into `fds`.
        let r =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        assert_eq!(r, 0);
        // SAFETY: two fresh descriptors we own.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; timeout 0.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    /// Signals are drained; a control packet queued among them stops the
    /// drain and stays, whole, for the receive of its frame; garbage of
    /// another size is dropped.
    #[test]
    fn signals_are_drained_and_a_control_packet_stays() {
        let (ours, theirs) = seqpacket_pair();
        let send = |bytes: &[u8]| {
            // SAFETY: sends from a local buffer.
            let n = unsafe { libc::send(theirs.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
            assert_eq!(n as usize, bytes.len());
        };
        for _ in 0..3 {
            signal(theirs.as_raw_fd());
        }
        send(&[7u8; 5]);
        send(&[9u8; PACKET_LEN]);
        signal(theirs.as_raw_fd());
        assert!(drain(ours.as_raw_fd()), "a packet waits");
        let mut buf = [0u8; PACKET_LEN + 1];
        // SAFETY: receives into a local buffer.
        let n = unsafe { libc::recv(ours.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        assert_eq!(n as usize, PACKET_LEN);
        assert_eq!(buf[..PACKET_LEN], [9u8; PACKET_LEN]);
        assert!(readable(ours.as_raw_fd()), "the signal after the packet");
        assert!(!drain(ours.as_raw_fd()));
        assert!(!readable(ours.as_raw_fd()), "drained to empty");
        drop(theirs);
        assert!(readable(ours.as_raw_fd()), "a hang-up is readable");
        assert!(!drain(ours.as_raw_fd()));
        assert!(readable(ours.as_raw_fd()), "and stays readable");
    }

    /// The polled descriptor is readable while the control socket or the
    /// local eventfd is, and not once both are reset.
    #[test]
    fn the_polled_descriptor_follows_both_sources() {
        let (ours, theirs) = seqpacket_pair();
        let polled = Polled::new(ours.as_raw_fd()).unwrap();
        assert!(!readable(polled.fd()));
        polled.signal();
        assert!(readable(polled.fd()));
        polled.reset();
        assert!(!readable(polled.fd()));
        signal(theirs.as_raw_fd());
        assert!(readable(polled.fd()));
        drain(ours.as_raw_fd());
        assert!(!readable(polled.fd()));
        drop(theirs);
        assert!(readable(polled.fd()), "the peer's hang-up");
    }
}
