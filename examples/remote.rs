//! A flow to another host, through engines. The "far host" here is a
//! second process: it binds the name "echo" and starts an engine that
//! accepts remote flows on a TCP port of the loopback address (what
//! `ringflow engine` does with `net.listen` set in `ringflow.toml`). The
//! first process allocates `echo@127.0.0.1:PORT`: its own engine, started
//! inside it on first use, carries the flow to the far engine, which
//! allocates a flow to the local listener "echo" and bridges the two. Both
//! applications see an ordinary flow. This program plays both roles:
//! without arguments it is the near side and starts itself again with the
//! argument `far` as the far host.
//!
//! Run with `cargo run --release -p ringflow --example remote`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use ringflow::remote::RemoteEngine;
use ringflow::{EngineConfig, Flow, Listener, ListenerOptions, Qos, RecvError};

/// How long any single step may wait (a hang guard).
const GUARD: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("far") => far(),
        _ => near(),
    }
}

/// The far host: a listener and an engine that accepts remote flows.
fn far() -> Result<(), Box<dyn std::error::Error>> {
    // Flows from other hosts reach a listener only if it says so.
    let mut listener = Listener::bind_with("echo", ListenerOptions::new().remote(true))?;
    // Port 0: the system picks a free port; `listen_addr` says which.
    let config = EngineConfig::builder().listen(Some("127.0.0.1:0")).build()?;
    let engine = RemoteEngine::start(&config, None)?;
    let addr = engine.listen_addr().ok_or("the engine does not listen")?;
    // Tell the near side where to dial (a real deployment puts the
    // address in its config: `net.peers`, or `name@host:port` directly).
    println!("{}", addr.port());
    std::io::stdout().flush()?;

    // The remote flow arrives like any local one.
    let mut flow = listener.accept_timeout(GUARD)?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match flow.recv_into_timeout(&mut buf, GUARD) {
            Ok(n) => flow.send(&buf[..n])?,
            Err(RecvError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    engine.shutdown()?;
    Ok(())
}

/// The near side: allocates a flow to `echo` on the far host.
fn near() -> Result<(), Box<dyn std::error::Error>> {
    let mut far = Command::new(std::env::current_exe()?).arg("far").stdout(Stdio::piped()).spawn()?;
    let mut line = String::new();
    BufReader::new(far.stdout.take().ok_or("no pipe")?).read_line(&mut line)?;
    let port: u16 = line.trim().parse()?;

    // `name@host:port`: the listener `name` behind the engine at host:port.
    let target = format!("echo@127.0.0.1:{port}");
    let mut flow = Flow::alloc_timeout(&target, &Qos::data(), GUARD)?;
    let mut buf = vec![0u8; 64 << 10];
    for i in 0..1000u32 {
        let msg = format!("message {i} over TCP and back");
        flow.send(msg.as_bytes())?;
        let n = flow.recv_into_timeout(&mut buf, GUARD)?;
        assert_eq!(&buf[..n], msg.as_bytes());
    }
    println!("near: 1000 round trips to {target}");
    // Lingers until the far application has read everything.
    flow.dealloc_timeout(GUARD)?;
    assert!(far.wait()?.success(), "the far side failed");
    Ok(())
}
