//! The wire codec's hot path allocates nothing: decoding a stream (frames
//! borrow from the buffer), encoding into a caller's buffer, pushing into and
//! acknowledging a retransmit window, replaying it after a reconnect, and
//! sequencing on the receiver, all under a counting allocator that counts
//! this thread's allocations only. It also shows that the public API is
//! enough to drive a flow end to end.

use ringflow_core::wire::{
    encode, encode_into, Checksum, CrcPolicy, Decoder, Delivery, Frame, RecvSequencer, SendWindow, WindowLimits,
    HEADER_LEN,
};

#[global_allocator]
static GLOBAL: ringflow_testkit::ThreadCounting = ringflow_testkit::ThreadCounting;

use ringflow_testkit::thread_allocs as allocs;

#[test]
fn the_data_path_allocates_nothing() {
    const MESSAGES: usize = 2_000;
    let mut window = SendWindow::new(3, WindowLimits { max_bytes: 64 << 10, max_messages: 256 });
    let mut receiver = RecvSequencer::reliable(3);
    let decoder = Decoder::new(1 << 20).crc_policy(CrcPolicy::Required);
    // The engine's registered buffers: one to send from, one to receive into.
    let mut wire = vec![0u8; 256 << 10];
    let mut ack_buf = [0u8; 64];
    let payload: Vec<u8> = (0..1500).map(|i| i as u8).collect();
    let mut delivered = 0usize;
    let mut delivered_bytes = 0usize;

    let before = allocs();
    let mut sent = 0;
    while delivered < MESSAGES {
        // Send a batch into the wire buffer.
        let mut filled = 0;
        while sent < MESSAGES {
            let len = sent % payload.len();
            let Ok(frame) = window.push(&payload[..len]) else { break };
            filled += encode_into(&frame, Checksum::Crc32c, &mut wire[filled..]).unwrap();
            sent += 1;
        }
        // Now and then a reconnect: replay everything unacknowledged.
        if sent % 3 == 0 {
            for frame in window.resume_from(receiver.next_expected()).unwrap() {
                filled += encode_into(&frame, Checksum::Crc32c, &mut wire[filled..]).unwrap();
            }
        }
        // Receive it all, zero-copy.
        let mut at = 0;
        while let Some((frame, used)) = decoder.decode(&wire[at..filled]).unwrap() {
            let Frame::Data { seq, payload: p, .. } = frame else { panic!("{frame:?}") };
            if receiver.accept(seq).unwrap() == Delivery::InOrder {
                assert_eq!(p, &payload[..delivered % payload.len()]);
                delivered += 1;
                delivered_bytes += p.len();
            }
            at += used;
        }
        assert_eq!(at, filled);
        // Acknowledge, through the wire too.
        let ack = receiver.ack_frame(receiver.received()).unwrap();
        let n = encode_into(&ack, Checksum::Crc32c, &mut ack_buf).unwrap();
        let (Frame::Ack { cumulative_seq, .. }, _) = decoder.decode(&ack_buf[..n]).unwrap().unwrap() else {
            panic!("not an ack")
        };
        window.on_ack(cumulative_seq).unwrap();
    }
    let during = allocs() - before;

    assert_eq!(during, 0, "{during} allocations on the data path");
    assert!(window.is_drained());
    assert!(delivered_bytes > 0);
}

#[test]
fn encoding_into_a_vector_allocates_only_to_grow_it() {
    let mut out = Vec::with_capacity(4096);
    let frame =
        Frame::Data { flow_id: 1, seq: 1, stamp: 0, call: ringflow_core::wire::CallMark::Plain, payload: &[5; 1000] };
    let before = allocs();
    for _ in 0..3 {
        encode(&frame, Checksum::None, &mut out).unwrap();
    }
    assert_eq!(allocs() - before, 0);
    assert_eq!(out.len(), 3 * (HEADER_LEN + 12 + 1000));
}
