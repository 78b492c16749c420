//! Many flows served by one thread: a server accepts 50 clients' flows,
//! puts them all in a `FlowSet` and waits on the whole set at once (one
//! `futex_waitv`, Ouroboros' `fqueue`); on each ready flow it answers every
//! waiting request, and takes a flow out of the set when its client closes
//! it. The clients are 50 threads of a second process. This program plays
//! both roles: without arguments it is the server and starts itself again
//! with the argument `clients` as the second process.
//!
//! Run with `cargo run --release -p ringflow --example flow_set`.

use std::process::Command;
use std::thread;
use std::time::Duration;

use ringflow::{Flow, FlowSet, Interest, Listener, Qos, RecvError};

const CLIENTS: usize = 50;
/// Requests each client sends, one at a time.
const REQUESTS: u64 = 200;
/// How long any single step may wait (a hang guard).
const GUARD: Duration = Duration::from_secs(10);

/// Any error, from any thread.
type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    match std::env::args().nth(1).as_deref() {
        Some("clients") => clients(),
        _ => server(),
    }
}

/// The service: each request is a number, the reply that number plus one.
fn server() -> Result<(), Error> {
    let mut listener = Listener::bind("adder")?;
    let mut clients = Command::new(std::env::current_exe()?).arg("clients").spawn()?;

    let mut set = FlowSet::new();
    for _ in 0..CLIENTS {
        let flow = listener.accept_timeout(GUARD)?;
        set.insert(flow, Interest::Readable); // returns the flow's key
    }

    let mut ready = Vec::new();
    let mut buf = [0u8; 8];
    let mut served = 0u64;
    while !set.is_empty() {
        // Sleeps until at least one flow has a message (or was closed).
        set.wait_timeout(&mut ready, GUARD)?;
        for r in &ready {
            let Some(flow) = set.get_mut(r.key) else { continue };
            // Answer everything waiting on this flow, without blocking.
            let closed = loop {
                match flow.try_recv_into(&mut buf) {
                    Ok(n) => {
                        let x = u64::from_le_bytes(buf[..n].try_into()?);
                        flow.send(&(x + 1).to_le_bytes())?;
                        served += 1;
                    }
                    Err(RecvError::WouldBlock) => break false,
                    Err(RecvError::Closed) => break true,
                    Err(e) => return Err(e.into()),
                }
            };
            if closed {
                set.remove(r.key);
            }
        }
    }
    println!("one thread served {served} requests from {CLIENTS} flows");
    assert_eq!(served, CLIENTS as u64 * REQUESTS);
    assert!(clients.wait()?.success(), "a client failed");
    Ok(())
}

/// 50 clients, a thread and a flow each.
fn clients() -> Result<(), Error> {
    let threads: Vec<_> = (0..CLIENTS as u64)
        .map(|c| {
            thread::spawn(move || -> Result<(), Error> {
                let mut flow = Flow::alloc_timeout("adder", &Qos::data(), GUARD)?;
                let mut buf = [0u8; 8];
                for i in 0..REQUESTS {
                    let x = c * 1_000_000 + i;
                    flow.send(&x.to_le_bytes())?;
                    let n = flow.recv_into_timeout(&mut buf, GUARD)?;
                    assert_eq!(&buf[..n], &(x + 1).to_le_bytes());
                }
                flow.dealloc_timeout(GUARD)?;
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread panicked")?;
    }
    Ok(())
}
