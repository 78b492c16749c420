//! A server with a thread per client (issue 16, "many clients"): the
//! listener accepts each flow and hands it to a thread of its own that runs
//! the classic server loop, `receive_request` then `reply_and_receive`
//! until the client leaves.
//!
//! Run with `cargo run -p ringflow --example rpc_threads`.

use std::thread;
use std::time::Duration;

use ringflow::{CallError, Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos};

const CLIENTS: usize = 4;
const CALLS: usize = 1_000;

/// The service: the request, upper-cased.
fn serve(mut flow: Flow) -> Result<usize, CallError> {
    let mut request = vec![0u8; 4096];
    let mut served = 0;
    let mut len = match flow.receive_request(&mut request) {
        Ok(n) => n,
        Err(CallError::OverDisconnected) => return Ok(0),
        Err(e) => return Err(e),
    };
    loop {
        let reply = request[..len].to_ascii_uppercase();
        served += 1;
        match flow.reply_and_receive(&reply, &mut request) {
            Ok(n) => len = n,
            // The client left after its last reply: the usual end.
            Err(CallError::OverDisconnected) => return Ok(served),
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // A private runtime directory for the name and the flows' statistics.
    let dir = std::env::temp_dir().join(format!("ringflow-rpc-threads-{}", std::process::id()));
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut listener = Listener::bind_with("upper", ListenerOptions::new().runtime_dir(dir))?;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let opts = FlowOptions::new().runtime_dir(dir);
            thread::spawn(move || -> Result<(), CallError> {
                let mut flow = Flow::alloc_with("upper", &Qos::data(), Deadline::after(Duration::from_secs(10)), opts)
                    .expect("the server listens");
                for i in 0..CALLS {
                    let request = format!("client {c}, call {i}");
                    // The reply read in place, in the flow's shared memory.
                    let reply = flow.call_ref(request.as_bytes())?;
                    assert_eq!(&*reply, request.to_ascii_uppercase().as_bytes());
                }
                Ok(())
            })
        })
        .collect();
    let servers: Vec<_> = (0..CLIENTS)
        .map(|_| listener.accept_timeout(Duration::from_secs(10)).map(|flow| thread::spawn(move || serve(flow))))
        .collect::<Result<_, _>>()?;
    for c in clients {
        c.join().expect("client thread")?;
    }
    let mut served = 0;
    for s in servers {
        served += s.join().expect("server thread")?;
    }
    assert_eq!(served, CLIENTS * CALLS);
    println!("{CLIENTS} server threads served {served} calls");
    Ok(())
}
