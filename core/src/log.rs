//! The engine's log: structured events through `tracing` (target
//! `ringflow_core::…`, fields such as `peer`, `flow`, `flow_id`, `reason`)
//! for what an operator follows: the engine's start and stop, connections
//! and links to other engines, remote flows opened, refused and expired,
//! and errors with their cause. The application (or `ringflow engine`'s
//! `-v` / `RINGFLOW_LOG`) installs a subscriber and chooses what is kept.
//!
//! Never on the data path: no event per message or per frame, only per
//! connection, flow or failure. With no subscriber an event costs one
//! relaxed load of tracing's interest cache.
//!
//! Warnings a person must not miss (a listener open to the network
//! without a key, a refused hello, a fallback off io_uring) still reach
//! stderr as plain lines in a process that installed no subscriber, as
//! they did before the log existed: [`unheard`] says when.

/// True when no `tracing` subscriber listens in this thread (none was set
/// globally nor for the thread): a warning then goes to stderr as well.
pub(crate) fn unheard() -> bool {
    tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>())
}

/// Writes `line` to stderr when nobody listens to the log (see [`unheard`]).
pub(crate) fn stderr_if_unheard(line: std::fmt::Arguments<'_>) {
    if unheard() {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// A subscriber for tests: keeps every event as one line, `LEVEL target:
/// message field=value ...`.
#[cfg(test)]
pub(crate) mod capture {
    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// The lines of the events seen so far.
    #[derive(Clone, Default)]
    pub(crate) struct Capture(Arc<Mutex<Vec<String>>>);

    impl Capture {
        pub(crate) fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, " {value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let meta = event.metadata();
            let mut line = Line(format!("{} {}:", meta.level(), meta.target()));
            event.record(&mut line);
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_reaches_stderr_only_when_no_subscriber_listens() {
        assert!(unheard(), "no subscriber is set in core's unit tests");
        let capture = capture::Capture::default();
        tracing::subscriber::with_default(capture.clone(), || {
            assert!(!unheard());
            tracing::warn!(peer = "192.0.2.1:7000", "a test event");
        });
        assert!(unheard(), "the thread's subscriber ended with its scope");
        let lines = capture.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("WARN ringflow_core::log"), "{lines:?}");
        assert!(lines[0].contains("peer=\"192.0.2.1:7000\""), "{lines:?}");
    }
}
