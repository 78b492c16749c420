//! What the group process tests share: a member writes each event it
//! delivers as one line of a file (`events-NAME` in the test's directory),
//! and the test reads those lines back. Views list members and changes as
//! `host/id`, so lines compare equal across hosts.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringflow::{Deadline, Event, Group, GroupOptions, McastError};

use super::{child_arg, child_dir, LONG};

/// A member child as it starts: its test directory, its name (`NAME`),
/// the group joined with `opts` in its host's runtime directory
/// (`RUNTIME`), and the file it writes its events to.
pub struct MemberChild {
    pub dir: PathBuf,
    pub me: String,
    pub group: Group,
    pub out: File,
}

impl MemberChild {
    pub fn join(name: &str, opts: &GroupOptions) -> MemberChild {
        let dir = child_dir();
        let me = child_arg("NAME");
        std::env::set_var("RINGFLOW_RUNTIME_DIR", child_arg("RUNTIME"));
        let group = Group::join_timeout(name, opts, LONG).expect("join");
        let out = File::create(dir.join(format!("events-{me}"))).expect("events file");
        MemberChild { dir, me, group, out }
    }

    /// Writes every event it delivers, and once a view holds three
    /// members multicasts `each` messages `NAME-k`, one per event or
    /// quiet `look`, each followed by a pause of `pace`: senders on every
    /// host interleave. Runs until the test kills the child.
    pub fn write_and_send(self, each: usize, look: Duration, pace: Duration) -> ! {
        self.write_and_send_among(3, each, look, pace)
    }

    /// [`write_and_send`](Self::write_and_send) once a view holds
    /// `members` members.
    pub fn write_and_send_among(mut self, members: usize, each: usize, look: Duration, pace: Duration) -> ! {
        let (mut sent, mut three) = (0, false);
        loop {
            match self.group.recv_deadline(Deadline::after(look)) {
                Ok(e) => {
                    if let Event::View(v) = &e {
                        three |= v.members.len() == members;
                    }
                    writeln!(self.out, "{}", line(&e)).expect("write an event");
                }
                Err(ringflow::GroupRecvError::TimedOut) => {}
                Err(e) => panic!("{}: receive: {e}", self.me),
            }
            if three && sent < each {
                sent += 1;
                self.group.mcast_timeout(format!("{}-{sent}", self.me).as_bytes(), LONG).expect("mcast");
                std::thread::sleep(pace);
            }
        }
    }
}

impl MemberChild {
    /// Writes every event it delivers, and once a view holds three
    /// members multicasts `NAME-1`, `NAME-2`, ... every `pace` until the
    /// marker `stop-NAME` appears; then writes how many multicasts
    /// returned `Ok` to the marker `sent-NAME` and goes on writing events.
    /// A multicast refused with `NoQuorum` is written as `refused
    /// NoQuorum` (once per run of refusals, and again after a view: the
    /// quorum word may refuse before the view that says why is read) and
    /// not counted. Runs until the test kills the child.
    pub fn send_until_stopped(mut self, pace: Duration) -> ! {
        let (mut sent, mut three, mut refused, mut stopped) = (0u64, false, false, false);
        let mut next = Instant::now();
        loop {
            match self.group.recv_deadline(Deadline::after(pace)) {
                Ok(e) => {
                    if let Event::View(v) = &e {
                        three |= v.members.len() == 3;
                        refused = false;
                    }
                    writeln!(self.out, "{}", line(&e)).expect("write an event");
                }
                Err(ringflow::GroupRecvError::TimedOut) => {}
                Err(e) => panic!("{}: receive: {e}", self.me),
            }
            if stopped {
                continue;
            }
            if self.dir.join(format!("stop-{}", self.me)).exists() {
                stopped = true;
                super::write_marker(&self.dir, &format!("sent-{}", self.me), &sent.to_string());
                continue;
            }
            if three && Instant::now() >= next {
                next = Instant::now() + pace;
                match self.group.mcast_timeout(format!("{}-{}", self.me, sent + 1).as_bytes(), LONG) {
                    Ok(()) => {
                        sent += 1;
                        refused = false;
                    }
                    Err(McastError::NoQuorum) => {
                        if !refused {
                            writeln!(self.out, "refused NoQuorum").expect("write an event");
                        }
                        refused = true;
                    }
                    Err(e) => panic!("{}: mcast: {e}", self.me),
                }
            }
        }
    }
}

/// One event as a line: `msg host/id #seq payload`, `view id [members]
/// (changes)`, `lost n`.
pub fn line(e: &Event<'_>) -> String {
    match e {
        Event::Message(m) => {
            let s = m.sender();
            format!("msg {}/{} #{} {}", s.host, s.id, m.seq(), String::from_utf8_lossy(m.payload().unwrap_or(b"?")))
        }
        Event::View(v) => {
            let ms: Vec<String> = v.members.iter().map(|m| format!("{}/{}", m.host, m.id)).collect();
            let cs: Vec<String> =
                v.changes.iter().map(|c| format!("{:?} {}/{}", c.kind, c.member.host, c.member.id)).collect();
            format!("view {} [{}] ({})", v.id, ms.join(" "), cs.join(", "))
        }
        Event::Lost { count } => format!("lost {count}"),
    }
}

/// The events member `name` wrote so far.
pub fn events(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("events-{name}"))).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// The payloads of the messages in `events` that start with `prefix`, in
/// delivery order.
pub fn payloads(events: &[String], prefix: &str) -> Vec<String> {
    events
        .iter()
        .filter(|l| l.starts_with("msg "))
        .filter_map(|l| l.rsplit(' ').next())
        .filter(|t| t.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The payloads of `sender`'s messages (`sender-n`) in `events`.
pub fn texts_of(events: &[String], sender: &str) -> Vec<String> {
    payloads(events, &format!("{sender}-"))
}

/// Whether `l` is a view line.
pub fn is_view(l: &str) -> bool {
    l.starts_with("view ")
}

/// The members a view line lists.
pub fn members_of(l: &str) -> Vec<String> {
    l.split('[').nth(1).and_then(|m| m.split(']').next()).unwrap_or("").split_whitespace().map(str::to_owned).collect()
}

/// Whether `l` is a view line of `n` members.
pub fn is_view_of(l: &str, n: usize) -> bool {
    is_view(l) && members_of(l).len() == n
}

/// `events` from the first view of three members on.
pub fn from_three(events: &[String]) -> Vec<String> {
    let at = events.iter().position(|l| is_view_of(l, 3)).unwrap_or(events.len());
    events[at..].to_vec()
}

/// `events` cut at its views: each view line with the payloads delivered
/// after it (sorted: a FIFO group orders each sender, not the senders),
/// up to the next view. Virtual synchrony: every member delivers the same
/// views, and the same messages between the same two views.
pub fn by_view(events: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for l in events {
        if is_view(l) {
            out.push((l.clone(), Vec::new()));
        } else if let (Some(last), Some(text)) = (out.last_mut(), l.strip_prefix("msg ")) {
            last.1.push(text.rsplit(' ').next().unwrap_or("").to_owned());
        }
    }
    for (_, msgs) in &mut out {
        msgs.sort();
    }
    out
}
