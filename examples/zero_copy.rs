//! Zero copy, in two processes: the sender borrows room in the flow's
//! shared memory (`loan`), writes its message there in place and sends it;
//! the receiver reads it in place (`recv_ref`). No byte is copied by
//! ringflow on the way, small messages (which travel in the ring) and large
//! ones (which travel in the flow's bulk area) alike. This program plays
//! both roles: without arguments it is the receiver and starts itself
//! again with the argument `sender` as the second process.
//!
//! Run with `cargo run --release -p ringflow --example zero_copy`.

use std::process::Command;
use std::time::Duration;

use ringflow::{Flow, Listener, Qos, RecvError};

/// A large message: 8 MiB, say a video frame.
const FRAME: usize = 8 << 20;
/// How many large messages to send.
const FRAMES: usize = 16;
/// How long any single step may wait (a hang guard).
const GUARD: Duration = Duration::from_secs(10);

/// Both sides ask for the same QoS: reliable, ordered, messages up to 8 MiB.
fn qos() -> Qos {
    Qos::data().with_max_msg(FRAME)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("sender") => sender(),
        _ => receiver(),
    }
}

fn sender() -> Result<(), Box<dyn std::error::Error>> {
    let mut flow = Flow::alloc_timeout("frames", &qos(), GUARD)?;

    // A small message: loan 32 bytes of the ring, write them, send.
    let mut loan = flow.loan_timeout(32, GUARD)?;
    loan.fill(0);
    loan[..5].copy_from_slice(b"hello");
    loan.send()?;

    // Large messages: the loan is a slice of shared memory the receiver
    // maps too, so filling it is the only write of these bytes.
    for i in 0..FRAMES {
        let mut frame = flow.loan_timeout(FRAME, GUARD)?;
        frame.fill(i as u8);
        frame.send()?;
    }
    flow.dealloc_timeout(GUARD)?;
    Ok(())
}

fn receiver() -> Result<(), Box<dyn std::error::Error>> {
    let mut listener = Listener::bind("frames")?;
    let mut sender = Command::new(std::env::current_exe()?).arg("sender").spawn()?;
    let mut flow = listener.accept_timeout(GUARD)?;
    // The granted QoS is written back: the largest message both agreed on.
    println!("receiver: flow accepted, messages up to {} bytes", flow.qos().max_msg);

    let hello = flow.recv_ref_timeout(GUARD)?;
    assert_eq!(&hello[..5], b"hello");
    println!("receiver: small message read in place: {} bytes", hello.len());
    drop(hello); // hands the message's room back to the sender

    let mut frames = 0;
    loop {
        // `frame` derefs to `&[u8]` in the shared segment. The sender could
        // still write those bytes (it is another process): treat them as
        // input, check what you rely on.
        let frame = match flow.recv_ref_timeout(GUARD) {
            Ok(frame) => frame,
            Err(RecvError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        assert_eq!(frame.len(), FRAME);
        assert!(frame.iter().all(|&b| b == frames as u8));
        frames += 1;
    }
    println!("receiver: {frames} frames of {FRAME} bytes read in place");
    assert_eq!(frames, FRAMES);
    assert!(sender.wait()?.success(), "the sender failed");
    Ok(())
}
