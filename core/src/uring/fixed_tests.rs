//! Sends from registered buffers: every byte arrives once and in order when
//! frames go to registered buffers, to the heap queue (too large, or every
//! buffer held) and back; a failed fill queues nothing; and every buffer is
//! free again once the kernel is done. They park, never spin, and assert
//! bytes, never durations.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::tests::{accept_one, refused};
use super::*;
use crate::config::{EngineConfig, IoUringSection};

fn zc_cfg(registered: u32) -> IoUringSection {
    let mut cfg = EngineConfig::default().io_uring().clone();
    cfg.entries = 64;
    cfg.provided_buffers = 8;
    cfg.buffer_size = 4096;
    cfg.send_zc_threshold = 1024;
    cfg.registered_buffers = registered;
    cfg
}

/// Frame `i`: `len` bytes of a pattern that depends on `i`, so a frame out
/// of place, twice or missing shows in the comparison.
fn frame(i: usize) -> Vec<u8> {
    let len = if i % 2 == 0 { 40 + i % 97 } else { 700 + (i * 37) % 2400 };
    (0..len).map(|b| (i * 31 + b) as u8).collect()
}

#[test]
fn registered_sends_keep_every_byte_in_order_across_heap_fallbacks() {
    if refused(&zc_cfg(4)) {
        return;
    }
    let mut tcp = TcpDriver::new(&zc_cfg(4)).expect("driver");
    if !tcp.driver().support().send_zc {
        assert_eq!(tcp.registered_buffers(), 0);
        eprintln!("skipped: this kernel has no SEND_ZC");
        return;
    }
    assert_eq!(tcp.registered_buffers(), 4);
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(addr).expect("connect");
        // Read nothing until the first round is queued: the socket fills,
        // so chains of sends wait in the kernel with MSG_WAITALL and finish
        // as room appears. (A test that fails first drops `go`: no hang.)
        let _ = wait_for_go.recv();
        let mut back = Vec::new();
        sock.read_to_end(&mut back).expect("read");
        back
    });
    let mut events = Vec::new();
    let id = accept_one(&mut tcp, &mut events);
    let mut expect = Vec::new();
    let mut append = |tcp: &mut TcpDriver, f: &[u8]| {
        let queued = tcp.append_with(id, f.len(), |buf| {
            buf.copy_from_slice(f);
            Ok::<_, ()>(())
        });
        assert_eq!(queued, Ok(Ok(())));
        expect.extend_from_slice(f);
    };
    let mut i = 0;
    for round in 0..10 {
        // A batch fills every registered buffer before its flush (so they
        // leave as one chain) and then spills to the heap queue.
        for _ in 0..20 {
            for _ in 0..25 {
                append(&mut tcp, &frame(i));
                if i % 7 == 3 {
                    // A fill that fails queues nothing, wherever it would have gone.
                    let failed = tcp.append_with(id, 500, |buf| {
                        buf.fill(0xEE);
                        Err::<(), _>("no")
                    });
                    assert_eq!(failed, Ok(Err("no")));
                }
                i += 1;
            }
            tcp.flush(id);
            tcp.poll(&mut events);
        }
        if round == 0 {
            let _ = go.send(());
        }
        // Drained, a frame larger than a buffer takes the heap queue.
        let guard = Instant::now() + Duration::from_secs(20);
        while tcp.unsent(id).expect("open") > 0 {
            assert!(Instant::now() < guard, "round {round}: sends did not finish");
            tcp.wait(Duration::from_millis(20), &mut events);
        }
        append(&mut tcp, &vec![round as u8; 9000]);
        tcp.flush(id);
    }
    let guard = Instant::now() + Duration::from_secs(20);
    while tcp.unsent(id).expect("open") > 0 || tcp.registered_free() < 4 {
        assert!(Instant::now() < guard, "sends or notifications did not finish");
        tcp.wait(Duration::from_millis(20), &mut events);
    }
    tcp.close(id).expect("close");
    let back = reader.join().expect("reader");
    assert_eq!(back.len(), expect.len());
    assert!(back == expect, "bytes lost, duplicated or reordered");
    let stats = tcp.stats();
    println!("send stats: {stats:?}");
    assert!(stats.fixed_sends >= 1, "no SEND_ZC from a registered buffer");
    assert!(stats.fixed_too_large >= 1 && stats.fixed_busy >= 1, "the heap fallbacks were not exercised");
}

#[test]
fn nothing_is_registered_without_send_zc_or_with_buffers_below_its_threshold() {
    if refused(&zc_cfg(32)) {
        return;
    }
    let mut off = zc_cfg(32);
    off.send_zc_threshold = 0;
    assert_eq!(TcpDriver::new(&off).expect("driver").registered_buffers(), 0);
    let mut small = zc_cfg(32);
    small.buffer_size = 512;
    assert_eq!(TcpDriver::new(&small).expect("driver").registered_buffers(), 0);
    let mut none = zc_cfg(0);
    none.send_zc_threshold = 1024;
    assert_eq!(TcpDriver::new(&none).expect("driver").registered_buffers(), 0);
}
