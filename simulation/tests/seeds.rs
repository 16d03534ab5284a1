//! The fault simulation over many seeds, its determinism, and proof that
//! its checker catches a client that applies pushes twice.

use simulation::{Counts, Scenario, Variant, Violation, replay_command, run, run_seeds};

/// Seeds every test run covers (docs/simulation.md has the timings).
const CI_SEEDS: u64 = 1000;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, Into::into)
}

#[test]
fn a_thousand_seeded_runs_of_faults_lose_no_fact_and_apply_none_twice() {
    let scenario = Scenario::default();
    let reports = run_seeds(0..CI_SEEDS, &scenario, threads());
    assert_eq!(reports.len() as u64, CI_SEEDS);
    let failures: Vec<String> = reports
        .iter()
        .filter(|report| !report.passed())
        .map(|report| {
            format!(
                "{report}  replay: {}",
                replay_command(report.seed, &scenario)
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The runs exercised what they claim to: totals over all seeds.
    let total = |count: fn(&Counts) -> u64| -> u64 {
        reports.iter().map(|report| count(&report.counts)).sum()
    };
    assert!(total(|counts| counts.mutations_recorded) > CI_SEEDS * 10);
    assert!(total(|counts| counts.answers_lost) > CI_SEEDS);
    assert!(total(|counts| counts.server_restarts) > CI_SEEDS);
    assert!(total(|counts| counts.device_restarts) > CI_SEEDS);
    assert!(total(|counts| counts.partitions) > CI_SEEDS);
}

#[test]
fn the_same_seed_replays_the_same_run_and_another_seed_another() {
    let scenario = Scenario::default();
    let first = run(7, &scenario);
    let again = run(7, &scenario);
    assert!(first.passed(), "{first}");
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first.state_hash, again.state_hash);
    assert_eq!(first.counts, again.counts);
    let other = run(8, &scenario);
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn a_client_that_replays_pushes_under_new_numbers_is_caught_applying_facts_twice() {
    let scenario = Scenario {
        variant: Variant::ReplaysRenumbered,
        ..Scenario::default()
    };
    let reports = run_seeds(0..4, &scenario, threads());
    for report in &reports {
        assert!(report.counts.pushes_replayed_renumbered > 0, "{report}");
        assert!(
            report
                .violations
                .iter()
                .any(|violation| matches!(violation, Violation::FactDuplicated { .. })),
            "the checker missed the duplicates:\n{report}"
        );
    }
}

#[test]
fn a_failing_seed_names_the_command_that_replays_it() {
    let broken = Scenario {
        technicians: 2,
        variant: Variant::ReplaysRenumbered,
        ..Scenario::default()
    };
    assert_eq!(
        replay_command(42, &broken),
        "cargo run --release -p simulation -- --seed 42 --technicians 2 \
         --variant replays-renumbered --trace"
    );
    assert_eq!(
        replay_command(42, &Scenario::default()),
        "cargo run --release -p simulation -- --seed 42 --trace"
    );
}
