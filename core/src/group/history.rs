//! The view history: the last [`HISTORY`] views, each in an entry of its
//! own (`view id % HISTORY`), so a member of a lossy group that was lapped
//! past a view frame can still deliver that view, in order. The keeper
//! writes an entry before the view's frame is committed; members copy it
//! out under a seqlock made of atomics (every word is an atomic, so a race
//! with the keeper's rewrite is never a data race) and decode the copy as
//! untrusted input.

use std::sync::atomic::{fence, Ordering};

use ringflow_ring::{RawRegion, Region};

use super::memory::HISTORY;

/// Keeper: stores the encoded view `bytes` of view `id`.
pub(crate) fn store(history: &RawRegion, entry_len: usize, id: u64, bytes: &[u8]) {
    let base = (id % HISTORY as u64) as usize * entry_len;
    debug_assert!(16 + bytes.len() <= entry_len);
    let seq = history.atomic_word(base);
    // SYNC: Relaxed store, then a Release fence; pairs with the Acquire
    // fence in `load`: a reader that sees any word written below sees the
    // odd sequence too, and discards its copy.
    seq.store(2 * id + 1, Ordering::Relaxed);
    fence(Ordering::Release);
    // SYNC: Relaxed (the stores); published by the Release below.
    history.atomic_word(base + 8).store(bytes.len() as u64, Ordering::Relaxed);
    for (k, chunk) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        history.atomic_word(base + 16 + 8 * k).store(u64::from_le_bytes(w), Ordering::Relaxed);
    }
    // SYNC: Release; pairs with the Acquire first load in `load`.
    seq.store(2 * id + 2, Ordering::Release);
}

/// Member: copies view `id` out of the history into `out`; false if the
/// entry holds another view now (or is being rewritten, or is garbage).
pub(crate) fn load(history: &RawRegion, entry_len: usize, id: u64, out: &mut Vec<u8>) -> bool {
    let base = (id % HISTORY as u64) as usize * entry_len;
    if base + entry_len > history.len() {
        return false;
    }
    let seq = history.atomic_word(base);
    let want = 2 * id + 2;
    // SYNC: Acquire; pairs with the Release last store in `store`.
    if seq.load(Ordering::Acquire) != want {
        return false;
    }
    // SYNC: Relaxed; validated by the sequence check below.
    let len = history.atomic_word(base + 8).load(Ordering::Relaxed) as usize;
    if len > entry_len - 16 {
        return false;
    }
    out.clear();
    for k in 0..len.div_ceil(8) {
        // SYNC: Relaxed; validated by the sequence check below.
        let w = history.atomic_word(base + 16 + 8 * k).load(Ordering::Relaxed).to_le_bytes();
        let n = (len - 8 * k).min(8);
        out.extend_from_slice(&w[..n]);
    }
    // SYNC: Acquire fence; pairs with the Release fence in `store`: if any
    // word we copied was written by a later rewrite, the load below sees
    // that rewrite's odd sequence.
    fence(Ordering::Acquire);
    // SYNC: Relaxed; ordered by the fence above.
    seq.load(Ordering::Relaxed) == want
}
