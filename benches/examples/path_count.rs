//! One thread, `ROUNDS` times: `try_send` of 64 bytes and `try_recv_ref`
//! of it, on a request/reply flow (for callgrind's instruction counts).
//! With `batch` as the second argument, `ROUNDS` batches of 32 64-byte
//! messages instead: `try_send_batch_with` and `try_recv_batch`, on a flow
//! without a window (a stream's).
use ringflow_api::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, REQUEST_REPLY_WINDOW};

#[path = "shared/batch.rs"]
mod batch;

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let batch = std::env::args().nth(2).is_some_and(|a| a == "batch");
    let dir = std::env::temp_dir().join(format!("ringflow-count-{}", std::process::id()));
    let mut l = Listener::bind_with("c", ListenerOptions::new().runtime_dir(&dir)).expect("bind");
    let d = dir.clone();
    let t = std::thread::spawn(move || {
        Flow::alloc_with(
            "c",
            &Qos::data().with_ring_bytes(64 << 10),
            Deadline::Never,
            FlowOptions::new().runtime_dir(d),
        )
    });
    let mut b = l.accept().expect("accept");
    let mut a = t.join().expect("join").expect("alloc");
    let msg = [7u8; 64];
    let mut sum = 0u64;
    if batch {
        for _ in 0..rounds {
            sum += batch::round(&mut a, &mut b, &msg);
        }
    } else {
        a.set_send_window(Some(REQUEST_REPLY_WINDOW));
        for _ in 0..rounds {
            a.try_send(&msg).expect("send");
            sum += b.try_recv_ref().expect("recv")[0] as u64;
        }
    }
    std::hint::black_box(sum);
    drop((a, b, l));
    let _ = std::fs::remove_dir_all(&dir);
}
