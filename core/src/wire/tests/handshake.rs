//! The handshake: encoding, hostile input, and negotiation of versions,
//! features and keepalive.

use super::*;
use crate::wire::auth::NONCE_LEN;

fn hello(min: u16, max: u16, engine_id: u64, features: u32) -> Hello {
    Hello {
        version: max,
        min_version: min,
        engine_id,
        features: Features::from_bits(features),
        keepalive_ms: 0,
        auth: None,
    }
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
        let h = Hello { version: min + span, min_version: min, engine_id, features: Features::from_bits(features), keepalive_ms, auth: None };
        let bytes = bytes_of(&h);
        prop_assert_eq!(Hello::decode(&bytes), Ok(Some((h, bytes.len()))));
        for cut in 0..bytes.len() {
            prop_assert_eq!(Hello::decode(&bytes[..cut]), Ok(None));
        }
    }

    #[test]
    fn acks_round_trip(version in 1u16..100, features in any::<u32>(), engine_id in any::<u64>(), keepalive_ms in any::<u32>()) {
        let accept = HelloAck::Accept { version, features: Features::from_bits(features), engine_id, keepalive_ms, auth: None };
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
    let client = Hello::new(0xC1, Features::CRC32C, 1000, None);
    let server = Hello::new(0x5E, Features::CRC32C, 250, None);
    let hello_bytes = bytes_of(&client);
    assert_eq!(hello_bytes.len(), 61);
    let (theirs, _) = Hello::decode(&hello_bytes).unwrap().unwrap();
    let (ack, outcome) = respond(&server, &theirs, None);
    let server_side = outcome.unwrap();
    let (ack, _) = HelloAck::decode(&ack_bytes(&ack)).unwrap().unwrap();
    let client_side = accept_ack(&client, &ack, None).unwrap();
    assert_eq!(
        client_side,
        Agreed {
            version: PROTOCOL_VERSION,
            features: Features::CRC32C,
            keepalive_ms: 250,
            peer_engine_id: 0x5E,
            transcript: None
        }
    );
    assert_eq!(server_side, Agreed { peer_engine_id: 0xC1, ..client_side });
}

#[test]
fn a_rejection_reaches_the_client_as_a_clear_error() {
    let client = hello(1, 2, 1, 0);
    let server = hello(5, 6, 2, 0);
    let (ack, outcome) = respond(&server, &client, None);
    assert!(matches!(outcome, Err(WireError::NoCommonVersion { .. })));
    let (ack, _) = HelloAck::decode(&ack_bytes(&ack)).unwrap().unwrap();
    let err = accept_ack(&client, &ack, None).unwrap_err();
    assert_eq!(
        err,
        WireError::Rejected { reason: RejectReason::NoCommonVersion, theirs: VersionRange { min: 5, max: 6 } }
    );
    assert_eq!(err.to_string(), "peer rejected the handshake: no common protocol version (it speaks versions 5..=6)");
}

#[test]
fn an_ack_outside_the_offer_is_refused() {
    let client = hello(1, 2, 1, Features::CRC32C.bits());
    let accept = |version, features| HelloAck::Accept { version, features, engine_id: 2, keepalive_ms: 0, auth: None };
    assert_eq!(
        accept_ack(&client, &accept(3, Features::NONE), None),
        Err(WireError::AckVersionNotOffered { version: 3, ours: VersionRange { min: 1, max: 2 } })
    );
    assert_eq!(
        accept_ack(&client, &accept(2, Features::from_bits(0b11)), None),
        Err(WireError::AckFeaturesNotOffered { agreed: 0b11, offered: 0b01 })
    );
    let own_id = HelloAck::Accept { version: 1, features: Features::NONE, engine_id: 1, keepalive_ms: 0, auth: None };
    assert_eq!(accept_ack(&client, &own_id, None), Err(WireError::SelfConnect { engine_id: 1 }));
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
    longer[6..8].copy_from_slice(&63u16.to_le_bytes());
    longer.extend_from_slice(&[0xEE; 10]);
    longer.extend_from_slice(b"next");
    assert_eq!(Hello::decode(&longer), Ok(Some((h, 71))));
    // A version-3 hello without its auth fields is malformed, not unkeyed.
    let mut bare = bytes_of(&h);
    bare.truncate(28);
    bare[6..8].copy_from_slice(&20u16.to_le_bytes());
    assert_eq!(Hello::decode(&bare), Err(WireError::BadHandshakeLength { len: 20, min: 53, max: 256 }));
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

// ---- Keys: the challenge and response of version 3. ----

fn key(byte: u8) -> AuthKey {
    AuthKey::from_bytes(&[byte; 32]).unwrap()
}

fn keyed(engine_id: u64, nonce: u8) -> Hello {
    Hello::new(engine_id, Features::STAMPS, 100, Some([nonce; NONCE_LEN]))
}

fn proof_bytes(p: &HelloProof) -> Vec<u8> {
    let mut out = Vec::new();
    p.encode(&mut out);
    out
}

/// Runs a keyed exchange through the codec: the acceptor's outcome, the
/// dialler's, and the dialler's proof as the acceptor decoded it.
fn exchange(
    dialler: &Hello,
    dkey: Option<&AuthKey>,
    acceptor: &Hello,
    akey: Option<&AuthKey>,
) -> (Result<Agreed, WireError>, Result<Agreed, WireError>) {
    let (theirs, _) = Hello::decode(&bytes_of(dialler)).unwrap().unwrap();
    let (ack, at_acceptor) = respond(acceptor, &theirs, akey);
    let (ack, _) = HelloAck::decode(&ack_bytes(&ack)).unwrap().unwrap();
    (at_acceptor, accept_ack(dialler, &ack, dkey))
}

#[test]
fn keyed_engines_prove_the_key_both_ways() {
    let (k, dialler, acceptor) = (key(7), keyed(0xD, 1), keyed(0xA, 2));
    let (at_acceptor, at_dialler) = exchange(&dialler, Some(&k), &acceptor, Some(&k));
    let (at_acceptor, at_dialler) = (at_acceptor.unwrap(), at_dialler.unwrap());
    let t = at_dialler.transcript.expect("a keyed dialler gets the transcript");
    assert_eq!(at_acceptor.transcript, Some(t));
    assert_eq!((t.dialler_id, t.acceptor_id), (0xD, 0xA));
    assert_eq!((t.dialler_nonce, t.acceptor_nonce), ([1; NONCE_LEN], [2; NONCE_LEN]));
    let proof = HelloProof::Proof(k.prove(auth::Role::Dialler, &t));
    let (proof, n) = HelloProof::decode(&proof_bytes(&proof)).unwrap().unwrap();
    assert_eq!(n, 8 + 33);
    assert_eq!(check_proof(&k, &t, &proof), Ok(()));
}

#[test]
fn a_wrong_key_fails_at_the_dialler_first_and_at_the_acceptor_too() {
    let (dialler, acceptor) = (keyed(0xD, 1), keyed(0xA, 2));
    let (at_acceptor, at_dialler) = exchange(&dialler, Some(&key(1)), &acceptor, Some(&key(2)));
    assert!(at_acceptor.is_ok(), "the acceptor cannot know yet");
    assert_eq!(at_dialler, Err(WireError::BadProof));
    // The dialler refuses; the acceptor reads why.
    let t = at_acceptor.unwrap().transcript.unwrap();
    let refusal = HelloProof::decode(&proof_bytes(&HelloProof::Refuse(RejectReason::BadProof))).unwrap().unwrap().0;
    let err = check_proof(&key(2), &t, &refusal).unwrap_err();
    assert!(matches!(err, WireError::Rejected { reason: RejectReason::BadProof, .. }), "{err:?}");
    assert!(err.to_string().contains("keys"), "{err}");
    // A dialler with the wrong key that proved anyway is caught by the acceptor.
    let forged = HelloProof::Proof(key(1).prove(auth::Role::Dialler, &t));
    assert_eq!(check_proof(&key(2), &t, &forged), Err(WireError::BadProof));
}

#[test]
fn keyed_and_unkeyed_engines_refuse_each_other_saying_who_lacks_the_key() {
    let k = key(3);
    let unkeyed_dialler = Hello::new(0xD, Features::NONE, 0, None);
    let (at_acceptor, at_dialler) = exchange(&unkeyed_dialler, None, &keyed(0xA, 2), Some(&k));
    assert_eq!(at_acceptor, Err(WireError::KeyMismatch { reason: RejectReason::KeyRequired }));
    let err = at_dialler.unwrap_err();
    assert!(matches!(err, WireError::Rejected { reason: RejectReason::KeyRequired, .. }), "{err:?}");
    assert!(err.to_string().contains("requires a key"), "{err}");

    let unkeyed_acceptor = Hello::new(0xA, Features::NONE, 0, None);
    let (at_acceptor, at_dialler) = exchange(&keyed(0xD, 1), Some(&k), &unkeyed_acceptor, None);
    assert_eq!(at_acceptor, Err(WireError::KeyMismatch { reason: RejectReason::NoKey }));
    assert!(matches!(at_dialler, Err(WireError::Rejected { reason: RejectReason::NoKey, .. })), "{at_dialler:?}");

    // An unkeyed acceptor that accepts anyway (an older or lax build) is
    // refused by the keyed dialler.
    let lax = HelloAck::Accept { version: 3, features: Features::NONE, engine_id: 0xA, keepalive_ms: 0, auth: None };
    assert_eq!(
        accept_ack(&keyed(0xD, 1), &lax, Some(&k)),
        Err(WireError::KeyMismatch { reason: RejectReason::KeyRequired })
    );
}

#[test]
fn a_replayed_or_reflected_proof_is_refused() {
    let k = key(9);
    // A recorded connection: its dialler proof, and its acceptor proof.
    let (old_acc, old_dial) = exchange(&keyed(0xD, 1), Some(&k), &keyed(0xA, 2), Some(&k));
    let old_t = old_dial.unwrap().transcript.unwrap();
    let recorded = HelloProof::Proof(k.prove(auth::Role::Dialler, &old_t));
    assert_eq!(old_acc.unwrap().transcript, Some(old_t));
    // Replayed with the same hello on a new connection: the acceptor's nonce
    // is new, so the recorded proof is worthless.
    let (new_acc, _) = exchange(&keyed(0xD, 1), Some(&k), &keyed(0xA, 3), Some(&k));
    let new_t = new_acc.unwrap().transcript.unwrap();
    assert_eq!(check_proof(&k, &new_t, &recorded), Err(WireError::BadProof));
    // Reflected: the acceptor's own proof handed back to it as the dialler's.
    let reflected = HelloProof::Proof(k.prove(auth::Role::Acceptor, &new_t));
    assert_eq!(check_proof(&k, &new_t, &reflected), Err(WireError::BadProof));
    // And the acceptor's proof is bound to both nonces and both ids.
    let acceptor_proof = k.prove(auth::Role::Acceptor, &new_t);
    for t in [
        auth::Transcript { dialler_nonce: [7; NONCE_LEN], ..new_t },
        auth::Transcript { acceptor_nonce: [7; NONCE_LEN], ..new_t },
        auth::Transcript { dialler_id: 0xE, ..new_t },
        auth::Transcript { acceptor_id: 0xE, ..new_t },
        auth::Transcript { version: 4, ..new_t },
        auth::Transcript { features: 0, ..new_t },
    ] {
        assert!(!k.verify(auth::Role::Acceptor, &t, &acceptor_proof), "{t:?}");
    }
}

#[test]
fn keys_of_a_bad_length_are_refused_and_never_shown() {
    assert_eq!(AuthKey::from_bytes(&[1; 31]).unwrap_err(), auth::BadKeyLength { len: 31 });
    assert!(AuthKey::from_bytes(&[1; auth::MAX_KEY_LEN + 1]).is_err());
    let k = AuthKey::from_bytes(&[0x41; 40]).unwrap();
    assert_eq!(format!("{k:?}"), "AuthKey(40 bytes)");
}

#[test]
fn a_version_2_hello_is_told_there_is_no_common_version() {
    // Version 2's layout: no auth fields.
    let mut v2 = MAGIC.to_vec();
    v2.extend_from_slice(&20u16.to_le_bytes());
    v2.extend_from_slice(&2u16.to_le_bytes());
    v2.extend_from_slice(&2u16.to_le_bytes());
    v2.extend_from_slice(&5u64.to_le_bytes());
    v2.extend_from_slice(&[0; 8]);
    let (theirs, n) = Hello::decode(&v2).unwrap().unwrap();
    assert_eq!((n, theirs.auth), (28, None));
    let (ack, outcome) = respond(&keyed(0xA, 2), &theirs, Some(&key(1)));
    assert!(matches!(outcome, Err(WireError::NoCommonVersion { .. })), "{outcome:?}");
    assert!(matches!(ack, HelloAck::Reject { reason: RejectReason::NoCommonVersion, .. }));
}

proptest! {
    #[test]
    fn keyed_messages_round_trip_and_need_every_byte(
        engine_id in any::<u64>(), nonce in any::<[u8; NONCE_LEN]>(), proof in any::<[u8; 32]>(), version in 3u16..9,
    ) {
        let h = Hello { version, min_version: 3, engine_id, features: Features::STAMPS, keepalive_ms: 5, auth: Some(nonce) };
        let bytes = bytes_of(&h);
        prop_assert_eq!(Hello::decode(&bytes), Ok(Some((h, bytes.len()))));
        for cut in 0..bytes.len() {
            prop_assert_eq!(Hello::decode(&bytes[..cut]), Ok(None));
        }
        let a = HelloAck::Accept { version, features: Features::NONE, engine_id, keepalive_ms: 0, auth: Some((nonce, proof)) };
        let bytes = ack_bytes(&a);
        prop_assert_eq!(HelloAck::decode(&bytes), Ok(Some((a, bytes.len()))));
        for cut in 0..bytes.len() {
            prop_assert_eq!(HelloAck::decode(&bytes[..cut]), Ok(None));
        }
        for p in [HelloProof::Proof(proof), HelloProof::Refuse(RejectReason::BadProof)] {
            let bytes = proof_bytes(&p);
            prop_assert_eq!(HelloProof::decode(&bytes), Ok(Some((p, bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(HelloProof::decode(&bytes[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn garbage_proofs_never_panic_nor_pass(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = HelloProof::decode(&bytes);
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let k = key(4);
        let (acc, _) = exchange(&keyed(0xD, 1), Some(&k), &keyed(0xA, 2), Some(&k));
        let t = acc.unwrap().transcript.unwrap();
        if let Ok(Some((msg, n))) = HelloProof::decode(&with_magic) {
            prop_assert!(n <= with_magic.len());
            prop_assert!(check_proof(&k, &t, &msg).is_err());
        }
    }
}

#[test]
fn bad_auth_fields_are_refused() {
    let mut h = bytes_of(&keyed(1, 1));
    h[8 + 20] = 9;
    assert_eq!(Hello::decode(&h), Err(WireError::UnknownAuth(9)));
    let mut short = MAGIC.to_vec();
    short.extend_from_slice(&20u16.to_le_bytes());
    short.extend_from_slice(&[0; 20]);
    assert_eq!(HelloProof::decode(&short), Err(WireError::BadHandshakeLength { len: 20, min: 33, max: 256 }));
    let mut bad = MAGIC.to_vec();
    bad.extend_from_slice(&2u16.to_le_bytes());
    bad.extend_from_slice(&[1, 99]);
    assert_eq!(HelloProof::decode(&bad), Err(WireError::UnknownRejectReason(99)));
    bad[8] = 5;
    assert_eq!(HelloProof::decode(&bad), Err(WireError::UnknownAckStatus(5)));
}
