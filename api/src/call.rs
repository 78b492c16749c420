//! Request/reply on a [`Flow`] (Fluke's reliable IPC): a call sends its
//! request and hands the flow's turn over in one step, then waits for the
//! reply; a server replies, hands the turn back and waits for the next
//! request. The turn rides on the message's own frame: a call costs what a
//! send and a receive cost, and one wake per direction when the peer sleeps.
//!
//! Who holds the turn first: the end that allocated the flow (the client);
//! the accepting end starts with [`Flow::receive_request`]. Calling out of
//! turn is [`CallError::NotYourTurn`]. Plain messages keep flowing both
//! ways whatever the turn, and never mix with a call's: a plain receive
//! that meets a request or reply is [`RecvError::CallMessage`](crate::RecvError::CallMessage), a call
//! that meets a plain message is [`CallError::PlainMessage`]; the message
//! stays in the flow for the receive that fits it.
//!
//! Errors say in which [`Phase`] the call broke (see there for where each
//! begins and ends); the partial and bounded outcomes resume: see
//! [`CallError`]. A request or a reply may be sent in pieces
//! ([`Flow::send_part`]) before the call or reply that ends it.
//!
//! Every operation that can wait comes in four forms, like the rest of a
//! flow's: `x` blocks, `try_x` never waits (`WouldBlock { phase, .. }`,
//! with how far it got), `x_deadline(.., Deadline)` and
//! `x_timeout(.., Duration)` (`TimedOut { phase, .. }`). One deadline
//! covers every phase of the operation. Calls need a reliable flow
//! ([`CallError::Unsupported`] on a lossy one); between hosts they ride the
//! engines like any message, the turn flag with each frame (descriptors
//! cannot leave their host: [`CallError::TooManyFds`]).
//!
//! ```
//! # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
//! use ringflow_api::{Flow, Qos};
//!
//! let (mut client, mut server) = Flow::pair(&Qos::data()).unwrap();
//! let service = std::thread::spawn(move || {
//!     let mut buf = [0u8; 64];
//!     // The server loop: each request is answered by the next reply.
//!     let mut len = server.receive_request(&mut buf).unwrap();
//!     loop {
//!         let reply = buf[..len].to_ascii_uppercase();
//!         match server.reply_and_receive(&reply, &mut buf) {
//!             Ok(n) => len = n,
//!             // The client left after the last reply.
//!             Err(_) => break,
//!         }
//!     }
//! });
//! let mut reply = [0u8; 64];
//! let n = client.call(b"ping", &mut reply).unwrap();
//! assert_eq!(&reply[..n], b"PING");
//! let n = client.call(b"again", &mut reply).unwrap();
//! assert_eq!(&reply[..n], b"AGAIN");
//! drop(client);
//! service.join().unwrap();
//! ```

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use ringflow_core::flow::end::{RecvBuf, SendBuf};
use ringflow_core::flow::CallError;
use ringflow_core::Deadline;

use crate::Flow;

/// The four forms of one operation, forwarding to the flow end's
/// `_deadline` form: `$name` (blocks), `$try` (`Deadline::Now`), `$dl`, `$to`.
macro_rules! four_forms {
    ($(
        $(#[$doc:meta])*
        fn $name:ident, $try:ident, $dl:ident, $to:ident ($($arg:ident: $ty:ty),*) -> $ret:ty;
    )*) => {$(
        $(#[$doc])*
        #[inline]
        pub fn $name(&mut self, $($arg: $ty),*) -> $ret {
            self.end.$dl($($arg,)* Deadline::Never)
        }

        #[doc = concat!("[`", stringify!($name), "`](Self::", stringify!($name), ") without waiting: ")]
        #[doc = "`CallError::WouldBlock { phase, .. }` where it would wait, with how far it got."]
        #[inline]
        pub fn $try(&mut self, $($arg: $ty),*) -> $ret {
            self.end.$dl($($arg,)* Deadline::Now)
        }

        #[doc = concat!("[`", stringify!($name), "`](Self::", stringify!($name), "), waiting until `deadline` ")]
        #[doc = "at most (`CallError::TimedOut { phase, .. }` after it): one deadline for every phase."]
        #[inline]
        pub fn $dl(&mut self, $($arg: $ty,)* deadline: Deadline) -> $ret {
            self.end.$dl($($arg,)* deadline)
        }

        #[doc = concat!("[`", stringify!($name), "`](Self::", stringify!($name), "), waiting at most `timeout` ")]
        #[doc = "(`CallError::TimedOut { phase, .. }` after it): one timeout for every phase."]
        #[inline]
        pub fn $to(&mut self, $($arg: $ty,)* timeout: Duration) -> $ret {
            self.end.$dl($($arg,)* Deadline::after(timeout))
        }
    )*};
}

impl Flow {
    /// Whether this end holds the flow's turn: it may call (or reply). The
    /// allocating end holds it first; the accepting end gets it with each
    /// request it receives and gives it back with each reply.
    #[inline]
    pub fn holds_turn(&self) -> bool {
        self.end.holds_turn()
    }

    four_forms! {
        /// Sends `request` and hands the turn over in one step (a flag on
        /// the request's own frame), then waits for the reply into `reply`;
        /// returns the reply's length (Fluke's `send_over_receive`). A reply
        /// larger than `reply` is [`CallError::RecvMoreData`]: `reply` is
        /// full and [`receive_more`](Self::receive_more) goes on.
        fn call, try_call, call_deadline, call_timeout(request: &[u8], reply: &mut [u8]) -> Result<usize, CallError>;

        /// [`call`](Self::call) with descriptors: `fds` go with the request,
        /// the reply's go into `slots` (as many as offered; more is
        /// [`CallError::RecvMoreRefs`], and
        /// [`receive_more_fds`](Self::receive_more_fds) hands out the rest).
        /// Returns (bytes, descriptors) of the reply.
        fn call_fds, try_call_fds, call_fds_deadline, call_fds_timeout(
            request: &[u8],
            fds: &[BorrowedFd<'_>],
            reply: &mut [u8],
            slots: &mut [Option<OwnedFd>]
        ) -> Result<(usize, usize), CallError>;

        /// [`call`](Self::call) with the reply read in place (zero-copy):
        /// the buffer is consumed when dropped. A reply sent in pieces
        /// comes a piece at a time ([`RecvBuf::more_follows`]; the next with
        /// [`receive_more_ref`](Self::receive_more_ref)). A reply that
        /// carries descriptors is [`CallError::RecvMoreRefs`]: take it with
        /// [`receive_more_fds`](Self::receive_more_fds).
        fn call_ref, try_call_ref, call_ref_deadline, call_ref_timeout(request: &[u8]) -> Result<RecvBuf<'_>, CallError>;

        /// Server: waits for a request into `buf` (the start of a server
        /// loop); the turn is then this end's until it replies. Returns the
        /// request's length.
        fn receive_request, try_receive_request, receive_request_deadline, receive_request_timeout(
            buf: &mut [u8]
        ) -> Result<usize, CallError>;

        /// [`receive_request`](Self::receive_request) with the request's
        /// descriptors into `slots`; returns (bytes, descriptors).
        fn receive_request_fds, try_receive_request_fds, receive_request_fds_deadline, receive_request_fds_timeout(
            buf: &mut [u8],
            slots: &mut [Option<OwnedFd>]
        ) -> Result<(usize, usize), CallError>;

        /// [`receive_request`](Self::receive_request) in place (zero-copy).
        fn receive_request_ref, try_receive_request_ref, receive_request_ref_deadline, receive_request_ref_timeout(
        ) -> Result<RecvBuf<'_>, CallError>;

        /// Server: sends `reply`, hands the turn back and waits for the next
        /// request into `next` (Fluke's `ack_send_over_receive`, seL4's
        /// `ReplyRecv`); returns the next request's length.
        /// [`CallError::OverDisconnected`] here means the client left after
        /// this reply: the usual end of a client's session.
        fn reply_and_receive, try_reply_and_receive, reply_and_receive_deadline, reply_and_receive_timeout(
            reply: &[u8],
            next: &mut [u8]
        ) -> Result<usize, CallError>;

        /// [`reply_and_receive`](Self::reply_and_receive) with descriptors
        /// both ways (`fds` with the reply, the next request's into `slots`).
        fn reply_fds_and_receive, try_reply_fds_and_receive, reply_fds_and_receive_deadline,
            reply_fds_and_receive_timeout(
            reply: &[u8],
            fds: &[BorrowedFd<'_>],
            next: &mut [u8],
            slots: &mut [Option<OwnedFd>]
        ) -> Result<(usize, usize), CallError>;

        /// [`reply_and_receive`](Self::reply_and_receive) with the next
        /// request read in place.
        fn reply_and_receive_ref, try_reply_and_receive_ref, reply_and_receive_ref_deadline,
            reply_and_receive_ref_timeout(reply: &[u8]) -> Result<RecvBuf<'_>, CallError>;

        /// Server: sends `reply` and hands the turn back without waiting
        /// for the next request ([`receive_request`](Self::receive_request)
        /// waits for it).
        fn reply, try_reply, reply_deadline, reply_timeout(reply: &[u8]) -> Result<(), CallError>;

        /// [`reply`](Self::reply) with descriptors.
        fn reply_fds, try_reply_fds, reply_fds_deadline, reply_fds_timeout(
            reply: &[u8],
            fds: &[BorrowedFd<'_>]
        ) -> Result<(), CallError>;

        /// Sends a piece of the request or reply this end is composing,
        /// keeping the turn; the [`call`](Self::call) or
        /// [`reply`](Self::reply) that follows sends the last piece and
        /// hands the turn over. The peer may receive pieces as they come.
        fn send_part, try_send_part, send_part_deadline, send_part_timeout(part: &[u8]) -> Result<(), CallError>;

        /// [`send_part`](Self::send_part) with descriptors.
        fn send_part_fds, try_send_part_fds, send_part_fds_deadline, send_part_fds_timeout(
            part: &[u8],
            fds: &[BorrowedFd<'_>]
        ) -> Result<(), CallError>;

        /// Zero-copy request: lends `len` bytes of the flow's memory to
        /// write the request (or its last piece) in place;
        /// [`SendBuf::send`] publishes it and hands the turn over, then
        /// [`receive_more_ref`](Self::receive_more_ref) (or
        /// [`receive_more`](Self::receive_more)) takes the reply. Dropping
        /// the loan unsent sends nothing and keeps the turn.
        fn loan_request, try_loan_request, loan_request_deadline, loan_request_timeout(
            len: usize
        ) -> Result<SendBuf<'_>, CallError>;

        /// Zero-copy reply: [`loan_request`](Self::loan_request) for a
        /// server, whose [`SendBuf::send`] hands the turn back; then
        /// [`receive_request`](Self::receive_request) (or one of its forms)
        /// waits for the next request.
        fn loan_reply, try_loan_reply, loan_reply_deadline, loan_reply_timeout(
            len: usize
        ) -> Result<SendBuf<'_>, CallError>;

        /// Goes on receiving the peer's message (a call's reply, or a
        /// request) where an earlier receive stopped: after
        /// [`CallError::RecvMoreData`], [`CallError::TimedOut`] or
        /// [`CallError::WouldBlock`] in phase `Over` or `Recv`,
        /// [`CallError::PlainMessage`] (once the plain message is read), or
        /// a [`loan_request`](Self::loan_request)'s send. Writes into `buf`
        /// from its start and returns the bytes written there; what earlier
        /// receives delivered stays where they wrote it.
        fn receive_more, try_receive_more, receive_more_deadline, receive_more_timeout(
            buf: &mut [u8]
        ) -> Result<usize, CallError>;

        /// [`receive_more`](Self::receive_more) with descriptors: first the
        /// ones an earlier receive held back ([`CallError::RecvMoreRefs`]),
        /// then those of the frames still to come. Returns (bytes,
        /// descriptors) written into `buf` and `slots`.
        fn receive_more_fds, try_receive_more_fds, receive_more_fds_deadline, receive_more_fds_timeout(
            buf: &mut [u8],
            slots: &mut [Option<OwnedFd>]
        ) -> Result<(usize, usize), CallError>;

        /// [`receive_more`](Self::receive_more) in place: the next frame of
        /// the peer's message, from where a copying receive stopped.
        fn receive_more_ref, try_receive_more_ref, receive_more_ref_deadline, receive_more_ref_timeout(
        ) -> Result<RecvBuf<'_>, CallError>;
    }
}
