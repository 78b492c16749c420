//! Latency recording: stamps injected at known distances in the past land
//! in the right buckets (lower bounds only: the test never assumes how
//! fast the machine is), and the switches turn recording off.

use crate::clock;
use crate::flow::Qos;

use super::{FlowEnd, FlowOptions};

/// Sends `msg` stamped as if published `ago_ns` ago (what `send` does,
/// with a chosen stamp).
fn send_stamped_ago(flow: &mut FlowEnd, msg: &[u8], ago_ns: u64) {
    let stamp = clock::now().wrapping_sub(clock::ns_to_ticks(ago_ns)) & clock::TICKS_MASK;
    send_with_stamp(flow, msg, stamp);
}

#[test]
fn injected_delays_land_in_their_buckets() {
    // FlowEnd::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let (mut a, mut b) = FlowEnd::pair(&Qos::default()).unwrap();
    const MS: u64 = 1_000_000;
    for _ in 0..10 {
        send_stamped_ago(&mut a, b"x", 2 * MS);
    }
    for _ in 0..5 {
        send_stamped_ago(&mut a, b"y", 3_000 * MS);
    }
    let mut buf = [0u8; 8];
    for _ in 0..15 {
        b.recv_into(&mut buf).unwrap();
    }
    let h = b.stats().latency;
    assert_eq!(h.len(), 15);
    // Every value is at least its injected delay...
    assert!(h.min() >= h.lowest_equivalent(2 * MS), "min {}", h.min());
    assert!(h.max() >= h.lowest_equivalent(3_000 * MS), "max {}", h.max());
    // ...and the two groups stay apart: a third of the samples at or
    // above 3 s, the rest below it.
    assert_eq!(h.count_between(3_000 * MS, u64::MAX), 5);
    assert!(h.value_at_quantile(0.5) >= h.lowest_equivalent(2 * MS));
    assert!(h.value_at_quantile(0.5) < 3_000 * MS);
    // The sender's side recorded nothing and counted what it sent.
    let sa = a.stats();
    assert_eq!((sa.sent, sa.latency.len(), sa.bytes_sent), (15, 0, 15));
    assert_eq!(b.stats().bytes_received, 15);
    // Reset empties the histogram, counters stay.
    b.reset_latency();
    let sb = b.stats();
    assert_eq!((sb.latency.len(), sb.received), (0, 15));
}

/// Sends `msg` with the send stamp `stamp` (0: unstamped).
fn send_with_stamp(flow: &mut FlowEnd, msg: &[u8], stamp: u64) {
    let mut c = flow.sides.get().tx.try_claim(msg.len()).expect("room");
    c.payload_mut().copy_from_slice(msg);
    c.set_meta(stamp);
    let _ = c.commit();
    super::send::count_sent(&flow.slot, msg.len());
}

#[test]
fn a_batch_records_each_run_of_stamps_and_counts_the_unstamped() {
    // FlowEnd::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let (mut a, mut b) = FlowEnd::pair(&Qos::default()).unwrap();
    const MS: u64 = 1_000_000;
    let ago = |ns: u64| clock::now().wrapping_sub(clock::ns_to_ticks(ns)) & clock::TICKS_MASK;
    let (near, far) = (ago(2 * MS), ago(3_000 * MS));
    // Runs of equal stamps (a batch's messages share one), and unstamped
    // messages first, between runs and last: one receive batch takes all.
    for stamp in [0, near, near, near, far, far, 0, near, 0] {
        send_with_stamp(&mut a, b"z", stamp);
    }
    assert_eq!(b.try_recv_batch(usize::MAX, |m| assert_eq!(m, b"z")).unwrap(), 9);
    let s = b.stats();
    assert_eq!((s.latency.len(), s.unstamped, s.received), (6, 3, 9));
    let h = s.latency;
    assert!(h.min() >= h.lowest_equivalent(2 * MS), "min {}", h.min());
    assert_eq!(h.count_between(3_000 * MS, u64::MAX), 2);
}

#[test]
fn every_receive_form_records_and_zero_copy_sends_are_stamped() {
    // FlowEnd::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let (mut a, mut b) = FlowEnd::pair(&Qos::default()).unwrap();
    a.send(b"copy").unwrap();
    let mut loan = a.loan(4).unwrap();
    loan.copy_from_slice(b"loan");
    loan.send().unwrap();
    a.send_vectored(&[b"ve", b"ct"]).unwrap();
    drop(b.recv_ref().unwrap());
    let mut buf = [0u8; 8];
    b.recv_into(&mut buf).unwrap();
    b.recv_fds(&mut buf, &mut []).unwrap();
    let s = b.stats();
    assert_eq!((s.received, s.latency.len(), s.unstamped), (3, 3, 0));
}

#[test]
fn recording_off_stamps_and_records_nothing() {
    // Flow::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let opts = || FlowOptions::new().latency(false);
    let (mut a, mut b) = FlowEnd::pair_with(&Qos::default(), opts()).unwrap();
    assert!(!a.records_latency());
    a.send(b"x").unwrap();
    let mut buf = [0u8; 8];
    b.recv_into(&mut buf).unwrap();
    let s = b.stats();
    assert_eq!((s.received, s.latency.len(), s.unstamped), (1, 0, 0));

    // A receiver that records, from a sender that does not stamp: counted
    // as unstamped, never recorded as a made-up latency.
    let (mut a, mut b) = FlowEnd::pair(&Qos::default()).unwrap();
    a.latency = false;
    a.send(b"x").unwrap();
    b.recv_into(&mut buf).unwrap();
    let s = b.stats();
    assert_eq!((s.latency.len(), s.unstamped), (0, 1));
}

/// The last message's latency waits for the receiver's next call before it
/// reaches the shared histogram (`ringflow stat`), and `stats` counts it in
/// meanwhile, exactly once.
#[test]
fn the_last_latency_reaches_shared_memory_at_the_next_look() {
    // Flow::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    use crate::stats::{FlowCounter, FLOW_LATENCY};
    let (mut a, mut b) = FlowEnd::pair(&Qos::default()).unwrap();
    let shared =
        |f: &FlowEnd| (f.slot.hist(FLOW_LATENCY).snapshot().len(), f.slot.get(FlowCounter::Unstamped as usize));
    for _ in 0..3 {
        a.send(b"x").unwrap();
    }
    let mut buf = [0u8; 8];
    for _ in 0..3 {
        b.recv_into(&mut buf).unwrap();
    }
    assert_eq!(shared(&b), (2, 0));
    assert_eq!(b.stats().latency.len(), 3);
    assert!(matches!(b.try_recv_into(&mut buf), Err(crate::flow::error::RecvError::WouldBlock)));
    assert_eq!(shared(&b), (3, 0));
    assert_eq!(b.stats().latency.len(), 3);

    // An unstamped message likewise, as a count.
    a.latency = false;
    a.send(b"x").unwrap();
    b.recv_into(&mut buf).unwrap();
    assert_eq!(shared(&b), (3, 0));
    assert_eq!((b.stats().latency.len(), b.stats().unstamped), (3, 1));
    assert!(matches!(b.try_recv_into(&mut buf), Err(crate::flow::error::RecvError::WouldBlock)));
    assert_eq!(shared(&b), (3, 1));
    assert_eq!(b.stats().unstamped, 1);

    // A reset starts a new interval: the pending one belonged to the old.
    a.latency = true;
    a.send(b"x").unwrap();
    b.recv_into(&mut buf).unwrap();
    b.reset_latency();
    assert!(matches!(b.try_recv_into(&mut buf), Err(crate::flow::error::RecvError::WouldBlock)));
    assert_eq!((shared(&b).0, b.stats().latency.len()), (0, 0));
}

/// The quick empty look (`FlowEnd::idle`) of the in-place receive and of a
/// call's receive is taken only when nothing is due: the first look after
/// a message still records its latency and hands its room back, and only
/// the looks after it return at once, changing nothing.
#[test]
fn an_empty_look_records_and_hands_room_back_before_it_idles() {
    ringflow_testkit::isolate_runtime_dir();
    use crate::flow::call::{CallError, Phase};
    use crate::flow::error::RecvError;
    use crate::stats::FLOW_LATENCY;
    use crate::Deadline;
    let (mut a, mut b) = FlowEnd::pair(&Qos::data()).unwrap();
    let recorded = |f: &FlowEnd| f.slot.hist(FLOW_LATENCY).snapshot().len();
    let room = |f: &FlowEnd| f.sides.tx().0.free_bytes();
    let (whole, whole_b) = (room(&a), room(&b));

    // Plain messages, received in place.
    a.try_send(b"ping").unwrap();
    assert_eq!(&*b.try_recv_ref().unwrap(), b"ping");
    assert_eq!((recorded(&b), room(&a) < whole), (0, true), "recorded and released at the next look only");
    assert!(!b.idle(), "a latency is pending and the frame's room unreleased");
    assert!(matches!(b.try_recv_ref(), Err(RecvError::WouldBlock)));
    assert_eq!((recorded(&b), room(&a)), (1, whole));
    assert!(b.idle());
    for _ in 0..3 {
        assert!(matches!(b.try_recv_ref(), Err(RecvError::WouldBlock)));
    }
    assert_eq!((recorded(&b), room(&a)), (1, whole));

    // A call: the server's look for the next request after its reply
    // records the request's latency and releases it; the client's look
    // after the reply does the same for the reply.
    let mut buf = [0u8; 8];
    assert!(matches!(
        a.call_deadline(b"req", &mut buf, Deadline::Now),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 3, received: 0 })
    ));
    assert_eq!(b.receive_request_deadline(&mut buf, Deadline::Now).unwrap(), 3);
    assert!(matches!(
        b.reply_and_receive_deadline(b"rep", &mut buf, Deadline::Now),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 3, received: 0 })
    ));
    assert_eq!((recorded(&b), room(&a)), (2, whole));
    assert!(b.idle());
    assert_eq!(a.receive_more_deadline(&mut buf, Deadline::Now).unwrap(), 3);
    assert_eq!(&buf[..3], b"rep");
    assert!(a.holds_turn());
    assert_eq!(recorded(&a), 0);
    // The client's next call's look records the reply's latency.
    assert!(matches!(
        a.call_deadline(b"req", &mut buf, Deadline::Now),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 3, received: 0 })
    ));
    assert_eq!((recorded(&a), room(&b)), (1, whole_b));
    assert!(matches!(
        a.receive_more_deadline(&mut buf, Deadline::Now),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 3, received: 0 })
    ));
}
