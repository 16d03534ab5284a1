//! Test data for the unit tests: the golden intake of `sync-protocol`
//! received and dispatched by the core's own functions, as the server does.

use chrono::{DateTime, Duration, Utc};
use sync_protocol::{
    DeviceId, DeviceMutation, DeviceOp, DeviceSeq, Intake, OfficeOp, Ticket, TicketId, UserId,
    WorkingCalendar, apply_office_op, create_ticket,
};

const GOLDEN_INTAKE: &str = include_str!("../../sync-protocol/tests/golden/intake.json");

pub fn technician() -> UserId {
    UserId::parse("li").unwrap()
}

pub fn device() -> DeviceId {
    DeviceId::parse("hh-li-1").unwrap()
}

/// Ten minutes after the golden report was received.
pub fn morning() -> DateTime<Utc> {
    let intake: Intake = serde_json::from_str(GOLDEN_INTAKE).unwrap();
    intake.received_at + Duration::minutes(10)
}

/// The golden work order, received and dispatched to [`technician`].
pub fn dispatched_ticket(id: &str) -> Ticket {
    let calendar = WorkingCalendar::asia_shanghai();
    let intake: Intake = serde_json::from_str(GOLDEN_INTAKE).unwrap();
    let agent = UserId::parse("kefu").unwrap();
    let received = create_ticket(
        TicketId::parse(id).unwrap(),
        intake,
        agent,
        &calendar,
        morning(),
    )
    .unwrap();
    let dispatch = OfficeOp::Dispatch {
        technician: technician(),
    };
    let dispatcher = UserId::parse("diaodu").unwrap();
    apply_office_op(&received, &dispatch, &dispatcher, &calendar, morning()).unwrap()
}

/// A change recorded on `ticket` a few minutes into the morning.
pub fn mutation(seq: u64, ticket: &Ticket, op: DeviceOp) -> DeviceMutation {
    DeviceMutation {
        seq: DeviceSeq(seq),
        ticket_id: ticket.id.clone(),
        base_version: ticket.version,
        recorded_at: morning() + Duration::minutes(seq as i64),
        op,
    }
}
