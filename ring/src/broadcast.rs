//! Broadcast log (in progress).
