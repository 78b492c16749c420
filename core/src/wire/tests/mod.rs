//! Tests of the wire codec and sequencing, and the generators they share.
//! Everything here is pure computation: no sockets, no time.

mod handshake;
mod hostile;
mod reliable;
mod roundtrip;

use super::*;
use proptest::prelude::*;

/// A frame that owns its name and payload, so generators can produce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Owned {
    Open { flow_id: u32, name: String, qos: [u8; QOS_LEN] },
    OpenAck { flow_id: u32, result: OpenResult, qos: [u8; QOS_LEN] },
    Data { flow_id: u32, seq: u64, stamp: u64, call: CallMark, payload: Vec<u8> },
    Ack { flow_id: u32, cumulative_seq: u64 },
    Close { flow_id: u32, last_seq: u64 },
    Keepalive { ts_ns: u64 },
    Resume { flow_id: u32, next_expected_seq: u64 },
    Gone { flow_id: u32, last_seq: u64 },
    Reset { flow_id: u32, consumed_seq: u64 },
    Cluster { payload: Vec<u8> },
}

impl Owned {
    pub(super) fn frame(&self) -> Frame<'_> {
        match *self {
            Owned::Open { flow_id, ref name, qos } => Frame::Open { flow_id, name, qos },
            Owned::OpenAck { flow_id, result, qos } => Frame::OpenAck { flow_id, result, qos },
            Owned::Data { flow_id, seq, stamp, call, ref payload } => {
                Frame::Data { flow_id, seq, stamp, call, payload }
            }
            Owned::Ack { flow_id, cumulative_seq } => Frame::Ack { flow_id, cumulative_seq },
            Owned::Close { flow_id, last_seq } => Frame::Close { flow_id, last_seq },
            Owned::Keepalive { ts_ns } => Frame::Keepalive { ts_ns },
            Owned::Resume { flow_id, next_expected_seq } => Frame::Resume { flow_id, next_expected_seq },
            Owned::Gone { flow_id, last_seq } => Frame::Gone { flow_id, last_seq },
            Owned::Reset { flow_id, consumed_seq } => Frame::Reset { flow_id, consumed_seq },
            Owned::Cluster { ref payload } => Frame::Cluster { payload },
        }
    }

    pub(super) fn from_frame(frame: &Frame<'_>) -> Owned {
        match *frame {
            Frame::Open { flow_id, name, qos } => Owned::Open { flow_id, name: name.to_owned(), qos },
            Frame::OpenAck { flow_id, result, qos } => Owned::OpenAck { flow_id, result, qos },
            Frame::Data { flow_id, seq, stamp, call, payload } => {
                Owned::Data { flow_id, seq, stamp, call, payload: payload.to_vec() }
            }
            Frame::Ack { flow_id, cumulative_seq } => Owned::Ack { flow_id, cumulative_seq },
            Frame::Close { flow_id, last_seq } => Owned::Close { flow_id, last_seq },
            Frame::Keepalive { ts_ns } => Owned::Keepalive { ts_ns },
            Frame::Resume { flow_id, next_expected_seq } => Owned::Resume { flow_id, next_expected_seq },
            Frame::Gone { flow_id, last_seq } => Owned::Gone { flow_id, last_seq },
            Frame::Reset { flow_id, consumed_seq } => Owned::Reset { flow_id, consumed_seq },
            Frame::Cluster { payload } => Owned::Cluster { payload: payload.to_vec() },
        }
    }
}

pub(super) const ALL_RESULTS: [OpenResult; 8] = [
    OpenResult::Accepted,
    OpenResult::NameNotFound,
    OpenResult::QosRefused,
    OpenResult::PermissionDenied,
    OpenResult::FlowIdInUse,
    OpenResult::ShuttingDown,
    OpenResult::Busy,
    OpenResult::ResourceLimit,
];

/// Valid flow names, multi-byte characters included.
pub(super) fn flow_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9é ._-]{1,32}".prop_filter("a valid flow name", |n| crate::control::validate_name(n).is_ok())
}

/// Any frame that can be encoded, with payloads up to `max_payload` bytes.
pub(super) fn any_frame(max_payload: usize) -> impl Strategy<Value = Owned> {
    prop_oneof![
        (any::<u32>(), flow_name(), any::<[u8; QOS_LEN]>()).prop_map(|(flow_id, name, qos)| Owned::Open {
            flow_id,
            name,
            qos
        }),
        (any::<u32>(), proptest::sample::select(&ALL_RESULTS[..]), any::<[u8; QOS_LEN]>())
            .prop_map(|(flow_id, result, qos)| Owned::OpenAck { flow_id, result, qos }),
        (
            any::<u32>(),
            any::<u64>(),
            prop_oneof![Just(0u64), 1..u64::MAX],
            proptest::sample::select(&[CallMark::Plain, CallMark::Part, CallMark::Turn][..]),
            proptest::collection::vec(any::<u8>(), 0..=max_payload)
        )
            .prop_map(|(flow_id, seq, stamp, call, payload)| Owned::Data {
                flow_id,
                seq,
                stamp,
                call,
                payload
            }),
        (any::<u32>(), any::<u64>()).prop_map(|(flow_id, cumulative_seq)| Owned::Ack { flow_id, cumulative_seq }),
        (any::<u32>(), any::<u64>()).prop_map(|(flow_id, last_seq)| Owned::Close { flow_id, last_seq }),
        any::<u64>().prop_map(|ts_ns| Owned::Keepalive { ts_ns }),
        (any::<u32>(), any::<u64>())
            .prop_map(|(flow_id, next_expected_seq)| Owned::Resume { flow_id, next_expected_seq }),
        (any::<u32>(), any::<u64>()).prop_map(|(flow_id, last_seq)| Owned::Gone { flow_id, last_seq }),
        (any::<u32>(), any::<u64>()).prop_map(|(flow_id, consumed_seq)| Owned::Reset { flow_id, consumed_seq }),
        proptest::collection::vec(any::<u8>(), 1..=max_payload.max(1)).prop_map(|payload| Owned::Cluster { payload }),
    ]
}

pub(super) fn any_checksum() -> impl Strategy<Value = Checksum> {
    prop_oneof![Just(Checksum::None), Just(Checksum::Crc32c)]
}

/// One encoded frame.
pub(super) fn encoded(frame: &Owned, checksum: Checksum) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&frame.frame(), checksum, &mut out).unwrap();
    out
}

/// Decodes every whole frame at the front of `rx` as a receive loop would,
/// drops the bytes they took, and hands each frame to `each`.
pub(super) fn drain_frames(decoder: &Decoder, rx: &mut Vec<u8>, mut each: impl FnMut(Frame<'_>)) {
    let mut used = 0;
    while let Some((frame, n)) = decoder.decode(&rx[used..]).unwrap() {
        each(frame);
        used += n;
    }
    rx.drain(..used);
}

/// A small deterministic generator for simulations and fuzz loops.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
