//! The handshake: encoding, hostile input, and negotiation of versions,
//! features and keepalive.

use super::*;

fn hello(min: u16, max: u16, engine_id: u64, features: u32) -> Hello {
    Hello { version: max, min_version: min, engine_id, features: Features::from_bits(features), keepalive_ms: 0 }
}

fn bytes_of(h: &Hello) -> Vec<u8> {
    let mut out = Vec::new();
    h.encode(&mut out);
    out
}

fn ack_bytes(a: &HelloAck) -> Vec<u8> {
    let mut out = Vec::new();
    a.encode(&mut out);
    out
}

proptest! {
    #[test]
    fn hello_round_trips_and_needs_every_byte(
        min in 1u16..10, span in 0u16..10, engine_id in any::<u64>(), features in any::<u32>(), keepalive_ms in any::<u32>(),
    ) {
        let h = Hello { version: min + span, min_version: min, engine_id, features: Features::from_bits(features), keepalive_ms };
        let bytes = bytes_of(&h);
        prop_assert_eq!(Hello::decode(&bytes), Ok(Some((h, bytes.len()))));
        for cut in 0..bytes.len() {
            prop_assert_eq!(Hello::decode(&bytes[..cut]), Ok(None));
        }
    }

    #[test]
    fn acks_round_trip(version in 1u16..100, features in any::<u32>(), engine_id in any::<u64>(), keepalive_ms in any::<u32>()) {
        let accept = HelloAck::Accept { version, features: Features::from_bits(features), engine_id, keepalive_ms };
        let bytes = ack_bytes(&accept);
        prop_assert_eq!(HelloAck::decode(&bytes), Ok(Some((accept, bytes.len()))));
        let reject = HelloAck::Reject { reason: RejectReason::ShuttingDown, versions: VersionRange { min: 1, max: version } };
        let bytes = ack_bytes(&reject);
        prop_assert_eq!(HelloAck::decode(&bytes), Ok(Some((reject, bytes.len()))));
    }

    #[test]
    fn garbage_handshakes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Hello::decode(&bytes);
        let _ = HelloAck::decode(&bytes);
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        if let Ok(Some((_, n))) = Hello::decode(&with_magic) {
            prop_assert!(n <= with_magic.len());
        }
        if let Ok(Some((_, n))) = HelloAck::decode(&with_magic) {
            prop_assert!(n <= with_magic.len());
        }
    }

    /// Whoever negotiates, both sides get the same answer: the newest version
    /// in both ranges and the features both have.
    #[test]
    fn negotiation_is_symmetric_and_picks_the_newest_common_version(
        a in (1u16..8, 0u16..4), b in (1u16..8, 0u16..4), fa in any::<u32>(), fb in any::<u32>(),
    ) {
        let ours = hello(a.0, a.0 + a.1, 1, fa);
        let theirs = hello(b.0, b.0 + b.1, 2, fb);
        match (negotiate(&ours, &theirs), negotiate(&theirs, &ours)) {
            (Ok(x), Ok(y)) => {
                prop_assert_eq!(x.version, y.version);
                prop_assert_eq!(x.features, y.features);
                prop_assert!(ours.versions().contains(x.version) && theirs.versions().contains(x.version));
                prop_assert!(!ours.versions().contains(x.version + 1) || !theirs.versions().contains(x.version + 1));
                prop_assert_eq!(x.features.bits(), fa & fb);
                prop_assert_eq!((x.peer_engine_id, y.peer_engine_id), (2, 1));
            }
            (Err(WireError::NoCommonVersion { .. }), Err(WireError::NoCommonVersion { .. })) => {
                let overlap = (a.0..=a.0 + a.1).any(|v| theirs.versions().contains(v));
                prop_assert!(!overlap);
            }
            other => prop_assert!(false, "asymmetric outcome {other:?}"),
        }
    }
}

#[test]
fn overlapping_ranges_agree_on_the_newest_common_version() {
    let agreed = negotiate(&hello(1, 3, 1, 0), &hello(2, 5, 2, 0)).unwrap();
    assert_eq!(agreed.version, 3);
    let agreed = negotiate(&hello(1, 1, 1, 0), &hello(1, 9, 2, 0)).unwrap();
    assert_eq!(agreed.version, 1);
}

#[test]
fn disjoint_ranges_are_refused_with_both_ranges_named() {
    let err = negotiate(&hello(1, 2, 1, 0), &hello(3, 4, 2, 0)).unwrap_err();
    assert_eq!(
        err,
        WireError::NoCommonVersion { ours: VersionRange { min: 1, max: 2 }, theirs: VersionRange { min: 3, max: 4 } }
    );
    let text = err.to_string();
    assert!(text.contains("versions 1..=2") && text.contains("versions 3..=4"), "{text}");
}

#[test]
fn features_are_intersected_and_unknown_bits_dropped() {
    let ours = hello(1, 1, 1, Features::CRC32C.bits() | 1 << 5);
    let theirs = hello(1, 1, 2, Features::CRC32C.bits() | 1 << 9);
    assert_eq!(negotiate(&ours, &theirs).unwrap().features, Features::CRC32C);
    let plain = hello(1, 1, 2, 0);
    assert_eq!(negotiate(&ours, &plain).unwrap().features, Features::NONE);
}

#[test]
fn keepalive_is_the_shorter_one_asked_for() {
    let with = |ms| Hello { keepalive_ms: ms, ..hello(1, 1, 1, 0) };
    let other = |ms| Hello { keepalive_ms: ms, ..hello(1, 1, 2, 0) };
    assert_eq!(negotiate(&with(500), &other(2000)).unwrap().keepalive_ms, 500);
    assert_eq!(negotiate(&with(0), &other(2000)).unwrap().keepalive_ms, 2000);
    assert_eq!(negotiate(&with(0), &other(0)).unwrap().keepalive_ms, 0);
}

#[test]
fn bad_ranges_and_self_connects_are_refused() {
    assert_eq!(
        negotiate(&hello(3, 2, 1, 0), &hello(1, 3, 2, 0)),
        Err(WireError::BadVersionRange(VersionRange { min: 3, max: 2 }))
    );
    let zero = bytes_of(&hello(0, 1, 1, 0));
    assert_eq!(Hello::decode(&zero), Err(WireError::BadVersionRange(VersionRange { min: 0, max: 1 })));
    assert_eq!(negotiate(&hello(1, 1, 7, 0), &hello(1, 1, 7, 0)), Err(WireError::SelfConnect { engine_id: 7 }));
}

#[test]
fn a_full_exchange_agrees_on_both_sides() {
    let client = Hello::new(0xC1, Features::CRC32C, 1000);
    let server = Hello::new(0x5E, Features::CRC32C, 250);
    let hello_bytes = bytes_of(&client);
    assert_eq!(hello_bytes.len(), 28);
    let (theirs, _) = Hello::decode(&hello_bytes).unwrap().unwrap();
    let (ack, outcome) = respond(&server, &theirs);
    let server_side = outcome.unwrap();
    let (ack, _) = HelloAck::decode(&ack_bytes(&ack)).unwrap().unwrap();
    let client_side = accept_ack(&client, &ack).unwrap();
    assert_eq!(
        client_side,
        Agreed { version: PROTOCOL_VERSION, features: Features::CRC32C, keepalive_ms: 250, peer_engine_id: 0x5E }
    );
    assert_eq!(server_side, Agreed { peer_engine_id: 0xC1, ..client_side });
}

#[test]
fn a_rejection_reaches_the_client_as_a_clear_error() {
    let client = hello(1, 2, 1, 0);
    let server = hello(5, 6, 2, 0);
    let (ack, outcome) = respond(&server, &client);
    assert!(matches!(outcome, Err(WireError::NoCommonVersion { .. })));
    let (ack, _) = HelloAck::decode(&ack_bytes(&ack)).unwrap().unwrap();
    let err = accept_ack(&client, &ack).unwrap_err();
    assert_eq!(
        err,
        WireError::Rejected { reason: RejectReason::NoCommonVersion, theirs: VersionRange { min: 5, max: 6 } }
    );
    assert_eq!(err.to_string(), "peer rejected the handshake: no common protocol version (it speaks versions 5..=6)");
}

#[test]
fn an_ack_outside_the_offer_is_refused() {
    let client = hello(1, 2, 1, Features::CRC32C.bits());
    let accept = |version, features| HelloAck::Accept { version, features, engine_id: 2, keepalive_ms: 0 };
    assert_eq!(
        accept_ack(&client, &accept(3, Features::NONE)),
        Err(WireError::AckVersionNotOffered { version: 3, ours: VersionRange { min: 1, max: 2 } })
    );
    assert_eq!(
        accept_ack(&client, &accept(2, Features::from_bits(0b11))),
        Err(WireError::AckFeaturesNotOffered { agreed: 0b11, offered: 0b01 })
    );
    let own_id = HelloAck::Accept { version: 1, features: Features::NONE, engine_id: 1, keepalive_ms: 0 };
    assert_eq!(accept_ack(&client, &own_id), Err(WireError::SelfConnect { engine_id: 1 }));
}

#[test]
fn wrong_magic_is_refused_at_the_first_wrong_byte() {
    assert_eq!(Hello::decode(b"G"), Err(WireError::BadMagic));
    assert_eq!(Hello::decode(b"GET / HTTP/1.1\r\n"), Err(WireError::BadMagic));
    assert_eq!(HelloAck::decode(b"RFX"), Err(WireError::BadMagic));
    assert_eq!(Hello::decode(b"RFW"), Ok(None));
}

#[test]
fn handshake_lengths_are_bounded_and_extensions_skipped() {
    let mut short = MAGIC.to_vec();
    short.extend_from_slice(&19u16.to_le_bytes());
    assert_eq!(Hello::decode(&short), Err(WireError::BadHandshakeLength { len: 19, min: 20, max: 256 }));
    let mut huge = MAGIC.to_vec();
    huge.extend_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(Hello::decode(&huge), Err(WireError::BadHandshakeLength { len: u16::MAX, min: 20, max: 256 }));
    // A newer peer's longer hello: the known fields are read, the rest skipped.
    let h = hello(1, 4, 3, 0);
    let mut longer = bytes_of(&h);
    longer[6..8].copy_from_slice(&30u16.to_le_bytes());
    longer.extend_from_slice(&[0xEE; 10]);
    longer.extend_from_slice(b"next");
    assert_eq!(Hello::decode(&longer), Ok(Some((h, 38))));
    // An accept too short for its status, and unknown codes.
    let mut ack = MAGIC.to_vec();
    ack.extend_from_slice(&6u16.to_le_bytes());
    ack.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
    assert_eq!(HelloAck::decode(&ack), Err(WireError::BadHandshakeLength { len: 6, min: 19, max: 256 }));
    ack[8] = 9;
    assert_eq!(HelloAck::decode(&ack), Err(WireError::UnknownAckStatus(9)));
    ack[8..].copy_from_slice(&[1, 77, 1, 0, 1, 0]);
    assert_eq!(HelloAck::decode(&ack), Err(WireError::UnknownRejectReason(77)));
}
