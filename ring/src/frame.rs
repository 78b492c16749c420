//! Frame headers shared by the SPSC and MPSC rings.
//!
//! A frame is a 16-byte header followed by its payload, padded to 8 bytes.
//! The first header word is the *commit word*: a reader that sees it non-zero
//! (with Acquire) sees the whole frame. Its layout:
//!
//! ```text
//! bits  0..32  len    payload bytes (DATA, CLAIMED) or total frame bytes (PAD)
//! bits 32..40  kind   DATA, PAD or CLAIMED; zero means "nothing here yet"
//! bits 40..48  flags  free for the layers above
//! bits 48..64  tag    SPSC: sequence number mod 2^16; MPSC: producer id
//! ```
//!
//! The second word is free metadata for the layers above (a send timestamp).

/// Bytes of header in front of every DATA frame.
pub const HEADER: usize = 16;
/// A committed frame carrying a payload.
pub const KIND_DATA: u8 = 1;
/// Filler up to the end of the region (or over an abandoned claim).
pub const KIND_PAD: u8 = 2;
/// Space claimed by a producer that has not committed yet (MPSC only).
pub const KIND_CLAIMED: u8 = 3;

use crate::region::Access;

/// The decoded commit word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameWord {
    /// Payload length (a padding frame's: its whole length).
    pub len: u32,
    /// Data or padding (`KIND_DATA`, `KIND_PAD`).
    pub kind: u8,
    /// Flags free for the layers above.
    pub flags: u8,
    /// The writer's tag (a broadcast log's producer id).
    pub tag: u16,
}

impl FrameWord {
    /// Packs the word. A valid frame word is never zero (kind is never zero).
    #[inline]
    pub const fn encode(self) -> u64 {
        self.len as u64 | (self.kind as u64) << 32 | (self.flags as u64) << 40 | (self.tag as u64) << 48
    }

    /// Unpacks a word read from (untrusted) shared memory. Every bit pattern
    /// decodes; validation is the ring's job.
    #[inline]
    pub const fn decode(word: u64) -> Self {
        FrameWord { len: word as u32, kind: (word >> 32) as u8, flags: (word >> 40) as u8, tag: (word >> 48) as u16 }
    }
}

/// A committed frame a consumer has located and validated: where it is and
/// what its header said. The consumers' read guards hand out its payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameAt {
    /// Position of the frame (after any padding skipped to reach it).
    pub pos: u64,
    /// Region offset of the payload.
    pub payload: usize,
    pub len: usize,
    /// Bytes the frame occupies in the ring.
    pub size: u64,
    pub meta: u64,
    pub flags: u8,
    pub tag: u16,
}

impl FrameAt {
    /// The payload in place. The caller's guard must keep the frame's space
    /// from being reused while the slice lives (it borrows the consumer).
    #[cfg(not(loom))]
    #[inline]
    pub fn payload<'r, R: crate::Region>(&self, region: &'r R) -> &'r [u8] {
        assert!(self.payload.checked_add(self.len).is_some_and(|end| end <= region.len()));
        // SAFETY: the range lies inside the region (asserted; consumers also
        // validated it), and the frame is not reused while the guard lives.
        unsafe { std::slice::from_raw_parts(region.base().add(self.payload), self.len) }
    }

    /// Copies the payload into `dst` (at least `len` bytes).
    pub fn copy_to<R: crate::Region>(&self, region: &R, dst: &mut [u8]) {
        region.read(self.payload, &mut dst[..self.len]);
    }
}

/// A committed frame read in place: handed to `read_batch` closures, and
/// what the consumers' read guards dereference to.
pub struct FrameRef<'a, R: crate::Region> {
    pub(crate) region: &'a R,
    pub(crate) frame: FrameAt,
}

impl<R: crate::Region> FrameRef<'_, R> {
    /// Payload length.
    pub fn len(&self) -> usize {
        self.frame.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.frame.len == 0
    }

    /// The metadata word the producer set.
    pub fn meta(&self) -> u64 {
        self.frame.meta
    }

    /// The flags the producer set.
    pub fn flags(&self) -> u8 {
        self.frame.flags
    }

    /// The payload, in place (zero-copy).
    ///
    /// In shared memory the producer's process can still write these bytes:
    /// an honest producer does not until the frame is released, a
    /// misbehaving one may change them while you read (a data race in
    /// Rust's model; see the crate documentation, "What a peer can and
    /// cannot do to you"). The ring takes nothing from them: parse them
    /// once and copy out what you validate.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.frame.payload(self.region)
    }

    /// Copies the payload into `dst` (at least `len()` bytes): one read of
    /// each byte, which a misbehaving producer may still have been writing
    /// (validate the copy, not the shared bytes).
    pub fn copy_to(&self, dst: &mut [u8]) {
        self.frame.copy_to(self.region, dst)
    }
}

/// The payload of a claimed (not yet committed) frame: `len` bytes at region
/// offset `off`, writable in place.
///
/// # Safety
/// The caller must hold the only right to write those bytes for as long as
/// the returned slice lives (its claim), and no peer may read them as a frame
/// before the claim is committed (lossy broadcast readers validate after
/// copying, so their reads never count).
#[cfg(not(loom))]
#[inline]
#[allow(clippy::mut_from_ref, reason = "exclusivity comes from the caller's claim: the Safety contract")]
pub(crate) unsafe fn claimed_payload_mut<R: crate::Region>(region: &R, off: usize, len: usize) -> &mut [u8] {
    assert!(off.checked_add(len).is_some_and(|end| end <= region.len()), "ring bug: claim outside the region");
    // SAFETY: in bounds (asserted); exclusive access is the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(region.base().add(off), len) }
}

/// The payload of a claimed (not yet committed) frame, read-only: a shared
/// view built from the raw pointer directly (no `&mut` made first).
///
/// # Safety
/// Nothing may write those bytes while the returned slice lives: the caller
/// holds the claim (the only right to write them) and borrows it shared for
/// the slice's lifetime.
#[cfg(not(loom))]
#[inline]
pub(crate) unsafe fn claimed_payload<R: crate::Region>(region: &R, off: usize, len: usize) -> &[u8] {
    assert!(off.checked_add(len).is_some_and(|end| end <= region.len()), "ring bug: claim outside the region");
    // SAFETY: in bounds (asserted); no writer while the slice lives is the
    // caller's contract.
    unsafe { std::slice::from_raw_parts(region.base().add(off), len) }
}

/// Copies `bytes` at `at` into a claimed payload of `len` bytes at region
/// offset `off`. Panics if it does not fit the claim.
#[inline]
pub(crate) fn write_claimed<R: crate::Region>(region: &R, off: usize, len: usize, at: usize, bytes: &[u8]) {
    assert!(at.checked_add(bytes.len()).is_some_and(|end| end <= len), "write past the claimed payload");
    region.write(off + at, bytes);
}

/// Rounds up to the frame alignment (8 bytes).
#[inline]
pub const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Bytes a DATA frame with `payload` bytes occupies in the ring.
#[inline]
pub const fn frame_size(payload: usize) -> usize {
    align8(HEADER + payload)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn word_round_trips(len: u32, kind in 1u8.., flags: u8, tag: u16) {
            let w = FrameWord { len, kind, flags, tag };
            prop_assert_ne!(w.encode(), 0);
            prop_assert_eq!(FrameWord::decode(w.encode()), w);
        }

        #[test]
        fn any_word_decodes_and_re_encodes(word: u64) {
            prop_assert_eq!(FrameWord::decode(word).encode(), word);
        }

        #[test]
        fn frame_size_is_aligned_and_sufficient(payload in 0usize..1 << 24) {
            let s = frame_size(payload);
            prop_assert_eq!(s % 8, 0);
            prop_assert!(s >= HEADER + payload && s < HEADER + payload + 8);
        }
    }
}
