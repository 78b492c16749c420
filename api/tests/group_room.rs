//! A reliable group hands back the room its members have read: senders can
//! keep going for many laps of the log as long as every member reads (the
//! receive side releases its cursor), and a sender blocked on a full log
//! sees room again once the members catch up.

use std::time::Duration;

use ringflow_api::{Event, Group, GroupOptions, GroupRecvError, McastError, SlowMember};

/// Reads every event there is now; returns the messages among them.
fn drain(g: &mut Group) -> u64 {
    let mut messages = 0;
    loop {
        match g.try_recv() {
            Ok(Event::Message(_)) => messages += 1,
            Ok(_) => {}
            Err(GroupRecvError::WouldBlock) => return messages,
            Err(e) => panic!("receive: {e}"),
        }
    }
}

#[test]
fn a_reliable_log_is_reused_lap_after_lap() {
    ringflow_testkit::isolate_runtime_dir();
    let opts = GroupOptions::new().slow_member(SlowMember::Block).log_capacity(64 << 10).spin(Duration::ZERO);
    let mut sender = Group::join("g-room", &opts).expect("create");
    let mut other = Group::join("g-room", &opts).expect("join");
    let msg = [7u8; 64];
    // Many laps of the log (64 KiB asked; the group may round it up).
    let total = 20 * (64 << 10) / 96;
    let (mut sent, mut got_sender, mut got_other) = (0u64, 0u64, 0u64);
    let mut full = 0;
    while sent < total {
        match sender.try_mcast(&msg) {
            Ok(()) => sent += 1,
            Err(McastError::WouldBlock) => {
                full += 1;
                // Nobody has read for a whole log: both catch up, then there
                // must be room again.
                got_sender += drain(&mut sender);
                got_other += drain(&mut other);
                assert!(full < 1000, "the log stayed full with every member caught up ({sent} sent)");
            }
            Err(e) => panic!("mcast: {e}"),
        }
    }
    got_sender += drain(&mut sender);
    got_other += drain(&mut other);
    assert_eq!((got_sender, got_other), (sent, sent));
    assert!(full > 0, "the test never filled the log: it proves nothing");
}
