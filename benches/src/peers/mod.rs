//! Other libraries measured against ringflow in the same run. Each peer is
//! used the way its documentation intends, with its batch API where it has
//! one, and does the same per-message work as every other impl.

pub mod crossbeam;
pub mod rtrb;
