//! A process group in three processes (Corosync CPG's model): every member
//! multicasts to all and receives one stream of events, messages and
//! membership views, in the same order at every member. The first process
//! joins the group "chat" (creating it), starts two more processes that
//! join too, and once it has seen both join in its views it multicasts
//! "go"; each of the two answers with a greeting and leaves. This program
//! plays every role: without arguments it is the first member and starts
//! itself again with the argument `member` for the others.
//!
//! Run with `cargo run --release -p ringflow --example group`.

use std::process::{Child, Command};
use std::time::Duration;

use ringflow::{ChangeKind, Event, Group, GroupOptions, Guarantee, SlowMember};

/// Processes started to join beside the first.
const OTHERS: usize = 2;
/// How long any single wait may last (a hang guard).
const GUARD: Duration = Duration::from_secs(10);

/// Every member passes the same options: one total order for everyone
/// (AGREED), and a sender waits for a slow member rather than overtake it.
fn options() -> GroupOptions {
    GroupOptions::new().guarantee(Guarantee::Agreed).slow_member(SlowMember::Block)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("member") => member(),
        _ => first(),
    }
}

fn first() -> Result<(), Box<dyn std::error::Error>> {
    // The first joiner creates the group and keeps it (admits joiners,
    // writes views); if it leaves first, another member takes over.
    let mut group = Group::join("chat", &options())?;
    let me = group.local_member();
    let others: Vec<Child> =
        (0..OTHERS).map(|_| Command::new(std::env::current_exe()?).arg("member").spawn()).collect::<Result<_, _>>()?;

    let (mut joined, mut left, mut greetings, mut said_go) = (0, 0, 0, false);
    while left < OTHERS {
        if joined == OTHERS && !said_go {
            // Everyone is in: one multicast reaches them all.
            group.mcast_timeout(b"go", GUARD)?;
            said_go = true;
        }
        // Views and messages come in one stream, in the group's order.
        match group.recv_timeout(GUARD)? {
            Event::View(view) => {
                for change in &view.changes {
                    println!("view {}: {} {:?}", view.id, change.member, change.kind);
                    if change.member != me && change.kind == ChangeKind::Joined {
                        joined += 1;
                    } else if matches!(change.kind, ChangeKind::Left | ChangeKind::ProcessDown) {
                        // Left: it called `leave` (or dropped its Group);
                        // ProcessDown: its process died.
                        left += 1;
                    }
                }
                println!("view {}: {} members", view.id, view.members.len());
            }
            Event::Message(msg) => {
                // Read in place in the group's shared log (on a Block
                // group the payload is there to borrow).
                let text = String::from_utf8_lossy(msg.payload().ok_or("not in place")?).into_owned();
                if msg.sender() != me {
                    println!("{} says {text:?}", msg.sender());
                    greetings += 1;
                }
            }
            Event::Lost { count } => return Err(format!("lost {count} messages on a Block group").into()),
        }
    }
    assert_eq!(greetings, OTHERS);
    for mut other in others {
        assert!(other.wait()?.success(), "a member failed");
    }
    group.leave()?;
    Ok(())
}

fn member() -> Result<(), Box<dyn std::error::Error>> {
    let mut group = Group::join("chat", &options())?;
    // A member's first event is the view of its own join; wait for "go".
    loop {
        if let Event::Message(msg) = group.recv_timeout(GUARD)? {
            if msg.payload() == Some(b"go") {
                break;
            }
        }
    }
    let hello = format!("hello from pid {}", std::process::id());
    group.mcast_timeout(hello.as_bytes(), GUARD)?;
    // The others see a view saying this member left, after its greeting.
    group.leave()?;
    Ok(())
}
