//! A set of many flows: the wait sleeps on each flow's ring words and once
//! on the process's death word (not once per flow), so more flows fit one
//! `futex_waitv` than when every flow added its own peer-state word, and a
//! peer's hang-up still wakes a set asleep on all of them.

use std::thread;
use std::time::Duration;

use ringflow_api::{Deadline, Flow, FlowOptions, FlowSet, Interest, Listener, ListenerOptions, Qos, SetError};
use ringflow_testkit::{thread_id, wait_until_blocked};

/// 60 flows waited for both directions: 121 words (120 ring words and the
/// death word); with a peer-state word per flow it was 180, over the
/// kernel's 128.
const FLOWS: usize = 60;

#[test]
fn a_set_of_sixty_flows_waits_both_ways_and_a_hang_up_wakes_it() {
    ringflow_testkit::require_futex_waitv!();
    let tmp = ringflow_testkit::temp_dir("set-many");
    let dir = tmp.path().to_path_buf();
    let mut l = Listener::bind_with("many", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    let d2 = dir.clone();
    let allocator = thread::spawn(move || {
        (0..FLOWS)
            .map(|_| {
                let qos = Qos::data().with_ring_bytes(4096);
                Flow::alloc_with("many", &qos, Deadline::Never, FlowOptions::new().runtime_dir(&d2)).unwrap()
            })
            .collect::<Vec<_>>()
    });
    let mut set = FlowSet::new();
    let mut keys = Vec::new();
    for _ in 0..FLOWS {
        let mut flow = l.accept().unwrap();
        // Fill the flow's sending ring: not writable until the peer reads.
        while flow.try_send(&[1u8; 256]).is_ok() {}
        keys.push(set.insert(flow, Interest::Both));
    }
    let mut peers = allocator.join().unwrap();
    let mut ready = Vec::new();
    // The wait fits: nothing is ready, so it times out (it used to be
    // refused as too many words).
    assert!(matches!(set.wait_timeout(&mut ready, Duration::from_millis(20)), Err(SetError::TimedOut)));
    // Asleep on all sixty, woken when one peer hangs up.
    let victim = FLOWS / 2;
    let waiter = thread_id();
    let killer = thread::spawn(move || {
        wait_until_blocked(waiter);
        let gone = peers.remove(victim);
        drop(gone);
        peers
    });
    let n = set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap();
    let _peers = killer.join().unwrap();
    assert_eq!(n, 1, "{ready:?}");
    assert_eq!(ready[0].key, keys[victim]);
    assert!(ready[0].closed && ready[0].readable, "{:?}", ready[0]);
}
