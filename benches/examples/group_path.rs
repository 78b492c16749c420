//! One thread, `ROUNDS` times, the group ping-pong's round trip without
//! its waits: member A's `try_mcast` of 64 bytes, B's `try_recv` of it,
//! B's `try_mcast` back, A's `try_recv` (Agreed, Block, loopback off, as
//! in `bench group`): two messages a round, for callgrind's instruction
//! counts beside `path_count` (one message of a flow a round).
//! `valgrind --tool=callgrind target/release/examples/group_path 200000`
use ringflow_api::{Event, Group, GroupOptions};

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("ringflow-group-count-{}", std::process::id()));
    // Before any thread starts: names of this run live in a directory of its own.
    std::env::set_var("RINGFLOW_RUNTIME_DIR", &dir);
    let opts = GroupOptions::new().log_capacity(64 << 10).loopback(false);
    let name = "group-path";
    let mut a = Group::join(name, &opts).expect("join a");
    let mut b = Group::join(name, &opts).expect("join b");
    // The views of the two joins, before the loop.
    for m in [&mut a, &mut b] {
        while !matches!(m.try_recv(), Err(ringflow_api::GroupRecvError::WouldBlock)) {}
    }
    let msg = [7u8; 64];
    let mut sum = 0u64;
    for _ in 0..rounds {
        a.try_mcast(&msg).expect("mcast");
        sum += first_byte(&mut b);
        b.try_mcast(&msg).expect("mcast");
        sum += first_byte(&mut a);
    }
    std::hint::black_box(sum);
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Receives the next event, a message, and returns its first byte.
fn first_byte(g: &mut Group) -> u64 {
    match g.try_recv().expect("recv") {
        Event::Message(m) => m.payload().map_or(0, |p| p[0] as u64),
        _ => panic!("not a message"),
    }
}
