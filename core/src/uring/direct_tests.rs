//! Tests of direct receives (`tcp::direct`): a driver polled as a spinning
//! engine polls it (here with naps between polls, never a spin) reads a
//! connection with `recv(2)` when the ring's taskrun flag comes up, while
//! the ring's own recv takes what arrives in between. They assert bytes,
//! order and which path carried them, never durations.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::tests::{accept_one, listening, small_cfg};
use super::*;

/// The default setup flags (direct receives need DEFER_TASKRUN) with a
/// small ring: 8 provided buffers of 512 bytes.
fn cfg() -> crate::config::IoUringSection {
    let cfg = small_cfg();
    assert!(cfg.single_issuer && cfg.defer_taskrun, "direct receives need DEFER_TASKRUN");
    cfg
}

/// A small deterministic generator (xorshift) for sizes and pauses.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Writes `blob` in pieces of 1-3000 bytes with pauses of none, 20 us or
/// 300 us between them.
fn writer(mut sock: TcpStream, blob: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut at = 0;
        while at < blob.len() {
            let n = (1 + rng.below(3000) as usize).min(blob.len() - at);
            sock.write_all(&blob[at..at + n]).expect("write");
            at += n;
            match rng.below(3) {
                0 => {}
                1 => std::thread::sleep(Duration::from_micros(20)),
                _ => std::thread::sleep(Duration::from_micros(300)),
            }
        }
    })
}

/// A driver with `cfg` and one accepted connection, whose peer writes
/// `len` bytes (byte `i` is `i * mul % modulo`) in uneven pieces
/// ([`writer`]); `None` where the kernel lacks what `cfg` asks (skipped).
struct Stream {
    tcp: TcpDriver,
    id: ConnId,
    blob: Vec<u8>,
    /// The peer's socket, its writes on `writer`'s clone.
    sock: TcpStream,
    writer: std::thread::JoinHandle<()>,
    events: Vec<TcpEvent>,
}

fn stream(cfg: &crate::config::IoUringSection, len: usize, mul: usize, modulo: usize) -> Option<Stream> {
    let (mut tcp, addr) = listening(cfg)?;
    let blob: Vec<u8> = (0..len).map(|i| (i * mul % modulo) as u8).collect();
    let sock = TcpStream::connect(addr).expect("connect");
    let mut events = Vec::new();
    let id = accept_one(&mut tcp, &mut events);
    let writer = writer(sock.try_clone().expect("clone"), blob.clone());
    Some(Stream { tcp, id, blob, sock, writer, events })
}

/// Every byte of a stream written in uneven pieces arrives once and in
/// order, some through direct reads and some through the ring's recv
/// (bursts larger than the direct buffers, bytes that come while the
/// entry is owed), with duty cycles that end with `submit` or not, that
/// send an answer or not, and a consumer that holds some buffers a while.
#[test]
fn direct_reads_and_the_rings_recv_keep_one_stream_in_order() {
    let cfg = cfg();
    let Some(Stream { mut tcp, id, blob, sock: _sock, writer: peer, mut events }) = stream(&cfg, 2 << 20, 7, 251)
    else {
        return;
    };
    let mut got = Vec::with_capacity(blob.len());
    let (mut direct, mut ring) = (0u64, 0u64);
    let mut held: Vec<RecvBuf> = Vec::new();
    let mut rng = Rng(7);
    let guard = Instant::now() + Duration::from_secs(60);
    let mut cycle = 0u64;
    while got.len() < blob.len() {
        assert!(Instant::now() < guard, "stream did not arrive: {} of {} bytes", got.len(), blob.len());
        cycle += 1;
        let n = tcp.poll(&mut events);
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Received(from, buf) => {
                    assert_eq!(from, id);
                    if buf.bid >= cfg.provided_buffers as u16 {
                        direct += 1;
                    } else {
                        ring += 1;
                    }
                    held.push(buf);
                }
                TcpEvent::Sent(..) | TcpEvent::Accepted(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        // Hold buffers for a few cycles now and then (the direct ones run
        // out, the ring's recv takes over), else hand them back at once.
        if held.len() > 6 || rng.below(4) != 0 {
            for buf in held.drain(..) {
                got.extend_from_slice(tcp.data(&buf));
                tcp.recycle(buf);
            }
        }
        if rng.below(3) == 0 {
            tcp.send(id, b"ack").expect("answer");
        }
        if rng.below(4) != 0 {
            tcp.submit();
        }
        if n == 0 {
            std::thread::sleep(Duration::from_micros(10));
        }
    }
    peer.join().expect("writer");
    assert!(got == blob, "bytes lost, doubled or reordered");
    println!("direct {direct}, ring {ring}, cycles {cycle}: {:?}", tcp.stats());
    assert!(direct > 0 && ring > 0, "both paths carried bytes: direct {direct}, ring {ring}");
    assert_eq!(tcp.stats().direct_recvs, direct);
}

/// A reset read by a direct `recv(2)` is consumed by it: the driver
/// reports it (the ring's recv would find only the end of the stream).
#[test]
fn a_reset_read_directly_closes_the_connection_with_its_error() {
    let Some((mut tcp, addr)) = listening(&cfg()) else { return };
    let mut sock = TcpStream::connect(addr).expect("connect");
    let mut events = Vec::new();
    let id = accept_one(&mut tcp, &mut events);
    tcp.submit();
    sock.write_all(b"before the reset").expect("write");
    // SO_LINGER with a zero timeout: close sends RST, not FIN.
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid option struct of the size passed, on an open socket.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(sock);
    let mut got = Vec::new();
    let guard = Instant::now() + Duration::from_secs(20);
    let closed = loop {
        assert!(Instant::now() < guard, "the reset was not reported");
        tcp.poll(&mut events);
        tcp.submit();
        let mut closed = None;
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Received(_, buf) => {
                    got.extend_from_slice(tcp.data(&buf));
                    tcp.recycle(buf);
                }
                TcpEvent::Closed(from, reason) => closed = Some((from, reason)),
                _ => {}
            }
        }
        if let Some(c) = closed {
            break c;
        }
        std::thread::sleep(Duration::from_micros(50));
    };
    assert_eq!(closed, (id, CloseReason::Error(libc::ECONNRESET)), "got {:?}", String::from_utf8_lossy(&got));
}

/// What a test read of one connection `id`: its bytes, and its reads by
/// path (spin reads into direct buffers, numbered past the `provided`
/// ones, and the ring's recv into provided buffers), and whether a spin
/// read came since the last sleep in the ring.
struct Reads {
    id: ConnId,
    provided: u16,
    got: Vec<u8>,
    spun: u64,
    ring: u64,
    spun_in_spell: bool,
}

impl Reads {
    fn new(id: ConnId, cfg: &crate::config::IoUringSection) -> Reads {
        Reads { id, provided: cfg.provided_buffers as u16, got: Vec::new(), spun: 0, ring: 0, spun_in_spell: false }
    }

    /// Takes the driver's events: the bytes, the close, if any.
    fn take(&mut self, tcp: &mut TcpDriver, events: &mut Vec<TcpEvent>) -> Option<CloseReason> {
        let mut closed = None;
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Received(from, buf) => {
                    assert_eq!(from, self.id);
                    if buf.bid >= self.provided {
                        self.spun += 1;
                        self.spun_in_spell = true;
                    } else {
                        // The ring's recv never reads a spun connection:
                        // once a spin read came in a spell, none of the
                        // ring's may.
                        assert!(!self.spun_in_spell, "the ring's recv read a spun connection");
                        self.ring += 1;
                    }
                    self.got.extend_from_slice(tcp.data(&buf));
                    tcp.recycle(buf);
                }
                TcpEvent::Closed(from, reason) => {
                    assert_eq!(from, self.id);
                    closed = Some(reason);
                }
                TcpEvent::Sent(..) | TcpEvent::Accepted(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        closed
    }

    /// Polls (naps between polls) and takes the events until the close is
    /// reported, before `guard`; the reason.
    fn until_closed(&mut self, tcp: &mut TcpDriver, events: &mut Vec<TcpEvent>, guard: Instant) -> CloseReason {
        loop {
            assert!(Instant::now() < guard, "the close was not reported");
            tcp.poll(events);
            if let Some(reason) = self.take(tcp, events) {
                return reason;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// A ring without DEFER_TASKRUN, as invoker mode makes by default (spin
/// reads, `tcp::spin`).
fn coop_cfg() -> crate::config::IoUringSection {
    let mut cfg = small_cfg();
    (cfg.single_issuer, cfg.defer_taskrun, cfg.coop_taskrun) = (false, false, true);
    cfg
}

/// On a ring without DEFER_TASKRUN, a thread that polls for a while reads
/// its connection with `recv(2)` (spun), and arms the ring's recv again
/// before each sleep: every byte of a stream written in uneven pieces
/// arrives once and in order across many such turns (spells of polls with
/// naps between them, never a spin, and sleeps in the ring), some read by
/// the ring's recv and some by spin reads; and the end of the stream,
/// read while spun, closes the connection.
#[test]
fn spun_reads_and_the_rings_recv_keep_one_stream_in_order() {
    let cfg = coop_cfg();
    let Some(Stream { mut tcp, id, blob, sock, writer: peer, mut events }) = stream(&cfg, 4 << 20, 13, 253) else {
        return;
    };
    let mut reads = Reads::new(id, &cfg);
    let mut rng = Rng(11);
    let guard = Instant::now() + Duration::from_secs(60);
    while reads.got.len() < blob.len() {
        assert!(Instant::now() < guard, "stream did not arrive: {} of {} bytes", reads.got.len(), blob.len());
        // A spell of polls: long enough to spin the connection (256 in a
        // row) about half the time.
        for _ in 0..rng.below(600) {
            tcp.poll(&mut events);
            assert_eq!(reads.take(&mut tcp, &mut events), None);
            std::thread::sleep(Duration::from_micros(5));
        }
        // Then a sleep in the ring (its recv armed again first).
        tcp.wait(Duration::from_millis(1 + rng.below(3)), &mut events);
        reads.spun_in_spell = false;
        assert_eq!(reads.take(&mut tcp, &mut events), None);
    }
    peer.join().expect("writer");
    assert!(reads.got == blob, "bytes lost, doubled or reordered");
    let stats = tcp.stats();
    println!("spin reads {}, ring reads {}: {stats:?}", reads.spun, reads.ring);
    assert!(stats.spin_moves >= 3, "spun, armed again and spun again, more than once: {stats:?}");
    assert_eq!(reads.spun, stats.direct_recvs, "every read into a direct buffer is a spin read");
    assert!(reads.spun > 0 && reads.ring > 0, "both paths carried bytes: {} spun, {} ring", reads.spun, reads.ring);
    // Spun again, then the peer's end of the stream is read by `recv(2)`.
    let moves = stats.spin_moves;
    while tcp.stats().spin_moves == moves {
        assert!(Instant::now() < guard, "not spun again");
        tcp.poll(&mut events);
        assert_eq!(reads.take(&mut tcp, &mut events), None);
        std::thread::sleep(Duration::from_micros(5));
    }
    drop(sock);
    let closed = reads.until_closed(&mut tcp, &mut events, guard);
    assert_eq!(closed, CloseReason::Eof);
    assert_eq!(reads.got.len(), blob.len(), "nothing after the end");
}

/// A spun connection closed by this side: the shutdown is read back as
/// the end of the stream and reported as a local close, and its slot is
/// freed (a new connection takes it).
#[test]
fn a_spun_connection_closed_here_is_reported_and_freed() {
    let cfg = coop_cfg();
    let Some((mut tcp, addr)) = listening(&cfg) else { return };
    let _sock = TcpStream::connect(addr).expect("connect");
    let mut events = Vec::new();
    let id = accept_one(&mut tcp, &mut events);
    let mut reads = Reads::new(id, &cfg);
    let guard = Instant::now() + Duration::from_secs(20);
    while tcp.stats().spin_moves == 0 {
        assert!(Instant::now() < guard, "never spun");
        tcp.poll(&mut events);
        assert_eq!(reads.take(&mut tcp, &mut events), None);
        std::thread::sleep(Duration::from_micros(5));
    }
    tcp.close(id).expect("close");
    let closed = reads.until_closed(&mut tcp, &mut events, guard);
    assert_eq!(closed, CloseReason::Local);
    let _again = TcpStream::connect(addr).expect("connect again");
    let next = accept_one(&mut tcp, &mut events);
    assert_eq!(next.index, id.index, "the spun connection's slot was freed and taken again");
    assert_ne!(next, id);
}

/// Two spun connections, one whose peer keeps its socket full: the other's
/// few bytes are still read (the connections take turns and share the
/// direct buffers), and the flooding one's bytes arrive in order.
#[test]
fn a_flooding_spun_connection_leaves_the_others_read() {
    let cfg = coop_cfg();
    let Some((mut tcp, addr)) = listening(&cfg) else { return };
    let mut events = Vec::new();
    let flood_sock = TcpStream::connect(addr).expect("connect");
    let flood = accept_one(&mut tcp, &mut events);
    let mut quiet_sock = TcpStream::connect(addr).expect("connect");
    let quiet = accept_one(&mut tcp, &mut events);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (mut sock, stop) = (flood_sock.try_clone().expect("clone"), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let chunk: Vec<u8> = (0..65_536usize).map(|i| (i % 251) as u8).collect();
            // Blocks while the socket is full; ends when it is shut down.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sock.write_all(&chunk).is_ok() {}
        })
    };
    let (mut flooded, mut got_quiet) = (0usize, Vec::new());
    let guard = Instant::now() + Duration::from_secs(30);
    let mut polls = 0u32;
    // Spun (256 polls, naps between them), then until the quiet bytes came
    // after the spin, with the flood going on.
    let mut sent_quiet = false;
    while got_quiet.len() < 5 {
        assert!(
            Instant::now() < guard,
            "the quiet connection was never read ({polls} polls, {flooded} flooded bytes, sent {sent_quiet}): {:?}",
            tcp.stats()
        );
        tcp.poll(&mut events);
        polls += 1;
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Received(from, buf) => {
                    let bytes = tcp.data(&buf);
                    if from == flood {
                        for (k, b) in bytes.iter().enumerate() {
                            assert_eq!(*b, ((flooded + k) % 65_536 % 251) as u8, "flood byte {}", flooded + k);
                        }
                        flooded += bytes.len();
                    } else {
                        assert_eq!(from, quiet);
                        got_quiet.extend_from_slice(bytes);
                    }
                    tcp.recycle(buf);
                }
                TcpEvent::Sent(..) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        if !sent_quiet && tcp.stats().spin_moves >= 2 {
            quiet_sock.write_all(b"quiet").expect("write");
            sent_quiet = true;
        }
        std::thread::sleep(Duration::from_micros(5));
    }
    assert!(sent_quiet && flooded > 0);
    assert_eq!(got_quiet, b"quiet");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood_sock.shutdown(std::net::Shutdown::Both).expect("shutdown");
    writer.join().expect("writer");
}
