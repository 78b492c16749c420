//! Other libraries measured against ringflow in the same run. Each peer is
//! used the way its documentation intends, with its batch API where it has
//! one, and does the same per-message work as every other impl.

#[cfg(feature = "peers")]
pub mod crossbeam;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx2;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx2_rpc;
#[cfg(feature = "peers")]
pub mod rtrb;
#[cfg(feature = "peers")]
pub mod tokio;
