//! What a run saw as it went: a trace of events in order (its hash tells
//! whether two runs of a seed were the same run), every ticket version each
//! observer was shown (versions must never go back), and counts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sync_protocol::{Sha256Hex, TicketId, Version};

use crate::check::Violation;

/// The run's journal, shared by every host and the driver (one thread).
#[derive(Default)]
pub struct Journal {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    lines: Vec<String>,
    /// The highest version each observer has been shown of each ticket.
    versions: BTreeMap<(String, TicketId), Version>,
    went_back: Vec<Violation>,
    counts: Counts,
}

/// How much of each thing happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub mutations_recorded: u64,
    pub syncs_completed: u64,
    pub syncs_failed: u64,
    pub answers_lost: u64,
    pub pushes_replayed_renumbered: u64,
    pub office_actions: u64,
    pub partitions: u64,
    pub holds: u64,
    pub losses: u64,
    pub device_restarts: u64,
    pub server_restarts: u64,
    pub drain_rounds: u64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mutations, {} syncs ({} failed), {} answers lost, {} office actions, \
             {} partitions, {} holds, {} losses, {} device restarts, {} server restarts",
            self.mutations_recorded,
            self.syncs_completed + self.syncs_failed,
            self.syncs_failed,
            self.answers_lost,
            self.office_actions,
            self.partitions,
            self.holds,
            self.losses,
            self.device_restarts,
            self.server_restarts,
        )
    }
}

impl Journal {
    /// Note an event of a simulated host, at the simulated time now.
    pub fn note(&self, who: &str, event: impl fmt::Display) {
        let elapsed = turmoil::sim_elapsed().expect("hosts note events inside the simulation");
        self.note_at(elapsed, who, event);
    }

    /// Note an event at `elapsed` (the driver, between steps).
    pub fn note_at(&self, elapsed: Duration, who: &str, event: impl fmt::Display) {
        let line = format!("{:>9.3} {who}: {event}", elapsed.as_secs_f64());
        self.lock().lines.push(line);
    }

    /// `observer` was shown `ticket` at `version`; one shown a lower
    /// version than before is a violation.
    pub fn saw_version(&self, observer: &str, ticket: &TicketId, version: Version) {
        let mut inner = self.lock();
        let key = (observer.to_owned(), ticket.clone());
        match inner.versions.get(&key).copied() {
            Some(seen) if version < seen => {
                inner.went_back.push(Violation::VersionWentBack {
                    observer: observer.to_owned(),
                    ticket: ticket.clone(),
                    from: seen,
                    to: version,
                });
            }
            Some(seen) if version == seen => {}
            _ => {
                inner.versions.insert(key, version);
            }
        }
    }

    pub fn count(&self, add: impl FnOnce(&mut Counts)) {
        add(&mut self.lock().counts);
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    pub fn versions_that_went_back(&self) -> Vec<Violation> {
        self.lock().went_back.clone()
    }

    /// The hash of the whole trace: equal for two runs that did the same
    /// things in the same order at the same simulated times.
    pub fn trace_hash(&self) -> Sha256Hex {
        Sha256Hex::of(self.lock().lines.join("\n").as_bytes())
    }

    /// The trace, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // One thread runs the simulation; a panic there ends the run anyway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_lower_than_one_already_seen_is_a_violation_per_observer() {
        let journal = Journal::default();
        let ticket = TicketId::parse("tk00000001").unwrap();
        journal.saw_version("hh-li", &ticket, Version(4));
        journal.saw_version("hh-li", &ticket, Version(4));
        journal.saw_version("office", &ticket, Version(2));
        assert!(journal.versions_that_went_back().is_empty());
        journal.saw_version("hh-li", &ticket, Version(3));
        assert_eq!(
            journal.versions_that_went_back(),
            vec![Violation::VersionWentBack {
                observer: "hh-li".to_owned(),
                ticket,
                from: Version(4),
                to: Version(3),
            }]
        );
    }
}
