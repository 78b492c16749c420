//! Whatever bytes a peer leaves in the header area, `Layout::read` returns
//! Ok or Err and never panics; and whatever it accepts really is a sound
//! layout for the segment.

use proptest::prelude::*;
use ringflow_shm::{Layout, LayoutBuilder, Segment, SegmentOptions, HEADER_AREA_LEN, LAYOUT_VERSION, MAGIC};

const KIND: u32 = 5;
const SEGMENT_LEN: usize = 1 << 16;

fn segment() -> Segment {
    Segment::create(&SegmentOptions::new("ringflow:test-fuzz", SEGMENT_LEN)).unwrap()
}

fn write_bytes(segment: &Segment, at: usize, bytes: &[u8]) {
    assert!(at + bytes.len() <= segment.len());
    // SAFETY: in bounds (checked above); single-threaded test.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), segment.as_ptr().add(at), bytes.len()) };
}

/// Every accepted layout describes non-empty, aligned, disjoint regions
/// inside the segment and after the header area.
fn assert_sound(layout: &Layout, segment: &Segment) {
    assert_eq!(layout.segment_len(), segment.len());
    let regions = layout.regions();
    for (i, a) in regions.iter().enumerate() {
        assert!(a.len() > 0);
        assert!(a.offset() >= HEADER_AREA_LEN);
        assert!(a.offset() + a.len() <= segment.len());
        assert_eq!(a.offset() % layout.region_align(), 0);
        assert!(layout.region_ptr(segment, i).is_some());
        for b in &regions[i + 1..] {
            assert!(a.offset() + a.len() <= b.offset() || b.offset() + b.len() <= a.offset());
        }
    }
}

fn read_and_check(segment: &Segment, kind: u32) {
    if let Ok(layout) = Layout::read(segment, kind) {
        assert_sound(&layout, segment);
    }
}

proptest! {
    #[test]
    fn random_header_area_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), HEADER_AREA_LEN),
        valid_magic in any::<bool>(),
        kind in 0u32..8,
    ) {
        let segment = segment();
        write_bytes(&segment, 0, &bytes);
        if valid_magic {
            write_bytes(&segment, 0, &MAGIC.to_le_bytes());
        }
        read_and_check(&segment, kind);
    }

    #[test]
    fn mutated_valid_header_never_panics(
        flips in proptest::collection::vec((0..HEADER_AREA_LEN, any::<u8>()), 1..8),
    ) {
        let segment = segment();
        let mut plan = LayoutBuilder::new(KIND);
        plan.add_region(1, 4096).unwrap();
        plan.add_region(2, 10_000).unwrap();
        plan.add_region(3, 1).unwrap();
        plan.write_header(&segment).unwrap();
        for (at, byte) in flips {
            write_bytes(&segment, at, &[byte]);
        }
        read_and_check(&segment, KIND);
    }

    /// Valid magic, version, kind and length, so the region checks are what
    /// is exercised; offsets and lengths are drawn near the boundaries.
    #[test]
    fn plausible_region_tables_never_panic(
        align_shift in 6u32..23,
        regions in proptest::collection::vec(
            (
                prop_oneof![0u64..(2 * SEGMENT_LEN as u64), Just(u64::MAX), any::<u64>()],
                prop_oneof![0u64..(2 * SEGMENT_LEN as u64), Just(u64::MAX), any::<u64>()],
                any::<u32>(),
            ),
            0..=8,
        ),
        count in 0u32..11,
    ) {
        let segment = segment();
        let mut area = Vec::with_capacity(HEADER_AREA_LEN);
        area.extend_from_slice(&MAGIC.to_le_bytes());
        area.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        area.extend_from_slice(&KIND.to_le_bytes());
        area.extend_from_slice(&(segment.len() as u64).to_le_bytes());
        area.extend_from_slice(&count.to_le_bytes());
        area.extend_from_slice(&(1u32 << align_shift).to_le_bytes());
        area.resize(64, 0);
        for (offset, len, kind) in &regions {
            area.extend_from_slice(&offset.to_le_bytes());
            area.extend_from_slice(&len.to_le_bytes());
            area.extend_from_slice(&kind.to_le_bytes());
            area.extend_from_slice(&0u32.to_le_bytes());
        }
        area.resize(HEADER_AREA_LEN, 0);
        write_bytes(&segment, 0, &area);
        read_and_check(&segment, KIND);
    }
}
