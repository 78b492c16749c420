//! The SPSC producer's window policy (opt-in, [`Producer::set_window`]):
//! wrapping early while the consumer keeps up, so one message in flight at
//! a time cycles through a few warm cache lines (see the module
//! documentation of `spsc`).

use super::layout::end_after;
use super::producer::Producer;
use crate::error::ClaimError;
use crate::frame::frame_size;
use crate::region::Region;

impl<R: Region> Producer<R> {
    /// Wraps early past `bytes` into the ring while the consumer keeps up
    /// and polls (see the module documentation; off by default, and
    /// `usize::MAX` turns it off again). For rings that carry one request
    /// or reply at a time: [`LATENCY_WINDOW`](super::LATENCY_WINDOW). A smaller window keeps fewer
    /// lines warm and reads the consumer's position more often (once per
    /// pass); right after an early wrap, room is what was written on that
    /// lap until the consumer reads on.
    pub fn set_window(&mut self, bytes: usize) {
        self.window = bytes;
    }

    /// Where a frame of `len` bytes claimed now starts, and its padding.
    #[inline]
    pub(super) fn place(&self, len: usize) -> (u64, u64) {
        let need = frame_size(len) as u64;
        let at = self.pending as usize & self.mask;
        let room_to_end = (self.capacity - at) as u64;
        let pad = if need <= room_to_end && !self.wraps_early(at, len) { 0 } else { room_to_end };
        (pad, self.pending + pad)
    }

    /// Whether a frame of `len` bytes at offset `at` starts the next lap
    /// now: past the window, on a lap whose pass found the consumer caught
    /// up, and only if the frame fits there by the position read then (else
    /// it goes where it would have anyway).
    #[inline]
    pub(super) fn wraps_early(&self, at: usize, len: usize) -> bool {
        let lap = self.pending - at as u64;
        if at < self.window || !self.caught_up || self.window_lap != lap {
            return false;
        }
        end_after(lap + self.capacity as u64, len) <= self.cached_head + self.capacity as u64
    }

    /// Past the window for the first time this lap: reads the consumer's
    /// position once and decides whether this lap ends here.
    #[inline]
    pub(super) fn pass_window(&mut self) -> Result<(), ClaimError> {
        let at = self.pending as usize & self.mask;
        // Off (the default): one compare per claim, nothing else.
        if at < self.window {
            return Ok(());
        }
        let lap = self.pending - at as u64;
        if self.window_lap == lap {
            return Ok(());
        }
        self.window_lap = lap;
        self.refresh_head()?;
        // Keeping up (within a window: see the module documentation) and
        // polling. A consumer asleep would leave the early padding unread
        // until woken, and until then a burst would have only the window's
        // bytes of room instead of the ring's.
        self.caught_up = self.tail - self.cached_head <= self.window as u64 && !self.data_wait().has_sleepers();
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use super::super::{init, region_len, Consumer, LATENCY_WINDOW};
    use super::*;
    use crate::HeapRegion;

    fn ring(cap: usize) -> (Producer<Arc<HeapRegion>>, Consumer<Arc<HeapRegion>>) {
        let region = Arc::new(HeapRegion::new(region_len(cap)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { init(&*region) }.unwrap();
        (Producer::attach(region.clone()).unwrap(), Consumer::attach(region).unwrap())
    }

    /// One message in flight at a time stays within the window (plus one
    /// frame); a consumer that lags gets the whole ring, as without one.
    #[test]
    fn frames_stay_in_the_window_while_the_consumer_keeps_up() {
        let (mut tx, mut rx) = ring(16 << 10);
        tx.set_window(LATENCY_WINDOW);
        for i in 0..1000u32 {
            let at = tx.pending as usize & tx.mask;
            assert!(at < LATENCY_WINDOW + frame_size(64), "message {i} at {at}");
            let _ = tx.try_send(&[i as u8; 64]).unwrap();
            assert_eq!(rx.try_read().unwrap().payload(), &[i as u8; 64]);
            let _ = rx.release();
        }
        // On to the first frame of a lap, then frames left unread: the
        // consumer lags when the producer next passes the window, and the
        // ring fills up to its capacity, not the window.
        let mut i = 0u8;
        while tx.pending as usize & tx.mask != frame_size(64) {
            let _ = tx.try_send(&[i; 64]).unwrap();
            assert_eq!(rx.try_read().unwrap().payload(), &[i; 64]);
            let _ = rx.release();
            i = i.wrapping_add(1);
        }
        // Four frames unread: more than a window behind at the next pass.
        for _ in 0..4 {
            let _ = tx.try_send(&[7; 64]).unwrap();
        }
        let mut sent = 4;
        while tx.try_send(&[7; 64]).is_ok() {
            sent += 1;
        }
        assert!(sent * frame_size(64) > (16 << 10) - LATENCY_WINDOW - 2 * frame_size(64), "{sent} frames");
        for _ in 0..sent {
            assert_eq!(rx.try_read().unwrap().payload(), &[7; 64]);
        }
        assert_eq!(rx.try_read().err(), Some(crate::ReadError::Empty));
    }

    /// The window's price, and why it is opt-in: a burst right after an
    /// early wrap has the lap's written bytes as room until the consumer
    /// reads on; without a window the same pattern gets the whole ring.
    #[test]
    fn a_burst_after_an_early_wrap_has_the_lap_as_room() {
        let burst = |window: usize| {
            let (mut tx, mut rx) = ring(16 << 10);
            tx.set_window(window);
            // One at a time up to the window, the consumer keeping up: the
            // burst's first claim passes it.
            for i in 0..(LATENCY_WINDOW / frame_size(64) + 1) as u8 {
                let _ = tx.try_send(&[i; 64]).unwrap();
                assert_eq!(rx.try_read().unwrap().payload(), &[i; 64]);
                let _ = rx.release();
            }
            let mut sent = 0;
            while tx.try_send(&[0; 64]).is_ok() {
                sent += 1;
            }
            sent
        };
        let whole = (16 << 10) / frame_size(64);
        assert!(burst(usize::MAX) >= whole - 2, "no window: the whole ring");
        let after_wrap = burst(LATENCY_WINDOW);
        assert!(after_wrap * frame_size(64) <= LATENCY_WINDOW + 2 * frame_size(64), "{after_wrap} frames");
    }

    /// The loom models' case (`early_wraps_*`): 24-byte frames, window 32
    /// in 128 bytes; read one by one, the third frame starts the next lap.
    #[test]
    fn the_third_frame_wraps_early_when_the_first_two_were_read() {
        let (mut tx, mut rx) = ring(128);
        tx.set_window(32);
        for (i, len) in [8usize, 3, 6, 2].into_iter().enumerate() {
            let _ = tx.try_send(&vec![i as u8; len]).unwrap();
            assert_eq!(rx.try_read().unwrap().payload(), &vec![i as u8; len][..]);
            let _ = rx.release();
        }
        // Frames at 0, 24, then 128 (padding from 48), then 152.
        assert_eq!(tx.pending, 128 + 2 * 24);
    }
}
