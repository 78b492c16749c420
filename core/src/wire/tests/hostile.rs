//! The decoder against hostile bytes: garbage, truncations, bit flips,
//! forged lengths and each specific malformation. It must answer with an
//! error or "need more", never panic, never accept a frame that would not
//! encode to the very bytes it came from, and never ask the caller to buffer
//! more than its limit.

use super::*;
use crate::control::NameError;
use crate::wire::frame::{OPEN_ACK_LEN, OPEN_FIXED};
use proptest::collection::vec;

const SMALL_LIMIT: u32 = 4096;

/// A frame built field by field, valid or not.
fn raw(len: u32, kind: u8, flags: u8, reserved: u16, body: &[u8]) -> Vec<u8> {
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&reserved.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// `raw` with the CRC flag and a correct trailer.
fn raw_crc(len: u32, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = raw(len, kind, FLAG_CRC32C, 0, body);
    out.extend_from_slice(&crc32c(0, &out).to_le_bytes());
    out
}

fn open_body(name: &[u8], name_len: u8) -> Vec<u8> {
    let mut body = 9u32.to_le_bytes().to_vec();
    body.extend_from_slice(&[0; QOS_LEN]);
    body.push(name_len);
    body.extend_from_slice(name);
    body
}

fn decode(bytes: &[u8]) -> Result<Option<(Owned, usize)>, WireError> {
    Decoder::new(SMALL_LIMIT).decode(bytes).map(|o| o.map(|(f, n)| (Owned::from_frame(&f), n)))
}

/// Whatever the decoder says about `bytes`, it must be self-consistent.
fn check_any_input(decoder: &Decoder, bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(Some(total)) = decoder.frame_len(bytes) {
        prop_assert!(total <= decoder.max_frame_len() as usize + HEADER_LEN + CRC_LEN, "asks to buffer {total}");
    }
    if let Ok(Some((frame, used))) = decoder.decode(bytes) {
        prop_assert!(used >= HEADER_LEN && used <= bytes.len());
        // Accepted frames are canonical: they encode to exactly those bytes.
        let checksum = if bytes[5] & FLAG_CRC32C != 0 { Checksum::Crc32c } else { Checksum::None };
        prop_assert_eq!(encoded(&Owned::from_frame(&frame), checksum), &bytes[..used]);
    }
    // Iteration over a whole buffer ends, and after an error yields nothing.
    let mut frames = decoder.frames(bytes);
    let mut steps = 0;
    while let Some(item) = frames.next() {
        steps += 1;
        prop_assert!(steps <= bytes.len() / HEADER_LEN + 1, "no progress");
        if item.is_err() {
            prop_assert!(frames.next().is_none());
            break;
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn garbage_is_never_accepted_as_anything_but_a_canonical_frame(bytes in vec(any::<u8>(), 0..512)) {
        check_any_input(&Decoder::new(SMALL_LIMIT), &bytes)?;
        check_any_input(&Decoder::new(SMALL_LIMIT).crc_policy(CrcPolicy::Required), &bytes)?;
    }

    /// Garbage behind a plausible header reaches the body checks.
    #[test]
    fn garbage_bodies_behind_plausible_headers(
        kind in 0u8..=10,
        flags in prop_oneof![Just(0u8), Just(FLAG_CRC32C)],
        body in vec(any::<u8>(), 0..120),
        extra in 0u32..3,
    ) {
        let bytes = raw(body.len() as u32 + extra, kind, flags, 0, &body);
        check_any_input(&Decoder::new(SMALL_LIMIT), &bytes)?;
    }

    #[test]
    fn every_truncation_needs_more_bytes(frame in any_frame(64), checksum in any_checksum()) {
        let bytes = encoded(&frame, checksum);
        let decoder = Decoder::default();
        for cut in 0..bytes.len() {
            prop_assert_eq!(decoder.decode(&bytes[..cut]), Ok(None), "cut at {}", cut);
            let mut frames = decoder.frames(&bytes[..cut]);
            if cut > 0 {
                let needed = if cut < HEADER_LEN { HEADER_LEN } else { bytes.len() };
                prop_assert_eq!(frames.next(), Some(Err(WireError::Truncated { needed, have: cut })));
            }
            prop_assert_eq!(frames.next(), None);
        }
    }

    /// With CRC32C on, no single-bit error passes as a valid frame.
    #[test]
    fn single_bit_flips_are_caught_with_crc(frame in any_frame(48)) {
        let bytes = encoded(&frame, Checksum::Crc32c);
        let required = Decoder::default().crc_policy(CrcPolicy::Required);
        let optional = Decoder::default();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            match required.decode(&flipped) {
                Ok(None) | Err(_) => {}
                Ok(Some((f, _))) => prop_assert!(false, "bit {bit} flipped, accepted {f:?}"),
            }
            // Optional CRC: a flip of the flag itself strips the check but
            // the frame's contents are still the ones sent.
            if let Ok(Some((f, _))) = optional.decode(&flipped) {
                prop_assert_eq!(Owned::from_frame(&f), frame.clone(), "bit {}", bit);
            }
        }
    }

    #[test]
    fn forged_lengths_are_refused_from_the_header(len in (SMALL_LIMIT + 1)..=u32::MAX, tail in vec(any::<u8>(), 0..32)) {
        for kind in [Kind::Data, Kind::Open, Kind::Ack] {
            let bytes = raw(len, kind as u8, 0, 0, &tail);
            prop_assert_eq!(decode(&bytes), Err(WireError::FrameTooLong { len, max: SMALL_LIMIT }));
        }
    }

    #[test]
    fn lengths_within_the_limit_are_checked_against_the_kind(len in 0u32..=SMALL_LIMIT, kind in 1u8..=10) {
        let kind = Kind::from_code(kind).unwrap();
        let (min, max) = kind.body_bounds();
        let bytes = raw(len, kind as u8, 0, 0, &[]);
        let expected = if len < min {
            Err(WireError::BodyTooShort { kind, len, min })
        } else if len > max {
            Err(WireError::TrailingBytes { kind, extra: len - max })
        } else {
            Ok(None)
        };
        prop_assert_eq!(decode(&bytes), expected);
    }
}

#[test]
fn forged_maximum_length_with_default_limit() {
    let bytes = raw(u32::MAX, Kind::Data as u8, FLAG_CRC32C, 0, &[0; 4]);
    let decoder = Decoder::default();
    assert_eq!(decoder.decode(&bytes), Err(WireError::FrameTooLong { len: u32::MAX, max: DEFAULT_MAX_FRAME_LEN }));
    assert_eq!(decoder.frame_len(&bytes), Err(WireError::FrameTooLong { len: u32::MAX, max: DEFAULT_MAX_FRAME_LEN }));
    // Even a decoder that allows everything only ever borrows.
    let lax = Decoder::new(u32::MAX);
    assert_eq!(lax.decode(&bytes), Ok(None));
}

/// An `OpenAck` body for flow 1 with result code `code` and a zero QoS.
fn open_ack_body(code: u16) -> Vec<u8> {
    let mut body = vec![1, 0, 0, 0];
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&[0; QOS_LEN]);
    body
}

#[test]
fn each_malformation_has_its_own_error() {
    let ack_body = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    let cases: Vec<(&str, Vec<u8>, WireError)> = vec![
        ("kind 0", raw(12, 0, 0, 0, &ack_body), WireError::UnknownKind(0)),
        ("kind 200", raw(12, 200, 0, 0, &ack_body), WireError::UnknownKind(200)),
        ("flag bit 1", raw(12, 4, 0b10, 0, &ack_body), WireError::UnknownFlags(0b10)),
        ("reserved", raw(12, 4, 0, 0x0100, &ack_body), WireError::ReservedNotZero(0x0100)),
        (
            "over limit",
            raw(SMALL_LIMIT + 1, 3, 0, 0, &[]),
            WireError::FrameTooLong { len: SMALL_LIMIT + 1, max: SMALL_LIMIT },
        ),
        ("short ack", raw(11, 4, 0, 0, &ack_body[..11]), WireError::BodyTooShort { kind: Kind::Ack, len: 11, min: 12 }),
        (
            "short data",
            raw(11, 3, 0, 0, &ack_body[..11]),
            WireError::BodyTooShort { kind: Kind::Data, len: 11, min: 12 },
        ),
        ("long keepalive", raw(12, 6, 0, 0, &ack_body), WireError::TrailingBytes { kind: Kind::Keepalive, extra: 4 }),
        (
            "short open",
            raw(OPEN_FIXED - 1, 1, 0, 0, &open_body(b"", 0)[..OPEN_FIXED as usize - 1]),
            WireError::BodyTooShort { kind: Kind::Open, len: OPEN_FIXED - 1, min: OPEN_FIXED },
        ),
        (
            "name longer than its length byte",
            raw(OPEN_FIXED + 3, 1, 0, 0, &open_body(b"abc", 2)),
            WireError::TrailingBytes { kind: Kind::Open, extra: 1 },
        ),
        (
            "name shorter than its length byte",
            raw(OPEN_FIXED + 3, 1, 0, 0, &open_body(b"abc", 5)),
            WireError::BodyTooShort { kind: Kind::Open, len: OPEN_FIXED + 3, min: OPEN_FIXED + 5 },
        ),
        ("name not UTF-8", raw(OPEN_FIXED + 2, 1, 0, 0, &open_body(&[0xC3, 0x28], 2)), WireError::NameNotUtf8),
        (
            "name with a slash",
            raw(OPEN_FIXED + 3, 1, 0, 0, &open_body(b"a/b", 3)),
            WireError::BadName(NameError::PathSeparator),
        ),
        ("empty name", raw(OPEN_FIXED, 1, 0, 0, &open_body(b"", 0)), WireError::BadName(NameError::Empty)),
        ("dot-dot", raw(OPEN_FIXED + 2, 1, 0, 0, &open_body(b"..", 2)), WireError::BadName(NameError::Reserved)),
        (
            "name of 200 bytes",
            raw(OPEN_FIXED + 200, 1, 0, 0, &open_body(&[b'n'; 200], 200)),
            WireError::BadName(NameError::TooLong { len: 200, max: crate::control::MAX_NAME_LEN }),
        ),
        ("unknown open result", raw(OPEN_ACK_LEN, 2, 0, 0, &open_ack_body(99)), WireError::UnknownOpenResult(99)),
    ];
    for (what, bytes, err) in cases {
        assert_eq!(decode(&bytes), Err(err), "{what}");
    }
}

#[test]
fn crc_errors() {
    let ack_body = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    let good = raw_crc(12, Kind::Ack as u8, &ack_body);
    assert!(matches!(decode(&good), Ok(Some((Owned::Ack { .. }, 24)))));
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 0x80;
    let carried = u32::from_le_bytes(bad[20..24].try_into().unwrap());
    let computed = crc32c(0, &bad[..20]);
    assert_eq!(decode(&bad), Err(WireError::BadCrc { computed, carried }));
    // A frame whose CRC flag is set but whose body would be another valid
    // frame of the same size (Ack -> Close) is still caught.
    let mut kind_changed = good;
    kind_changed[4] = Kind::Close as u8;
    assert!(matches!(decode(&kind_changed), Err(WireError::BadCrc { .. })));
    let plain = raw(12, Kind::Ack as u8, 0, 0, &ack_body);
    let required = Decoder::default().crc_policy(CrcPolicy::Required);
    assert_eq!(required.decode(&plain), Err(WireError::MissingCrc { kind: Kind::Ack }));
}

/// Fuzz-style: mutate valid streams many ways (bit flips, byte overwrites,
/// insertions, deletions, forged length fields) and run a receive loop over
/// each. Deterministic, so a failure reproduces.
#[test]
fn mutated_streams_never_panic_or_stall() {
    let mut rng = Rng::new(0x5EED_F00D);
    let mut frames: Vec<Owned> = vec![
        Owned::Open { flow_id: 1, name: "orders".into(), qos: [1; QOS_LEN] },
        Owned::OpenAck { flow_id: 1, result: OpenResult::Accepted, qos: [0; QOS_LEN] },
        Owned::Data { flow_id: 1, seq: 1, stamp: 0, call: CallMark::Plain, payload: vec![0xAB; 100] },
        Owned::Data { flow_id: 1, seq: 2, stamp: 123_456, call: CallMark::Turn, payload: vec![0xCD; 10] },
        Owned::Ack { flow_id: 1, cumulative_seq: 1 },
        Owned::Close { flow_id: 1, last_seq: 1 },
        Owned::Keepalive { ts_ns: 99 },
        Owned::Resume { flow_id: 1, next_expected_seq: 2 },
    ];
    frames.push(Owned::Data { flow_id: 2, seq: 7, stamp: 0, call: CallMark::Plain, payload: Vec::new() });
    let iterations = if cfg!(miri) { 50 } else { 20_000 };
    for i in 0..iterations {
        let checksum = if i % 2 == 0 { Checksum::Crc32c } else { Checksum::None };
        let mut stream = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let frame = &frames[rng.below(frames.len())];
            encode(&frame.frame(), checksum, &mut stream).unwrap();
        }
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(stream.len());
            match rng.below(5) {
                0 => stream[at] ^= 1 << rng.below(8),
                1 => stream[at] = rng.next() as u8,
                2 => stream.insert(at, rng.next() as u8),
                3 => {
                    stream.remove(at);
                }
                _ => {
                    let forged = (rng.next() as u32).to_le_bytes();
                    let end = (at + 4).min(stream.len());
                    stream[at..end].copy_from_slice(&forged[..end - at]);
                }
            }
            if stream.is_empty() {
                stream.push(0);
            }
        }
        let decoder = Decoder::new(SMALL_LIMIT);
        let mut rx = Vec::new();
        let mut rest = &stream[..];
        'feed: while !rest.is_empty() {
            let (piece, tail) = rest.split_at(1 + rng.below(rest.len()));
            rest = tail;
            rx.extend_from_slice(piece);
            loop {
                match decoder.decode(&rx) {
                    Ok(Some((_, n))) => {
                        assert!(n >= HEADER_LEN && n <= rx.len());
                        rx.drain(..n);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        assert!(rx.len() <= SMALL_LIMIT as usize + HEADER_LEN + CRC_LEN);
    }
}

/// A `Cluster` frame is opaque to the wire, but bounded: never empty,
/// never past `MAX_CLUSTER_LEN`, even where the decoder's own limit is
/// larger; and the encoder refuses what the decoder would.
#[test]
fn cluster_frames_are_bounded_both_ways() {
    let lax = Decoder::new(u32::MAX);
    let code = Kind::Cluster as u8;
    assert_eq!(Kind::from_code(code), Some(Kind::Cluster));
    assert_eq!(
        lax.decode(&raw(0, code, 0, 0, &[])),
        Err(WireError::BodyTooShort { kind: Kind::Cluster, len: 0, min: 1 })
    );
    let over = MAX_CLUSTER_LEN + 1;
    assert_eq!(
        lax.decode(&raw(over, code, 0, 0, &[])),
        Err(WireError::TrailingBytes { kind: Kind::Cluster, extra: 1 })
    );
    // Refused at its header: the body is never waited for.
    assert_eq!(
        lax.frame_len(&raw(over, code, 0, 0, &[])),
        Err(WireError::TrailingBytes { kind: Kind::Cluster, extra: 1 })
    );
    // Flags other than the CRC's are refused as for every kind but Data.
    assert_eq!(lax.decode(&raw(1, code, FLAG_STAMP, 0, &[7])), Err(WireError::UnknownFlags(FLAG_STAMP)));

    let mut out = Vec::new();
    assert_eq!(
        encode(&Frame::Cluster { payload: &[] }, Checksum::None, &mut out),
        Err(EncodeError::ClusterLen { len: 0 })
    );
    let big = vec![0u8; MAX_CLUSTER_LEN as usize + 1];
    assert_eq!(
        encode(&Frame::Cluster { payload: &big }, Checksum::Crc32c, &mut out),
        Err(EncodeError::ClusterLen { len: big.len() })
    );
    assert!(out.is_empty(), "a refused frame left bytes behind");
    // The largest one goes through, checked, and comes back the same.
    let largest = vec![0xa5u8; MAX_CLUSTER_LEN as usize];
    encode(&Frame::Cluster { payload: &largest }, Checksum::Crc32c, &mut out).unwrap();
    let decoder = Decoder::new(MAX_CLUSTER_LEN).crc_policy(CrcPolicy::Required);
    let (frame, used) = decoder.decode(&out).unwrap().unwrap();
    assert_eq!((frame, used), (Frame::Cluster { payload: &largest }, out.len()));
    assert_eq!(frame.flow_id(), None);
}
