//! The batch round of the path examples (`path_count`, `flow_path`): 32
//! messages of 64 bytes written in place by `try_send_batch_with` and read
//! in place by `try_recv_batch`, on one thread.

use ringflow_api::Flow;

/// Messages in one batch.
pub const BATCH: usize = 32;

/// Sends one batch of `msg` on `a` and receives it on `b`; returns the sum
/// of the first bytes read (for `black_box`).
#[inline(always)]
pub fn round(a: &mut Flow, b: &mut Flow, msg: &[u8; 64]) -> u64 {
    let lens = [msg.len(); BATCH];
    let n = a.try_send_batch_with(&lens, |_, dst| {
        dst.copy_from_slice(msg);
        true
    });
    assert_eq!(n.expect("send batch"), BATCH);
    let mut sum = 0u64;
    let n = b.try_recv_batch(BATCH, |m| sum += m[0] as u64).expect("recv batch");
    assert_eq!(n, BATCH);
    sum
}
