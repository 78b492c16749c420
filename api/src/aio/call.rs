//! Request/reply on an [`AsyncFlow`] (Fluke's reliable IPC, see
//! `call.rs`): the call's two halves, sending (all or nothing, like a
//! send) and receiving the answer (resumable, like `receive_more`).

use ringflow_core::flow::{CallError, Phase};

use super::AsyncFlow;

/// What a try of a call's sending half came to.
enum Sent {
    /// Sent whole; the answer's receive goes on from `received` bytes.
    Over { received: usize },
    /// The operation ended (done, or failed): its result.
    Done(Result<usize, CallError>),
}

/// Sorts a try of an operation that sends and then receives: would it
/// wait before its message went (try again), after (receive the rest), or
/// is it over.
fn sorted(r: Result<usize, CallError>) -> Option<Sent> {
    match r {
        Err(CallError::WouldBlock { phase: Phase::Ack | Phase::Send, .. }) => None,
        Err(CallError::WouldBlock { phase: Phase::Over | Phase::Recv, received, .. }) => Some(Sent::Over { received }),
        done => Some(Sent::Done(done)),
    }
}

impl AsyncFlow {
    /// Sends `request` and hands the turn over, then waits for the reply
    /// into `reply` ([`Flow::call`](crate::Flow::call)); returns the
    /// reply's length.
    ///
    /// Cancel safety: dropped while the request waits for room, nothing
    /// was sent and the turn is still this side's (call again). Dropped
    /// after the request went, the request stands and the reply is not
    /// lost: it stays in the flow for
    /// [`receive_more`](Self::receive_more) (a reply sent in pieces: the
    /// pieces that had arrived were written at the start of `reply`, and
    /// `receive_more` gives the rest).
    pub async fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, CallError> {
        let mut armed = false;
        loop {
            let r = self.flow.try_call(request, reply);
            self.answer = delivered(&r);
            match sorted(r) {
                None => self.wait(&mut armed, false, true).await.map_err(CallError::Wait)?,
                Some(Sent::Over { received }) => return self.receive_rest(reply, received, 0).await,
                Some(Sent::Done(done)) => return done,
            }
        }
    }

    /// Server: waits for a request into `buf`
    /// ([`Flow::receive_request`](crate::Flow::receive_request)); the turn
    /// is then this side's until it replies. Returns the request's length.
    ///
    /// Cancel-safe for a request that comes whole (the usual case): it is
    /// consumed only by the call that returns it. A request sent in pieces
    /// is consumed piece by piece: dropped between two pieces, the pieces
    /// that had arrived were written at the start of `buf`, and
    /// [`receive_more`](Self::receive_more) gives the rest.
    pub async fn receive_request(&mut self, buf: &mut [u8]) -> Result<usize, CallError> {
        let mut armed = false;
        loop {
            let r = self.flow.try_receive_request(buf);
            self.answer = delivered(&r);
            match r {
                Err(CallError::WouldBlock { received: 0, .. }) => {}
                Err(CallError::WouldBlock { received, .. }) => return self.receive_rest(buf, received, 0).await,
                done => return done,
            }
            self.wait(&mut armed, true, false).await.map_err(CallError::Wait)?;
        }
    }

    /// Server: sends `reply`, hands the turn back and waits for the next
    /// request into `next`
    /// ([`Flow::reply_and_receive`](crate::Flow::reply_and_receive));
    /// returns the next request's length.
    ///
    /// Cancel safety: as [`call`](Self::call)'s. Dropped while the reply
    /// waits for room, nothing was sent and the turn is still this side's;
    /// dropped after the reply went, the next request stays in the flow
    /// for [`receive_request`](Self::receive_request) (or, if some of its
    /// pieces had arrived into `next`, [`receive_more`](Self::receive_more)).
    pub async fn reply_and_receive(&mut self, reply: &[u8], next: &mut [u8]) -> Result<usize, CallError> {
        let mut armed = false;
        loop {
            let r = self.flow.try_reply_and_receive(reply, next);
            self.answer = delivered(&r);
            match sorted(r) {
                None => self.wait(&mut armed, false, true).await.map_err(CallError::Wait)?,
                Some(Sent::Over { received }) => return self.receive_rest(next, received, 0).await,
                Some(Sent::Done(done)) => return done,
            }
        }
    }

    /// Server: sends `reply` and hands the turn back without waiting for
    /// the next request ([`Flow::reply`](crate::Flow::reply)), waiting for
    /// room as long as it takes. Cancel-safe: nothing is sent unless it
    /// returns `Ok`.
    pub async fn reply(&mut self, reply: &[u8]) -> Result<(), CallError> {
        let mut armed = false;
        loop {
            match self.flow.try_reply(reply) {
                Err(CallError::WouldBlock { .. }) => {}
                done => return done,
            }
            self.wait(&mut armed, false, true).await.map_err(CallError::Wait)?;
        }
    }

    /// Goes on receiving the peer's message where an earlier receive
    /// stopped ([`Flow::receive_more`](crate::Flow::receive_more)): after a
    /// call or a request's receive was dropped, or returned
    /// [`CallError::RecvMoreData`]. Writes into `buf` from its start and
    /// returns the bytes written there. Cancel-safe as
    /// [`receive_request`](Self::receive_request) is.
    pub async fn receive_more(&mut self, buf: &mut [u8]) -> Result<usize, CallError> {
        let base = self.answer;
        self.receive_rest(buf, 0, base).await
    }

    /// The receiving half: `at` bytes of the answer are at the start of
    /// `buf` already, and `base` bytes of it were delivered before `buf`
    /// (into a buffer of a dropped future, or of a receive that returned
    /// `RecvMoreData`); the rest goes after them. Returns the bytes in
    /// `buf` in all. Errors count the bytes of the whole answer, as the
    /// blocking forms' do; the count is kept in `self.answer` at every
    /// await, so that a `receive_more` after a dropped future knows it.
    async fn receive_rest(&mut self, buf: &mut [u8], at: usize, base: usize) -> Result<usize, CallError> {
        let mut armed = false;
        let mut at = at.min(buf.len());
        loop {
            let r = self.flow.try_receive_more(&mut buf[at..]);
            self.answer = delivered(&r);
            match r {
                Ok(n) => return Ok(at + n),
                // More pieces may have come.
                Err(CallError::WouldBlock { received, .. }) => at = received.saturating_sub(base).min(buf.len()),
                Err(e) => return Err(e),
            }
            self.wait(&mut armed, true, false).await.map_err(CallError::Wait)?;
        }
    }
}

/// The bytes of the peer's message delivered so far, after a receive that
/// stopped short of its end (0 once it ended, or failed for good).
fn delivered<T>(r: &Result<T, CallError>) -> usize {
    match r {
        Err(CallError::WouldBlock { received, .. })
        | Err(CallError::TimedOut { received, .. })
        | Err(CallError::RecvMoreData { received })
        | Err(CallError::RecvMoreRefs { received, .. }) => *received,
        _ => 0,
    }
}
