//! Whole N-byte messages out of a byte stream read in large chunks: what the
//! receiving end of a stream over a socket does — read whatever has
//! arrived, hand on every complete message, keep the partial last one for
//! the next read. Senders are unaffected: they still write one message per
//! call.
//!
//! Nothing here allocates after construction (it runs on the hot path), and
//! nothing here reads a message before all of its bytes have arrived.

use crate::error::BenchError;
use crate::wire::Sink;

/// The most one receive call of a stream's receiver takes.
pub const RECV_CHUNK: usize = 256 << 10;

/// A receive buffer that reassembles N-byte messages across reads.
pub struct Frames<const N: usize> {
    buf: Box<[u8]>,
    /// Received bytes not yet handed on are `buf[start..filled]`.
    start: usize,
    filled: usize,
}

impl<const N: usize> Frames<N> {
    /// A buffer that takes reads of up to `chunk` bytes (at least one
    /// message, rounded up to whole messages).
    pub fn new(chunk: usize) -> Self {
        let len = chunk.max(N).div_ceil(N) * N;
        Frames { buf: vec![0; len].into_boxed_slice(), start: 0, filled: 0 }
    }

    /// Where the next read goes: never empty, since fewer than N bytes are
    /// ever kept between reads.
    #[inline]
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Takes the `n` bytes just read into [`Frames::spare`] and hands every
    /// whole message to `sink`. Returns true once the stop message arrived.
    #[inline]
    pub fn take(&mut self, n: usize, sink: &mut Sink) -> Result<bool, BenchError> {
        self.filled += n;
        while self.filled - self.start >= N {
            let msg = &self.buf[self.start..self.start + N];
            self.start += N;
            if sink.on_bytes(msg)? {
                return Ok(true);
            }
        }
        // The partial message (if any) moves to the front, so the next read
        // has room for at least the rest of it.
        self.buf.copy_within(self.start..self.filled, 0);
        self.filled -= self.start;
        self.start = 0;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::wire::{Msg, Template, MEASURED, STOP, WARMUP};

    /// Messages split at every possible point across reads of odd sizes
    /// arrive whole, in order, and the stop message ends the stream.
    #[test]
    fn messages_split_across_reads_arrive_whole() {
        let template = Template::<64>::new();
        let mut bytes = Vec::new();
        for seq in 0..9 {
            let mark = if seq < 3 { WARMUP } else { MEASURED };
            bytes.extend_from_slice(&Msg { seq, mark }.to_array(&template));
        }
        bytes.extend_from_slice(&Msg { seq: 9, mark: STOP }.to_array(&template));
        for read in [1, 7, 63, 64, 65, 200, 1000] {
            let mut frames = Frames::<64>::new(150);
            let mut sink = Sink::new(Instant::now()).expect("sink");
            let mut at = 0;
            let mut stopped = false;
            while at < bytes.len() {
                let spare = frames.spare();
                assert!(!spare.is_empty());
                let n = spare.len().min(read).min(bytes.len() - at);
                spare[..n].copy_from_slice(&bytes[at..at + n]);
                at += n;
                stopped = frames.take(n, &mut sink).unwrap_or_else(|e| panic!("reads of {read}: {e}"));
                assert_eq!(stopped, at == bytes.len(), "reads of {read}: stop only after its last byte");
            }
            assert!(stopped);
            assert_eq!(sink.finish().msgs, 6, "reads of {read}: the measured messages");
        }
    }

    /// A message out of order (here: one byte lost) is reported, not
    /// silently resynchronised.
    #[test]
    fn a_lost_byte_is_a_protocol_error() {
        let template = Template::<64>::new();
        let mut bytes = Msg { seq: 0, mark: WARMUP }.to_array(&template).to_vec();
        bytes.extend_from_slice(&Msg { seq: 1, mark: WARMUP }.to_array(&template)[1..]);
        bytes.extend_from_slice(&[0; 1]);
        let mut frames = Frames::<64>::new(256);
        let mut sink = Sink::new(Instant::now()).expect("sink");
        frames.spare()[..bytes.len()].copy_from_slice(&bytes);
        assert!(matches!(frames.take(bytes.len(), &mut sink), Err(BenchError::Protocol { expected: 1, .. })));
    }
}
