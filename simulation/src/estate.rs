//! The simulated estate: like the demo estate E01, a customer-service agent
//! who takes reports, the engineering dispatcher, and technicians with one
//! handheld each; a morning's work orders, dispatched before the run.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params};
use chrono::{DateTime, Utc};
use server::store::{Store, StoreError, UserRecord};
use server::writer::{Command, Reply, WriteError, Writer};
use sync_protocol::{
    Area, Category, DeviceId, EstateId, Intake, OfficeActionRequest, OfficeOp, Reporter, Role,
    Source, TicketKind, UserId,
};

use crate::scenario::Scenario;

pub const ESTATE: &str = "E01";
/// The customer-service agent (客服), who records new reports.
pub const AGENT: &str = "kefu";
/// The engineering dispatcher (工程调度).
pub const DISPATCHER: &str = "diaodu";
pub const PASSWORD: &str = "simulated-password";

pub fn estate() -> EstateId {
    EstateId::parse(ESTATE).expect("a valid estate id")
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).expect("the simulation's user names are valid")
}

/// The login of technician `index`.
pub fn technician(index: usize) -> UserId {
    user(&format!("tech{index}"))
}

/// The handheld of technician `index`.
pub fn device_id(index: usize) -> DeviceId {
    DeviceId::parse(&format!("hh-tech{index}")).expect("a valid device id")
}

/// A report of a leak, numbered so that the office can find its ticket again.
pub fn report(number: u64, received_at: DateTime<Utc>) -> Intake {
    Intake {
        estate: estate(),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::WalkIn,
        reporter: Reporter {
            name: format!("业主 owner {number}"),
            phone: None,
        },
        location: format!("{}-1-{:03}", number % 7 + 1, number % 500 + 101),
        description: report_description(number),
        received_at,
        follow_up_of: None,
        booking: None,
    }
}

pub fn report_description(number: u64) -> String {
    format!("漏水 leak, report {number}")
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("password hashing: {0}")]
    Hashing(String),
    #[error("the writer answered an intake without its ticket")]
    UnexpectedReply,
}

/// Seed the estate on the server's first start; a store that has its
/// users already (a restart) is left alone.
pub async fn seed(
    store: &Store,
    writer: &Writer,
    scenario: &Scenario,
    now: DateTime<Utc>,
) -> Result<(), SeedError> {
    if store.user(&user(DISPATCHER))?.is_some() {
        return Ok(());
    }
    let password_hash = password_hash()?;
    let mut people = vec![
        (user(AGENT), Role::CustomerServiceAgent),
        (user(DISPATCHER), Role::Dispatcher),
    ];
    people.extend((0..scenario.technicians).map(|index| (technician(index), Role::Technician)));
    for (id, role) in people {
        let user = UserRecord {
            display_name: id.to_string(),
            id,
            role,
            estate: estate(),
            password_hash: password_hash.clone(),
            disabled: false,
            generation: 0,
        };
        writer.submit(Command::PutUser { user }).await?;
    }
    for number in 0..scenario.initial_tickets {
        let intake = Command::CreateTicket {
            by: user(AGENT),
            intake: report(number as u64, now),
            named: None,
        };
        let Reply::Ticket(ticket) = writer.submit(intake).await? else {
            return Err(SeedError::UnexpectedReply);
        };
        let dispatch = Command::Office {
            by: user(DISPATCHER),
            ticket_id: ticket.id,
            request: OfficeActionRequest {
                expected_version: None,
                op: OfficeOp::Dispatch {
                    technician: technician(number % scenario.technicians),
                },
            },
            named: None,
        };
        writer.submit(dispatch).await?;
    }
    Ok(())
}

/// An argon2id hash of [`PASSWORD`] with the smallest parameters argon2
/// allows and a fixed salt: the server checks it as any other (the
/// parameters travel in the hash), in microseconds instead of tens of
/// milliseconds, and every run stores the same bytes.
fn password_hash() -> Result<String, SeedError> {
    let params = Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None)
        .map_err(|error| SeedError::Hashing(error.to_string()))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"simulated-salt")
        .map_err(|error| SeedError::Hashing(error.to_string()))?;
    argon2
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| SeedError::Hashing(error.to_string()))
}
