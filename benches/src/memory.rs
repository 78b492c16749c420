//! Where the ringflow rings of a benchmark live. The ringflow impls are
//! generic over [`RingMemory`], so moving them from the heap to a shared
//! memory segment is a new impl of this trait and one changed line in the
//! scenario. This module must never shape the ring itself: it only hands out
//! regions.

use std::sync::Arc;

use ringflow_ring::{HeapRegion, Region};

use crate::error::BenchError;

/// A supplier of ring regions: two handles to one region, one for the
/// producer's thread and one for the consumer's.
pub trait RingMemory {
    /// The region type the rings run over.
    type Region: Region + Send;

    /// A fresh region of `len` bytes, as two handles to the same memory.
    fn region_pair(&self, len: usize) -> Result<(Self::Region, Self::Region), BenchError>;
}

/// Ordinary heap memory: the identical ring code over a `HeapRegion`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Heap;

impl RingMemory for Heap {
    type Region = Arc<HeapRegion>;

    fn region_pair(&self, len: usize) -> Result<(Self::Region, Self::Region), BenchError> {
        let region = Arc::new(HeapRegion::new(len));
        Ok((region.clone(), region))
    }
}
