//! What the driver and every simulated host share: the scenario, the clock,
//! the journal, the fault switch, and the phase of the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::SimClock;
use crate::observe::Journal;
use crate::scenario::Scenario;
use crate::transport::FaultSwitch;

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults on; technicians record and sync, the office acts.
    Active,
    /// Faults healed; the office finishes what it is doing and stops,
    /// technicians wait.
    Healing,
    /// Technicians sync until their outbox is empty and the feed has no
    /// more; a round is repeated while the server's feed still moves.
    Draining(u64),
}

pub struct Shared {
    pub scenario: Scenario,
    pub clock: SimClock,
    pub journal: Arc<Journal>,
    pub faults: Arc<FaultSwitch>,
    /// 0: active, 1: healing, n ≥ 2: draining round n - 1.
    phase: AtomicU64,
    office_stopped: AtomicBool,
}

impl Shared {
    pub fn new(scenario: Scenario, clock: SimClock) -> Self {
        Self {
            scenario,
            clock,
            journal: Arc::new(Journal::default()),
            faults: Arc::new(FaultSwitch::on()),
            phase: AtomicU64::new(0),
            office_stopped: AtomicBool::new(false),
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Active,
            1 => Phase::Healing,
            round => Phase::Draining(round - 1),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        let encoded = match phase {
            Phase::Active => 0,
            Phase::Healing => 1,
            Phase::Draining(round) => round + 1,
        };
        self.phase.store(encoded, Ordering::Relaxed);
    }

    pub fn office_stopped(&self) -> bool {
        self.office_stopped.load(Ordering::Relaxed)
    }

    pub fn stop_office(&self) {
        self.office_stopped.store(true, Ordering::Relaxed);
    }
}
