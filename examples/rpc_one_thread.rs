//! One server thread serving many clients' calls (issue 16, "many
//! clients"): the server keeps every accepted flow in a [`FlowSet`], waits
//! on all of them at once, and on each flow that is ready answers every
//! request there with `try_reply_and_receive` (reply, hand the turn back,
//! look once for the next request) until it would wait. A client that left
//! is taken out of the set.
//!
//! Run with `cargo run -p ringflow --example rpc_one_thread`.

use std::thread;
use std::time::Duration;

use ringflow::{CallError, Deadline, Flow, FlowOptions, FlowSet, Interest, Listener, ListenerOptions, Qos};

const CLIENTS: usize = 8;
const CALLS: u64 = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // A private runtime directory for the name and the flows' statistics.
    let dir = std::env::temp_dir().join(format!("ringflow-rpc-one-thread-{}", std::process::id()));
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut listener = Listener::bind_with("adder", ListenerOptions::new().runtime_dir(dir))?;
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|c| {
            let dir = dir.to_path_buf();
            thread::spawn(move || -> Result<(), CallError> {
                let opts = FlowOptions::new().runtime_dir(dir);
                let mut flow = Flow::alloc_with("adder", &Qos::data(), Deadline::after(Duration::from_secs(10)), opts)
                    .expect("the server listens");
                let mut reply = [0u8; 8];
                for i in 0..CALLS {
                    let n = flow.call(&(c * CALLS + i).to_le_bytes(), &mut reply)?;
                    assert_eq!(u64::from_le_bytes(reply[..n].try_into().unwrap()), c * CALLS + i + 1);
                }
                Ok(())
            })
        })
        .collect();

    let mut set = FlowSet::new();
    for _ in 0..CLIENTS {
        set.insert(listener.accept_timeout(Duration::from_secs(10))?, Interest::Readable);
    }
    let (mut ready, mut served) = (Vec::new(), 0u64);
    let mut request = [0u8; 8];
    while !set.is_empty() {
        set.wait(&mut ready)?;
        for r in &ready {
            let Some(flow) = set.get_mut(r.key) else { continue };
            let mut next = flow.try_receive_request(&mut request);
            let left = loop {
                match next {
                    Ok(n) => {
                        let x = u64::from_le_bytes(request[..n].try_into()?);
                        served += 1;
                        next = flow.try_reply_and_receive(&(x + 1).to_le_bytes(), &mut request);
                    }
                    // Nothing more on this flow for now.
                    Err(CallError::WouldBlock { .. }) => break false,
                    // The client left after its last reply.
                    Err(CallError::OverDisconnected) => break true,
                    Err(e) => return Err(e.into()),
                }
            };
            if left {
                set.remove(r.key);
            }
        }
    }
    for c in clients {
        c.join().expect("client thread")?;
    }
    assert_eq!(served, CLIENTS as u64 * CALLS);
    println!("one thread served {served} calls from {CLIENTS} clients");
    Ok(())
}
