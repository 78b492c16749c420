//! One thread, `ROUNDS` times, one of these rounds (for callgrind's
//! instruction counts: run it for two round counts and take the
//! difference, tuning.md):
//!
//! - `flow` (the default): `try_send` of 64 bytes and `try_recv_ref` of it,
//!   on a request/reply flow.
//! - `batch`: a batch of 32 64-byte messages, `try_send_batch_with` and
//!   `try_recv_batch`, on a flow without a window (a stream's).
//! - `call`: one request/reply round trip as a call makes it, with
//!   `try_call` and the server's `try_reply_and_receive`. On one thread
//!   neither finds its answer at its first look (`WouldBlock` in phase
//!   `Over`, as in a spinning ping-pong, where the first look almost never
//!   does): each side then takes it with `try_receive_more`. Both sides
//!   copy the message out.
//! - `pingpong`: the same round trip with a flow's plain messages, as the
//!   `call` round does it: each side sends with `try_send`, looks once for
//!   the answer (`try_recv_ref`, nothing yet), and the other side copies
//!   the message out of `try_recv_ref`. What `call` should cost.
//! - `look`, `call-look`: a look that finds nothing, as a spinning
//!   receiver repeats it: `try_recv_ref` on an empty flow, and
//!   `try_receive_more` of a call whose reply has not come.
//!
//! `cargo run --release -p ringflow-bench --example path_count -- ROUNDS [MODE [nohist]]`
//! (`nohist`: both ends without latency histograms).
use ringflow_api::{
    CallError, Deadline, Flow, FlowOptions, Listener, ListenerOptions, Phase, Qos, RecvError, REQUEST_REPLY_WINDOW,
};

#[path = "shared/batch.rs"]
mod batch;

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "flow".into());
    // A third argument `nohist`: both ends without latency histograms.
    let latency = std::env::args().nth(3).is_none_or(|a| a != "nohist");
    let dir = std::env::temp_dir().join(format!("ringflow-count-{}", std::process::id()));
    let mut l = Listener::bind_with("c", ListenerOptions::new().runtime_dir(&dir).latency(latency)).expect("bind");
    let d = dir.clone();
    let t = std::thread::spawn(move || {
        Flow::alloc_with(
            "c",
            &Qos::data().with_ring_bytes(64 << 10),
            Deadline::Never,
            FlowOptions::new().runtime_dir(d).latency(latency),
        )
    });
    let mut b = l.accept().expect("accept");
    let mut a = t.join().expect("join").expect("alloc");
    let msg = [7u8; 64];
    let mut sum = 0u64;
    if mode == "batch" {
        for _ in 0..rounds {
            sum += batch::round(&mut a, &mut b, &msg);
        }
    } else {
        a.set_send_window(Some(REQUEST_REPLY_WINDOW));
        b.set_send_window(Some(REQUEST_REPLY_WINDOW));
        match mode.as_str() {
            "flow" => {
                for _ in 0..rounds {
                    a.try_send(&msg).expect("send");
                    sum += b.try_recv_ref().expect("recv")[0] as u64;
                }
            }
            "call" => sum = call_rounds(&mut a, &mut b, &msg, rounds),
            "pingpong" => sum = pingpong_rounds(&mut a, &mut b, &msg, rounds),
            "look" => {
                for _ in 0..rounds {
                    sum += b.try_recv_ref().is_err() as u64;
                }
            }
            "call-look" => {
                let mut reply = [0u8; 64];
                over(a.try_call(&msg, &mut reply));
                for _ in 0..rounds {
                    over(a.try_receive_more(&mut reply));
                    sum += 1;
                }
            }
            other => panic!("unknown mode {other}: flow, batch, call, pingpong, look or call-look"),
        }
    }
    std::hint::black_box(sum);
    drop((a, b, l));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A call's first look for its answer, on one thread: not there yet.
fn over(r: Result<usize, CallError>) {
    match r {
        Err(CallError::WouldBlock { phase: Phase::Over, .. }) => {}
        other => panic!("expected WouldBlock in phase Over, got {other:?}"),
    }
}

/// `rounds` calls of the client `a` answered by the server `b`.
fn call_rounds(a: &mut Flow, b: &mut Flow, msg: &[u8; 64], rounds: u32) -> u64 {
    let (mut request, mut answer, mut reply) = ([0u8; 64], [0u8; 64], [0u8; 64]);
    let mut sum = 0u64;
    // The server's loop starts waiting for a request.
    over(b.try_receive_request(&mut request));
    for _ in 0..rounds {
        over(a.try_call(msg, &mut reply));
        sum += b.try_receive_more(&mut request).expect("request") as u64;
        answer.copy_from_slice(&request);
        over(b.try_reply_and_receive(&answer, &mut request));
        sum += a.try_receive_more(&mut reply).expect("reply") as u64;
    }
    sum + reply[0] as u64
}

/// `rounds` round trips of plain messages, `a` sending first, `b` echoing.
fn pingpong_rounds(a: &mut Flow, b: &mut Flow, msg: &[u8; 64], rounds: u32) -> u64 {
    let (mut request, mut reply) = ([0u8; 64], [0u8; 64]);
    let mut sum = 0u64;
    let empty = |r: Result<ringflow_api::RecvBuf<'_>, RecvError>| {
        assert!(matches!(r, Err(RecvError::WouldBlock)), "nothing to receive yet");
    };
    for _ in 0..rounds {
        a.try_send(msg).expect("request");
        empty(a.try_recv_ref());
        let m = b.try_recv_ref().expect("request");
        request.copy_from_slice(&m);
        sum += m.len() as u64;
        drop(m);
        b.try_send(&request).expect("reply");
        empty(b.try_recv_ref());
        let m = a.try_recv_ref().expect("reply");
        reply.copy_from_slice(&m);
        sum += m.len() as u64;
    }
    sum + reply[0] as u64
}
