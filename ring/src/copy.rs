//! Copies of large payloads that avoid a slow path of `rep movsb`.
//!
//! glibc's `memcpy` moves a copy of a few KiB or more with `rep movsb`. On
//! some AMD Zen processors that instruction runs an order of magnitude
//! slower when the destination lies just past the source modulo a page,
//! (dst - src) mod 4096 in 1..32 (measured on this project's AMD EPYC
//! host with glibc 2.36: tuning.md, "Large copies"). glibc 2.39 stopped
//! choosing `rep movsb` for such sizes on those processors (BZ 30994);
//! older ones still do. A ring slot, a retransmit window's entry and a receive
//! buffer sit at distances that change with every message, so one
//! message in many paid it, and a sender whose buffer sat at a bad
//! distance from its source paid it on every message.
//!
//! [`copy_bytes`] copies such a pair in chunks small enough for
//! `memcpy`'s vector loop, which runs at full speed at any distance, and
//! every other copy in one call, as before.

/// The largest chunk copied in one `memcpy` call when the distance is a
/// bad one: below glibc's `rep movsb` threshold for AVX2 (measured: 2 KiB
/// chunks ran at full speed at every distance, 3 KiB chunks did not).
const CHUNK: usize = 2048;

/// Distances (mod [`PAGE`]) below this, except zero, take the chunked copy
/// (the slow ones measured were 1..32; the margin costs nothing).
const NEAR: usize = 64;

const PAGE: usize = 4096;

/// Whether a copy of `len` bytes from `src` to `dst` goes in chunks.
#[inline]
fn chunked(dst: *const u8, src: *const u8, len: usize) -> bool {
    len > CHUNK && {
        let distance = (dst as usize).wrapping_sub(src as usize) % PAGE;
        distance != 0 && distance < NEAR
    }
}

/// Copies `src` into `dst` (`dst.copy_from_slice(src)`, with the same
/// panic when their lengths differ), avoiding `rep movsb`'s slow
/// distances (see the module's documentation).
#[inline]
pub fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    if !chunked(dst.as_ptr(), src.as_ptr(), src.len()) {
        dst.copy_from_slice(src);
        return;
    }
    assert_eq!(dst.len(), src.len(), "copy_bytes: destination and source lengths differ");
    for (d, s) in dst.chunks_mut(CHUNK).zip(src.chunks(CHUNK)) {
        d.copy_from_slice(s);
    }
}

/// [`copy_bytes`] between raw pointers: `std::ptr::copy_nonoverlapping`
/// avoiding `rep movsb`'s slow distances.
///
/// # Safety
///
/// As for [`std::ptr::copy_nonoverlapping`]: `src` is valid for reads and
/// `dst` for writes of `len` bytes, and the two ranges do not overlap.
#[inline]
pub unsafe fn copy_nonoverlapping(src: *const u8, dst: *mut u8, len: usize) {
    if !chunked(dst, src, len) {
        // SAFETY: the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        // SAFETY: `done + n <= len`, so both chunks lie inside the ranges
        // the caller promised valid and disjoint.
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), n) };
        done += n;
    }
}

/// `v.extend_from_slice(src)` through [`copy_nonoverlapping`].
#[inline]
pub fn extend_bytes(v: &mut Vec<u8>, src: &[u8]) {
    v.reserve(src.len());
    let len = v.len();
    // SAFETY: `reserve` made room for `src.len()` more bytes past `len`;
    // `src` is a shared borrow, so it cannot overlap `v`'s spare capacity,
    // which only the exclusive `v` reaches. The bytes are initialised by
    // the copy before `set_len` exposes them.
    unsafe {
        copy_nonoverlapping(src.as_ptr(), v.as_mut_ptr().add(len), src.len());
        v.set_len(len + src.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every distance class (zero, near, far) and a length that is not a
    /// multiple of the chunk copies every byte, through both forms.
    #[test]
    fn copies_every_byte_at_any_distance() {
        let len = 3 * CHUNK + 123;
        let src: Vec<u8> = (0..len + PAGE).map(|i| (i * 7 + 3) as u8).collect();
        for distance in [0, 1, 8, 16, 31, 32, 63, 64, 100, PAGE - 8] {
            let mut dst = vec![0u8; len + 2 * PAGE];
            // The destination's offset that puts it `distance` past the
            // source modulo a page.
            let want = (src.as_ptr() as usize + distance) % PAGE;
            let off = (want + PAGE - dst.as_ptr() as usize % PAGE) % PAGE;
            assert_eq!((dst[off..].as_ptr() as usize).wrapping_sub(src.as_ptr() as usize) % PAGE, distance);
            assert_eq!(chunked(dst[off..].as_ptr(), src.as_ptr(), len), distance != 0 && distance < NEAR);
            copy_bytes(&mut dst[off..off + len], &src[..len]);
            assert_eq!(&dst[off..off + len], &src[..len], "distance {distance}");
            let mut raw = vec![0u8; len + 2 * PAGE];
            let off = (want + PAGE - raw.as_ptr() as usize % PAGE) % PAGE;
            // SAFETY: `raw[off..off + len]` and `src[..len]` are in bounds
            // and belong to different vectors.
            unsafe { copy_nonoverlapping(src.as_ptr(), raw.as_mut_ptr().add(off), len) };
            assert_eq!(&raw[off..off + len], &src[..len], "distance {distance} (raw)");
            let mut grown = b"head".to_vec();
            extend_bytes(&mut grown, &src[..len]);
            assert_eq!((&grown[..4], &grown[4..]), (&b"head"[..], &src[..len]), "distance {distance} (extend)");
        }
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn a_length_mismatch_panics_as_copy_from_slice_does() {
        let src = vec![1u8; 3 * CHUNK];
        let mut dst = vec![0u8; 3 * CHUNK + PAGE];
        let want = (src.as_ptr() as usize + 8) % PAGE;
        let off = (want + PAGE - dst.as_ptr() as usize % PAGE) % PAGE;
        copy_bytes(&mut dst[off..off + 2 * CHUNK], &src);
    }
}
