//! Encoding then decoding gives back every frame, however the bytes are
//! split on the way, with and without CRC32C.

use super::*;
use proptest::collection::vec;

proptest! {
    #[test]
    fn every_frame_round_trips(frame in any_frame(300), checksum in any_checksum()) {
        let bytes = encoded(&frame, checksum);
        prop_assert_eq!(bytes.len(), encoded_len(&frame.frame(), checksum).unwrap());
        let decoder = Decoder::default().crc_policy(match checksum {
            Checksum::None => CrcPolicy::Optional,
            Checksum::Crc32c => CrcPolicy::Required,
        });
        let (decoded, used) = decoder.decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(Owned::from_frame(&decoded), frame);
        prop_assert_eq!(decoder.frame_len(&bytes).unwrap(), Some(bytes.len()));
    }

    #[test]
    fn encode_into_writes_what_encode_appends(frame in any_frame(100), checksum in any_checksum(), slack in 0usize..8) {
        let expected = encoded(&frame, checksum);
        let mut buf = vec![0xAAu8; expected.len() + slack];
        let n = encode_into(&frame.frame(), checksum, &mut buf).unwrap();
        prop_assert_eq!(&buf[..n], &expected[..]);
        prop_assert!(buf[n..].iter().all(|&b| b == 0xAA), "wrote past the frame");
        // Appending keeps what was in the vector.
        let mut appended = vec![7u8; 3];
        encode(&frame.frame(), checksum, &mut appended).unwrap();
        prop_assert_eq!(&appended[..3], &[7u8; 3]);
        prop_assert_eq!(&appended[3..], &expected[..]);
    }

    #[test]
    fn a_short_buffer_is_refused_and_left_alone(frame in any_frame(100), checksum in any_checksum(), cut in 0usize..200) {
        let needed = encoded_len(&frame.frame(), checksum).unwrap();
        let short = cut.min(needed - 1);
        let mut buf = vec![0x55u8; short];
        prop_assert_eq!(
            encode_into(&frame.frame(), checksum, &mut buf),
            Err(EncodeError::BufferTooSmall { needed, available: short })
        );
        prop_assert!(buf.iter().all(|&b| b == 0x55));
    }

    #[test]
    fn data_prefix_and_trailer_frame_a_payload_in_place(
        flow_id in any::<u32>(),
        seq in any::<u64>(),
        payload in vec(any::<u8>(), 0..300),
        checksum in any_checksum(),
    ) {
        let expected = encoded(&Owned::Data { flow_id, seq, stamp: 0, call: CallMark::Plain, payload: payload.clone() }, checksum);
        let prefix = data_prefix(flow_id, seq, payload.len(), checksum).unwrap();
        let mut gathered = prefix.to_vec();
        gathered.extend_from_slice(&payload);
        if checksum == Checksum::Crc32c {
            gathered.extend_from_slice(&data_crc(&prefix, &payload));
        }
        prop_assert_eq!(gathered, expected);
    }

    /// A stream of frames cut into random pieces, fed to a receive loop that
    /// keeps the unconsumed tail: the same frames come out, in order.
    #[test]
    fn random_splits_give_the_same_frames(
        frames in vec((any_frame(200), any_checksum()), 0..20),
        cuts in vec(0usize..64, 0..40),
    ) {
        let mut stream = Vec::new();
        for (frame, checksum) in &frames {
            encode(&frame.frame(), *checksum, &mut stream).unwrap();
        }
        let decoder = Decoder::default();
        let mut rx = Vec::new();
        let mut out = Vec::new();
        let mut rest = &stream[..];
        for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
            let (piece, tail) = rest.split_at(cut.min(rest.len()));
            rest = tail;
            rx.extend_from_slice(piece);
            drain_frames(&decoder, &mut rx, |f| out.push(Owned::from_frame(&f)));
        }
        prop_assert!(rx.is_empty(), "{} bytes left undecoded", rx.len());
        let expected: Vec<Owned> = frames.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_frames(frames in vec((any_frame(40), any_checksum()), 1..8)) {
        let mut stream = Vec::new();
        for (frame, checksum) in &frames {
            encode(&frame.frame(), *checksum, &mut stream).unwrap();
        }
        let decoder = Decoder::default();
        let mut rx = Vec::new();
        let mut out = Vec::new();
        for &b in &stream {
            rx.push(b);
            drain_frames(&decoder, &mut rx, |f| out.push(Owned::from_frame(&f)));
        }
        prop_assert!(rx.is_empty());
        let expected: Vec<Owned> = frames.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(out, expected);
    }

    /// A datagram holding several whole frames.
    #[test]
    fn frames_of_a_datagram(frames in vec((any_frame(60), any_checksum()), 0..6)) {
        let mut datagram = Vec::new();
        for (frame, checksum) in &frames {
            encode(&frame.frame(), *checksum, &mut datagram).unwrap();
        }
        let decoded: Vec<Owned> =
            Decoder::default().frames(&datagram).map(|f| Owned::from_frame(&f.unwrap())).collect();
        let expected: Vec<Owned> = frames.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(decoded, expected);
    }
}

#[test]
fn decoded_data_borrows_its_payload_from_the_buffer() {
    let bytes = encoded(
        &Owned::Data { flow_id: 1, seq: 2, stamp: 0, call: CallMark::Plain, payload: vec![9; 64] },
        Checksum::None,
    );
    let Some((Frame::Data { payload, .. }, _)) = Decoder::default().decode(&bytes).unwrap() else {
        panic!("not a data frame");
    };
    let range = bytes.as_ptr_range();
    assert!(range.contains(&payload.as_ptr()), "payload was copied");
}

#[test]
fn layout_is_pinned() {
    // Peers built from other revisions must agree on these bytes.
    let ack = encoded(&Owned::Ack { flow_id: 0x0102_0304, cumulative_seq: 5 }, Checksum::None);
    assert_eq!(ack, [12, 0, 0, 0, 4, 0, 0, 0, 4, 3, 2, 1, 5, 0, 0, 0, 0, 0, 0, 0]);
    let keepalive = encoded(&Owned::Keepalive { ts_ns: 1 }, Checksum::Crc32c);
    assert_eq!(&keepalive[..8], &[8, 0, 0, 0, 6, FLAG_CRC32C, 0, 0]);
    let crc = crc32c(0, &keepalive[..16]);
    assert_eq!(&keepalive[16..], &crc.to_le_bytes());
    assert_eq!(HEADER_LEN, 8);
    assert_eq!(DATA_PREFIX_LEN, 20);
    let open = Owned::Open { flow_id: 7, name: "ab".into(), qos: [3; QOS_LEN] };
    let open = encoded(&open, Checksum::None);
    assert_eq!(open.len(), HEADER_LEN + 4 + QOS_LEN + 1 + 2);
    assert_eq!(&open[open.len() - 3..], &[2, b'a', b'b']);
}

#[test]
fn a_qos_travels_opaquely_and_decodes_on_the_far_side() {
    let qos = crate::flow::Qos::data().with_max_msg(4096);
    let open = Owned::Open { flow_id: 1, name: "orders".into(), qos: qos.encode() };
    let bytes = encoded(&open, Checksum::Crc32c);
    let Some((Frame::Open { qos: wire_qos, .. }, _)) = Decoder::default().decode(&bytes).unwrap() else {
        panic!("not an open frame");
    };
    assert_eq!(crate::flow::Qos::decode(&wire_qos), Ok(qos));
}

#[test]
fn encode_refuses_what_the_decoder_would() {
    for (name, err) in [
        ("", crate::control::NameError::Empty),
        ("a/b", crate::control::NameError::PathSeparator),
        ("..", crate::control::NameError::Reserved),
        ("a\nb", crate::control::NameError::ControlChar),
    ] {
        let open = Frame::Open { flow_id: 1, name, qos: [0; QOS_LEN] };
        assert_eq!(encode(&open, Checksum::None, &mut Vec::new()), Err(EncodeError::BadName(err.clone())));
        assert_eq!(encoded_len(&open, Checksum::None), Err(EncodeError::BadName(err)));
    }
    let long = "n".repeat(200);
    let open = Frame::Open { flow_id: 1, name: &long, qos: [0; QOS_LEN] };
    assert!(matches!(encode_into(&open, Checksum::None, &mut [0; 512]), Err(EncodeError::BadName(_))));
    let mut out = vec![1, 2];
    assert!(encode(&open, Checksum::None, &mut out).is_err());
    assert_eq!(out, [1, 2], "a refused frame leaves the vector as it was");
}

#[cfg(target_pointer_width = "64")]
#[test]
fn data_too_large_for_the_length_field_is_refused() {
    let len = u32::MAX as usize;
    assert_eq!(
        data_prefix(1, 1, len, Checksum::None),
        Err(EncodeError::TooLarge { body_len: len + DATA_PREFIX_LEN - HEADER_LEN })
    );
    assert!(data_prefix(1, 1, len - (DATA_PREFIX_LEN - HEADER_LEN), Checksum::None).is_ok());
}

#[test]
fn errors_display() {
    let e = WireError::FrameTooLong { len: u32::MAX, max: 1024 };
    assert_eq!(e.to_string(), "frame body of 4294967295 bytes exceeds the limit of 1024");
    let e = EncodeError::BufferTooSmall { needed: 30, available: 20 };
    assert_eq!(e.to_string(), "frame needs 30 bytes, the buffer has 20");
    let e = WireError::BodyTooShort { kind: Kind::Ack, len: 3, min: 12 };
    assert_eq!(e.to_string(), "Ack frame body is 3 bytes, its fields need 12");
}

#[test]
fn stamped_data_frames_carry_their_stamp_and_unstamped_ones_cost_nothing() {
    let plain = Frame::Data { flow_id: 3, seq: 9, stamp: 0, call: CallMark::Plain, payload: b"abc" };
    let stamped = Frame::Data { flow_id: 3, seq: 9, stamp: 0x00AB_CDEF_0123, call: CallMark::Plain, payload: b"abc" };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    encode(&plain, Checksum::None, &mut a).unwrap();
    encode(&stamped, Checksum::Crc32c, &mut b).unwrap();
    assert_eq!(b.len(), a.len() + STAMP_LEN + CRC_LEN);
    assert_eq!(a[5], 0, "no flag without a stamp");
    assert_eq!(b[5], FLAG_CRC32C | FLAG_STAMP);
    let (back, _) = Decoder::default().decode(&b).unwrap().unwrap();
    assert_eq!(back, stamped);
    // The stamp flag on any other kind, or a stamped body too short for
    // its stamp, is refused.
    let mut ack = Vec::new();
    encode(&Frame::Ack { flow_id: 1, cumulative_seq: 1 }, Checksum::None, &mut ack).unwrap();
    ack[5] = FLAG_STAMP;
    assert!(matches!(Decoder::default().decode(&ack), Err(WireError::UnknownFlags(_))));
    let mut short = Vec::new();
    encode(&plain, Checksum::None, &mut short).unwrap();
    short[5] = FLAG_STAMP;
    short.truncate(HEADER_LEN + 12);
    short[..4].copy_from_slice(&12u32.to_le_bytes());
    assert!(matches!(Decoder::default().decode(&short), Err(WireError::BodyTooShort { .. })));
}

#[test]
fn a_calls_mark_travels_in_the_data_header_and_never_both_at_once() {
    for (call, flag) in [(CallMark::Plain, 0), (CallMark::Part, FLAG_CALL_PART), (CallMark::Turn, FLAG_CALL_TURN)] {
        let frame = Frame::Data { flow_id: 3, seq: 9, stamp: 5, call, payload: b"abc" };
        let mut bytes = Vec::new();
        encode(&frame, Checksum::None, &mut bytes).unwrap();
        assert_eq!(bytes[5], FLAG_STAMP | flag);
        let (back, _) = Decoder::default().decode(&bytes).unwrap().unwrap();
        assert_eq!(back, frame);
        assert_eq!(CallMark::from_flow_flags(call.flow_flags()), call);
    }
    let mut both = Vec::new();
    let frame = Frame::Data { flow_id: 3, seq: 9, stamp: 0, call: CallMark::Turn, payload: b"abc" };
    encode(&frame, Checksum::None, &mut both).unwrap();
    both[5] |= FLAG_CALL_PART;
    assert!(matches!(Decoder::default().decode(&both), Err(WireError::UnknownFlags(_))));
    // On any other kind the marks are unknown flags.
    let mut ack = Vec::new();
    encode(&Frame::Ack { flow_id: 1, cumulative_seq: 1 }, Checksum::None, &mut ack).unwrap();
    ack[5] = FLAG_CALL_TURN;
    assert!(matches!(Decoder::default().decode(&ack), Err(WireError::UnknownFlags(_))));
}
