//! Single-producer single-consumer ring of variable-length frames.
//!
//! The producer writes a frame in place (header, payload) and publishes it by
//! storing its commit word last, with Release. The consumer polls the commit
//! word at its read position with Acquire: the frame header and the payload
//! usually share the cache line the consumer polls, so a message costs about
//! one cache-line transfer, as the physical limit does.
//!
//! Nothing is zeroed behind the consumer. Instead, before it publishes, the
//! producer zeroes the commit word of the *next* frame position, so the word
//! at the consumer's position is always either zero (nothing yet) or a commit
//! of the current lap — never a stale frame or payload of an earlier lap.
//!
//! Batches: [`Claim::push`] adds a frame without publishing it; the frame
//! words of a batch after the first are stored early, and the first is held
//! back and stored last by [`Producer::commit`], publishing the whole batch
//! with one Release. The consumer advances locally and publishes its position
//! with [`Consumer::release`], once per batch if it likes.
//! [`Producer::write_batch`] claims, fills and publishes a batch of
//! frames in one call, with the producer's state in registers between
//! frames: the fast form for streams.
//!
//! Wrap-around: a frame never straddles the end; the producer fills the tail
//! end with a PAD frame and writes the frame at the start. Frames are at most
//! half the capacity, so a frame always fits once the consumer catches up.
//!
//! The window (opt-in, [`Producer::set_window`]): while the consumer keeps
//! up, the producer wraps early, a few hundred bytes into the ring (a PAD
//! frame to the end), so one message in flight at a time cycles through a
//! few warm cache lines instead of the whole ring (what that does to a
//! ping-pong is measured in tuning.md, "Window"). Each time it passes the window it reads the
//! consumer's position once: the consumer within one window of the last
//! published frame (and not asleep) means wrap now, as soon as the start of
//! the ring is free; otherwise the rest of the ring is used as usual. Within
//! a window, not exactly caught up: a request/reply peer typically replies
//! before it releases the request, so the position read at the pass is one
//! frame behind, and an exact rule sent whole laps through cold lines
//! (both rules are compared in tuning.md). The consumer sees nothing new: PAD frames to the end of
//! the ring are what it always skipped. The price, and why it is not the
//! default: until the consumer reads that padding, the producer's room is
//! at most what it had written on that lap (at least the window), not the
//! whole ring. A polling consumer reads it at its next look; a consumer
//! that is caught up but not looking (the same thread, about to send a
//! burst before it reads) would see the ring full early.
//!
//! Every word read from the region is validated: a bad kind, length, padding
//! or sequence number is [`Corrupt`](crate::Corrupt), never an out-of-bounds access. Every
//! loop over it is bounded: padding is valid only from inside the ring to
//! its end (never at offset 0), so a read skips at most one; a published
//! tail behind the consumer or more than a lap ahead is `Corrupt`, so a
//! batch walks at most one lap. Payloads are never trusted for anything
//! (see the crate documentation on what a peer can change under a reader).
//!
//! Access to a frame's bytes is bound to a borrow: a [`Claim`] (or a
//! [`Slot`] of [`Producer::write_batch`]) borrows the producer mutably and
//! is consumed by its commit; a [`ReadGuard`] or a [`FrameRef`](crate::FrameRef)
//! from [`Consumer::view`] borrows the consumer, so nothing consumes or
//! releases the frame while its bytes are viewed. A [`Peeked`] is `Copy` and
//! grants no access: the consumer checks it is its own next frame. So safe
//! code cannot write a frame after its commit, read it after its release,
//! or hold two views of one frame's bytes of which one writes:
//!
//! ```compile_fail
//! # use ringflow_ring::{spsc, HeapRegion};
//! # let region = HeapRegion::new(spsc::region_len(256));
//! # unsafe { spsc::init(&region) }.unwrap();
//! # let mut tx = spsc::Producer::attach(&region).unwrap();
//! let mut claim = tx.try_claim(8).unwrap();
//! let bytes = claim.payload_mut();
//! let _ = claim.commit();
//! bytes[0] = 1; // the view does not outlive the commit
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{spsc, HeapRegion};
//! # let region = HeapRegion::new(spsc::region_len(256));
//! # unsafe { spsc::init(&region) }.unwrap();
//! # let mut tx = spsc::Producer::attach(&region).unwrap();
//! let a = tx.try_claim(8).unwrap();
//! let b = tx.try_claim(8).unwrap(); // two claims at once
//! drop(a);
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{spsc, HeapRegion};
//! # let region = HeapRegion::new(spsc::region_len(256));
//! # unsafe { spsc::init(&region) }.unwrap();
//! # let mut tx = spsc::Producer::attach(&region).unwrap();
//! let mut kept = None;
//! let _ = tx.write_batch(2, 8, |slot| {
//!     kept = Some(slot.payload_mut()); // a slot's bytes do not leave `fill`
//!     true
//! });
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{spsc, HeapRegion};
//! # let region = HeapRegion::new(spsc::region_len(256));
//! # unsafe { spsc::init(&region) }.unwrap();
//! # let mut tx = spsc::Producer::attach(&region).unwrap();
//! # let mut rx = spsc::Consumer::attach(&region).unwrap();
//! # let _ = tx.try_send(b"hello").unwrap();
//! let guard = rx.try_read().unwrap();
//! let bytes = guard.payload();
//! drop(guard);
//! let _ = rx.release();
//! assert_eq!(bytes[0], b'h'); // reading after the release
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{spsc, HeapRegion};
//! # let region = HeapRegion::new(spsc::region_len(256));
//! # unsafe { spsc::init(&region) }.unwrap();
//! # let mut tx = spsc::Producer::attach(&region).unwrap();
//! # let mut rx = spsc::Consumer::attach(&region).unwrap();
//! # let _ = tx.try_send(b"hello").unwrap();
//! let peeked = rx.peek().unwrap();
//! let view = rx.view(&peeked);
//! rx.consume(&peeked);
//! let _ = rx.release();
//! assert_eq!(view.payload()[0], b'h'); // a view across the consume
//! ```
//!
//! The same steps, in order, compile:
//!
//! ```
//! # use ringflow_ring::{spsc, HeapRegion};
//! # let region = HeapRegion::new(spsc::region_len(256));
//! # unsafe { spsc::init(&region) }.unwrap();
//! # let mut tx = spsc::Producer::attach(&region).unwrap();
//! # let mut rx = spsc::Consumer::attach(&region).unwrap();
//! let mut claim = tx.try_claim(5).unwrap();
//! claim.payload_mut().copy_from_slice(b"hello");
//! let _ = claim.commit();
//! let _ = tx.write_batch(1, 5, |slot| {
//!     slot.payload_mut().copy_from_slice(b"world");
//!     false
//! });
//! let guard = rx.try_read().unwrap();
//! assert_eq!(guard.payload(), b"hello");
//! drop(guard);
//! let peeked = rx.peek().unwrap();
//! assert_eq!(rx.view(&peeked).payload(), b"world");
//! assert!(rx.consume(&peeked));
//! let _ = rx.release();
//! ```

mod batch;
mod claim;
mod consumer;
mod layout;
mod producer;
mod window;

pub use crate::control::{MAX_CAPACITY, MIN_CAPACITY};
pub use batch::Slot;
pub use claim::Claim;
pub use consumer::{Consumer, Peeked, ReadGuard};
pub(crate) use layout::{
    geometry, DATA, OFF_CONSUMER, OFF_DATA_WAIT, OFF_HEAD, OFF_PRODUCER, OFF_SPACE_WAIT, OFF_TAIL,
};
pub use layout::{init, init_with, is_fresh, max_payload, region_len, wait_points, CONTROL_LEN, LATENCY_WINDOW};
pub use producer::Producer;
