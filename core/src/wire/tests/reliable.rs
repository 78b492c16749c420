//! Reliable-flow sequencing: the retransmit window's bounds, the receiver's
//! handling of duplicates and gaps, and a simulated connection cut at random
//! points and resumed, which must deliver every message exactly once, in
//! order.

use super::*;
use proptest::collection::vec;
use std::collections::VecDeque;

fn window(max_bytes: usize, max_messages: usize) -> SendWindow {
    SendWindow::new(7, WindowLimits { max_bytes, max_messages })
}

fn payloads(resend: Resend<'_>) -> Vec<(u64, Vec<u8>)> {
    resend
        .map(|f| match f {
            Frame::Data { flow_id: 7, seq, payload, .. } => (seq, payload.to_vec()),
            other => panic!("resent {other:?}"),
        })
        .collect()
}

#[test]
fn window_full_at_the_byte_limit_and_free_after_ack() {
    let mut w = window(100, 16);
    assert!(matches!(w.push(&[1; 40]), Ok(Frame::Data { seq: 1, .. })));
    assert!(matches!(w.push(&[2; 40]), Ok(Frame::Data { seq: 2, .. })));
    assert_eq!(w.push(&[3; 40]), Err(PushError::WindowFull { in_flight_bytes: 80, in_flight_messages: 2 }));
    assert_eq!(w.push(&[3; 101]), Err(PushError::TooLarge { len: 101, max: 100 }));
    assert_eq!(w.on_ack(1), Ok(1));
    // Fits before the first 40 bytes now that they are free.
    assert!(matches!(w.push(&[3; 40]), Ok(Frame::Data { seq: 3, .. })));
    assert_eq!(w.in_flight_bytes(), 80);
    assert_eq!(payloads(w.unacked()), vec![(2, vec![2; 40]), (3, vec![3; 40])]);
    assert_eq!(w.on_ack(3), Ok(2));
    assert!(w.is_drained());
    // Empty, a message as large as the whole window fits.
    assert!(w.push(&[4; 100]).is_ok());
}

#[test]
fn window_full_at_the_message_limit() {
    let mut w = window(1024, 3);
    for _ in 0..3 {
        w.push(&[]).unwrap();
    }
    assert_eq!(w.push(&[]), Err(PushError::WindowFull { in_flight_bytes: 0, in_flight_messages: 3 }));
    w.on_ack(1).unwrap();
    assert!(w.push(&[]).is_ok());
}

#[test]
fn acks_and_resume_points_are_checked() {
    let mut w = window(1024, 16);
    for i in 0..5u8 {
        w.push(&[i]).unwrap();
    }
    assert_eq!(w.on_ack(6), Err(AckError::AheadOfSent { ack: 6, last_sent: 5 }));
    assert_eq!(w.on_ack(2), Ok(2));
    assert_eq!(w.on_ack(1), Ok(0), "an older ack frees nothing");
    assert_eq!(w.acked(), 2);
    assert_eq!(w.resume_from(7).unwrap_err(), AckError::ResumeAheadOfSent { next_expected: 7, last_sent: 5 });
    assert_eq!(w.resume_from(2).unwrap_err(), AckError::ResumeBehindAck { next_expected: 2, acked: 2 });
    assert_eq!(w.resume_from(0).unwrap_err(), AckError::ResumeBehindAck { next_expected: 0, acked: 2 });
    assert_eq!(payloads(w.resume_from(4).unwrap()), vec![(4, vec![3]), (5, vec![4])]);
    assert_eq!(w.resume_from(6).unwrap().len(), 0, "the receiver has everything");
    // Resuming does not free: received is not consumed.
    assert_eq!(w.in_flight_messages(), 3);
    assert_eq!(w.close_frame(), Frame::Close { flow_id: 7, last_seq: 5 });
}

#[test]
fn duplicates_are_dropped_and_gaps_refused() {
    let mut r = RecvSequencer::reliable(7);
    assert_eq!(r.accept(1), Ok(Delivery::InOrder));
    assert_eq!(r.accept(2), Ok(Delivery::InOrder));
    assert_eq!(r.accept(2), Ok(Delivery::Stale));
    assert_eq!(r.accept(1), Ok(Delivery::Stale));
    assert_eq!(r.accept(0), Ok(Delivery::Stale));
    assert_eq!(r.accept(4), Err(SequenceError::Gap { expected: 3, got: 4 }));
    assert_eq!(r.next_expected(), 3, "a refused message changes nothing");
    assert_eq!(r.accept(3), Ok(Delivery::InOrder));
    assert_eq!(r.resume_frame(), Frame::Resume { flow_id: 7, next_expected_seq: 4 });
    assert_eq!(r.ack_frame(3), Ok(Frame::Ack { flow_id: 7, cumulative_seq: 3 }));
    assert_eq!(r.ack_frame(4), Err(SequenceError::AckAheadOfReceived { ack: 4, received: 3 }));
    assert_eq!(r.on_close(5), Err(SequenceError::CloseMismatch { last_seq: 5, received: 3 }));
    assert_eq!(r.on_close(3), Ok(()));
    assert_eq!(r.lost(), 0);
}

#[test]
fn lossy_flows_count_gaps() {
    let mut r = RecvSequencer::lossy(7);
    assert_eq!(r.accept(1), Ok(Delivery::InOrder));
    assert_eq!(r.accept(4), Ok(Delivery::AfterGap { missed: 2 }));
    assert_eq!(r.accept(3), Ok(Delivery::Stale));
    assert_eq!(r.lost(), 2);
    assert_eq!(r.on_close(6), Ok(()));
    assert_eq!(r.lost(), 4);
    assert_eq!(r.accept(u64::MAX), Err(SequenceError::Exhausted));
}

proptest! {
    /// Random pushes and acks against a plain queue of copies: the window
    /// keeps exactly the unacknowledged payloads, byte for byte, and never
    /// refuses a message when it is empty.
    #[test]
    fn window_holds_exactly_the_unacked_payloads(
        max_bytes in 1usize..300,
        ops in vec((any::<bool>(), 0usize..120, any::<u8>()), 1..200),
    ) {
        let mut w = window(max_bytes, 32);
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        for (push, n, fill) in ops {
            if push {
                let payload = vec![fill; n];
                let was_empty = w.is_drained();
                match w.push(&payload) {
                    Ok(Frame::Data { seq, payload: p, .. }) => {
                        prop_assert_eq!(p, &payload[..]);
                        model.push_back((seq, payload));
                    }
                    Ok(other) => prop_assert!(false, "push returned {other:?}"),
                    Err(PushError::TooLarge { .. }) => prop_assert!(n > max_bytes),
                    Err(e) => prop_assert!(!was_empty, "refused {e:?} into an empty window"),
                }
            } else if !model.is_empty() {
                let k = n % model.len() + 1;
                let upto = model[k - 1].0;
                prop_assert_eq!(w.on_ack(upto), Ok(k));
                model.drain(..k);
            }
            prop_assert_eq!(payloads(w.unacked()), Vec::from(model.clone()));
            prop_assert_eq!(w.in_flight_bytes(), model.iter().map(|(_, p)| p.len()).sum::<usize>());
            prop_assert!(w.in_flight_bytes() <= max_bytes);
        }
    }
}

/// Both ends of one reliable flow and the connection between them.
struct Sim {
    rng: Rng,
    sender: SendWindow,
    receiver: RecvSequencer,
    decoder: Decoder,
    checksum: Checksum,
    /// Bytes in flight on the current connection, each way.
    to_receiver: Vec<u8>,
    to_sender: Vec<u8>,
    /// Bytes arrived but not yet decoded, each side.
    receiver_rx: Vec<u8>,
    sender_rx: Vec<u8>,
    /// After a reconnect the sender sends nothing new until `Resume`.
    awaiting_resume: bool,
    /// Resend everything unacknowledged at once instead of waiting.
    sender_led: bool,
    next_msg: usize,
    delivered: Vec<Vec<u8>>,
    consumed: u64,
    duplicates: usize,
}

impl Sim {
    fn push_some(&mut self, msgs: &[Vec<u8>]) {
        if self.awaiting_resume {
            return;
        }
        for _ in 0..1 + self.rng.below(4) {
            let Some(msg) = msgs.get(self.next_msg) else { return };
            match self.sender.push(msg) {
                Ok(frame) => encode(&frame, self.checksum, &mut self.to_receiver).unwrap(),
                Err(PushError::WindowFull { .. }) => return,
                Err(e) => panic!("{e}"),
            };
            self.next_msg += 1;
        }
    }

    fn carry_to_receiver(&mut self) {
        let n = self.rng.below(self.to_receiver.len() + 1);
        self.receiver_rx.extend(self.to_receiver.drain(..n));
        let (receiver, delivered, duplicates) = (&mut self.receiver, &mut self.delivered, &mut self.duplicates);
        drain_frames(&self.decoder, &mut self.receiver_rx, |frame| match frame {
            Frame::Data { seq, payload, .. } => match receiver.accept(seq).unwrap() {
                Delivery::InOrder => delivered.push(payload.to_vec()),
                Delivery::Stale => *duplicates += 1,
                Delivery::AfterGap { .. } => panic!("a reliable flow skipped"),
            },
            other => panic!("receiver got {other:?}"),
        });
    }

    /// The application consumes some of what arrived; the receiver acks it.
    fn consume_and_ack(&mut self) {
        let received = self.receiver.received();
        self.consumed += self.rng.below((received - self.consumed) as usize + 1) as u64;
        let ack = self.receiver.ack_frame(self.consumed).unwrap();
        encode(&ack, self.checksum, &mut self.to_sender).unwrap();
    }

    fn carry_to_sender(&mut self) {
        let n = self.rng.below(self.to_sender.len() + 1);
        self.sender_rx.extend(self.to_sender.drain(..n));
        let mut resume_at = None;
        let sender = &mut self.sender;
        drain_frames(&self.decoder, &mut self.sender_rx, |frame| match frame {
            Frame::Ack { cumulative_seq, .. } => {
                sender.on_ack(cumulative_seq).unwrap();
            }
            Frame::Resume { next_expected_seq, .. } => resume_at = Some(next_expected_seq),
            other => panic!("sender got {other:?}"),
        });
        if let Some(next) = resume_at {
            if self.awaiting_resume {
                for frame in self.sender.resume_from(next).unwrap() {
                    encode(&frame, self.checksum, &mut self.to_receiver).unwrap();
                }
                self.awaiting_resume = false;
            }
        }
    }

    /// The connection drops, bytes in flight and half-read frames with it;
    /// a new one starts with the receiver's `Resume`.
    fn cut_and_reconnect(&mut self) {
        for buf in [&mut self.to_receiver, &mut self.to_sender, &mut self.receiver_rx, &mut self.sender_rx] {
            buf.clear();
        }
        encode(&self.receiver.resume_frame(), self.checksum, &mut self.to_sender).unwrap();
        if self.sender_led {
            for frame in self.sender.unacked() {
                encode(&frame, self.checksum, &mut self.to_receiver).unwrap();
            }
        } else {
            self.awaiting_resume = true;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn cut_and_resume_delivers_every_message_once_in_order(
        msgs in vec(vec(any::<u8>(), 0..48), 1..150),
        max_bytes in 48usize..400,
        seed in any::<u64>(),
        sender_led in any::<bool>(),
        crc in any::<bool>(),
        cut_odds in 5usize..60,
    ) {
        let mut sim = Sim {
            rng: Rng::new(seed),
            sender: SendWindow::new(7, WindowLimits { max_bytes, max_messages: 64 }),
            receiver: RecvSequencer::reliable(7),
            decoder: Decoder::default(),
            checksum: if crc { Checksum::Crc32c } else { Checksum::None },
            to_receiver: Vec::new(),
            to_sender: Vec::new(),
            receiver_rx: Vec::new(),
            sender_rx: Vec::new(),
            awaiting_resume: false,
            sender_led,
            next_msg: 0,
            delivered: Vec::new(),
            consumed: 0,
            duplicates: 0,
        };
        // A stormy phase with cuts, then a calm one that must finish.
        for step in 0..20_000 {
            let calm = step >= 600;
            if calm && sim.delivered.len() == msgs.len() && sim.consumed == msgs.len() as u64 && sim.sender.is_drained() {
                break;
            }
            match sim.rng.below(if calm { 4 } else { cut_odds }) {
                0 => sim.push_some(&msgs),
                1 => sim.carry_to_receiver(),
                2 => sim.consume_and_ack(),
                3 => sim.carry_to_sender(),
                4 => sim.cut_and_reconnect(),
                _ => match sim.rng.below(4) {
                    0 => sim.push_some(&msgs),
                    1 => sim.carry_to_receiver(),
                    2 => sim.consume_and_ack(),
                    _ => sim.carry_to_sender(),
                },
            }
        }
        prop_assert_eq!(sim.delivered.len(), msgs.len(), "not everything arrived");
        prop_assert_eq!(&sim.delivered, &msgs);
        prop_assert!(sim.sender.is_drained());
        prop_assert_eq!(sim.receiver.on_close(sim.sender.last_sent()), Ok(()));
        if !sender_led {
            prop_assert_eq!(sim.duplicates, 0, "waiting for Resume resends nothing twice");
        }
    }
}
