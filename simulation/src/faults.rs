//! The faults, decided by the seed between steps: on each link between a
//! client (a handheld, the office) and the server, partitions (no signal
//! for a while), holds (messages delayed, then delivered at once) and short
//! drops (whatever is on the link is lost); handhelds switched off and on;
//! the server killed and restarted. At the end, [`Faults::heal`] undoes
//! them all.

use std::ops::Range;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::http::SERVER_HOST;
use crate::observe::Journal;
use crate::scenario::Scenario;

/// How long each fault lasts, in milliseconds of simulated time.
const PARTITION_MS: Range<u64> = 2_000..60_000;
const HOLD_MS: Range<u64> = 200..5_000;
/// A drop of a step or a few: whatever is on the link then is lost.
const LOSS_MS: Range<u64> = 50..300;
const DEVICE_OFF_MS: Range<u64> = 0..20_000;
const SERVER_DOWN_MS: Range<u64> = 0..5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Healthy,
    /// Until the step, nothing gets through.
    Partitioned {
        until: u64,
    },
    /// Until the step, messages wait on the link.
    Held {
        until: u64,
    },
}

struct Link {
    client: String,
    state: LinkState,
}

struct Host {
    name: String,
    /// Switched off until this step.
    down_until: Option<u64>,
}

/// The chance per step of each kind of fault.
struct Chances {
    partition: f64,
    hold: f64,
    loss: f64,
    device_restart: f64,
    server_restart: f64,
}

pub struct Faults {
    rng: ChaCha8Rng,
    chances: Chances,
    tick: Duration,
    links: Vec<Link>,
    devices: Vec<Host>,
    server: Host,
}

impl Faults {
    /// Faults for the links of `clients` to the server, and restarts of
    /// `devices` and the server.
    pub fn new(
        rng: ChaCha8Rng,
        scenario: &Scenario,
        clients: &[String],
        devices: &[String],
    ) -> Self {
        let mean = &scenario.mean_between_faults;
        let chances = Chances {
            partition: scenario.chance_per_step(mean.partition),
            hold: scenario.chance_per_step(mean.hold),
            loss: scenario.chance_per_step(mean.loss),
            device_restart: scenario.chance_per_step(mean.device_restart),
            server_restart: scenario.chance_per_step(mean.server_restart),
        };
        let host = |name: &String| Host {
            name: name.clone(),
            down_until: None,
        };
        Self {
            rng,
            chances,
            tick: scenario.tick,
            links: clients
                .iter()
                .map(|client| Link {
                    client: client.clone(),
                    state: LinkState::Healthy,
                })
                .collect(),
            devices: devices.iter().map(host).collect(),
            server: host(&SERVER_HOST.to_owned()),
        }
    }

    /// Before step `step`: end the faults that are over, start new ones.
    pub fn before_step(&mut self, sim: &mut turmoil::Sim<'_>, step: u64, journal: &Journal) {
        let at = self.tick * step as u32;
        for index in 0..self.links.len() {
            self.link_step(sim, index, step, at, journal);
        }
        let tick = self.tick;
        for device in &mut self.devices {
            let chance = self.chances.device_restart;
            if restart_step(
                &mut self.rng,
                sim,
                device,
                (chance, DEVICE_OFF_MS),
                (step, tick),
                journal,
            ) {
                journal.count(|counts| counts.device_restarts += 1);
            }
        }
        let chance = self.chances.server_restart;
        if restart_step(
            &mut self.rng,
            sim,
            &mut self.server,
            (chance, SERVER_DOWN_MS),
            (step, tick),
            journal,
        ) {
            journal.count(|counts| counts.server_restarts += 1);
        }
    }

    /// End every fault now: repair and release every link, switch every
    /// host that is off back on.
    pub fn heal(&mut self, sim: &mut turmoil::Sim<'_>, at: Duration, journal: &Journal) {
        for link in &mut self.links {
            match link.state {
                LinkState::Partitioned { .. } => sim.repair(link.client.as_str(), SERVER_HOST),
                LinkState::Held { .. } => sim.release(link.client.as_str(), SERVER_HOST),
                LinkState::Healthy => continue,
            }
            link.state = LinkState::Healthy;
        }
        for host in self.devices.iter_mut().chain([&mut self.server]) {
            if host.down_until.take().is_some() {
                sim.bounce(host.name.as_str());
            }
        }
        journal.note_at(at, "faults", "all healed");
    }

    fn link_step(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        index: usize,
        step: u64,
        at: Duration,
        journal: &Journal,
    ) {
        let link = &mut self.links[index];
        match link.state {
            LinkState::Partitioned { until } if until <= step => {
                sim.repair(link.client.as_str(), SERVER_HOST);
                link.state = LinkState::Healthy;
                journal.note_at(at, &link.client, "signal back");
            }
            LinkState::Held { until } if until <= step => {
                sim.release(link.client.as_str(), SERVER_HOST);
                link.state = LinkState::Healthy;
                journal.note_at(at, &link.client, "held messages released");
            }
            LinkState::Healthy => {
                let draw: f64 = self.rng.random();
                let chances = &self.chances;
                if draw < chances.partition {
                    let until = step + 1 + steps(&mut self.rng, PARTITION_MS, self.tick);
                    sim.partition(link.client.as_str(), SERVER_HOST);
                    link.state = LinkState::Partitioned { until };
                    journal.note_at(at, &link.client, "no signal");
                    journal.count(|counts| counts.partitions += 1);
                } else if draw < chances.partition + chances.hold {
                    let until = step + 1 + steps(&mut self.rng, HOLD_MS, self.tick);
                    sim.hold(link.client.as_str(), SERVER_HOST);
                    link.state = LinkState::Held { until };
                    journal.note_at(at, &link.client, "messages held");
                    journal.count(|counts| counts.holds += 1);
                } else if draw < chances.partition + chances.hold + chances.loss {
                    let until = step + 1 + steps(&mut self.rng, LOSS_MS, self.tick);
                    sim.partition(link.client.as_str(), SERVER_HOST);
                    link.state = LinkState::Partitioned { until };
                    journal.note_at(at, &link.client, "messages lost");
                    journal.count(|counts| counts.losses += 1);
                }
            }
            LinkState::Partitioned { .. } | LinkState::Held { .. } => {}
        }
    }
}

/// A duration drawn from `range_ms`, in whole steps.
fn steps(rng: &mut ChaCha8Rng, range_ms: Range<u64>, tick: Duration) -> u64 {
    rng.random_range(range_ms) / tick.as_millis().max(1) as u64
}

/// A host's restart for this step: switch it on when its time off is over,
/// or, by chance, switch it off for a time drawn from `off_ms`. Whether it
/// was switched off now.
fn restart_step(
    rng: &mut ChaCha8Rng,
    sim: &mut turmoil::Sim<'_>,
    host: &mut Host,
    (chance, off_ms): (f64, Range<u64>),
    (step, tick): (u64, Duration),
    journal: &Journal,
) -> bool {
    let at = tick * step as u32;
    match host.down_until {
        Some(until) if until <= step => {
            sim.bounce(host.name.as_str());
            host.down_until = None;
            journal.note_at(at, &host.name, "switched on again");
            false
        }
        Some(_) => false,
        None if rng.random_bool(chance) => {
            let off = steps(rng, off_ms, tick);
            sim.crash(host.name.as_str());
            host.down_until = Some(step + 1 + off);
            journal.note_at(at, &host.name, "switched off");
            true
        }
        None => false,
    }
}
