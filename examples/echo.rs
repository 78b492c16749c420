//! An echo service in two processes. The listener binds the name "echo"
//! and sends every message of a flow back until the client closes it; the
//! client sends a few lines and checks each answer. This program plays
//! both roles: without arguments it is the listener and starts itself
//! again with the argument `client` as the second process.
//!
//! Run with `cargo run -p ringflow --example echo`.

use std::process::Command;
use std::time::Duration;

use ringflow::{Flow, Listener, Qos, RecvError};

/// How long any single step may wait: a guard against hanging forever if
/// the other process failed, far longer than anything here takes.
const GUARD: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("client") => client(),
        _ => listener(),
    }
}

fn listener() -> Result<(), Box<dyn std::error::Error>> {
    // Bind the name before the client starts, so its alloc finds us.
    let mut listener = Listener::bind("echo")?;
    let mut client = Command::new(std::env::current_exe()?).arg("client").spawn()?;

    // One flow per client; this one serves a single client and stops.
    let mut flow = listener.accept_timeout(GUARD)?;
    let mut echoed = 0;
    loop {
        // `recv_ref` reads the message in place, in shared memory: the
        // borrow ends (and the ring room goes back) when `msg` is dropped.
        let msg = match flow.recv_ref_timeout(GUARD) {
            Ok(msg) => msg,
            // The client deallocated the flow after its last message.
            Err(RecvError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        let copy = msg.to_vec();
        drop(msg);
        flow.send(&copy)?;
        echoed += 1;
    }
    println!("listener: echoed {echoed} messages");
    assert!(client.wait()?.success(), "the client failed");
    Ok(())
}

fn client() -> Result<(), Box<dyn std::error::Error>> {
    let mut flow = Flow::alloc_timeout("echo", &Qos::data(), GUARD)?;
    let mut buf = vec![0u8; 1024];
    for line in ["hello", "how are you?", "bye"] {
        flow.send(line.as_bytes())?;
        let n = flow.recv_into_timeout(&mut buf, GUARD)?;
        assert_eq!(&buf[..n], line.as_bytes());
        println!("client: sent {line:?}, got it back");
    }
    // Close the flow: the listener's next receive returns `Closed`.
    flow.dealloc()?;
    Ok(())
}
