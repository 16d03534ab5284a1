//! Time in the simulation: turmoil's simulated time since the run began,
//! laid on a fixed start, so that a seed replays the same moments. Both the
//! server's clock and the handhelds' are this one (a handheld's with a skew
//! of its own: device clocks are rarely right).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// When every run starts: Friday 27 November 2026, 09:00 in Shanghai, a
/// working morning in the estate's calendar.
pub fn start_of_run() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0)
        .single()
        .expect("a valid moment")
}

#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    start: DateTime<Utc>,
    skew: chrono::Duration,
}

impl SimClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            start,
            skew: chrono::Duration::zero(),
        }
    }

    /// The same clock running `skew` ahead (behind, when negative).
    pub fn skewed(self, skew: chrono::Duration) -> Self {
        Self { skew, ..self }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed =
            turmoil::sim_elapsed().expect("the simulated clock is read inside a simulated host");
        self.start + self.skew + since_start(elapsed)
    }
}

fn since_start(elapsed: Duration) -> chrono::Duration {
    chrono::Duration::from_std(elapsed).expect("a simulation runs for less than a century")
}

impl server::clock::Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        SimClock::now(self)
    }
}

impl handheld::Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        SimClock::now(self)
    }
}
