//! Behaviour of `LayoutBuilder` and `Layout::read`: a round trip, then one
//! corruption at a time, each with its own error.
//!
//! The byte offsets used to corrupt headers are the documented format; if
//! they stop matching, the format changed and its version must change too.

use ringflow_shm::{
    BuildError, Layout, LayoutBuilder, LayoutError, Offset, Segment, SegmentOptions, WriteHeaderError, HEADER_AREA_LEN,
    LAYOUT_VERSION, MAGIC, MAX_REGIONS, MIN_SEGMENT_LEN,
};

const KIND: u32 = 0x464c_4f57;
const REGION_A: u32 = 1;
const REGION_B: u32 = 2;

/// Offsets of the header fields and of region-table entry `i`.
const VERSION: usize = 8;
const KIND_FIELD: usize = 12;
const SEGMENT_LEN: usize = 16;
const REGION_COUNT: usize = 24;
const REGION_ALIGN: usize = 28;
const fn region_offset(i: usize) -> usize {
    64 + 24 * i
}
const fn region_len(i: usize) -> usize {
    64 + 24 * i + 8
}

fn poke_u32(segment: &Segment, at: usize, value: u32) {
    assert!(at + 4 <= segment.len());
    // SAFETY: in bounds (checked above); unaligned write of plain bytes;
    // single-threaded test.
    unsafe { segment.as_ptr().add(at).cast::<u32>().write_unaligned(value) };
}

fn poke_u64(segment: &Segment, at: usize, value: u64) {
    assert!(at + 8 <= segment.len());
    // SAFETY: in bounds (checked above); unaligned write of plain bytes;
    // single-threaded test.
    unsafe { segment.as_ptr().add(at).cast::<u64>().write_unaligned(value) };
}

/// A 64 KiB segment with two regions: A (8 KiB) and B (4000 bytes).
fn fresh() -> (Segment, Layout) {
    let mut plan = LayoutBuilder::new(KIND);
    assert_eq!(plan.add_region(REGION_A, 8192), Ok(0));
    assert_eq!(plan.add_region(REGION_B, 4000), Ok(1));
    let segment = Segment::create(&SegmentOptions::new("ringflow:test-layout", 1 << 16)).unwrap();
    let layout = plan.write_header(&segment).unwrap();
    (segment, layout)
}

fn read(segment: &Segment) -> Result<Layout, LayoutError> {
    Layout::read(segment, KIND)
}

#[test]
fn round_trip() {
    let (segment, written) = fresh();
    let layout = read(&segment).unwrap();
    assert_eq!(layout, written);
    assert_eq!(layout.kind(), KIND);
    assert_eq!(layout.segment_len(), segment.len());
    assert_eq!(layout.region_align(), 4096);
    let regions: Vec<_> = layout.regions().iter().map(|r| (r.offset(), r.len(), r.kind())).collect();
    assert_eq!(regions, [(4096, 8192, REGION_A), (12288, 4000, REGION_B)]);
    assert_eq!(layout.find(REGION_B).map(|(i, _)| i), Some(1));
    assert_eq!(layout.find(99), None);
    assert_eq!(layout.region(2), None);
    assert!(layout.region_ptr(&segment, 2).is_none());
}

#[test]
fn header_starts_with_the_magic() {
    let (segment, _) = fresh();
    let mut first = [0u8; 8];
    // SAFETY: the mapping holds at least 8 bytes; single-threaded test.
    unsafe { std::ptr::copy_nonoverlapping(segment.as_ptr(), first.as_mut_ptr(), 8) };
    assert_eq!(&first, b"RINGFLOW");
    assert_eq!(u64::from_le_bytes(first), MAGIC);
}

#[test]
fn a_peer_sees_the_layout_and_the_region_bytes() {
    let (segment, layout) = fresh();
    let (ptr, len) = layout.region_ptr(&segment, 1).unwrap();
    assert_eq!(len, 4000);
    // SAFETY: the region is inside the mapping; single-threaded test.
    unsafe { ptr.add(len - 1).write_volatile(0x5A) };

    let peer = Segment::from_fd(segment.try_clone_fd().unwrap(), Some(segment.len())).unwrap();
    let peer_layout = read(&peer).unwrap();
    assert_eq!(peer_layout.regions(), layout.regions());
    let (peer_ptr, peer_len) = peer_layout.region_ptr(&peer, 1).unwrap();
    // SAFETY: as above, through the peer's mapping.
    assert_eq!(unsafe { peer_ptr.add(peer_len - 1).read_volatile() }, 0x5A);
}

#[test]
fn a_fresh_segment_has_no_header() {
    let segment = Segment::create(&SegmentOptions::new("ringflow:test-blank", 4096)).unwrap();
    assert_eq!(read(&segment), Err(LayoutError::BadMagic { found: 0 }));
}

#[test]
fn bad_magic() {
    let (segment, _) = fresh();
    poke_u64(&segment, 0, u64::from_le_bytes(*b"RINGFLOX"));
    assert!(matches!(read(&segment), Err(LayoutError::BadMagic { .. })));
}

#[test]
fn version_mismatch() {
    let (segment, _) = fresh();
    poke_u32(&segment, VERSION, LAYOUT_VERSION + 1);
    assert_eq!(
        read(&segment),
        Err(LayoutError::VersionMismatch { found: LAYOUT_VERSION + 1, supported: LAYOUT_VERSION })
    );
}

#[test]
fn wrong_kind() {
    let (segment, _) = fresh();
    assert_eq!(Layout::read(&segment, KIND + 1), Err(LayoutError::WrongKind { found: KIND, expected: KIND + 1 }));
    poke_u32(&segment, KIND_FIELD, 3);
    assert!(matches!(read(&segment), Err(LayoutError::WrongKind { found: 3, .. })));
}

#[test]
fn length_mismatch() {
    let (segment, _) = fresh();
    let claimed = segment.len() as u64 * 2;
    poke_u64(&segment, SEGMENT_LEN, claimed);
    assert_eq!(read(&segment), Err(LayoutError::LengthMismatch { header: claimed, actual: segment.len() }));
}

#[test]
fn bad_alignment() {
    let (segment, _) = fresh();
    poke_u32(&segment, REGION_ALIGN, 64);
    assert_eq!(read(&segment), Err(LayoutError::BadAlignment { found: 64 }));
}

#[test]
fn too_many_regions() {
    let (segment, _) = fresh();
    poke_u32(&segment, REGION_COUNT, MAX_REGIONS as u32 + 1);
    assert!(matches!(read(&segment), Err(LayoutError::TooManyRegions { .. })));
    poke_u32(&segment, REGION_COUNT, u32::MAX);
    assert!(matches!(read(&segment), Err(LayoutError::TooManyRegions { .. })));
}

#[test]
fn region_out_of_bounds() {
    let (segment, _) = fresh();
    // Starts at the very end of the segment.
    poke_u64(&segment, region_offset(1), segment.len() as u64);
    assert_eq!(
        read(&segment),
        Err(LayoutError::RegionOutOfBounds { index: 1, offset: segment.len() as u64, len: 4000 })
    );
    // offset + len overflows u64.
    poke_u64(&segment, region_offset(1), 4096 * 3);
    poke_u64(&segment, region_len(1), u64::MAX);
    assert!(matches!(read(&segment), Err(LayoutError::RegionOutOfBounds { index: 1, .. })));
    // Over the header area.
    let (segment, _) = fresh();
    poke_u64(&segment, region_offset(0), 0);
    assert!(matches!(read(&segment), Err(LayoutError::RegionOutOfBounds { index: 0, .. })));
}

#[test]
fn misaligned_region() {
    let (segment, _) = fresh();
    poke_u64(&segment, region_offset(1), 4096 * 3 + 128);
    assert_eq!(read(&segment), Err(LayoutError::Misaligned { index: 1, offset: 4096 * 3 + 128, align: 4096 }));
}

#[test]
fn overlapping_regions() {
    let (segment, _) = fresh();
    // B moves into the second page of A.
    poke_u64(&segment, region_offset(1), 8192);
    assert_eq!(read(&segment), Err(LayoutError::RegionOverlap { first: 0, second: 1 }));
}

#[test]
fn empty_region() {
    let (segment, _) = fresh();
    poke_u64(&segment, region_len(0), 0);
    assert_eq!(read(&segment), Err(LayoutError::EmptyRegion { index: 0 }));
}

#[test]
fn truncated_segment() {
    // A peer hands over only the first page of a segment whose header
    // describes 64 KiB: the recorded length gives it away...
    let (whole, _) = fresh();
    let truncated = Segment::create(&SegmentOptions::new("ringflow:test-trunc", 4096)).unwrap();
    assert!(truncated.len() < whole.len());
    // SAFETY: both mappings hold the first truncated.len() bytes; single-threaded test.
    unsafe { std::ptr::copy_nonoverlapping(whole.as_ptr(), truncated.as_ptr(), truncated.len()) };
    assert!(matches!(read(&truncated), Err(LayoutError::LengthMismatch { .. })));
    // ...and if the length was forged too, the regions no longer fit.
    poke_u64(&truncated, SEGMENT_LEN, truncated.len() as u64);
    assert!(matches!(read(&truncated), Err(LayoutError::RegionOutOfBounds { index: 0, .. })));
    // A mapping too small for the header at all cannot exist: from_fd's
    // minimum already holds it.
    const { assert!(MIN_SEGMENT_LEN >= HEADER_AREA_LEN) };
}

#[test]
fn builder_refuses_bad_plans() {
    assert_eq!(LayoutBuilder::with_alignment(KIND, 100).err(), Some(BuildError::InvalidAlignment { align: 100 }));
    assert_eq!(LayoutBuilder::with_alignment(KIND, 64).err(), Some(BuildError::InvalidAlignment { align: 64 }));
    let mut plan = LayoutBuilder::with_alignment(KIND, 128).unwrap();
    assert_eq!(plan.add_region(REGION_A, 0), Err(BuildError::EmptyRegion));
    assert!(matches!(plan.add_region(REGION_A, usize::MAX), Err(BuildError::TooLarge { .. })));
    for _ in 0..MAX_REGIONS {
        plan.add_region(REGION_A, 1).unwrap();
    }
    assert_eq!(plan.add_region(REGION_A, 1), Err(BuildError::TooManyRegions { max: MAX_REGIONS }));
    // With 128-byte alignment the first region follows the header area directly.
    assert_eq!(plan.regions()[0].offset(), HEADER_AREA_LEN);
    assert_eq!(plan.regions()[1].offset(), HEADER_AREA_LEN + 128);
}

#[test]
fn write_header_refuses_small_and_used_segments() {
    let mut plan = LayoutBuilder::new(KIND);
    plan.add_region(REGION_A, 1 << 20).unwrap();
    let small = Segment::create(&SegmentOptions::new("ringflow:test-small", 4096)).unwrap();
    assert!(matches!(plan.write_header(&small), Err(WriteHeaderError::SegmentTooSmall { .. })));
    assert_eq!(read(&small), Err(LayoutError::BadMagic { found: 0 }));

    let (segment, _) = fresh();
    let mut other = LayoutBuilder::new(KIND);
    other.add_region(REGION_A, 4096).unwrap();
    assert_eq!(other.write_header(&segment), Err(WriteHeaderError::AlreadyWritten));
}

#[test]
fn offsets_resolve_only_inside_the_segment() {
    let (segment, _) = fresh();
    let len = segment.len();
    assert_eq!(Offset::new(0).resolve(&segment, len), Some(segment.as_ptr()));
    assert!(Offset::new(8).resolve(&segment, len).is_none());
    assert!(Offset::new(len as u64).resolve(&segment, 0).is_some());
    assert!(Offset::new(len as u64).resolve(&segment, 1).is_none());
    assert!(Offset::new(u64::MAX).resolve(&segment, 1).is_none());
    assert!(Offset::new(1).resolve(&segment, usize::MAX).is_none());
}

#[test]
fn errors_display_their_cause() {
    let errors = [
        LayoutError::BadMagic { found: 0 }.to_string(),
        LayoutError::VersionMismatch { found: 2, supported: 1 }.to_string(),
        LayoutError::RegionOverlap { first: 0, second: 1 }.to_string(),
    ];
    assert!(errors[0].contains("magic"));
    assert!(errors[1].contains("version 2"));
    assert!(errors[2].contains("overlap"));
}
