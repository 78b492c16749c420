//! An async request/reply service with tokio (feature `tokio`), in three
//! processes. The server binds the name "tokio-upper" and answers every
//! request of every client with the request in capitals; it serves two
//! clients at once on one thread, a task per flow: every wait (accept,
//! the next request, room for a reply) is an `.await` on the flow's
//! readiness descriptor, never a parked thread. Each client sends a few
//! requests, then shows that a receive dropped by `select!` loses nothing.
//! This program plays every role: without arguments it is the server and
//! starts itself again with the argument `client` twice.
//!
//! Run with `cargo run -p ringflow --features tokio --example tokio`.

use std::process::Command;
use std::time::Duration;

use ringflow::{AsyncFlow, AsyncListener, CallError, Listener, Qos};
use tokio::time::timeout;

/// How long any single step may wait: a guard against hanging forever if
/// another process failed, far longer than anything here takes.
const GUARD: Duration = Duration::from_secs(10);

const CLIENTS: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One thread runs everything in each process.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match std::env::args().nth(1).as_deref() {
        Some("client") => rt.block_on(client()),
        _ => rt.block_on(server()),
    }
}

async fn server() -> Result<(), Box<dyn std::error::Error>> {
    // Bind the name before the clients start, so their alloc finds us.
    let mut listener = AsyncListener::new(Listener::bind("tokio-upper")?)?;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Command::new(std::env::current_exe()?).arg("client").spawn()?);
    }
    let mut sessions = Vec::new();
    for _ in 0..CLIENTS {
        let flow = timeout(GUARD, listener.accept()).await??;
        // Each flow is served by a task of its own, on this same thread.
        sessions.push(tokio::spawn(serve(flow)));
    }
    let mut answered = 0;
    for session in sessions {
        answered += session.await??;
    }
    println!("server: answered {answered} requests from {CLIENTS} clients on one thread");
    for mut client in clients {
        assert!(client.wait()?.success(), "a client failed");
    }
    Ok(())
}

/// Answers the requests of one flow until its client leaves; returns how
/// many it answered.
async fn serve(mut flow: AsyncFlow) -> Result<usize, CallError> {
    let mut buf = vec![0u8; 1024];
    let mut len = timeout(GUARD, flow.receive_request(&mut buf)).await.map_err(|_| timed_out())??;
    let mut answered = 0;
    loop {
        let reply = buf[..len].to_ascii_uppercase();
        answered += 1;
        // Replies, hands the turn back, and awaits the next request.
        match timeout(GUARD, flow.reply_and_receive(&reply, &mut buf)).await.map_err(|_| timed_out())? {
            Ok(n) => len = n,
            // The client left after this reply: the usual end of a session.
            Err(CallError::OverDisconnected) => return Ok(answered),
            Err(e) => return Err(e),
        }
    }
}

fn timed_out() -> CallError {
    CallError::Wait(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

async fn client() -> Result<(), Box<dyn std::error::Error>> {
    // The connection and setup run on tokio's blocking pool; the runtime
    // thread stays free.
    let mut flow = timeout(GUARD, AsyncFlow::alloc("tokio-upper", &Qos::data())).await??;
    let mut reply = vec![0u8; 1024];
    for word in ["hello", "async", "world"] {
        let n = timeout(GUARD, flow.call(word.as_bytes(), &mut reply)).await??;
        assert_eq!(&reply[..n], word.to_ascii_uppercase().as_bytes());
    }
    // A receive that loses a race against a timer is dropped having taken
    // nothing: the server sends nothing unasked, so the timer wins here.
    let mut buf = [0u8; 64];
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        r = flow.recv_into(&mut buf) => panic!("nothing was sent, yet: {r:?}"),
    }
    println!("client {}: three calls answered", std::process::id());
    // Dropping the flow closes it: the server's session ends.
    Ok(())
}
