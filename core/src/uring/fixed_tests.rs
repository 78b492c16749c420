//! Sends from registered buffers: every byte arrives once and in order when
//! frames go to registered buffers, to the heap queue (too large, or every
//! buffer held) and back; a failed fill queues nothing; and every buffer is
//! free again once the kernel is done. They park, never spin, and assert
//! bytes, never durations.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

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
    let len = match i % 10 {
        0 => 9000, // larger than a registered buffer
        1..=4 => 40 + i % 97,
        _ => 700 + (i * 37) % 2400,
    };
    (0..len).map(|b| (i * 31 + b) as u8).collect()
}

#[test]
fn registered_sends_keep_every_byte_in_order_across_heap_fallbacks() {
    let mut tcp = TcpDriver::new(&zc_cfg(2)).expect("driver");
    if !tcp.driver().support().send_zc {
        assert_eq!(tcp.registered_buffers(), 0);
        println!("SKIP: no SEND_ZC in this kernel");
        return;
    }
    assert_eq!(tcp.registered_buffers(), 2);
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let reader = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(addr).expect("connect");
        let mut back = Vec::new();
        sock.read_to_end(&mut back).expect("read");
        back
    });
    let mut events = Vec::new();
    let id = accept(&mut tcp, &mut events);
    let mut expect = Vec::new();
    for batch in 0..40 {
        for i in batch * 25..(batch + 1) * 25 {
            let f = frame(i);
            let queued = tcp.append_with(id, f.len(), |buf| {
                buf.copy_from_slice(&f);
                Ok::<_, ()>(())
            });
            assert_eq!(queued, Ok(Ok(())));
            expect.extend_from_slice(&f);
            if i % 7 == 3 {
                // A fill that fails queues nothing, wherever it would have gone.
                let failed = tcp.append_with(id, 500, |buf| {
                    buf.fill(0xEE);
                    Err::<(), _>("no")
                });
                assert_eq!(failed, Ok(Err("no")));
            }
        }
        tcp.flush(id);
        tcp.poll(&mut events);
    }
    let guard = Instant::now() + Duration::from_secs(20);
    while tcp.unsent(id).expect("open") > 0 || tcp.registered_free() < 2 {
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

fn accept(tcp: &mut TcpDriver, events: &mut Vec<TcpEvent>) -> ConnId {
    let guard = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < guard, "no connection accepted");
        tcp.wait(Duration::from_millis(20), events);
        if let Some(pos) = events.iter().position(|e| matches!(e, TcpEvent::Accepted(_))) {
            if let TcpEvent::Accepted(id) = events.remove(pos) {
                return id;
            }
        }
    }
}
