//! The bridge's guests (`crate::remote::guest`): attaching them and
//! running their part of the duty cycle.

use super::Bridge;

impl Bridge {
    /// Runs `guest` in this duty cycle, after those attached before it
    /// (see `crate::remote::guest`).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(in crate::remote) fn attach_guest(&mut self, guest: Box<dyn crate::remote::guest::Guest>) {
        self.guests.push(guest);
    }

    /// One duty cycle of every guest; returns their work. A guest that
    /// panics is dropped and logged, as the engine does with an agent: the
    /// bridge's flows go on.
    pub(super) fn guests(&mut self) -> usize {
        let mut work = 0usize;
        // What a later guest did is often for an earlier one (a gateway's
        // proposal for the node, read from its queue): the guests before
        // the last one that did work run once more, so it leaves in this
        // cycle rather than the next one's.
        let mut last_busy = None;
        let mut index = 0;
        while index < self.guests.len() {
            match self.run_guest(index) {
                Some(done) => {
                    if done > 0 {
                        last_busy = Some(index);
                    }
                    work = work.saturating_add(done);
                    index += 1;
                }
                None => last_busy = last_busy.filter(|&b| b < index),
            }
        }
        if let Some(last) = last_busy {
            let mut index = 0;
            while index < last.min(self.guests.len()) {
                match self.run_guest(index) {
                    Some(done) => {
                        work = work.saturating_add(done);
                        index += 1;
                    }
                    None => break,
                }
            }
        }
        work
    }

    /// Runs guest `index`'s duty cycle; `None` if it panicked (it is then
    /// removed, and the next guest has its index).
    fn run_guest(&mut self, index: usize) -> Option<usize> {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        let guest = self.guests.get_mut(index)?;
        // The guest is not touched again after a panic (removed below).
        match catch_unwind(AssertUnwindSafe(|| guest.do_work())) {
            Ok(done) => Some(done),
            Err(payload) => {
                let guest = self.guests.remove(index);
                let message = crate::engine::panic_text(payload.as_ref());
                tracing::error!(guest = guest.name(), %message, "a guest of the bridge panicked and stops");
                let _ = catch_unwind(AssertUnwindSafe(move || drop(guest)));
                None
            }
        }
    }
}
