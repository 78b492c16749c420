//! Hello world in two processes: a listener binds a name, a client
//! allocates a flow to it and sends one message. This program plays both
//! roles: run without arguments it is the listener, and it starts itself
//! again with the argument `client` as the second process.
//!
//! Run with `cargo run -p ringflow --example hello`.

use std::process::Command;
use std::time::Duration;

use ringflow::{Flow, Listener, Qos};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("client") {
        // The client: allocate a flow to the name "hello" (waiting up to 5 s
        // for someone to listen), send, then close the flow; `dealloc`
        // returns once the listener has read everything.
        let mut flow = Flow::alloc_timeout("hello", &Qos::data(), Duration::from_secs(5))?;
        flow.send(b"hello, world")?;
        flow.dealloc()?;
        return Ok(());
    }

    // The listener: bind the name first, then start the client process.
    let mut listener = Listener::bind("hello")?;
    let mut client = Command::new(std::env::current_exe()?).arg("client").spawn()?;

    // Accept the client's flow and receive its message (5 s at most each,
    // so a client that failed cannot leave us waiting forever).
    let mut flow = listener.accept_timeout(Duration::from_secs(5))?;
    let mut buf = [0u8; 64];
    let n = flow.recv_into_timeout(&mut buf, Duration::from_secs(5))?;
    println!("received: {}", String::from_utf8_lossy(&buf[..n]));

    assert!(client.wait()?.success(), "the client failed");
    Ok(())
}
