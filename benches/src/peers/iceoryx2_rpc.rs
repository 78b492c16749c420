//! iceoryx2's request-response as a peer of scenario `rpc`: one
//! `ipc::Service` request-response service, one client and one server,
//! set up as iceoryx2's own request-response benchmark sets it up (one
//! client, one server, a response buffer of one).
//!
//! A call is iceoryx2's whole request-response round: the client sends a
//! request and holds its `PendingResponse`, the server takes the
//! `ActiveRequest` with `receive()` and answers it, and the client takes the
//! `Response` from the pending response and releases both. Both sides
//! busy-poll, as every impl of the case does.
//!
//! Each run's node and service live only as long as the impl: when they and
//! the ports drop, iceoryx2 removes what they made under its root
//! (`/tmp/iceoryx2`) and in `/dev/shm` (the service's files, data segments
//! and connections, the node's monitor), as it does for the other iceoryx2
//! impls.

use std::mem::MaybeUninit;

use iceoryx2::pending_response::PendingResponse;
use iceoryx2::port::client::Client;
use iceoryx2::port::server::Server;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::request_response::PortFactory;

use super::iceoryx2::{node, peer};
use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::rpc::{self as ringflow_rpc, HEADER};
use crate::wire::word;

/// A request-response service whose requests and replies are both `T`.
type Factory<T> = PortFactory<ipc::Service, T, (), T, ()>;

/// A request-response service of `T` for one client and one server.
fn service<T: std::fmt::Debug + ZeroCopySend>(node: &Node<ipc::Service>, name: &str) -> Result<Factory<T>, BenchError> {
    let name = ServiceName::new(name).map_err(peer("iceoryx2 service name"))?;
    node.service_builder(&name)
        .request_response::<T, T>()
        .max_clients(1)
        .max_servers(1)
        .max_response_buffer_size(1)
        .create()
        .map_err(peer("iceoryx2 service"))
}

/// The client's port, and the pending response of the call in flight.
struct CallClient<T: std::fmt::Debug + ZeroCopySend> {
    client: Client<ipc::Service, T, (), T, ()>,
    pending: Option<PendingResponse<ipc::Service, T, (), T, ()>>,
}

// SAFETY: the ports of `ipc::Service` are !Send only because their local
// state sits behind an `Rc` (iceoryx2's single-threaded policy), and that
// `Rc` is cloned only into the requests, pending responses and responses
// the port makes. A `CallClient` is built on the calling thread with no call
// in flight (`pending` is None), so its `Rc` has exactly one owner, inside
// the `CallClient`; it is then moved whole, once, to its benchmark thread
// before any use, and used and dropped only there. No `Rc` is ever touched
// by two threads.
unsafe impl<T: std::fmt::Debug + ZeroCopySend> Send for CallClient<T> {}

impl<T: std::fmt::Debug + ZeroCopySend> CallClient<T> {
    fn new(service: &Factory<T>) -> Result<Self, BenchError> {
        let client = service.client_builder().create().map_err(peer("iceoryx2 client"))?;
        Ok(CallClient { client, pending: None })
    }

    /// Sends a request loaned and written by `write`, keeping its pending
    /// response; the previous call's (the stop message's, unanswered) is
    /// released first.
    #[inline]
    fn call(
        &mut self,
        write: impl FnOnce(
            iceoryx2::request_mut_uninit::RequestMutUninit<ipc::Service, MaybeUninit<T>, (), T, ()>,
        ) -> iceoryx2::request_mut::RequestMut<ipc::Service, T, (), T, ()>,
    ) -> Result<(), BenchError> {
        self.pending = None;
        let request = self.client.loan_uninit().map_err(peer("iceoryx2 Client::loan_uninit"))?;
        self.pending = Some(write(request).send().map_err(peer("iceoryx2 RequestMut::send"))?);
        Ok(())
    }

    /// Waits for the reply to the call in flight and returns its sequence
    /// number (its first word); the response and the pending response are
    /// released before it returns.
    #[inline]
    fn reply(&mut self, seq: impl Fn(&T) -> u64, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        let Some(pending) = self.pending.take() else {
            return Err(BenchError::Peer { call: "iceoryx2 PendingResponse::receive", error: "no call".into() });
        };
        loop {
            match pending.receive().map_err(peer("iceoryx2 PendingResponse::receive"))? {
                Some(response) => return Ok(seq(response.payload())),
                None => w.wait()?,
            }
        }
    }
}

/// The server's port.
struct CallServer<T: std::fmt::Debug + ZeroCopySend> {
    server: Server<ipc::Service, T, (), T, ()>,
}

// SAFETY: as for `CallClient`: built on the calling thread with no request
// taken, so the port's `Rc` has one owner; moved whole, once, to its
// benchmark thread before any use, and used and dropped only there.
unsafe impl<T: std::fmt::Debug + ZeroCopySend> Send for CallServer<T> {}

/// An active request: a request taken by the server, to be answered.
type Active<T> = iceoryx2::active_request::ActiveRequest<ipc::Service, T, (), T, ()>;

impl<T: std::fmt::Debug + ZeroCopySend> CallServer<T> {
    fn new(service: &Factory<T>) -> Result<Self, BenchError> {
        let server = service.server_builder().create().map_err(peer("iceoryx2 server"))?;
        Ok(CallServer { server })
    }

    /// Waits for the next request.
    #[inline]
    fn take(&mut self, w: &mut Waiter<'_>) -> Result<Active<T>, BenchError> {
        loop {
            match self.server.receive().map_err(peer("iceoryx2 Server::receive"))? {
                Some(request) => return Ok(request),
                None => w.wait()?,
            }
        }
    }
}

/// Copied calls: the whole request copied into a loan (`send_copy`), the
/// whole reply likewise (`ActiveRequest::send_copy`).
impl<const N: usize> PingSide<N> for CallClient<[u8; N]> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        self.call(|request| request.write_payload(*msg))
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        self.reply(|reply| word(reply, 0), w)
    }
}

impl<const N: usize> PongSide<N> for CallServer<[u8; N]> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let request = self.take(w)?;
        if pingpong::is_stop(request.payload()) {
            return Ok(false);
        }
        request.send_copy(*request.payload()).map_err(peer("iceoryx2 ActiveRequest::send_copy"))?;
        Ok(true)
    }
}

/// Case `call-64B`'s spinning variants with iceoryx2 among them, taking
/// turns every `pingpong::BLOCK` round trips (`rpc::call_spin_alternating_with`):
/// four measurements, limit, ringflow, flow-pingpong, iceoryx2.
pub fn call_spin_alternating(ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
    let (node, run) = node()?;
    let service = service::<[u8; 64]>(&node, &format!("{run}/call"))?;
    let sides = (CallClient::new(&service)?, CallServer::new(&service)?);
    ringflow_rpc::call_spin_alternating_with(ctx, vec![sides])
}

/// A message of `HEADER + REST` bytes of which only the header is ever
/// written or read: the rest is memory the sides leave as it is (a
/// `MaybeUninit` byte need not be initialized).
#[derive(Debug)]
#[repr(C)]
struct Loaned<const REST: usize> {
    header: [u8; HEADER],
    rest: [MaybeUninit<u8>; REST],
}

// SAFETY: plain bytes, `#[repr(C)]`: no pointer, reference, index or
// handle, the same layout in every process of this build.
unsafe impl<const REST: usize> ZeroCopySend for Loaned<REST> {}

/// Writes `header` into a loaned message and marks it initialized.
macro_rules! write_header {
    ($loan:expr, $header:expr) => {{
        let mut loan = $loan;
        let message: *mut Loaned<REST> = loan.payload_mut().as_mut_ptr();
        // SAFETY: `message` points to the loan's payload, valid for writes
        // and not otherwise borrowed; `addr_of_mut!` makes no reference to
        // the uninitialized message.
        unsafe { std::ptr::addr_of_mut!((*message).header).write(*$header) };
        // SAFETY: the header is written, and the rest of a `Loaned` is
        // `MaybeUninit` bytes, valid uninitialized: the message is valid.
        unsafe { loan.assume_init() }
    }};
}

/// Zero-copy calls: the request and the reply are loaned (`loan_uninit`)
/// and read in place, only their headers written and read.
struct LoanClient<const REST: usize>(CallClient<Loaned<REST>>);

impl<const REST: usize> PingSide<HEADER> for LoanClient<REST> {
    #[inline]
    fn send(&mut self, msg: &[u8; HEADER], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        self.0.call(|request| write_header!(request, msg))
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        self.0.reply(|reply| word(&reply.header, 0), w)
    }
}

struct LoanServer<const REST: usize>(CallServer<Loaned<REST>>);

impl<const REST: usize> PongSide<HEADER> for LoanServer<REST> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let request = self.0.take(w)?;
        let header = &request.payload().header;
        if pingpong::is_stop(header) {
            return Ok(false);
        }
        let reply = request.loan_uninit().map_err(peer("iceoryx2 ActiveRequest::loan_uninit"))?;
        write_header!(reply, header).send().map_err(peer("iceoryx2 ResponseMut::send"))?;
        Ok(true)
    }
}

/// Case `call-4KiB-zerocopy`'s iceoryx2 impl: calls whose requests and
/// replies of `HEADER + REST` bytes are loaned, only their headers written
/// and read.
pub fn call_zerocopy<const REST: usize>(ctx: &RunCtx) -> Result<Measurement, BenchError> {
    let (node, run) = node()?;
    let service = service::<Loaned<REST>>(&node, &format!("{run}/call-zerocopy"))?;
    let client = LoanClient(CallClient::new(&service)?);
    let server = LoanServer(CallServer::new(&service)?);
    pingpong::run::<HEADER>(ctx, client, server)
}
