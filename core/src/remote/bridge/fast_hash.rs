//! The hasher of the bridge's maps.

/// A hasher for the bridge's maps, keyed by small integers this engine
/// chose (never by anything a peer picks freely: a flow id from the wire is
/// only looked up, and a lookup of a colliding id costs a probe, not a
/// denial of service worth SipHash on every duty cycle).
pub(super) type Fast = std::hash::BuildHasherDefault<FastHasher>;

/// Multiply-rotate hashing of integer words (FxHash's scheme).
#[derive(Default)]
pub(super) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}
