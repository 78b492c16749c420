//! Streaming with back-pressure, in two processes. A producer sends many
//! small messages as fast as it can on a reliable flow (`Qos::data()`):
//! when the ring is full, `send` waits for the consumer to make room, so
//! nothing is lost and nothing piles up in memory. The consumer counts the
//! messages, checks their order and reports the rate. This program plays
//! both roles: without arguments it is the consumer and starts itself
//! again with the argument `producer` as the second process.
//!
//! Run with `cargo run --release -p ringflow --example streaming`.

use std::process::Command;
use std::time::{Duration, Instant};

use ringflow::{Flow, Listener, Qos, RecvError};

/// Messages to stream.
const COUNT: u64 = 1_000_000;
/// Bytes per message: a sequence number and some payload.
const SIZE: usize = 64;
/// How long setting up and closing may wait (a hang guard, never reached
/// when both processes work).
const GUARD: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("producer") => producer(),
        _ => consumer(),
    }
}

fn producer() -> Result<(), Box<dyn std::error::Error>> {
    let mut flow = Flow::alloc_timeout("stream", &Qos::data(), GUARD)?;
    let mut msg = [0u8; SIZE];
    for seq in 0..COUNT {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        // Blocks (spins briefly, then sleeps) while the ring is full: that
        // is the back-pressure. `try_send` would return `WouldBlock` instead.
        // (No deadline here: a consumer that dies ends the wait with
        // `PeerGone`, and a deadline costs a clock reading per message.)
        flow.send(&msg)?;
    }
    // Returns once the consumer has read every message.
    flow.dealloc_timeout(GUARD)?;
    Ok(())
}

fn consumer() -> Result<(), Box<dyn std::error::Error>> {
    let mut listener = Listener::bind("stream")?;
    let mut producer = Command::new(std::env::current_exe()?).arg("producer").spawn()?;
    let mut flow = listener.accept_timeout(GUARD)?;

    let start = Instant::now();
    let mut received = 0u64;
    loop {
        match flow.recv_ref() {
            Ok(msg) => {
                // Read the sequence number in place and check the order.
                let seq = u64::from_le_bytes(msg[..8].try_into()?);
                assert_eq!(seq, received, "messages arrive in order, none lost");
                received += 1;
            }
            // The producer deallocated the flow after its last message
            // (had it died, this would be `PeerGone`).
            Err(RecvError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(received, COUNT);
    println!("received {received} messages of {SIZE} B in {secs:.3} s: {:.1} M msgs/s", received as f64 / secs / 1e6);
    assert!(producer.wait()?.success(), "the producer failed");
    Ok(())
}
