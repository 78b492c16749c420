//! Sets larger than one `futex_waitv` (more than 128 words) wait through
//! epoll on the flows' readiness descriptors: any number of flows, woken by
//! a publish, by room handed back and by a hang-up on the one flow that
//! changed, whichever it is.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ringflow_api::{Flow, FlowSet, Group, GroupOptions, Interest, Qos, Ready, SetError};
use ringflow_testkit::{thread_id, wait_until_blocked, Rng};

/// Flows in the large sets: far past the 127 words of flows one
/// `futex_waitv` takes, and within the descriptor limit of a test.
const FLOWS: usize = 300;

fn qos() -> Qos {
    Qos::data().with_ring_bytes(4096)
}

/// `FLOWS` pairs: the set's ends and their peers (their statistics in a
/// private runtime directory, removed at exit).
fn pairs() -> (Vec<Flow>, Vec<Flow>) {
    ringflow_testkit::isolate_runtime_dir();
    (0..FLOWS).map(|_| Flow::pair(&qos()).unwrap()).unzip()
}

/// Waits (blocking) for the set, from another thread, and hands the ready
/// entries back; `go` is told once the waiter is asleep.
fn wait_in_thread(mut set: FlowSet) -> (mpsc::Receiver<(FlowSet, Vec<Ready>)>, i32) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        tid_tx.send(thread_id()).unwrap();
        let mut ready = Vec::new();
        set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap();
        done_tx.send((set, ready)).unwrap();
    });
    (done_rx, tid_rx.recv().unwrap())
}

#[test]
fn a_large_set_wakes_for_the_one_flow_that_got_a_message() {
    let (ends, mut peers) = pairs();
    let mut set = FlowSet::new();
    let keys: Vec<usize> = ends.into_iter().map(|f| set.insert(f, Interest::Readable)).collect();
    let mut ready = Vec::new();
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
    let mut rng = Rng(0x5e7_1a26e);
    for round in 0..20 {
        let k = rng.below(FLOWS as u64) as usize;
        let (done, tid) = wait_in_thread(set);
        wait_until_blocked(tid);
        peers[k].send(&[round as u8; 16]).unwrap();
        let (back, ready) = done.recv_timeout(Duration::from_secs(60)).expect("the set never woke");
        set = back;
        assert_eq!(ready, [Ready { key: keys[k], readable: true, writable: false, closed: false }], "round {round}");
        let mut buf = [0u8; 16];
        assert_eq!(set.get_mut(keys[k]).unwrap().try_recv_into(&mut buf).unwrap(), 16);
        assert_eq!(buf, [round as u8; 16]);
    }
    // Nothing left to read anywhere: the set has nothing to report.
    assert!(matches!(set.wait_timeout(&mut ready, Duration::from_millis(10)), Err(SetError::TimedOut)));
}

#[test]
fn a_message_left_unread_is_reported_again_and_a_burst_reports_every_flow() {
    let (ends, mut peers) = pairs();
    let mut set = FlowSet::new();
    let keys: Vec<usize> = ends.into_iter().map(|f| set.insert(f, Interest::Readable)).collect();
    let mut ready = Vec::new();
    for k in [3, 150, 299] {
        peers[k].send(b"x").unwrap();
    }
    set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap();
    let mut got: Vec<usize> = ready.iter().map(|r| r.key).collect();
    got.sort_unstable();
    assert_eq!(got, [keys[3], keys[150], keys[299]]);
    // Unread, they stay ready.
    set.try_wait(&mut ready).unwrap();
    assert_eq!(ready.len(), 3);
    for k in [3, 150, 299] {
        let mut buf = [0u8; 1];
        set.get_mut(keys[k]).unwrap().try_recv_into(&mut buf).unwrap();
    }
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
}

#[test]
fn a_large_set_wakes_for_room_and_for_a_hang_up() {
    let (mut ends, peers) = pairs();
    for f in &mut ends {
        // Full: not writable until the peer reads.
        while f.try_send(&[1u8; 256]).is_ok() {}
    }
    let mut set = FlowSet::new();
    let keys: Vec<usize> = ends.into_iter().map(|f| set.insert(f, Interest::Writable)).collect();
    let mut peers: Vec<Option<Flow>> = peers.into_iter().map(Some).collect();
    let mut ready = Vec::new();
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
    // The peer of flow 77 reads everything: room.
    let (done, tid) = wait_in_thread(set);
    wait_until_blocked(tid);
    let peer = peers[77].as_mut().unwrap();
    let mut buf = [0u8; 256];
    while peer.try_recv_into(&mut buf).is_ok() {}
    let (back, ready) = done.recv_timeout(Duration::from_secs(60)).expect("room never woke the set");
    set = back;
    assert_eq!(ready, [Ready { key: keys[77], readable: false, writable: true, closed: false }]);
    set.get_mut(keys[77]).unwrap().set_send_window(None);
    while set.get_mut(keys[77]).unwrap().try_send(&[1u8; 256]).is_ok() {}
    // The peer of flow 200 goes away: the set wakes with it closed.
    let (done, tid) = wait_in_thread(set);
    wait_until_blocked(tid);
    drop(peers[200].take());
    let (_set, ready) = done.recv_timeout(Duration::from_secs(60)).expect("a hang-up never woke the set");
    assert_eq!(ready.len(), 1);
    assert!(ready[0].key == keys[200] && ready[0].closed, "{ready:?}");
}

#[test]
fn a_set_grows_past_the_futex_limit_and_shrinks_back() {
    let (ends, mut peers) = pairs();
    let mut set = FlowSet::new();
    let mut keys: Vec<usize> = ends.into_iter().map(|f| set.insert(f, Interest::Readable)).collect();
    let mut ready = Vec::new();
    peers[10].send(b"a").unwrap();
    set.try_wait(&mut ready).unwrap();
    assert_eq!(ready[0].key, keys[10]);
    // Down to 20 flows: futex_waitv again; the flow left unread is still ready.
    for k in keys.drain(20..) {
        assert!(set.remove(k).is_some());
    }
    set.try_wait(&mut ready).unwrap();
    assert_eq!(ready.iter().map(|r| r.key).collect::<Vec<_>>(), [keys[10]]);
    // A group member among many flows: past the words one futex_waitv takes.
    let (more, _more_peers): (Vec<Flow>, Vec<Flow>) = (0..200).map(|_| Flow::pair(&qos()).unwrap()).unzip();
    for f in more {
        set.insert(f, Interest::Both);
    }
    ringflow_testkit::isolate_runtime_dir();
    let opts = GroupOptions::new().log_capacity(1 << 16).max_message(4096).max_members(8).spin(Duration::ZERO);
    let group = Group::join("set-large", &opts).unwrap();
    set.insert_group(group, Interest::Readable);
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::TooMany { .. })));
}
