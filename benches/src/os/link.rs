//! Whole N-byte messages over a kernel byte stream, for both sides of a
//! ping-pong. A stream may split a message across several reads or writes,
//! so each side loops until all N bytes have moved, waiting in its [`Wait`]
//! mode whenever the kernel has nothing for it.

use std::io::{self, ErrorKind};

use super::fd::Fd;
use super::{check_after_timeout, Wait};
use crate::error::BenchError;
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::wire;

/// One side's connection to the other: one system call per method.
pub(super) trait Link: Send {
    /// The system call behind [`Link::recv_some`], named in errors.
    const RECV_CALL: &'static str;
    /// The system call behind [`Link::send_some`], named in errors.
    const SEND_CALL: &'static str;

    /// Receives up to `buf.len()` bytes: how many, 0 at end of stream, or
    /// `WouldBlock` when nothing arrived (at once when spinning, within the
    /// timeout when blocking).
    fn recv_some(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Sends up to `buf.len()` bytes: how many, or `WouldBlock` when there
    /// is no room (at once when spinning, within the timeout when blocking).
    fn send_some(&mut self, buf: &[u8]) -> io::Result<usize>;
}

/// A connected socket: one descriptor both ways (`recv` / `send`).
pub(super) struct SocketLink(Fd);

impl SocketLink {
    /// Prepares `fd` for `wait`: O_NONBLOCK to spin, send and receive
    /// timeouts to block.
    pub(super) fn new(fd: Fd, wait: Wait) -> Result<Self, BenchError> {
        match wait {
            Wait::Spin => {
                fd.set_nonblocking().map_err(|source| BenchError::Os { call: "fcntl(O_NONBLOCK)", source })?
            }
            Wait::Block => fd
                .set_socket_timeouts(super::BLOCK_TIMEOUT)
                .map_err(|source| BenchError::Os { call: "setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)", source })?,
        }
        Ok(SocketLink(fd))
    }
}

impl Link for SocketLink {
    const RECV_CALL: &'static str = "recv";
    const SEND_CALL: &'static str = "send";

    #[inline]
    fn recv_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf)
    }

    #[inline]
    fn send_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(buf)
    }
}

/// One side of a ping-pong over `L`: ping and pong are both this, each with
/// its own link.
pub(super) struct Ends<L, const N: usize> {
    link: L,
    wait: Wait,
    /// The transport's name, for [`BenchError::Disconnected`].
    what: &'static str,
    /// Where a message is received; pong echoes it from here.
    buf: [u8; N],
}

impl<L: Link, const N: usize> Ends<L, N> {
    pub(super) fn new(link: L, wait: Wait, what: &'static str) -> Self {
        Ends { link, wait, what, buf: [0; N] }
    }
}

/// What to do after a system call that moved nothing: wait and retry
/// (`Ok`), or fail.
#[inline]
pub(super) fn on_error(
    e: io::Error,
    call: &'static str,
    what: &'static str,
    wait: Wait,
    w: &mut Waiter<'_>,
) -> Result<(), BenchError> {
    match e.kind() {
        // Spinning: nothing yet. Blocking: the timeout passed.
        ErrorKind::WouldBlock | ErrorKind::TimedOut => match wait {
            Wait::Spin => w.wait(),
            Wait::Block => check_after_timeout(w),
        },
        ErrorKind::Interrupted => Ok(()),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => Err(BenchError::Disconnected { what }),
        _ => Err(BenchError::Os { call, source: e }),
    }
}

/// Sends all of `msg`, however the kernel splits it.
#[inline]
pub(super) fn send_all<L: Link>(
    link: &mut L,
    wait: Wait,
    what: &'static str,
    msg: &[u8],
    w: &mut Waiter<'_>,
) -> Result<(), BenchError> {
    let mut sent = 0;
    while sent < msg.len() {
        match link.send_some(&msg[sent..]) {
            // A stream never accepts zero bytes of a non-empty write unless
            // it is broken.
            Ok(0) => return Err(BenchError::Disconnected { what }),
            Ok(n) => sent += n,
            Err(e) => on_error(e, L::SEND_CALL, what, wait, w)?,
        }
    }
    Ok(())
}

/// Fills all of `buf`, however the kernel splits it.
#[inline]
fn recv_exact<L: Link>(
    link: &mut L,
    wait: Wait,
    what: &'static str,
    buf: &mut [u8],
    w: &mut Waiter<'_>,
) -> Result<(), BenchError> {
    let mut got = 0;
    while got < buf.len() {
        match link.recv_some(&mut buf[got..]) {
            Ok(0) => return Err(BenchError::Disconnected { what }),
            Ok(n) => got += n,
            Err(e) => on_error(e, L::RECV_CALL, what, wait, w)?,
        }
    }
    Ok(())
}

impl<L: Link, const N: usize> PingSide<N> for Ends<L, N> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        send_all(&mut self.link, self.wait, self.what, msg, w)
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        recv_exact(&mut self.link, self.wait, self.what, &mut self.buf, w)?;
        Ok(wire::word(&self.buf, 0))
    }
}

impl<L: Link, const N: usize> PongSide<N> for Ends<L, N> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        recv_exact(&mut self.link, self.wait, self.what, &mut self.buf, w)?;
        if pingpong::is_stop(&self.buf) {
            return Ok(false);
        }
        send_all(&mut self.link, self.wait, self.what, &self.buf, w)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::measure::RunCtx;
    use crate::pair::run_pair;
    use crate::wire::{set_word, MARK_AT, STOP};

    /// A link that moves at most `chunk` bytes per call and reports
    /// `WouldBlock` on every other call, over in-memory queues.
    struct Choppy {
        chunk: usize,
        inbox: VecDeque<u8>,
        outbox: Vec<u8>,
        calls: usize,
    }

    impl Link for Choppy {
        const RECV_CALL: &'static str = "test-recv";
        const SEND_CALL: &'static str = "test-send";

        fn recv_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            if self.inbox.is_empty() {
                return Ok(0);
            }
            let n = buf.len().min(self.chunk).min(self.inbox.len());
            for b in &mut buf[..n] {
                *b = self.inbox.pop_front().expect("counted above");
            }
            Ok(n)
        }

        fn send_some(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.chunk);
            self.outbox.extend_from_slice(&buf[..n]);
            Ok(n)
        }
    }

    #[test]
    fn split_messages_are_reassembled_whole() {
        let msg: [u8; 64] = std::array::from_fn(|i| i as u8 + 1);
        let choppy = Choppy { chunk: 7, inbox: msg.iter().copied().collect(), outbox: Vec::new(), calls: 0 };
        let mut pong = Ends::<_, 64>::new(choppy, Wait::Spin, "choppy");
        let (echoed, ()) = run_pair(&RunCtx::for_tests(), |w| pong.echo(w), |_| Ok(())).expect("echo");
        assert!(echoed);
        assert_eq!(pong.link.outbox, msg);
        assert!(pong.link.inbox.is_empty());
    }

    #[test]
    fn the_stop_message_is_not_echoed() {
        let mut msg = [0u8; 64];
        set_word(&mut msg, MARK_AT, STOP);
        let choppy = Choppy { chunk: 64, inbox: msg.iter().copied().collect(), outbox: Vec::new(), calls: 0 };
        let mut pong = Ends::<_, 64>::new(choppy, Wait::Spin, "choppy");
        let (echoed, ()) = run_pair(&RunCtx::for_tests(), |w| pong.echo(w), |_| Ok(())).expect("echo");
        assert!(!echoed);
        assert!(pong.link.outbox.is_empty());
    }

    #[test]
    fn a_closed_peer_is_a_disconnect() {
        for wait in [Wait::Spin, Wait::Block] {
            let (a, b) = super::super::fd::unix_socketpair().expect("socketpair");
            drop(b);
            let mut ping = Ends::<_, 64>::new(SocketLink::new(a, wait).expect("link"), wait, "unix-socket");
            let r = run_pair(&RunCtx::for_tests(), |w| PingSide::<64>::recv(&mut ping, w), |_| Ok(()));
            assert!(matches!(r, Err(BenchError::Disconnected { what: "unix-socket" })), "{wait:?}: {r:?}");
        }
    }

    /// A blocked receiver whose peer is alive but silent notices, through its
    /// receive timeout, that the other side of the run failed (else this
    /// test would hang).
    #[test]
    fn a_blocked_side_stops_when_the_other_side_fails() {
        let (a, b) = super::super::fd::unix_socketpair().expect("socketpair");
        let mut pong = Ends::<_, 64>::new(SocketLink::new(a, Wait::Block).expect("link"), Wait::Block, "unix-socket");
        let r = run_pair(
            &RunCtx::for_tests(),
            |_| -> Result<(), BenchError> { Err(BenchError::Stalled) },
            |w| pong.echo(w),
        );
        assert!(matches!(r, Err(BenchError::Stalled)), "{r:?}");
        drop(b);
    }
}
