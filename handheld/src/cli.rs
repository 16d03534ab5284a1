//! The command line over [`Handheld`]: one subcommand per action. Only
//! `login` and `sync` use the network; everything else reads and writes the
//! data directory alone.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local};
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use handheld::{
    FactState, Handheld, HandheldConfig, HandheldError, MaterialInput, OutcomeLine, OwnerRating,
    ResultInput, SavedChange, TicketSummary,
};

#[derive(Debug, Parser)]
#[command(
    name = "handheld",
    version,
    about = "The technician's handheld (手持终端): record on site with no signal, sync when there is one."
)]
struct Cli {
    /// Where this handheld keeps its tickets and outbox (one directory per technician).
    #[arg(long, env = "HANDHELD_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    /// The server, e.g. http://10.0.0.5:8080; remembered after a login.
    #[arg(long, env = "HANDHELD_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The device id of a new data directory (one is made up otherwise).
    #[arg(long, value_name = "ID")]
    device_id: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in; the password is read from standard input, or asked for on a terminal.
    Login {
        #[arg(long)]
        user: String,
    },
    /// The tickets on this handheld, with what waits to upload.
    List,
    /// One ticket with its facts (arrivals, notes, results, signatures).
    Show { ticket: String },
    /// Record the arrival on site (到场, R-P1/R-P2).
    Arrive { ticket: String },
    /// Record a processing note.
    Note { ticket: String, text: String },
    /// Record the result: what was done, materials, paid or free (R-P6).
    #[command(group(ArgGroup::new("charge").required(true).args(["free", "fee_fen"])))]
    Complete {
        ticket: String,
        /// What was done (处理结果).
        #[arg(long)]
        work: String,
        /// A material used, as NAME=QUANTITY; repeat for each.
        #[arg(long = "material", value_name = "NAME=QTY", value_parser = parse_material)]
        materials: Vec<MaterialInput>,
        /// A free job (无偿).
        #[arg(long)]
        free: bool,
        /// A paid job (有偿) and its fee in fen (0.01 CNY).
        #[arg(long, value_name = "FEN")]
        fee_fen: Option<u64>,
    },
    /// Record the owner's signature over the ticket's current result (R-P7).
    Sign {
        ticket: String,
        /// The signature image (at most 1 MiB).
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// The owner's name as signed.
        #[arg(long, value_name = "NAME")]
        signer: String,
        #[arg(long, value_enum)]
        rating: Option<RatingArg>,
    },
    /// Upload what was recorded and bring the tickets up to date.
    Sync,
    /// What waits to upload, since when, the last sync, answers to look at.
    Status,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
enum RatingArg {
    /// 满意
    Satisfied,
    /// 基本满意
    BasicallySatisfied,
    /// 不满意
    Dissatisfied,
}

impl From<RatingArg> for OwnerRating {
    fn from(rating: RatingArg) -> Self {
        match rating {
            RatingArg::Satisfied => OwnerRating::Satisfied,
            RatingArg::BasicallySatisfied => OwnerRating::BasicallySatisfied,
            RatingArg::Dissatisfied => OwnerRating::Dissatisfied,
        }
    }
}

fn parse_material(raw: &str) -> Result<MaterialInput, String> {
    match raw.rsplit_once('=') {
        Some((name, quantity)) if !name.trim().is_empty() && !quantity.trim().is_empty() => {
            Ok(MaterialInput {
                name: name.trim().to_owned(),
                quantity: quantity.trim().to_owned(),
            })
        }
        _ => Err(format!("expected NAME=QUANTITY, got {raw:?}")),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error [{}]: {error}", error.code());
            if matches!(
                error,
                HandheldError::SessionExpired | HandheldError::NotLoggedIn
            ) {
                eprintln!("log in with: handheld --data-dir DIR login --user NAME");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), HandheldError> {
    let mut config = HandheldConfig::new(cli.data_dir.to_string_lossy().into_owned());
    config.server_url = cli.server;
    config.device_id = cli.device_id;
    let handheld = Handheld::open(config)?;
    match cli.command {
        Command::Login { user } => {
            let password = read_password()?;
            let session = block_on(handheld.login(user, password))?;
            println!(
                "logged in as {} (estate {}) until {}; this handheld is {}",
                session.user,
                session.estate,
                local(session.expires_at),
                handheld.device_id()
            );
        }
        Command::List => {
            let tickets = handheld.list()?;
            if tickets.is_empty() {
                println!("no tickets on this handheld; sync to get them");
            }
            for ticket in &tickets {
                println!("{}", list_line(ticket));
            }
        }
        Command::Show { ticket } => show(&handheld, ticket)?,
        Command::Arrive { ticket } => saved(handheld.arrive(ticket)?),
        Command::Note { ticket, text } => saved(handheld.note(ticket, text)?),
        Command::Complete {
            ticket,
            work,
            materials,
            free,
            fee_fen,
        } => {
            let result = ResultInput {
                work_done: work,
                materials,
                fee_fen: if free { None } else { fee_fen },
            };
            saved(handheld.complete(ticket, result)?);
        }
        Command::Sign {
            ticket,
            image,
            signer,
            rating,
        } => {
            let bytes = std::fs::read(&image).map_err(|error| HandheldError::InvalidInput {
                field: "image".to_owned(),
                message: format!("cannot read {}: {error}", image.display()),
            })?;
            saved(handheld.sign(ticket, bytes, signer, rating.map(Into::into))?);
        }
        Command::Sync => {
            let report = block_on(handheld.sync())?;
            for outcome in &report.outcomes {
                println!("{}", outcome_line(outcome));
            }
            println!(
                "sync done: {} changes answered in {} pushes, {} images uploaded, {} tickets updated, {} taken away; {} still waiting",
                report.outcomes.len(),
                report.pushes,
                report.images_uploaded,
                report.tickets_updated,
                report.tickets_revoked,
                report.pending_changes
            );
            if report.renumbered > 0 {
                println!(
                    "{} changes were numbered again: the server's count differed",
                    report.renumbered
                );
            }
            if report.images_unavailable > 0 {
                println!(
                    "{} signature images the server asked for are no longer on this handheld",
                    report.images_unavailable
                );
            }
        }
        Command::Status => {
            let status = handheld.status()?;
            println!("handheld     {}", status.device_id);
            println!(
                "technician   {}{}",
                status.user.as_deref().unwrap_or("-"),
                if status.logged_in {
                    ""
                } else {
                    " (not logged in)"
                }
            );
            println!(
                "server       {}",
                status.server_url.as_deref().unwrap_or("-")
            );
            println!("tickets      {}", status.tickets);
            println!(
                "pending      {} changes waiting to upload",
                status.pending_changes
            );
            if let Some(age) = status.oldest_pending_age {
                println!("oldest       waiting for {}", duration(age));
            }
            println!(
                "last sync    {}",
                status.last_sync_at.map_or("never".to_owned(), local)
            );
            if !status.needs_attention.is_empty() {
                println!("needs attention (newest first):");
                for outcome in &status.needs_attention {
                    println!("  {}", outcome_line(outcome));
                }
            }
        }
    }
    Ok(())
}

/// `login` and `sync` run on a small runtime of their own; the other
/// commands never start one.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

fn read_password() -> Result<String, HandheldError> {
    let unreadable = |error: std::io::Error| HandheldError::InvalidInput {
        field: "password".to_owned(),
        message: format!("the password could not be read: {error}"),
    };
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("password 密码: ").map_err(unreadable)?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(unreadable)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err(HandheldError::InvalidInput {
            field: "password".to_owned(),
            message: "the password is empty".to_owned(),
        });
    }
    Ok(password)
}

fn show(handheld: &Handheld, ticket: String) -> Result<(), HandheldError> {
    let detail = handheld.show(ticket)?;
    let summary = &detail.summary;
    println!(
        "{}  {}",
        summary.ticket_id,
        summary.serial_number.as_deref().unwrap_or("")
    );
    println!("status       {}", status_label(&summary.status));
    if summary.status != detail.server_status {
        println!(
            "             (on the server: {}, until the pending changes upload)",
            status_label(&detail.server_status)
        );
    }
    if let Some(reason) = &summary.revoked {
        println!("taken away   {reason}: kept only until its pending changes upload");
    }
    println!("kind         {}", summary.kind);
    println!("location     {}", summary.location);
    println!("problem      {}", summary.description);
    let phone = detail
        .reporter_phone
        .as_deref()
        .map(|phone| format!(" {phone}"))
        .unwrap_or_default();
    println!("reporter     {}{phone}", detail.reporter_name);
    println!("received     {}", local(detail.received_at));
    if let Some(at) = detail.dispatched_at {
        println!("dispatched   {}", local(at));
    }
    if let Some(at) = summary.appointment_at {
        println!("appointment  {}", local(at));
    }
    println!(
        "technician   {}",
        detail.assigned_technician.as_deref().unwrap_or("-")
    );
    println!("version      {} on the server", detail.server_version);
    for fact in &detail.facts {
        let state = match fact.state {
            FactState::OnServer => "",
            FactState::Acknowledged => " [uploaded]",
            FactState::Pending => " [waiting to upload]",
        };
        let late = fact
            .late
            .as_deref()
            .map(|reason| format!(" [late: {reason}]"))
            .unwrap_or_default();
        println!(
            "  {} {:?} by {}: {}{state}{late}",
            local(fact.recorded_at),
            fact.change,
            fact.recorded_by,
            fact.summary
        );
    }
    for note in &detail.office_notes {
        println!("  office: {note}");
    }
    Ok(())
}

fn saved(change: SavedChange) {
    println!(
        "saved on this handheld as change #{} ({:?} on {}); {} waiting to upload",
        change.seq, change.change, change.ticket_id, change.pending_changes
    );
}

fn list_line(ticket: &TicketSummary) -> String {
    let mut line = format!(
        "{}  {:<22} {:<24} {}  {}",
        ticket.ticket_id,
        ticket.serial_number.as_deref().unwrap_or("-"),
        status_label(&ticket.status),
        ticket.location,
        ticket.description
    );
    if ticket.pending_changes > 0 {
        line.push_str(&format!("  [{} waiting to upload]", ticket.pending_changes));
    }
    if let Some(reason) = &ticket.revoked {
        line.push_str(&format!("  [taken away: {reason}]"));
    }
    line
}

fn outcome_line(outcome: &OutcomeLine) -> String {
    format!(
        "#{} {} {:?}: {}",
        outcome.seq, outcome.ticket_id, outcome.change, outcome.message
    )
}

/// A status with its Chinese name, as the technicians say it.
fn status_label(status: &str) -> String {
    let chinese = match status {
        "received" => "受理",
        "dispatched" => "已派工",
        "in_progress" => "处理中",
        "completed" => "已完成",
        "closed" => "已完结",
        "converted" => "已转协调单",
        "cancelled" => "已取消",
        _ => "",
    };
    format!("{chinese} {status}").trim().to_owned()
}

fn local(at: SystemTime) -> String {
    DateTime::<Local>::from(at)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn duration(age: Duration) -> String {
    let minutes = age.as_secs() / 60;
    match minutes {
        0 => format!("{} s", age.as_secs()),
        1..=119 => format!("{minutes} min"),
        _ => format!("{} h {} min", minutes / 60, minutes % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_material_is_a_name_and_a_quantity_split_at_the_last_equals_sign() {
        let material = parse_material("pipe joint DN20 = 1 =2").unwrap();
        assert_eq!(material.name, "pipe joint DN20 = 1");
        assert_eq!(material.quantity, "2");
        assert!(parse_material("tape").is_err());
        assert!(parse_material("=2").is_err());
        assert!(parse_material("tape=").is_err());
    }

    #[test]
    fn statuses_carry_the_names_the_technicians_say() {
        assert_eq!(status_label("in_progress"), "处理中 in_progress");
        assert_eq!(status_label("something_new"), "something_new");
    }

    #[test]
    fn waiting_times_read_in_seconds_minutes_or_hours() {
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(20 * 60)), "20 min");
        assert_eq!(
            duration(Duration::from_secs(3 * 3600 + 5 * 60)),
            "3 h 5 min"
        );
    }

    #[test]
    fn the_command_line_needs_free_or_a_fee_but_not_both() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["handheld", "--data-dir", "/tmp/x"].iter().chain(args))
        };
        assert!(parse(&["complete", "tk1", "--work", "done", "--free"]).is_ok());
        assert!(parse(&["complete", "tk1", "--work", "done", "--fee-fen", "3500"]).is_ok());
        assert!(parse(&["complete", "tk1", "--work", "done"]).is_err());
        assert!(
            parse(&[
                "complete",
                "tk1",
                "--work",
                "done",
                "--free",
                "--fee-fen",
                "1"
            ])
            .is_err()
        );
    }
}
