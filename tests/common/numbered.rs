//! Numbered messages: message `seq` of stream `stream` is 4 bytes of
//! sequence number, 4 bytes of checksum (FNV-1a over stream, sequence number
//! and body), then a body whose length (so the message is 8..=max bytes)
//! and bytes derive from (stream, seq). A receiver checks order, integrity
//! and provenance independently of the sender.

pub const HEADER: usize = 8;

fn mix(stream: u32, seq: u64) -> u64 {
    let mut x = (seq ^ (u64::from(stream) << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1
}

fn checksum(stream: u32, seq_bytes: &[u8], body: &[u8]) -> u32 {
    stream
        .to_le_bytes()
        .iter()
        .chain(seq_bytes)
        .chain(body)
        .fold(0x811C_9DC5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

pub fn make_message(stream: u32, seq: u64, max: usize, out: &mut Vec<u8>) {
    let mut x = mix(stream, seq);
    let len = HEADER + (x % (max - HEADER + 1) as u64) as usize;
    out.clear();
    out.extend_from_slice(&(seq as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    let sum = checksum(stream, &out[..4], &out[HEADER..]);
    out[4..HEADER].copy_from_slice(&sum.to_le_bytes());
}

/// Checks that `got` is message `seq` of `stream`, whole.
pub fn check_message(stream: u32, seq: u64, max: usize, got: &[u8], expect: &mut Vec<u8>) -> Result<(), String> {
    if got.len() < HEADER {
        return Err(format!("message {seq}: {} bytes, shorter than its header", got.len()));
    }
    let got_seq = u32::from_le_bytes(got[..4].try_into().expect("4 bytes"));
    if got_seq != seq as u32 {
        return Err(format!("message {seq} expected, message {got_seq} arrived (lost, duplicated or reordered)"));
    }
    let sum = u32::from_le_bytes(got[4..HEADER].try_into().expect("4 bytes"));
    if checksum(stream, &got[..4], &got[HEADER..]) != sum {
        return Err(format!("message {seq}: bad checksum (corrupted, or from another flow)"));
    }
    make_message(stream, seq, max, expect);
    if got != &expect[..] {
        return Err(format!("message {seq}: {} bytes arrived, {} expected, contents differ", got.len(), expect.len()));
    }
    Ok(())
}
