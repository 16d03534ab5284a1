//! `loadgen writer-stall`: how long one ticket can hold the single writer
//! (docs/BENCHMARKS.md, "Writer stall").
//!
//! In one process, over a sled store in a temporary directory: a work order
//! is dispatched to a technician and filled to its bounds
//! (`sync_protocol::capacity`) with the changes that make it largest: the
//! longest notes the content's text allows, arrivals up to the content
//! bound, then reassignments with the longest reasons up to the bound of
//! every change. Then, one command at a time (so each is a commit group of
//! its own), the commands a client can send about that ticket are timed
//! from submission to answer: a push of one note (refused `ticket_full`), a
//! push of 500 notes (all refused), an office note (refused), a
//! reassignment (taken: the whole ticket is read and written), and a pull
//! contact with no ticket at all, whose time is the flush's. The stall is a
//! command's time beyond that flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use serde::Serialize;
use server::clock::{Clock, SystemClock};
use server::store::{Changes, Store};
use server::writer::{Command, Reply, Writer};
use sync_protocol::capacity::{MAX_CHANGES, MAX_CONTENT_CHANGES, MAX_CONTENT_TEXT_BYTES};
use sync_protocol::{
    DeviceId, DeviceMutation, DeviceOp, DeviceReport, DeviceSeq, MAX_MUTATIONS_PER_PUSH,
    OfficeActionRequest, OfficeOp, Role, Ticket, UserId, Version,
};

use crate::latency::Percentiles;
use crate::report::Machine;

/// The issue's goal for the longest stall one ticket may cause.
const TARGET_STALL_MS: f64 = 10.0;
/// The longest note (`MAX_TEXT_CHARS` ASCII characters).
const NOTE_BYTES: usize = 4000;
/// Reasons long enough that the text and the change bounds are reached
/// together: (96 - 64) KiB over the 300 changes between the two bounds.
const REASON_BYTES: usize = 100;

#[derive(Args, Debug)]
pub struct WriterStallArgs {
    /// Timed repetitions of each command.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Write the measurements as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Timed {
    command: &'static str,
    latency: Percentiles,
    /// What the command costs without the full ticket: a flush alone, or
    /// the same push on no ticket.
    baseline: Percentiles,
    /// The ticket's share: the command's time beyond its baseline.
    stall_p50_ms: f64,
    stall_p90_ms: f64,
}

#[derive(Debug, Serialize)]
struct WriterStallReport {
    machine: Machine,
    ticket_json_bytes: usize,
    ticket_changes: usize,
    ticket_text_bytes: usize,
    flush: Percentiles,
    /// A push of 500 notes on a ticket that does not exist.
    nowhere: Percentiles,
    commands: Vec<Timed>,
    target_stall_ms: f64,
    target_met: bool,
}

struct Bench {
    writer: Writer,
    store: Store,
    technician: UserId,
    dispatcher: UserId,
    device: DeviceId,
    next_seq: u64,
}

pub fn run(args: &WriterStallArgs) -> Result<bool, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(measure(args))
}

async fn measure(args: &WriterStallArgs) -> Result<bool, String> {
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Store::open(data.path()).map_err(|e| e.to_string())?;
    let technicians = ["li", "zhang"].map(|id| UserId::parse(id).expect("a valid id"));
    let mut users = Changes::default();
    for technician in &technicians {
        users.put_user(&crate::seed::user_record(
            technician.clone(),
            Role::Technician,
            technician.to_string(),
        ));
    }
    store.apply(users).map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (writer, thread) = Writer::start(store.clone(), clock, 64).map_err(|e| e.to_string())?;
    let mut bench = Bench {
        writer,
        store: store.clone(),
        technician: technicians[0].clone(),
        dispatcher: UserId::parse("diaodu").expect("a valid id"),
        device: DeviceId::parse("hh-li-stall").expect("a valid id"),
        next_seq: 0,
    };

    eprintln!("filling a ticket to its bounds …");
    let ticket = bench.fill(&technicians).await?;
    let ticket_json_bytes = serde_json::to_vec(&ticket)
        .map_err(|e| e.to_string())?
        .len();
    let ticket_text_bytes = sync_protocol::capacity::text_bytes(&ticket);
    eprintln!(
        "the ticket: {} history entries, {} bytes of text, {} bytes of JSON; timing {} runs …",
        ticket.history.len(),
        ticket_text_bytes,
        ticket_json_bytes,
        args.runs
    );

    let flush = Percentiles::of(&bench.time(args.runs, Measured::Flush, &ticket).await?);
    // A push of 500 notes of 4000 characters costs what it costs (2 MB to
    // digest and 500 answers to store) whatever ticket it names: its share
    // due to the full ticket is measured against the same push on none.
    let nowhere = Percentiles::of(
        &bench
            .time(
                args.runs,
                Measured::NotesNowhere(MAX_MUTATIONS_PER_PUSH),
                &ticket,
            )
            .await?,
    );
    let mut commands = Vec::new();
    for (measured, runs, baseline, name) in [
        (
            Measured::Notes(1),
            args.runs,
            &flush,
            "push of 1 note (ticket_full)",
        ),
        (
            Measured::Notes(MAX_MUTATIONS_PER_PUSH),
            args.runs,
            &nowhere,
            "push of 500 notes (all ticket_full), beyond the same push on no ticket",
        ),
        (
            Measured::OfficeNote,
            args.runs,
            &flush,
            "office note (ticket_full)",
        ),
        (
            Measured::Reassignment,
            args.runs.min(10),
            &flush,
            "reassignment (applied: the ticket read and written whole)",
        ),
    ] {
        let samples = bench.time(runs, measured, &ticket).await?;
        commands.push(timed(name, &samples, baseline));
    }

    drop(bench);
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the writer thread panicked".to_owned())?;

    let worst = commands
        .iter()
        .map(|command| command.stall_p90_ms)
        .fold(0.0, f64::max);
    let report = WriterStallReport {
        machine: crate::machine(),
        ticket_json_bytes,
        ticket_changes: ticket.history.len(),
        ticket_text_bytes,
        flush,
        nowhere,
        commands,
        target_stall_ms: TARGET_STALL_MS,
        target_met: worst <= TARGET_STALL_MS,
    };
    print_summary(&report);
    crate::report::write_json(args.json.as_ref(), &report)?;
    Ok(true)
}

fn timed(command: &'static str, samples: &[Duration], baseline: &Percentiles) -> Timed {
    let latency = Percentiles::of(samples);
    Timed {
        command,
        latency,
        baseline: *baseline,
        stall_p50_ms: (latency.p50_ms - baseline.p50_ms).max(0.0),
        stall_p90_ms: (latency.p90_ms - baseline.p90_ms).max(0.0),
    }
}

/// What is timed.
#[derive(Clone, Copy)]
enum Measured {
    /// A pull contact, which touches no ticket: a commit and its flush.
    Flush,
    /// A push of this many notes on the full ticket.
    Notes(usize),
    /// The same on a ticket that does not exist: the push's own cost.
    NotesNowhere(usize),
    OfficeNote,
    Reassignment,
}

impl Bench {
    /// Time `runs` submissions of `measured`, one at a time.
    async fn time(
        &mut self,
        runs: usize,
        measured: Measured,
        ticket: &Ticket,
    ) -> Result<Vec<Duration>, String> {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let sample = match measured {
                Measured::Flush => self.pull_contact().await?,
                Measured::Notes(count) => self.push_notes(ticket, count).await?,
                Measured::NotesNowhere(count) => {
                    let mut nowhere = ticket.clone();
                    nowhere.id = sync_protocol::TicketId::parse("tk99999999").expect("a valid id");
                    self.push_notes(&nowhere, count).await?
                }
                Measured::OfficeNote => self.office_note(ticket).await?,
                Measured::Reassignment => self.reassign_back_and_forth(ticket).await?,
            };
            samples.push(sample);
        }
        Ok(samples)
    }

    async fn submit(&self, command: Command) -> Result<(Reply, Duration), String> {
        let started = Instant::now();
        let reply = self
            .writer
            .submit(command)
            .await
            .map_err(|e| e.to_string())?;
        Ok((reply, started.elapsed()))
    }

    fn report(&self) -> DeviceReport {
        DeviceReport {
            device_id: self.device.clone(),
            app_version: "loadgen".to_owned(),
            outbox_depth: 0,
            oldest_pending_age_ms: None,
            device_time: Utc::now(),
        }
    }

    fn mutations(&mut self, ticket: &Ticket, ops: Vec<DeviceOp>) -> Vec<DeviceMutation> {
        ops.into_iter()
            .map(|op| {
                self.next_seq += 1;
                DeviceMutation {
                    seq: DeviceSeq(self.next_seq),
                    ticket_id: ticket.id.clone(),
                    base_version: Version(1),
                    recorded_at: Utc::now(),
                    op,
                }
            })
            .collect()
    }

    async fn push(&mut self, ticket: &Ticket, ops: Vec<DeviceOp>) -> Result<Duration, String> {
        let mutations = self.mutations(ticket, ops);
        let command = Command::Push {
            user: self.technician.clone(),
            estate: ticket.estate.clone(),
            report: self.report(),
            mutations,
        };
        Ok(self.submit(command).await?.1)
    }

    async fn push_notes(&mut self, ticket: &Ticket, count: usize) -> Result<Duration, String> {
        let ops = (0..count).map(|_| note(NOTE_BYTES)).collect();
        self.push(ticket, ops).await
    }

    async fn pull_contact(&mut self) -> Result<Duration, String> {
        let command = Command::Pulled {
            user: self.technician.clone(),
            estate: crate::seed::estate(),
            report: self.report(),
        };
        Ok(self.submit(command).await?.1)
    }

    async fn office(&self, ticket: &Ticket, op: OfficeOp) -> Result<(Reply, Duration), String> {
        let command = Command::Office {
            by: self.dispatcher.clone(),
            ticket_id: ticket.id.clone(),
            request: OfficeActionRequest {
                expected_version: None,
                op,
            },
            named: None,
        };
        let started = Instant::now();
        let reply = self.writer.submit(command).await;
        let elapsed = started.elapsed();
        match reply {
            Ok(reply) => Ok((reply, elapsed)),
            // A refusal (ticket_full) is an answer too: it is what is timed.
            Err(server::writer::WriteError::Workflow(_)) => Ok((Reply::Done, elapsed)),
            Err(error) => Err(error.to_string()),
        }
    }

    async fn office_note(&mut self, ticket: &Ticket) -> Result<Duration, String> {
        let op = OfficeOp::AddNote {
            text: "x".repeat(NOTE_BYTES),
        };
        Ok(self.office(ticket, op).await?.1)
    }

    /// Two reassignments (to the other technician and back), timed together
    /// and halved: each is accepted while the ticket is below its bound of
    /// every change.
    async fn reassign_back_and_forth(&mut self, ticket: &Ticket) -> Result<Duration, String> {
        let [there, back] = [reassign("zhang"), reassign("li")];
        let (_, first) = self.office(ticket, there).await?;
        let (_, second) = self.office(ticket, back).await?;
        Ok((first + second) / 2)
    }

    /// Create and dispatch a work order, then fill it: the longest notes up
    /// to the content's text bound, arrivals up to its change bound, and
    /// reassignments with the longest reasons up to (nearly) the bound of
    /// every change, leaving room for the timed reassignments.
    async fn fill(&mut self, technicians: &[UserId]) -> Result<Ticket, String> {
        let command = Command::CreateTicket {
            by: self.dispatcher.clone(),
            intake: crate::seed::repair_report(1, Utc::now()),
            named: None,
        };
        let Reply::Ticket(ticket) = self
            .writer
            .submit(command)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Err("an intake answered no ticket".to_owned());
        };
        let dispatch = OfficeOp::Dispatch {
            technician: technicians[0].clone(),
        };
        self.office(&ticket, dispatch).await?;
        let notes = MAX_CONTENT_TEXT_BYTES / NOTE_BYTES;
        for chunk in (0..notes)
            .collect::<Vec<_>>()
            .chunks(MAX_MUTATIONS_PER_PUSH)
        {
            let ops = chunk.iter().map(|_| note(NOTE_BYTES)).collect();
            self.push(&ticket, ops).await?;
        }
        loop {
            let ops = (0..MAX_MUTATIONS_PER_PUSH)
                .map(|_| DeviceOp::RecordArrival { position: None })
                .collect();
            self.push(&ticket, ops).await?;
            if self.current(&ticket).await?.history.len() >= MAX_CONTENT_CHANGES {
                break;
            }
        }
        // Room for the timed reassignments (two per run) is left over.
        let mut holder = 0;
        loop {
            let changes = self.current(&ticket).await?.history.len();
            if changes + 40 >= MAX_CHANGES {
                break;
            }
            holder = 1 - holder;
            let op = reassign(technicians[holder].as_str());
            self.office(&ticket, op).await?;
            if self.current(&ticket).await?.history.len() == changes {
                return Err("a reassignment was refused before the bound".to_owned());
            }
        }
        if holder == 1 {
            self.office(&ticket, reassign(technicians[0].as_str()))
                .await?;
        }
        self.current(&ticket).await
    }

    /// The ticket as the last commit left it (each submit waits for its flush).
    async fn current(&self, ticket: &Ticket) -> Result<Ticket, String> {
        self.store
            .ticket(&ticket.id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the ticket is gone".to_owned())
    }
}

fn note(bytes: usize) -> DeviceOp {
    DeviceOp::AddNote {
        text: "n".repeat(bytes),
    }
}

fn reassign(to: &str) -> OfficeOp {
    OfficeOp::Reassign {
        technician: UserId::parse(to).expect("a valid id"),
        reason: "r".repeat(REASON_BYTES),
    }
}

fn print_summary(report: &WriterStallReport) {
    println!("machine: {}", report.machine);
    println!(
        "the full ticket: {} changes, {} bytes of text, {} bytes of JSON",
        report.ticket_changes, report.ticket_text_bytes, report.ticket_json_bytes
    );
    println!("a flush alone (pull contact): {}", report.flush);
    println!(
        "push of 500 notes on no ticket (its own cost): {}",
        report.nowhere
    );
    for command in &report.commands {
        println!(
            "{}: {}; the ticket's share: median {:.2} ms, p90 {:.2} ms",
            command.command, command.latency, command.stall_p50_ms, command.stall_p90_ms
        );
    }
    println!(
        "the ticket's share of any one command, p90, target ≤ {:.0} ms: {}",
        report.target_stall_ms,
        if report.target_met { "met" } else { "MISSED" }
    );
}
