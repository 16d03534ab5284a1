//! A deterministic fault simulation of estate-sync: technicians' handhelds,
//! the office and the server on one thread with simulated time and a
//! simulated network (turmoil), under partitions, delays, lost messages,
//! answers lost after the server applied a push, device restarts and server
//! restarts. Every run is seeded: the same seed replays the same run.
//!
//! The pieces are the real ones: the server is `server::Application` with
//! its writer and scheduler inline (`server::execution`) over the in-memory
//! store; each handheld is `handheld::Device` over an in-memory storage that
//! outlives its restarts; they speak HTTP/1.1 over simulated TCP. At
//! quiesce (faults healed, every device synced to the end) `check` looks
//! for what must never happen: a recorded fact lost or applied twice, a
//! mutation with no answer or two, a device whose tickets differ from the
//! server's, a ticket version going back. docs/simulation.md has the whole
//! story and the measured seed counts.

pub mod check;
pub mod clock;
pub mod estate;
pub mod faults;
pub mod http;
pub mod observe;
pub mod office;
pub mod run;
pub mod scenario;
pub mod server_host;
pub mod shared;
pub mod technician;
pub mod transport;

pub use check::Violation;
pub use observe::Counts;
pub use run::{RunReport, SeedRange, replay_command, run, run_seeds, run_with_trace};
pub use scenario::{Scenario, Variant};
