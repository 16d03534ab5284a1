//! One seeded run: build the simulated world, run it with faults, heal,
//! drain, check; and many runs over a range of seeds on a few threads.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use server::store::Store;
use sync_protocol::Sha256Hex;

use crate::check::{self, Violation};
use crate::clock::{SimClock, start_of_run};
use crate::faults::Faults;
use crate::http::SERVER_HOST;
use crate::observe::Counts;
use crate::office::{self, OFFICE, Office};
use crate::scenario::{Scenario, Variant};
use crate::server_host;
use crate::shared::{Phase, Shared};
use crate::technician::{self, Technician};

/// Simulated time the office gets to finish its last action after the heal.
const HEALING_LIMIT: Duration = Duration::from_secs(60);
/// Simulated time one draining round may take.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Rounds of draining before a feed that keeps moving is reported.
const MAX_DRAIN_ROUNDS: u64 = 5;
/// Lines of the trace a failed run keeps for its report.
const TRACE_TAIL: usize = 60;

/// What one run did and found.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub seed: u64,
    pub variant: Variant,
    /// The hash of the trace of events: equal for two runs of one seed.
    pub trace_hash: Sha256Hex,
    /// The hash of the server's and the handhelds' final state.
    pub state_hash: Sha256Hex,
    pub counts: Counts,
    pub steps: u64,
    pub violations: Vec<Violation>,
    /// The end of the trace, for a failed run.
    pub trace_tail: Vec<String>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "ok" } else { "FAILED" };
        writeln!(
            f,
            "seed {} {verdict}: {} in {} steps; trace {}, state {}",
            self.seed,
            self.counts,
            self.steps,
            &self.trace_hash.as_str()[..16],
            &self.state_hash.as_str()[..16],
        )?;
        for violation in &self.violations {
            writeln!(f, "  violation: {violation}")?;
        }
        if !self.trace_tail.is_empty() {
            writeln!(f, "  the trace ended with:")?;
            for line in &self.trace_tail {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// Seeds `start..end`, as the command line writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedRange(pub Range<u64>);

impl std::str::FromStr for SeedRange {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let (start, end) = raw
            .split_once("..")
            .ok_or_else(|| format!("{raw:?} is not a range like 0..1000"))?;
        let number = |text: &str| {
            text.trim()
                .parse::<u64>()
                .map_err(|error| format!("{text:?}: {error}"))
        };
        let range = number(start)?..number(end)?;
        if range.is_empty() {
            return Err(format!("{raw:?} holds no seed"));
        }
        Ok(Self(range))
    }
}

/// The command that replays `seed` of `scenario`, with its trace.
pub fn replay_command(seed: u64, scenario: &Scenario) -> String {
    let defaults = Scenario::default();
    let mut command = format!("cargo run --release -p simulation -- --seed {seed}");
    if scenario.technicians != defaults.technicians {
        command.push_str(&format!(" --technicians {}", scenario.technicians));
    }
    if scenario.active != defaults.active {
        command.push_str(&format!(" --active-seconds {}", scenario.active.as_secs()));
    }
    if scenario.variant == Variant::ReplaysRenumbered {
        command.push_str(" --variant replays-renumbered");
    }
    command.push_str(" --trace");
    command
}

/// Run every seed of `seeds` on `jobs` threads; the reports in seed order.
pub fn run_seeds(seeds: Range<u64>, scenario: &Scenario, jobs: usize) -> Vec<RunReport> {
    let next = AtomicU64::new(seeds.start);
    let mut reports: Vec<RunReport> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed >= seeds.end {
                            return mine;
                        }
                        mine.push(run(seed, scenario));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a simulation thread panicked"))
            .collect()
    });
    reports.sort_by_key(|report| report.seed);
    reports
}

/// One run of `scenario` decided by `seed`.
pub fn run(seed: u64, scenario: &Scenario) -> RunReport {
    run_with_trace(seed, scenario).0
}

/// [`run`], with the whole trace of events.
pub fn run_with_trace(seed: u64, scenario: &Scenario) -> (RunReport, Vec<String>) {
    let mut seeds = ChaCha8Rng::seed_from_u64(seed);
    let mut fork = || ChaCha8Rng::seed_from_u64(seeds.random());
    let clock = SimClock::new(start_of_run());
    let shared = Arc::new(Shared::new(scenario.clone(), clock));
    let store = Store::in_memory();
    let technicians: Vec<Arc<Technician>> = (0..scenario.technicians)
        .map(|index| Arc::new(Technician::new(index, fork(), fork())))
        .collect();
    let office = Arc::new(Office::new(fork()));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(scenario.tick)
        .simulation_duration(Duration::from_secs(24 * 3600))
        .min_message_latency(Duration::ZERO)
        .max_message_latency(scenario.max_latency)
        .build();
    {
        let (store, shared) = (store.clone(), shared.clone());
        sim.host(SERVER_HOST, move || {
            let journal = shared.journal.clone();
            server_host::serve(store.clone(), clock, shared.scenario.clone(), journal)
        });
    }
    for technician in &technicians {
        let (technician, shared) = (technician.clone(), shared.clone());
        let name = technician.name.clone();
        sim.host(name.as_str(), move || {
            technician::work(technician.clone(), shared.clone())
        });
    }
    {
        let (office, shared) = (office.clone(), shared.clone());
        sim.host(OFFICE, move || office::work(office.clone(), shared.clone()));
    }
    let devices: Vec<String> = technicians.iter().map(|tech| tech.name.clone()).collect();
    let mut clients = devices.clone();
    clients.push(OFFICE.to_owned());
    let mut faults = Faults::new(fork(), scenario, &clients, &devices);

    let mut driver = Driver {
        sim,
        shared: &shared,
        steps: 0,
    };
    let mut violations = driver.run_to_quiesce(&mut faults, &technicians, &store);
    if violations.is_empty() {
        violations.extend(check::check(&store, &technicians, &office, clock));
    }
    violations.extend(shared.journal.versions_that_went_back());
    let journal = &shared.journal;
    let trace = journal.lines();
    let trace_tail = if violations.is_empty() {
        Vec::new()
    } else {
        trace[trace.len().saturating_sub(TRACE_TAIL)..].to_vec()
    };
    let report = RunReport {
        seed,
        variant: scenario.variant,
        trace_hash: journal.trace_hash(),
        state_hash: state_hash(&store, &technicians, clock),
        counts: journal.counts(),
        steps: driver.steps,
        violations,
        trace_tail,
    };
    (report, trace)
}

struct Driver<'a> {
    sim: turmoil::Sim<'a>,
    shared: &'a Shared,
    steps: u64,
}

impl Driver<'_> {
    /// The active phase with faults, the heal, then draining rounds until
    /// the server's feed stands still; what kept it from quiescing.
    fn run_to_quiesce(
        &mut self,
        faults: &mut Faults,
        technicians: &[Arc<Technician>],
        store: &Store,
    ) -> Vec<Violation> {
        let journal = self.shared.journal.clone();
        let scenario = &self.shared.scenario;
        for step in 0..scenario.active_steps() {
            faults.before_step(&mut self.sim, step, &journal);
            if let Err(violation) = self.step() {
                return vec![violation];
            }
        }
        let healed_at = self.sim.elapsed();
        faults.heal(&mut self.sim, healed_at, &journal);
        self.shared.faults.turn_off();
        self.shared.set_phase(Phase::Healing);
        if let Err(violation) = self.step_until(HEALING_LIMIT, |shared| shared.office_stopped()) {
            return vec![violation];
        }
        for round in 1..=MAX_DRAIN_ROUNDS {
            journal.count(|counts| counts.drain_rounds += 1);
            self.shared.set_phase(Phase::Draining(round));
            let drained = |_: &Shared| {
                technicians
                    .iter()
                    .all(|technician| technician.drained_round() >= round)
            };
            if let Err(violation) = self.step_until(DRAIN_LIMIT, drained) {
                return vec![violation];
            }
            match feed_stands_still(store, technicians, self.shared.clock) {
                Ok(true) => return Vec::new(),
                Ok(false) => continue,
                Err(violation) => return vec![violation],
            }
        }
        vec![Violation::NotQuiesced {
            detail: format!("the feed still moved after {MAX_DRAIN_ROUNDS} draining rounds"),
        }]
    }

    fn step(&mut self) -> Result<(), Violation> {
        self.steps += 1;
        self.sim
            .step()
            .map(|_| ())
            .map_err(|error| Violation::Fault {
                detail: format!("a host failed: {error}"),
            })
    }

    fn step_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&Shared) -> bool,
    ) -> Result<(), Violation> {
        let deadline = self.sim.elapsed() + limit;
        while !done(self.shared) {
            if self.sim.elapsed() >= deadline {
                return Err(Violation::NotQuiesced {
                    detail: format!(
                        "{:?} not reached within {} s of simulated time",
                        self.shared.phase(),
                        limit.as_secs()
                    ),
                });
            }
            self.step()?;
        }
        Ok(())
    }
}

/// Whether every handheld has pulled up to the server's last feed entry:
/// nothing changed after their last syncs (the scheduler may have).
fn feed_stands_still(
    store: &Store,
    technicians: &[Arc<Technician>],
    clock: SimClock,
) -> Result<bool, Violation> {
    let feed = store.counters()?.feed;
    for technician in technicians {
        if technician.open_device(clock)?.cursor()?.0 != feed {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A hash of everything the run left: the server's tickets and device
/// records, and each handheld's tickets and answers.
fn state_hash(store: &Store, technicians: &[Arc<Technician>], clock: SimClock) -> Sha256Hex {
    let mut state = Vec::new();
    let mut add = |value: serde_json::Result<Vec<u8>>| {
        state.extend(value.unwrap_or_else(|error| error.to_string().into_bytes()));
    };
    match check::server_tickets(store) {
        Ok(tickets) => add(serde_json::to_vec(&tickets)),
        Err(error) => add(Ok(error.to_string().into_bytes())),
    }
    for technician in technicians {
        match store.device(&technician.device_id) {
            Ok(record) => add(serde_json::to_vec(&record)),
            Err(error) => add(Ok(error.to_string().into_bytes())),
        }
        let device = technician.open_device(clock);
        let held = device
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|device| {
                let tickets = device.tickets().map_err(|error| error.to_string())?;
                let answers = device
                    .outcomes(handheld::device::MAX_OUTCOME_RECORDS)
                    .map_err(|error| error.to_string())?;
                let tickets: Vec<_> = tickets.into_iter().map(|state| state.local).collect();
                Ok((tickets, answers))
            });
        match held {
            Ok(held) => add(serde_json::to_vec(&held)),
            Err(error) => add(Ok(error.into_bytes())),
        }
    }
    Sha256Hex::of(&state)
}
