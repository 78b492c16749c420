//! What the group process tests share: a member writes each event it
//! delivers as one line of a file (`events-NAME` in the test's directory),
//! and the test reads those lines back. Views list members and changes as
//! `host/id`, so lines compare equal across hosts.

use std::path::Path;

use ringflow::Event;

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
