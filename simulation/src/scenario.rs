//! What one run simulates: how many technicians, how long, how rough the
//! network is, and whether the handhelds' client is the real one or a
//! deliberately broken one (to prove the checker catches a bug).

use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Technicians, each with one handheld.
    pub technicians: usize,
    /// Work orders dispatched before the run starts.
    pub initial_tickets: usize,
    /// How long the faults and the work go on, in simulated time.
    pub active: Duration,
    /// Simulated time per step of the simulation.
    pub tick: Duration,
    /// Each message on the network takes up to this long.
    pub max_latency: Duration,
    /// A handheld waits this long for an answer before it counts as none.
    pub request_timeout: Duration,
    /// Chance that an answer is lost on its way back to a handheld, after
    /// the server processed the request.
    pub answer_loss: f64,
    /// Mean simulated time between faults of each kind, per link or host.
    pub mean_between_faults: FaultIntervals,
    pub variant: Variant,
}

/// Mean time between two faults of a kind (per link or per host).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultIntervals {
    /// No signal between a handheld (or the office) and the server for a while.
    pub partition: Duration,
    /// Messages held on a link, then delivered late all at once.
    pub hold: Duration,
    /// A short drop that loses whatever is on the link: lost messages.
    pub loss: Duration,
    /// A handheld switched off (flat battery) and on again.
    pub device_restart: Duration,
    /// The server process killed and started again.
    pub server_restart: Duration,
}

/// Which handheld client runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The real one (`handheld`'s sync loop).
    Correct,
    /// A broken client: after some pushes it sends the same mutations again
    /// under fresh sequence numbers (as if an unanswered push were never
    /// processed), and reports the first push as unanswered. The server
    /// cannot know they are the same facts; the checker must notice.
    ReplaysRenumbered,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            technicians: 4,
            initial_tickets: 10,
            active: Duration::from_secs(150),
            tick: Duration::from_millis(50),
            max_latency: Duration::from_millis(150),
            request_timeout: Duration::from_secs(4),
            answer_loss: 0.08,
            mean_between_faults: FaultIntervals {
                partition: Duration::from_secs(45),
                hold: Duration::from_secs(60),
                loss: Duration::from_secs(30),
                device_restart: Duration::from_secs(90),
                server_restart: Duration::from_secs(75),
            },
            variant: Variant::Correct,
        }
    }
}

impl Scenario {
    /// Steps of the active phase.
    pub fn active_steps(&self) -> u64 {
        (self.active.as_millis() / self.tick.as_millis().max(1)) as u64
    }

    /// The chance that a fault with this mean interval starts in one step.
    pub fn chance_per_step(&self, mean_between: Duration) -> f64 {
        (self.tick.as_secs_f64() / mean_between.as_secs_f64()).min(1.0)
    }
}
