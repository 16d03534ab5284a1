//! The soak: run the simulation over a range of seeds, or replay one seed
//! with its trace. A failing seed prints the command that replays it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use simulation::{Scenario, SeedRange, Variant, replay_command, run_seeds, run_with_trace};

#[derive(Parser)]
#[command(about = "Deterministic fault simulation of handhelds, office and server")]
struct Cli {
    /// Seeds to run, e.g. 0..100000.
    #[arg(long, default_value = "0..100", conflicts_with = "seed")]
    seeds: SeedRange,
    /// Run this one seed (a replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the whole trace of the run (with --seed).
    #[arg(long, requires = "seed")]
    trace: bool,
    #[arg(long, default_value_t = Scenario::default().technicians)]
    technicians: usize,
    /// Simulated seconds of faults and work before the heal.
    #[arg(long, default_value_t = Scenario::default().active.as_secs())]
    active_seconds: u64,
    #[arg(long, value_enum, default_value_t = Client::Correct)]
    variant: Client,
    /// Threads running seeds at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Client {
    /// The real handheld client.
    Correct,
    /// A broken client that replays pushes under new numbers: must fail.
    ReplaysRenumbered,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let scenario = Scenario {
        technicians: cli.technicians.max(1),
        active: Duration::from_secs(cli.active_seconds),
        variant: match cli.variant {
            Client::Correct => Variant::Correct,
            Client::ReplaysRenumbered => Variant::ReplaysRenumbered,
        },
        ..Scenario::default()
    };
    if let Some(seed) = cli.seed {
        return replay(seed, &scenario, cli.trace);
    }
    let jobs = cli
        .jobs
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1);
    let started = Instant::now();
    let seeds = cli.seeds.0;
    let mut failed = 0;
    // Chunks, so that a long soak reports as it goes.
    let chunk = 200;
    let mut next = seeds.start;
    while next < seeds.end {
        let end = (next + chunk).min(seeds.end);
        for report in run_seeds(next..end, &scenario, jobs) {
            if !report.passed() {
                failed += 1;
                print!("{report}");
                println!("  replay: {}", replay_command(report.seed, &scenario));
            }
        }
        println!(
            "seeds {}..{end}: {failed} failed so far, {:.1} s",
            seeds.start,
            started.elapsed().as_secs_f64()
        );
        next = end;
    }
    let total = seeds.end - seeds.start;
    println!(
        "{} passed, {failed} failed ({total} seeds in {:.1} s on {jobs} threads)",
        total - failed,
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(seed: u64, scenario: &Scenario, trace: bool) -> ExitCode {
    let started = Instant::now();
    let (report, lines) = run_with_trace(seed, scenario);
    if trace {
        for line in lines {
            println!("{line}");
        }
    }
    print!("{report}");
    println!("({:.2} s)", started.elapsed().as_secs_f64());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        println!("  replay: {}", replay_command(seed, scenario));
        ExitCode::FAILURE
    }
}
