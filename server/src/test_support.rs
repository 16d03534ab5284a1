//! Fixtures shared by the server's unit tests.

use chrono::{DateTime, TimeZone, Utc};
use sync_protocol::{Area, Category, EstateId, Intake, Reporter, Role, Source, TicketKind, UserId};

use crate::store::{Changes, Store, UserRecord};

/// A time on the test day, 27 November 2026, in UTC.
pub fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, hour, minute, 0).unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// li, a technician of E01, at `generation` of his record, with no password.
pub fn technician_li(generation: u64) -> UserRecord {
    UserRecord {
        id: user("li"),
        role: Role::Technician,
        estate: EstateId::parse("E01").unwrap(),
        display_name: "李师傅".into(),
        password_hash: String::new(),
        disabled: false,
        generation,
    }
}

/// An in-memory store with E01's technicians li and zhang, whom dispatch
/// and reassignment can name.
pub fn store_with_crew() -> Store {
    let store = Store::in_memory();
    let mut changes = Changes::default();
    changes.put_user(&technician_li(0));
    changes.put_user(&UserRecord {
        id: user("zhang"),
        display_name: "张师傅".into(),
        ..technician_li(0)
    });
    store.apply(changes).unwrap();
    store
}

/// A complete walk-in report of a leak in estate E01 (R-I2).
pub fn intake() -> Intake {
    Intake {
        estate: EstateId::parse("E01").unwrap(),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::WalkIn,
        reporter: Reporter {
            name: "王女士".into(),
            phone: None,
        },
        location: "3-1-502".into(),
        description: "漏水 leak".into(),
        received_at: at(8, 55),
        follow_up_of: None,
        booking: None,
    }
}
