//! CRC32C (Castagnoli, the iSCSI/ext4 polynomial), the optional checksum of a
//! wire frame. It must never disagree with the standard check values: a peer
//! built from another implementation has to verify what this one writes.
//!
//! The work is the `crc32c` crate's (the SSE4.2 `crc32` instruction, with a
//! software fallback), far faster than the slicing-by-8 tables it replaced
//! (tuning.md, "Checksums", has both). The tests below pin the results
//! against the bitwise definition and the standard vectors.

/// The reflected Castagnoli polynomial (the tests' bitwise reference).
#[cfg(test)]
const POLY: u32 = 0x82F6_3B78;

/// Continues a CRC32C: `crc32c(crc32c(0, a), b) == crc32c(0, a ++ b)`.
#[inline]
pub fn crc32c(crc: u32, bytes: &[u8]) -> u32 {
    ::crc32c::crc32c_append(crc, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bit-at-a-time reference, straight from the definition.
    fn reference(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn standard_check_values() {
        assert_eq!(crc32c(0, b""), 0);
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        // RFC 3720 (iSCSI) appendix B.4 test vectors.
        assert_eq!(crc32c(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(0, &[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(0, &ascending), 0x46DD_794E);
        let descending: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(0, &descending), 0x113F_DB5C);
    }

    proptest! {
        #[test]
        fn matches_the_bitwise_definition(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(crc32c(0, &bytes), reference(&bytes));
        }

        #[test]
        fn checksums_continue_across_pieces(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
            let cut = cut.min(bytes.len());
            prop_assert_eq!(crc32c(crc32c(0, &bytes[..cut]), &bytes[cut..]), crc32c(0, &bytes));
        }
    }
}
