//! Every word of a flow's memory a peer can write, and what its worst value
//! does. (Documentation only: no code lives here.)
//!
//! A flow's segment is a memfd both processes map read-write, so a peer can
//! write *every* byte of it at any time, including the words "owned" by our
//! side: the lists below go word by word, for both directions. The rule the
//! code follows (DESIGN.md, "Data path"): memory a peer writes is input, not
//! state. Every length and offset is bounds-checked before use and checked
//! against what the QoS granted; every loop over peer-written memory is
//! bounded; a corrupt ring ends that flow with a typed error
//! (`CorruptPeer`); a peer-written word decides at most whether the *peer*
//! is woken or signalled, never whether we are, and a death wakes every one
//! of our waiters through words only this process can write. "Ours" below
//! means the direction this side sends in (`tx`), "theirs" the one it
//! receives in (`rx`). The test `tests/hostile_peer.rs` writes chosen and
//! random values into all of these while the victim uses every API form.
//!
//! # What no peer can write
//!
//! - A flow's peer state (`FlowShared::state`, live or gone): a word of
//!   this process, written by the peer watcher when the peer's control
//!   socket hangs up. Every sleep in the flow's own calls (receive, send,
//!   loan, `dealloc`) waits on it beside its shared futex word
//!   (`futex_waitv`), and the watcher changes it and wakes it first: a
//!   death ends every wait whatever the peer wrote anywhere. (Where
//!   `futex_waitv` fails, before Linux 5.16 or under a seccomp filter, a
//!   sleep falls back to the shared word alone: then a process that still
//!   maps the segment after the hang-up and restores the futex word in the
//!   instant between the watcher's wake and a waiter's sleep could keep
//!   that waiter asleep.)
//! - The rings' own positions and cached bounds (`Producer::tail`,
//!   `Consumer::head`, capacity, wake mode), kept in process memory after
//!   attach; the shared copies are only published for the peer.
//! - The process's death word (`watch::deaths`): bumped and woken by the
//!   watcher on every hang-up, after the flow's state word is marked. A
//!   `FlowSet::wait` sleeps on it once (not on each flow's state word, so
//!   many flows fit one `futex_waitv`), having read it before its last look
//!   at the flows' states. A set has no fallback: without `futex_waitv`
//!   its wait fails (`SetError::Io`).
//! - The addresses of the wait points the watcher alerts, taken once at
//!   setup from the validated layout (`FlowShared::alerts`).
//! - The segment's size: the creator seals the memfd against shrinking and
//!   growing, and an attaching side refuses one not sealed against
//!   shrinking (growing cannot fault a mapping), so no peer can turn a
//!   mapped page into SIGBUS.
//!
//! # Layout header (`ringflow_shm::Layout`)
//!
//! - Magic, kind, version, region table (offset, length, kind of each of
//!   the five regions): read once, when the accepting side attaches;
//!   validated (inside the segment, aligned, the exact sizes the granted
//!   QoS implies, fresh rings, the agreed wake mode). Worst value: the
//!   flow is refused at setup (`AllocError`/`AcceptError`). Never read
//!   again: a later scribble does nothing.
//! - The accepting side's own segment, when it supplies the memory of the
//!   direction it receives on (`ListenerOptions::memory`, kind `FLRX`):
//!   its header is read once by the allocating side when READY brings the
//!   memfd, and validated the same way (sealed, the size READY announced,
//!   each region found exactly once across the two segments, the exact
//!   sizes and wake mode) except freshness, since the acceptor may already
//!   have attached its side. Worst value: the allocation fails with
//!   `AllocError::Memory`; never read again.
//!
//! # Inline rings (`ringflow_ring::spsc`), one per direction
//!
//! Control area:
//!
//! - Magic, capacity, wake mode: validated when the flow is assembled,
//!   then read once more as each side attaches (`FlowMemory::sides`, the
//!   wait points), and never after. Capacity must still match the
//!   region's length. A wake mode flipped between the two reads puts our
//!   side in the other mode: in membarrier mode our publishes skip the
//!   fence the peer's sleeper needs (the peer's loss) and our sleeps issue
//!   the membarrier (an error if this process cannot); in fenced mode a
//!   peer that skips its fence can make us miss its wake, which it could
//!   withhold anyway (our waits still end at the deadline or its death).
//!   Later scribbles do nothing.
//! - Producer side word (open / closed). Theirs: a false "closed" ends our
//!   reading early with `Closed` once the ring is empty (the peer could
//!   equally have closed); never "closed" means its death is learnt from
//!   the hang-up (`PeerGone`). Ours: read by nobody on our side.
//! - Consumer side word. Ours (they consume): a false "closed" makes our
//!   sends `Closed` (a full ring too: the ring says `Closed`, not `Full`,
//!   once the consumer closed; before, a blocking send woken by the close
//!   was told `Full` again and again and spun without end,
//!   `tests/hostile_review.rs`) and ends a lingering `dealloc` with
//!   `Closed`; a missing "closed" leaves our sends waiting until their
//!   deadline or the peer's death. Theirs: read by nobody on our side.
//! - Head (consumer position). Ours: checked on every refresh
//!   (`Producer::refresh_head`: never behind what we saw, never past what
//!   we published) or `CorruptPeer`; a value in range that does not move
//!   only keeps the ring full (waits end at the deadline or the death). The
//!   wait condition `fits` reads it unchecked but saturating: a huge value
//!   only says "room", and the claim that follows finds the corruption.
//!   Theirs: we never read it back (our head is local). Both: read once
//!   as each side attaches, as the position it starts from (a peer may
//!   write it after the freshness check, or supply the memory): above
//!   2^62 or not a multiple of 8 refuses the flow at setup (before: a
//!   misaligned start put the first frame's commit word off the 8-byte
//!   grid, where the region panics).
//! - Tail (producer position, a hint for batch reads): read only by
//!   `Consumer::read_batch`, which flows do not use.
//! - Wait points (futex sequence word, sleeper count), for data and for
//!   space. The sleeper counts decide only whether the *writer* of a
//!   publish or release wakes the other side: a peer that zeroes (or wraps
//!   from `u64::MAX`) the count of a wait point *we* sleep on withholds
//!   wakes it could withhold anyway by not publishing; our waits still end
//!   at their deadline, or at the peer's death, which wakes us whatever the
//!   count says (the watcher alerts unconditionally, and through the local
//!   word above). A nonzero count on a wait point *they* sleep on costs us
//!   a `futex_wake` per publish or release: a slowdown, never a wrong
//!   result. The sequence word (our futex word): a change only makes our
//!   `futex_wait` return early; we re-check and sleep again. A peer that
//!   keeps changing it keeps us re-checking (CPU, not a hang: the deadline
//!   and the death still end the wait).
//!
//! Data area:
//!
//! - Commit word of each frame (length, kind, flags, sequence tag). Theirs:
//!   the ring checks the kind, that a DATA frame's length fits the ring
//!   (at most its largest payload, not past its end) and carries the expected
//!   sequence tag, and that padding ends exactly at the end of the ring;
//!   anything else is `CorruptPeer`. Then the flow checks the frame against
//!   the grant (`Flow::checked`): no unknown flag; an inline message at
//!   most the inline size; a descriptor count (`FLAG_FDS`) from 1 to
//!   `SCM_MAX_FD`; a bulk descriptor exactly 16 bytes; never both call
//!   flags (`FLAG_TURN`, `FLAG_PART`) on one frame. A call flag a peer
//!   sets or clears at will moves only its own turn: the frame is still
//!   checked as above, a plain receive leaves it (`CallMessage`) and a
//!   call's receive leaves a plain frame (`PlainMessage`), and this side's
//!   turn is its own local state, taken only by consuming a whole frame
//!   flagged `FLAG_TURN` (a peer that never sends one makes a call wait to
//!   its deadline, like a peer that never answers). So no receive
//!   returns, and no `TooSmall { needed }` / `FdSlots { needed }` names, a
//!   length or count the flow did not grant. Padding that points back at
//!   itself (a PAD frame the length of the whole ring at position 0) is
//!   `CorruptPeer`: padding is valid only where it starts inside the ring
//!   and ends at its end, so a read skips at most one padding frame and
//!   looks at two words. Ours: we only write them (and the zeroed next word);
//!   a peer's scribble there garbles only what the peer reads.
//! - Metadata word. Low bits: the send stamp, turned into one latency
//!   sample (a stamp "from the future" counts as unstamped; any other
//!   value is a wrong sample in our histogram, never a panic). High bits:
//!   the descriptor count, checked as above.
//! - Payload bytes: handed to the application as they are. In place
//!   (`RecvBuf`, a loan's `SendBuf`) the peer can change them while they
//!   are read or written; ringflow takes no length, offset or loop bound
//!   from them, except the bulk descriptor, which is read once into
//!   locals (below). `recv_into` copies them once.
//! - Bulk descriptor (the payload of a `FLAG_BULK` frame: slot position,
//!   length). The pool checks the position is exactly the next slot and
//!   the length at most half the arena; the flow then checks the length is
//!   above the inline size and at most the granted `max_msg`, or
//!   `CorruptPeer` (before: a 101,536-byte message on a flow granted
//!   65,536 was delivered).
//!
//! # Bulk pools (`ringflow_ring::pool`), one per direction
//!
//! - Magic, capacity, wake mode: attach only.
//! - Producer and consumer side words: as for the inline rings (ours: a
//!   false "closed" makes a bulk send `Closed`, a full pool too).
//! - Head (consumer position). Ours: checked on every refresh (in the
//!   allocated range) or `CorruptPeer`; `fits` saturates as above. Theirs:
//!   never read back.
//! - Space wait point: as the rings' wait points.
//! - Committed position (end of the last slot the producer committed,
//!   stored before the descriptor frame is published). Theirs: a slot is
//!   opened for reading only below it, or `CorruptPeer`; a value too high
//!   only opens a slot the peer has not finished writing (its bytes, as
//!   any payload, are the peer's to garble), never one outside the arena
//!   or out of order (the descriptor checks above still hold). Ours: read
//!   by nobody on our side. (Before: nothing told a consumer whether a
//!   slot was committed, so safe code in one process could hold a
//!   `WriteSlot`'s `&mut [u8]` and a `ReadSlot`'s `&[u8]` over the same
//!   bytes.)
//! - Arena bytes: payload only, bounds from the checked descriptor and our
//!   own position.
//!
//! # State area (`FlowMemory`, 4 KiB)
//!
//! - Readiness arm word per direction (`ringflow_ring::arm`). Theirs (they
//!   set it when their receive found nothing): any nonzero value makes our
//!   next publish send a 1-byte datagram on the control socket
//!   (`MSG_DONTWAIT`, never blocking): an extra signal per message at
//!   worst. Ours: zeroing it withholds a signal the peer could withhold
//!   anyway; the peer's death makes our control socket (our readiness
//!   descriptor) readable regardless: the kernel's hang-up, not a word.
//! - Consumed count per direction (`ringflow_ring::linger`). Ours (their
//!   report of how many of our messages they consumed): a lie ends a
//!   lingering `dealloc` early (`Ok`), or keeps it waiting until its
//!   deadline, the peer's close or its death; `PeerGone { delivered }` and
//!   the engine's view clamp it to what we sent. Never used for memory.
//!   Theirs: we only write it.
//! - Lost count per direction (written by an engine peer): shown as
//!   `FlowStats::lost`. Any value is only a wrong figure.
//! - The rest of the area: zeroed at setup, never read.
//!
//! # Outside the segment
//!
//! - The control socket: a descriptor packet must match the frame's count
//!   (`CorruptPeer` otherwise). We signal on it with `MSG_DONTWAIT` only:
//!   a peer that never reads its queue cannot block our data path.
//! - Our control socket's queue, which is also our readiness descriptor:
//!   the peer can send any number of datagrams of any size. Worst case: our
//!   descriptor stays readable (spurious wakes of the application's event
//!   loop), for example behind a packet-sized datagram that is no
//!   descriptor packet (a drain stops at it, for the receive of the frame
//!   it would belong to, which then reports it `CorruptPeer`). A receive
//!   that arms it drains at most `readiness::MAX_DRAIN` datagrams (before:
//!   until the queue ran dry, which a peer refilling it as fast kept a
//!   `try_recv` from ever reaching); datagrams of other sizes are dropped
//!   with whatever descriptors they carried. Version 1 of the handshake
//!   had the peer hand over a readiness socket we sent to: gone, so is
//!   what the peer could do with it.
//! - The `Peeked` handles a flow keeps between locating a frame and
//!   consuming it are ours: the ring takes one only from the consumer that
//!   found it, at the read position, with the expected tag
//!   (`Consumer::consume`, `Consumer::view`), and then trusts the length
//!   it validated when it found the frame, not the commit word now. A
//!   commit word the peer rewrites after our look changes nothing we hand
//!   out or where we read next (before: a `RecvBuf`'s length went to 0 and
//!   back, and a `Peeked` of another ring moved our position past what the
//!   producer published).
//! - Clients of a listener: each connection that is refused or breaks off
//!   its setup costs at most the setup limit; an accept stops taking them
//!   at its deadline, a `try_accept` after `NOW_SETUP_ATTEMPTS` (before:
//!   clients that kept connecting and failing held any accept, a
//!   `try_accept` included, for as long as they kept coming).
//! - The stats files (`ringflow stat`) are written by their own process,
//!   not by a flow's peer; their reader treats them as untrusted (bounded
//!   slot counts, seqlocked copies, unknown kinds skipped).
