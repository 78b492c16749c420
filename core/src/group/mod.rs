//! Process groups on one host (Corosync CPG, Ouroboros `flow_join`): members
//! join a group by name, multicast to every member, and receive one stream
//! of events — messages, membership views, losses — in the same order.
//!
//! One group is one shared log (the broadcast log of `ringflow_ring`) in one
//! memfd. A multicast is one claim on the log's tail, whatever the number of
//! members; every member reads the frames in place, each with its own
//! cursor. The first joiner keeps the group (`keeper`): it admits joiners,
//! watches members and commits views; when it goes, another member takes
//! the role over. The keeper is off the data path.
//!
//! # Why one host's log gives every guarantee
//!
//! - FIFO: a sender's claims are ordered by its own program order on the
//!   tail's compare-and-swap, so its frames lie in the log in send order.
//! - AGREED: the log is one sequence of positions; every member reads the
//!   same positions in increasing order, so every member delivers the same
//!   messages in the same order (a lapped member of a Lap group delivers a
//!   subsequence of it and is told how much it lost).
//! - SAFE: a frame is delivered only once committed, and a committed frame
//!   is in the memory every member maps: when one member delivers it, every
//!   member of the view holds it (they read the very same bytes). On a
//!   Block or Evict group no sender overwrites it before every live member
//!   has read past it.
//! - Views are frames of the same log, so views and messages come in one
//!   order at every member; a joiner's cursor starts at its own join view.
//!
//! This module must never let one member's misbehaviour hang, crash or
//! make another allocate by a forged size: every word of the group's memory
//! is validated as the flows' are (`table.rs`, `view.rs`, `history.rs`, and
//! the log itself).

pub mod cross;
mod end;
mod error;
mod history;
mod inspect;
mod join;
mod keeper;
mod loan;
mod memory;
mod options;
mod presence;
mod ready;
mod stats;
mod table;
mod view;
mod wire;

#[cfg(feature = "cluster")]
pub(crate) use end::GatewayFrame;
#[cfg(feature = "cluster")]
pub(crate) use end::GatewayJoinError;
pub use end::{Event, GroupEnd, GroupStats, Message};
pub use error::{JoinError, LeaveError, McastError, RecvError};
pub use inspect::{group_of_bound_name, inspect, GroupSnapshot, InspectError, MemberSnapshot, MemberState};
pub use keeper::REJOIN_GRACE;
pub use loan::GroupLoan;
pub use memory::{GroupConfig, GroupMemory};
pub use options::{GroupOptions, Guarantee, SlowMember, MAX_LOG_CAPACITY, MAX_MEMBERS, MIN_LOG_CAPACITY};
pub use table::Counters;
pub use view::{Change, ChangeKind, Member, View};
