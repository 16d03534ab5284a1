//! Golden tests: the JSON wire form of the API bodies, frozen in
//! `tests/golden/*.json`. A diff here is a protocol change: clients in the
//! field speak the old form until they are updated.
//!
//! To regenerate deliberately: `UPDATE_GOLDEN=1 cargo test -p sync-protocol --test golden`,
//! then review the diff of `tests/golden/` like any other change.

use std::fmt::Debug;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sync_protocol::{
    AgreedTime, Applied, Area, BookingRequest, Category, Change, Charge, CompletionRecord, Cursor,
    DeviceId, DeviceMutation, DeviceOp, DeviceReport, DeviceSeq, ErrorBody, EstateId, Intake,
    LateReason, Lateness, LoginRequest, LoginResponse, MutationOutcome, OfficeActionRequest,
    OfficeOp, Outcome, PROTOCOL_VERSION, PullRequest, PullResponse, PushRequest, PushResponse,
    Rating, Recorder, RefreshRequest, RejectCode, Rejection, Reporter, RevokeReason, Role,
    Sha256Hex, Source, Ticket, TicketId, TicketKind, TicketVersion, TrackingKind, UserChange,
    UserId, UserSummary, Verdict, Version, WorkingCalendar, apply_office_op, convert_work_order,
    create_ticket, link_follow_up_report, merge,
};

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, hour, minute, 0).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn device(name: &str) -> DeviceId {
    DeviceId::parse(name).unwrap()
}

fn ticket_id(raw: &str) -> TicketId {
    TicketId::parse(raw).unwrap()
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"))
}

/// Test vectors other implementations check themselves against (not wire
/// messages, so not in the OpenAPI document).
fn vectors_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{name}.json"))
}

/// Compare `value`'s JSON with the frozen file, and the file read back with
/// `value`; with `UPDATE_GOLDEN=1`, rewrite the file instead.
fn check_golden<T>(name: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    check_frozen(name, golden_path(name), value);
}

fn check_frozen<T>(name: &str, path: PathBuf, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let actual = serde_json::to_value(value).unwrap();
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        // Write beside, then rename: tests run in parallel and must never
        // see a half-written file.
        let pretty = serde_json::to_string_pretty(&actual).unwrap();
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, pretty + "\n").unwrap();
        std::fs::rename(&partial, &path).unwrap();
    }
    let frozen_text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read {}: {error}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    let frozen: Value = serde_json::from_str(&frozen_text).unwrap();
    assert_eq!(
        actual,
        frozen,
        "the wire form of {name} changed; if that is deliberate, rerun with UPDATE_GOLDEN=1 \
         and review the diff of {}",
        path.display()
    );
    let read_back: T = serde_json::from_str(&frozen_text)
        .unwrap_or_else(|error| panic!("{} does not deserialize: {error}", path.display()));
    assert_eq!(&read_back, value, "{name} does not round-trip");
}

fn device_report() -> DeviceReport {
    DeviceReport {
        device_id: device("hh-zhang"),
        app_version: "1.4.2".into(),
        outbox_depth: 4,
        oldest_pending_age_ms: Some(5_400_000),
        device_time: at(11, 2),
    }
}

fn paid_result() -> CompletionRecord {
    CompletionRecord {
        work_done: "更换厨房水管接头 replaced the kitchen pipe joint".into(),
        materials: vec![sync_protocol::Material {
            name: "pipe joint DN20 水管接头".into(),
            quantity: "1".into(),
        }],
        charge: Charge::Paid { fee_fen: 3500 },
    }
}

fn signature_blob() -> Sha256Hex {
    Sha256Hex::of(b"signature image of Ms Wang")
}

/// One mutation of every kind, as zhang's handheld recorded them.
fn device_mutations() -> Vec<DeviceMutation> {
    let ops = [
        (at(10, 40), DeviceOp::RecordArrival { position: None }),
        (
            at(10, 45),
            DeviceOp::AddNote {
                text: "阀门锈死 the valve was seized".into(),
            },
        ),
        (
            at(11, 20),
            DeviceOp::Complete {
                result: paid_result(),
            },
        ),
        (
            at(11, 25),
            DeviceOp::AttachSignature {
                blob: signature_blob(),
                signed_record: paid_result().record_hash(),
                signer_name: "王女士".into(),
                rating: None,
                strokes: None,
            },
        ),
    ];
    (1..)
        .zip(ops)
        .map(|(seq, (recorded_at, op))| DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: ticket_id("t-1"),
            base_version: Version(3),
            recorded_at,
            op,
        })
        .collect()
}

fn intake() -> Intake {
    Intake {
        estate: EstateId::parse("E01").unwrap(),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::Phone,
        reporter: Reporter {
            name: "王女士".into(),
            phone: Some("138 0000 1234".into()),
        },
        location: "3-1-502".into(),
        description: "厨房水管漏水 kitchen pipe leaking".into(),
        received_at: at(9, 0),
        follow_up_of: None,
        booking: None,
    }
}

/// A ticket with a bit of everything: dispatched to li, who arrived; moved to
/// zhang with an appointment and an office note; li's note synced late; zhang's
/// arrival, note, result and the owner's signature.
fn full_ticket() -> Ticket {
    let office = |ticket: &Ticket, op: OfficeOp, by: &str, now| {
        apply_office_op(ticket, &op, &user(by), &WorkingCalendar::default(), now).unwrap()
    };
    let field = |ticket: &Ticket, by: &str, mutation: &DeviceMutation, now| {
        let recorder = Recorder {
            user: user(by),
            device: device(&format!("hh-{by}")),
            clock_offset_ms: 1_500,
        };
        merge(ticket, &recorder, mutation, now)
            .ticket
            .expect("the golden ticket's facts all apply")
    };
    let mut ticket = create_ticket(
        ticket_id("t-1"),
        intake(),
        user("agent"),
        &WorkingCalendar::default(),
        at(9, 0),
    )
    .unwrap();
    ticket.serial_number = Some(sync_protocol::SerialNumber::parse("E01-WO-202611-00042").unwrap());
    let ticket = office(
        &ticket,
        OfficeOp::Dispatch {
            technician: user("li"),
        },
        "dispatcher",
        at(9, 1),
    );
    let li_arrival = DeviceMutation {
        seq: DeviceSeq(7),
        ticket_id: ticket_id("t-1"),
        base_version: Version(2),
        recorded_at: at(9, 14),
        op: DeviceOp::RecordArrival { position: None },
    };
    let ticket = field(&ticket, "li", &li_arrival, at(9, 15));
    let ticket = office(
        &ticket,
        OfficeOp::Reassign {
            technician: user("zhang"),
            reason: "li was called to a burst main 李师傅被调去抢修".into(),
        },
        "dispatcher",
        at(10, 0),
    );
    let ticket = office(
        &ticket,
        OfficeOp::SetAppointment {
            at: at(10, 30),
            note: "owner home after 10:30 业主10:30后在家".into(),
        },
        "agent",
        at(10, 5),
    );
    let ticket = office(
        &ticket,
        OfficeOp::AddNote {
            text: "owner asked for a receipt 业主需要收据".into(),
        },
        "agent",
        at(10, 6),
    );
    let li_note = DeviceMutation {
        seq: DeviceSeq(8),
        ticket_id: ticket_id("t-1"),
        base_version: Version(3),
        recorded_at: at(9, 50),
        op: DeviceOp::AddNote {
            text: "need a DN20 joint from the store 需领DN20接头".into(),
        },
    };
    let mut ticket = field(&ticket, "li", &li_note, at(10, 20));
    for mutation in device_mutations() {
        ticket = field(&ticket, "zhang", &mutation, at(11, 30));
    }
    ticket
}

#[test]
fn a_push_request_with_every_kind_of_device_op_is_frozen() {
    check_golden("push_request", &push_request());
}

/// What the web app sends: an arrival with the phone's position, a photo,
/// and a signature with its pen strokes.
#[test]
fn a_push_request_from_the_web_app_with_a_position_a_photo_and_strokes_is_frozen() {
    let mutation = |seq, minute, op| DeviceMutation {
        seq: DeviceSeq(seq),
        ticket_id: ticket_id("t-1"),
        base_version: Version(3),
        recorded_at: at(10, minute),
        op,
    };
    let request = PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device: DeviceReport {
            device_id: device("app-5f0c2a9e41d7b386"),
            app_version: "web-1".into(),
            ..device_report()
        },
        mutations: vec![
            mutation(
                1,
                5,
                DeviceOp::RecordArrival {
                    position: Some(sync_protocol::Position {
                        latitude_e6: 31_230_416,
                        longitude_e6: 121_473_701,
                        accuracy_m: 12,
                    }),
                },
            ),
            mutation(
                2,
                7,
                DeviceOp::AttachPhoto {
                    blob: Sha256Hex::of(b"a photo of the seized valve"),
                    stage: sync_protocol::PhotoStage::Before,
                },
            ),
            mutation(
                3,
                40,
                DeviceOp::Complete {
                    result: paid_result(),
                },
            ),
            mutation(
                4,
                42,
                DeviceOp::AttachSignature {
                    blob: signature_blob(),
                    signed_record: paid_result().record_hash(),
                    signer_name: "王女士".into(),
                    rating: Some(Rating::Satisfied),
                    strokes: Some(Sha256Hex::of(
                        b"{\"width\":358,\"height\":224,\"strokes\":[]}",
                    )),
                },
            ),
        ],
    };
    check_golden("push_request_from_the_app", &request);
}

#[test]
fn a_push_response_with_applied_late_duplicate_and_rejected_outcomes_is_frozen() {
    let outcome = |seq, ticket: &str, outcome| MutationOutcome {
        seq: DeviceSeq(seq),
        ticket_id: ticket_id(ticket),
        outcome,
    };
    let response = PushResponse {
        protocol_version: PROTOCOL_VERSION,
        server_time: at(11, 30),
        outcomes: vec![
            outcome(
                3,
                "t-404",
                Outcome::Duplicate {
                    first: Verdict::Rejected(Rejection {
                        code: RejectCode::TicketNotFound,
                        reason: "no such ticket (工单不存在)".into(),
                    }),
                },
            ),
            outcome(
                4,
                "t-1",
                Outcome::Duplicate {
                    first: Verdict::Applied(Applied {
                        ticket_version: Version(9),
                        late: None,
                    }),
                },
            ),
            outcome(
                5,
                "t-1",
                Outcome::Applied(Applied {
                    ticket_version: Version(10),
                    late: None,
                }),
            ),
            outcome(
                6,
                "t-2",
                Outcome::Applied(Applied {
                    ticket_version: Version(6),
                    late: Some(Lateness {
                        reason: LateReason::ReassignedAway,
                        assigned_now: Some(user("li")),
                    }),
                }),
            ),
            outcome(
                7,
                "t-3",
                Outcome::Rejected(Rejection {
                    code: RejectCode::SignedRecordUnknown,
                    reason: "the signature refers to a completion record this ticket does not have (签字对应的完工记录不存在)".into(),
                }),
            ),
        ],
        ticket_versions: vec![
            TicketVersion {
                ticket_id: ticket_id("t-1"),
                version: Version(10),
            },
            TicketVersion {
                ticket_id: ticket_id("t-2"),
                version: Version(6),
            },
            TicketVersion {
                ticket_id: ticket_id("t-3"),
                version: Version(4),
            },
        ],
        last_seq: DeviceSeq(7),
        missing_blobs: vec![signature_blob()],
    };
    check_golden("push_response", &response);
}

#[test]
fn a_pull_request_is_frozen() {
    let request = PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: device_report(),
        cursor: Cursor(17),
        limit: Some(100),
    };
    check_golden("pull_request", &request);
}

#[test]
fn a_pull_response_with_a_full_ticket_and_a_revocation_is_frozen() {
    let response = PullResponse {
        protocol_version: PROTOCOL_VERSION,
        server_time: at(11, 31),
        changes: vec![
            Change::Upsert {
                cursor: Cursor(18),
                ticket: Box::new(full_ticket()),
            },
            Change::Revoked {
                cursor: Cursor(19),
                ticket_id: ticket_id("t-2"),
                reason: RevokeReason::Reassigned,
            },
            Change::Revoked {
                cursor: Cursor(20),
                ticket_id: ticket_id("t-3"),
                reason: RevokeReason::Cancelled,
            },
        ],
        next_cursor: Cursor(20),
        has_more: false,
        last_seq: DeviceSeq(4),
    };
    check_golden("pull_response", &response);
}

#[test]
fn the_error_body_is_frozen() {
    let body = ErrorBody {
        code: "sequence_gap".into(),
        message: "sequence gap: the server expects 4 next".into(),
        details: Some(json!({ "expected_seq": 4 })),
    };
    check_golden("error_body", &body);
}

#[test]
fn the_login_response_is_frozen() {
    let response = LoginResponse {
        token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ6aGFuZyJ9.c2lnbmF0dXJl".into(),
        token_type: "Bearer".into(),
        expires_at: at(21, 0),
        refresh_token: format!("rt1.{}.{}", "0f".repeat(16), "a7".repeat(32)),
        refresh_expires_at: at(21, 0) + chrono::Duration::days(30),
        user: user("zhang"),
        display_name: "维修 张师傅 Zhang".into(),
        role: Role::Technician,
        estate: EstateId::parse("E01").unwrap(),
        time_zone: "Asia/Shanghai".into(),
    };
    check_golden("login_response", &response);
}

#[test]
fn a_login_and_a_refresh_bound_to_a_device_are_frozen() {
    let login = LoginRequest {
        username: "zhang".into(),
        password: "demo-password".into(),
        device_id: Some(DeviceId::parse("hh-zhang-1").unwrap()),
    };
    check_golden("login_request", &login);
    let refresh = RefreshRequest {
        refresh_token: format!("rt1.{}.{}", "0f".repeat(16), "a7".repeat(32)),
        device_id: Some(DeviceId::parse("hh-zhang-1").unwrap()),
    };
    check_golden("refresh_request", &refresh);
}

#[test]
fn the_user_administration_bodies_are_frozen() {
    let summary = UserSummary {
        id: user("zhang"),
        display_name: "维修 张师傅 Zhang".into(),
        role: Role::Technician,
        estate: EstateId::parse("E02").unwrap(),
        disabled: false,
    };
    check_golden("user_summary", &summary);
    let change = UserChange {
        estate: Some(EstateId::parse("E02").unwrap()),
        disabled: Some(false),
        ..UserChange::default()
    };
    check_golden("user_change", &change);
}

#[test]
fn an_office_action_request_of_every_kind_is_frozen() {
    let requests = [
        (
            "office_action_dispatch",
            Some(Version(1)),
            OfficeOp::Dispatch {
                technician: user("li"),
            },
        ),
        (
            "office_action_reassign",
            Some(Version(3)),
            OfficeOp::Reassign {
                technician: user("zhang"),
                reason: "li was called to a burst main 李师傅被调去抢修".into(),
            },
        ),
        (
            "office_action_set_appointment",
            None,
            OfficeOp::SetAppointment {
                at: at(14, 0),
                note: "owner home after lunch 业主午饭后在家".into(),
            },
        ),
        (
            "office_action_cancel",
            Some(Version(5)),
            OfficeOp::Cancel {
                reason: "the owner fixed it himself 业主已自行修好".into(),
            },
        ),
        (
            "office_action_add_note",
            None,
            OfficeOp::AddNote {
                text: "owner asked for a receipt 业主需要收据".into(),
            },
        ),
        ("office_action_close", Some(Version(9)), OfficeOp::Close {}),
        (
            "office_action_sign_off",
            Some(Version(8)),
            OfficeOp::SignOff {
                note: "外墙已修复并验收 wall repaired and checked".into(),
            },
        ),
        (
            "office_action_convert",
            Some(Version(4)),
            OfficeOp::Convert {
                reason: "需厂家配件，当天无法完成 needs a part from the supplier".into(),
            },
        ),
        (
            "office_action_record_follow_up",
            None,
            OfficeOp::RecordFollowUp {
                reached: true,
                rating: Some(Rating::BasicallySatisfied),
                note: "业主说不再漏水 no more leak".into(),
            },
        ),
        (
            "office_action_track",
            None,
            OfficeOp::Track {
                kind: TrackingKind::OwnerContact {
                    reached: true,
                    proposal_rejected: true,
                },
                note: "业主不同意局部修补 the owner rejects a partial repair".into(),
            },
        ),
        (
            "office_action_reschedule_booking",
            Some(Version(2)),
            OfficeOp::RescheduleBooking {
                service_date: service_date(30),
                agreed_time: AgreedTime::Window {
                    from: shanghai_time(30, 14, 0),
                    until: shanghai_time(30, 16, 0),
                },
                note: "业主周日不在家 the owner is out on Sunday".into(),
            },
        ),
    ];
    for (name, expected_version, op) in requests {
        let request = OfficeActionRequest {
            expected_version,
            op,
        };
        check_golden(name, &request);
    }
}

/// R-C2, R-C3, R-F2, R-F3, R-P4: a work order raised by a follow-up call,
/// dispatched to li and converted into a coordination ticket (li's note,
/// synced afterwards, is late); the coordination ticket tracked, worked by
/// zhang, signed by the owner with a rating, signed off, closed, followed up,
/// and the source of a new report. Returns (the work order, the coordination ticket).
fn lifecycle_tickets() -> (Ticket, Ticket) {
    let office = |ticket: &Ticket, op: OfficeOp, by: &str, now| {
        apply_office_op(ticket, &op, &user(by), &WorkingCalendar::default(), now).unwrap()
    };
    let field = |ticket: &Ticket, by: &str, seq, op, recorded_at, now| {
        let recorder = Recorder {
            user: user(by),
            device: device(&format!("hh-{by}")),
            clock_offset_ms: 1_500,
        };
        let mutation = DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: ticket.id.clone(),
            base_version: ticket.version,
            recorded_at,
            op,
        };
        merge(ticket, &recorder, &mutation, now)
            .ticket
            .expect("the golden ticket's facts all apply")
    };
    let serial = |raw| Some(sync_protocol::SerialNumber::parse(raw).unwrap());

    let raised = Intake {
        source: Source::FollowUp,
        follow_up_of: Some(ticket_id("t-0")),
        ..intake()
    };
    let mut work_order = create_ticket(
        ticket_id("t-1"),
        raised,
        user("agent"),
        &WorkingCalendar::default(),
        at(9, 0),
    )
    .unwrap();
    work_order.serial_number = serial("E01-WO-202611-00042");
    let work_order = office(
        &work_order,
        OfficeOp::Dispatch {
            technician: user("li"),
        },
        "dispatcher",
        at(9, 1),
    );
    let work_order = field(
        &work_order,
        "li",
        1,
        DeviceOp::RecordArrival { position: None },
        at(9, 14),
        at(9, 15),
    );
    let (work_order, coordination) = convert_work_order(
        &work_order,
        ticket_id("t-2"),
        "需厂家配件，当天无法完成 needs a part from the supplier",
        &user("dispatcher"),
        at(17, 0),
    )
    .unwrap();
    let work_order = field(
        &work_order,
        "li",
        2,
        DeviceOp::AddNote {
            text: "阀体开裂 the valve body is cracked".into(),
        },
        at(16, 50),
        at(17, 10),
    );

    let mut coordination = coordination;
    coordination.serial_number = serial("E01-CT-202611-00007");
    let coordination = office(
        &coordination,
        OfficeOp::Dispatch {
            technician: user("zhang"),
        },
        "environment-manager",
        at(17, 5),
    );
    let tracking = [
        (
            "environment-manager",
            TrackingKind::CollectionAcknowledged {},
            "",
            at(17, 6),
        ),
        (
            "environment-manager",
            TrackingKind::InspectionBooked { at: at(18, 0) },
            "owner home at 18:00 业主18点在家",
            at(17, 8),
        ),
        (
            "specialist",
            TrackingKind::OwnerContact {
                reached: true,
                proposal_rejected: false,
            },
            "",
            at(17, 20),
        ),
        ("specialist", TrackingKind::OwnerReply {}, "", at(17, 25)),
        (
            "specialist",
            TrackingKind::Check {},
            "part ordered 配件已订",
            at(17, 30),
        ),
    ];
    let mut coordination = coordination;
    for (by, kind, note, now) in tracking {
        let op = OfficeOp::Track {
            kind,
            note: note.into(),
        };
        coordination = office(&coordination, op, by, now);
    }
    let coordination = field(
        &coordination,
        "zhang",
        1,
        DeviceOp::RecordArrival { position: None },
        at(18, 2),
        at(18, 3),
    );
    let coordination = field(
        &coordination,
        "zhang",
        2,
        DeviceOp::Complete {
            result: paid_result(),
        },
        at(18, 40),
        at(18, 41),
    );
    let coordination = field(
        &coordination,
        "zhang",
        3,
        DeviceOp::AttachSignature {
            blob: signature_blob(),
            signed_record: paid_result().record_hash(),
            signer_name: "王女士".into(),
            rating: Some(Rating::Satisfied),
            strokes: None,
        },
        at(18, 42),
        at(18, 43),
    );
    let coordination = office(
        &coordination,
        OfficeOp::SignOff {
            note: "已验收 checked on site".into(),
        },
        "department-manager",
        at(18, 50),
    );
    let coordination = office(&coordination, OfficeOp::Close {}, "cs-manager", at(18, 55));
    let coordination = office(
        &coordination,
        OfficeOp::RecordFollowUp {
            reached: true,
            rating: Some(Rating::Satisfied),
            note: "业主满意，另报卫生间漏水 satisfied; reported a bathroom leak".into(),
        },
        "specialist",
        at(19, 0),
    );
    let report = Intake {
        source: Source::FollowUp,
        follow_up_of: Some(ticket_id("t-2")),
        location: "3-1-502 卫生间".into(),
        description: "卫生间漏水 bathroom leaking".into(),
        received_at: at(19, 1),
        ..intake()
    };
    let report = create_ticket(
        ticket_id("t-3"),
        report,
        user("specialist"),
        &WorkingCalendar::default(),
        at(19, 2),
    )
    .unwrap();
    let coordination =
        link_follow_up_report(&coordination, &report, &user("specialist"), at(19, 2)).unwrap();
    (work_order, coordination)
}

#[test]
fn a_converted_work_order_and_its_closed_followed_up_coordination_ticket_are_frozen() {
    let (work_order, coordination) = lifecycle_tickets();
    assert_eq!(work_order.converted_to, Some(coordination.id.clone()));
    assert_eq!(coordination.converted_from, Some(work_order.id.clone()));
    check_golden("ticket_converted_work_order", &work_order);
    check_golden("ticket_closed_coordination", &coordination);
}

/// R-P5: a coordination ticket whose owner rejected two proposals within
/// a week (escalated), then the joint talk with the owner that ended it.
#[test]
fn r_p5_an_escalated_coordination_ticket_and_its_joint_talk_are_frozen() {
    let coordination = Intake {
        kind: TicketKind::CoordinationTicket,
        ..intake()
    };
    let mut ticket = create_ticket(
        ticket_id("t-4"),
        coordination,
        user("agent"),
        &WorkingCalendar::default(),
        at(9, 0),
    )
    .unwrap();
    ticket.serial_number = Some(sync_protocol::SerialNumber::parse("E01-CT-202611-00008").unwrap());
    let rejected = TrackingKind::OwnerContact {
        reached: true,
        proposal_rejected: true,
    };
    let tracking = [
        (
            "specialist",
            rejected.clone(),
            "业主不同意局部修补 no partial repair",
            at(10, 0),
        ),
        (
            "specialist",
            rejected,
            "业主不同意更换方案 no replacement either",
            at(11, 0),
        ),
        (
            "cs-manager",
            TrackingKind::JointTalk {},
            "客服经理与专员共同约谈业主 met the owner together",
            at(15, 0),
        ),
    ];
    for (by, kind, note, now) in tracking {
        let op = OfficeOp::Track {
            kind,
            note: note.into(),
        };
        ticket =
            apply_office_op(&ticket, &op, &user(by), &WorkingCalendar::default(), now).unwrap();
    }
    assert!(
        ticket
            .history
            .iter()
            .any(|entry| matches!(entry.event, sync_protocol::HistoryEvent::Escalated { .. }))
    );
    check_golden("ticket_escalated_coordination", &ticket);
}

#[test]
fn an_intake_is_frozen() {
    check_golden("intake", &intake());
}

fn service_date(day: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

/// R-S2: a deep clean booked on Friday 11-27 for Sunday 11-29, 09:00-11:00,
/// with li, for 80 yuan.
fn booking_intake() -> Intake {
    Intake {
        category: Category::HomeService,
        location: "3-1-502".into(),
        description: "深度保洁 deep cleaning of the flat".into(),
        booking: Some(BookingRequest {
            service_date: service_date(29),
            agreed_time: AgreedTime::Window {
                from: shanghai_time(29, 9, 0),
                until: shanghai_time(29, 11, 0),
            },
            fee: Charge::Paid { fee_fen: 8000 },
            staff: Some(user("li")),
        }),
        ..intake()
    }
}

#[test]
fn r_s2_a_booking_intake_and_its_moved_then_dispatched_work_order_are_frozen() {
    check_golden("intake_booking", &booking_intake());
    let calendar = WorkingCalendar::default();
    let office = |ticket: &Ticket, op: OfficeOp, by: &str, now| {
        apply_office_op(ticket, &op, &user(by), &calendar, now).unwrap()
    };
    let mut ticket = create_ticket(
        ticket_id("t-4"),
        booking_intake(),
        user("agent"),
        &calendar,
        at(9, 0),
    )
    .unwrap();
    ticket.serial_number = Some(sync_protocol::SerialNumber::parse("E01-WO-202611-00043").unwrap());
    let moved = OfficeOp::RescheduleBooking {
        service_date: service_date(30),
        agreed_time: AgreedTime::Window {
            from: shanghai_time(30, 14, 0),
            until: shanghai_time(30, 16, 0),
        },
        note: "业主周日不在家 the owner is out on Sunday".into(),
    };
    let ticket = office(&ticket, moved, "agent", at(10, 0));
    let dispatch = OfficeOp::Dispatch {
        technician: user("li"),
    };
    let ticket = office(&ticket, dispatch, "dispatcher", shanghai_time(29, 8, 30));
    check_golden("ticket_booked_work_order", &ticket);
}

#[test]
fn an_appointment_without_a_note_may_leave_the_note_out() {
    let request: OfficeActionRequest = serde_json::from_value(json!({
        "op": { "type": "set_appointment", "at": "2026-11-27T14:00:00Z" }
    }))
    .unwrap();
    assert_eq!(
        request,
        OfficeActionRequest {
            expected_version: None,
            op: OfficeOp::SetAppointment {
                at: at(14, 0),
                note: String::new(),
            },
        }
    );
}

fn push_request() -> PushRequest {
    PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device: device_report(),
        mutations: device_mutations(),
    }
}

/// The JSON of `value`, with `field: true` added to the object at `pointer`.
fn with_extra_field(value: &impl Serialize, pointer: &str, field: &str) -> Value {
    let mut value = serde_json::to_value(value).unwrap();
    value
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {pointer:?}"))
        .insert(field.into(), Value::Bool(true));
    value
}

fn assert_unknown_field_refused<T: DeserializeOwned + Debug>(value: Value, field: &str) {
    let error = serde_json::from_value::<T>(value).expect_err("an unknown field must be refused");
    assert!(
        error
            .to_string()
            .contains(&format!("unknown field `{field}`")),
        "{error}"
    );
}

#[test]
fn a_push_request_with_an_unknown_field_is_refused() {
    let value = with_extra_field(&push_request(), "", "priority");
    assert_unknown_field_refused::<PushRequest>(value, "priority");
    let value = with_extra_field(&push_request(), "/device", "battery");
    assert_unknown_field_refused::<PushRequest>(value, "battery");
}

#[test]
fn a_device_mutation_with_an_unknown_field_is_refused() {
    let value = with_extra_field(&push_request(), "/mutations/0", "status");
    assert_unknown_field_refused::<DeviceMutation>(value["mutations"][0].clone(), "status");
    assert_unknown_field_refused::<PushRequest>(value, "status");
    // Inside the op too: a device cannot smuggle state into an intent.
    let value = with_extra_field(&push_request(), "/mutations/2/op/result", "approved");
    assert_unknown_field_refused::<DeviceMutation>(value["mutations"][2].clone(), "approved");
    let value = with_extra_field(&push_request(), "/mutations/1/op", "status");
    assert_unknown_field_refused::<DeviceMutation>(value["mutations"][1].clone(), "status");
}

#[test]
fn an_intake_with_an_unknown_field_is_refused() {
    let value = with_extra_field(&intake(), "", "priority");
    assert_unknown_field_refused::<Intake>(value, "priority");
    let value = with_extra_field(&intake(), "/reporter", "email");
    assert_unknown_field_refused::<Intake>(value, "email");
}

#[test]
fn a_mutation_outcome_with_an_unknown_field_is_refused() {
    let outcome = |outcome| MutationOutcome {
        seq: DeviceSeq(1),
        ticket_id: ticket_id("t-1"),
        outcome,
    };
    let applied = outcome(Outcome::Applied(Applied {
        ticket_version: Version(3),
        late: None,
    }));
    let duplicate = outcome(Outcome::Duplicate {
        first: Verdict::Applied(Applied {
            ticket_version: Version(3),
            late: None,
        }),
    });
    let rejected = outcome(Outcome::Rejected(Rejection {
        code: RejectCode::NotYourTicket,
        reason: "this ticket was never assigned to you".into(),
    }));
    for value in [applied, duplicate, rejected] {
        let round_trip: MutationOutcome =
            serde_json::from_value(serde_json::to_value(&value).unwrap()).unwrap();
        assert_eq!(round_trip, value);
        assert_unknown_field_refused::<MutationOutcome>(
            with_extra_field(&value, "", "server_secret"),
            "server_secret",
        );
    }
}

#[test]
fn a_fee_on_a_free_job_or_a_field_on_an_arrival_is_refused_not_dropped() {
    let free_with_fee = json!({ "type": "free", "fee_fen": 100 });
    assert!(serde_json::from_value::<Charge>(free_with_fee).is_err());
    let arrival_with_status = json!({ "type": "record_arrival", "status": "completed" });
    assert!(serde_json::from_value::<DeviceOp>(arrival_with_status).is_err());
    assert_eq!(
        serde_json::from_value::<Charge>(json!({ "type": "free" })).unwrap(),
        Charge::Free {}
    );
}

/// R-D3: three reports waiting — an older self-inspection, a phone call and
/// a walk-in — in the order the queue gives them.
#[test]
fn a_dispatch_queue_with_owners_jobs_before_an_internal_one_is_frozen() {
    use sync_protocol::{DispatchQueue, QueuedTicket, dispatch_queue};
    let report = |id: &str, source, location: &str, description: &str, received_at| {
        let intake = Intake {
            source,
            location: location.into(),
            description: description.into(),
            received_at,
            ..intake()
        };
        create_ticket(
            ticket_id(id),
            intake,
            user("agent"),
            &WorkingCalendar::default(),
            at(9, 30),
        )
        .unwrap()
    };
    let mut inspection = report(
        "t-7",
        Source::SelfInspection,
        "B2 水泵房",
        "2号水泵异响 pump 2 noisy",
        at(8, 10),
    );
    inspection.serial_number =
        Some(sync_protocol::SerialNumber::parse("E01-WO-202611-00040").unwrap());
    let mut phone = report(
        "t-9",
        Source::Phone,
        "3-2-601",
        "卫生间漏水 bathroom leaking",
        at(9, 20),
    );
    phone.serial_number = Some(sync_protocol::SerialNumber::parse("E01-WO-202611-00042").unwrap());
    let mut walk_in = Intake {
        kind: TicketKind::CoordinationTicket,
        area: sync_protocol::Area::PublicArea,
        ..intake()
    };
    walk_in.source = Source::WalkIn;
    walk_in.location = "5-1 外墙".into();
    walk_in.description = "外墙渗水 the outer wall lets water in".into();
    walk_in.received_at = at(9, 5);
    let mut walk_in = create_ticket(
        ticket_id("t-8"),
        walk_in,
        user("agent"),
        &WorkingCalendar::default(),
        at(9, 30),
    )
    .unwrap();
    walk_in.serial_number =
        Some(sync_protocol::SerialNumber::parse("E01-CT-202611-00007").unwrap());
    let tickets = [inspection, phone, walk_in];
    let queue = dispatch_queue(&tickets, at(9, 30));
    let queue = DispatchQueue {
        waiting: queue.len() as u32,
        tickets: queue.into_iter().map(QueuedTicket::of).collect(),
    };
    check_golden("dispatch_queue", &queue);
}

/// R-D3: three technicians ranked for a job in building 3: zhang has the
/// fewest open tickets; li and wang have two each, and wang's are in
/// building 3, which puts him before li.
#[test]
fn dispatch_suggestions_for_a_job_in_building_3_are_frozen() {
    use sync_protocol::{
        DispatchSuggestions, OfficeOp, TechnicianLoad, building_of, suggest_technicians,
    };
    let job = |id: &str, location: &str, technician: &str| {
        let intake = Intake {
            location: location.into(),
            ..intake()
        };
        let ticket = create_ticket(
            ticket_id(id),
            intake,
            user("agent"),
            &WorkingCalendar::default(),
            at(9, 0),
        )
        .unwrap();
        let op = OfficeOp::Dispatch {
            technician: user(technician),
        };
        apply_office_op(
            &ticket,
            &op,
            &user("dispatcher"),
            &WorkingCalendar::default(),
            at(9, 1),
        )
        .unwrap()
    };
    let held = [
        job("t-1", "7-1-302", "li"),
        job("t-2", "9-2-801", "li"),
        job("t-3", "3-1-502", "wang"),
        job("t-4", "3-1-1101", "wang"),
        job("t-5", "B2 水泵房", "zhang"),
    ];
    let load = |technician: &str, name: &str| {
        TechnicianLoad::from_tickets(user(technician), name.into(), &held)
    };
    let candidates = [
        load("li", "维修 李师傅 Li"),
        load("wang", "维修 王师傅 Wang"),
        load("zhang", "维修 张师傅 Zhang"),
    ];
    let new_job = create_ticket(
        ticket_id("t-9"),
        Intake {
            location: "3-2-601".into(),
            ..intake()
        },
        user("agent"),
        &WorkingCalendar::default(),
        at(9, 20),
    )
    .unwrap();
    let suggestions = DispatchSuggestions {
        ticket_id: new_job.id.clone(),
        building: building_of(&new_job.location).map(str::to_owned),
        suggestions: suggest_technicians(&new_job, &candidates),
    };
    check_golden("dispatch_suggestions", &suggestions);
}

// ---- Reports (R-C4, R-A3) ---------------------------------------------------

fn shanghai_time(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .unwrap()
        - chrono::Duration::hours(8)
}

fn serial(raw: &str) -> Option<sync_protocol::SerialNumber> {
    Some(sync_protocol::SerialNumber::parse(raw).unwrap())
}

/// An unclosed item with everything a list shows but its deadline.
fn unclosed_item(
    (id, serial_number): (&str, Option<&str>),
    kind: TicketKind,
    status: sync_protocol::Status,
    received_at: DateTime<Utc>,
    age_days: u32,
    responsible: sync_protocol::Responsible,
) -> sync_protocol::UnclosedItem {
    sync_protocol::UnclosedItem {
        ticket_id: ticket_id(id),
        serial_number: serial_number.and_then(serial),
        kind,
        category: Category::Repair,
        area: Area::PrivateUnit,
        location: "3-1-502".into(),
        description: "厨房水管漏水 kitchen pipe leaking".into(),
        status,
        received_at,
        age_days,
        responsible,
        window: None,
    }
}

/// The list of 27 November as the morning meeting of the 28th gets it:
/// a work order with its technician, one nobody dispatched (its R-K2 window
/// missed), and a coordination ticket waiting for its 3-day check.
fn daily_unclosed_list() -> sync_protocol::DailyUnclosed {
    use sync_protocol::reports::RuleWindow;
    use sync_protocol::time_rules::{Duty, RuleId};
    use sync_protocol::{Responsible, Status, UnclosedItem};
    let end_of_day = shanghai_time(28, 0, 0) - chrono::Duration::nanoseconds(1);
    let window = |rule, duty, due_at, missed| {
        Some(RuleWindow {
            rule,
            duty,
            due_at,
            missed,
        })
    };
    sync_protocol::DailyUnclosed {
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        time_zone: "Asia/Shanghai".into(),
        as_of: end_of_day,
        work_orders: vec![
            UnclosedItem {
                window: window(
                    RuleId::K2,
                    Duty::Finish,
                    shanghai_time(27, 0, 0) - chrono::Duration::nanoseconds(1),
                    true,
                ),
                ..unclosed_item(
                    ("tk00000041", Some("E01-WO-202611-00041")),
                    TicketKind::WorkOrder,
                    Status::Received,
                    shanghai_time(26, 16, 40),
                    1,
                    Responsible::Role {
                        role: Role::Dispatcher,
                    },
                )
            },
            UnclosedItem {
                window: window(RuleId::K2, Duty::Finish, end_of_day, false),
                ..unclosed_item(
                    ("tk00000042", Some("E01-WO-202611-00042")),
                    TicketKind::WorkOrder,
                    Status::InProgress,
                    shanghai_time(27, 9, 0),
                    0,
                    Responsible::Technician { user: user("li") },
                )
            },
        ],
        coordination_tickets: vec![UnclosedItem {
            window: window(RuleId::P4, Duty::Check, end_of_day, false),
            ..unclosed_item(
                ("tk00000017", Some("E01-CT-202611-00003")),
                TicketKind::CoordinationTicket,
                Status::Dispatched,
                shanghai_time(23, 10, 0),
                4,
                Responsible::Technician {
                    user: user("zhang"),
                },
            )
        }],
    }
}

#[test]
fn r_c4_a_daily_unclosed_list_is_frozen() {
    check_golden("report_daily_unclosed", &daily_unclosed_list());
}

#[test]
fn r_a3_r_c5_monthly_statistics_are_frozen() {
    use sync_protocol::reports::{
        CategoryCounts, ChargeCounts, ClosureCounts, KindCounts, StatusCounts, TicketRef,
    };
    use sync_protocol::time_rules::{Duty, RuleId};
    use sync_protocol::{ReportMonth, Responsible, RuleTally, Status};
    let tally = |rule, duty, met, missed, pending| RuleTally {
        rule,
        duty,
        met,
        missed,
        pending,
    };
    let statistics = sync_protocol::MonthlyStatistics {
        month: ReportMonth::parse("2026-11").unwrap(),
        time_zone: "Asia/Shanghai".into(),
        from: shanghai_time(1, 0, 0),
        until: Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap(),
        generated_at: shanghai_time(27, 18, 0),
        received: 12,
        by_kind: KindCounts {
            verbal_dispatch: 2,
            work_order: 8,
            coordination_ticket: 2,
        },
        by_category: CategoryCounts {
            repair: 7,
            rework: 1,
            environment: 1,
            security: 1,
            owner_communication: 1,
            home_service: 1,
            private_garden: 0,
        },
        by_status: StatusCounts {
            received: 1,
            dispatched: 1,
            in_progress: 1,
            completed: 0,
            closed: 7,
            converted: 1,
            cancelled: 1,
        },
        charges: ChargeCounts {
            paid: 3,
            free: 2,
            not_recorded: 0,
            paid_fee_fen: 12_500,
        },
        closure: ClosureCounts {
            closed: 7,
            cancelled: 1,
            converted: 1,
            closable: 10,
            closure_rate_percent: Some(70.0),
        },
        timeliness: vec![
            tally(RuleId::P1, Duty::Arrival, 5, 1, 1),
            tally(RuleId::P3, Duty::BookSiteInspection, 1, 0, 1),
            tally(RuleId::P3, Duty::ReplyToOwner, 2, 0, 0),
            tally(RuleId::P4, Duty::Check, 3, 1, 2),
            tally(RuleId::P4, Duty::ReplyToOwner, 1, 0, 2),
            tally(RuleId::F1, Duty::FollowUp, 4, 1, 0),
        ],
        missing_signatures: vec![TicketRef {
            ticket_id: ticket_id("tk00000007"),
            serial_number: serial("E01-WO-202611-00007"),
        }],
        unclosed: vec![
            unclosed_item(
                ("tk00000009", None),
                TicketKind::VerbalDispatch,
                Status::Received,
                shanghai_time(20, 8, 15),
                7,
                Responsible::Agent { user: user("kefu") },
            ),
            daily_unclosed_list().work_orders.remove(1),
        ],
    };
    check_golden("report_monthly_statistics", &statistics);
}

#[test]
fn r_a2_r_a1_a_monthly_archive_with_a_missing_number_is_frozen() {
    use sync_protocol::reports::{ArchiveEntry, ArchiveSection, MonthlyArchive, NumberingCheck};
    use sync_protocol::{ReportMonth, Status};
    let entry = |(id, serial_number): (&str, &str), status, closed_at, charge| ArchiveEntry {
        serial_number: serial(serial_number),
        ticket_id: ticket_id(id),
        category: Category::Repair,
        status,
        received_at: shanghai_time(3, 9, 0),
        closed_at,
        charge,
    };
    let complete = |handed_out| NumberingCheck {
        handed_out,
        numbered: handed_out,
        missing_count: 0,
        missing: Vec::new(),
        duplicated: Vec::new(),
        unnumbered: Vec::new(),
        complete: true,
    };
    let archive = MonthlyArchive {
        month: ReportMonth::parse("2026-11").unwrap(),
        time_zone: "Asia/Shanghai".into(),
        from: shanghai_time(1, 0, 0),
        until: Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap(),
        generated_at: shanghai_time(30, 18, 0),
        work_orders: ArchiveSection {
            series: "E01-WO-202611".into(),
            paid: vec![entry(
                ("tk00000001", "E01-WO-202611-00001"),
                Status::Closed,
                Some(shanghai_time(3, 11, 0)),
                Some(Charge::Paid { fee_fen: 3500 }),
            )],
            free: vec![entry(
                ("tk00000004", "E01-WO-202611-00003"),
                Status::Closed,
                Some(shanghai_time(4, 10, 0)),
                Some(Charge::Free {}),
            )],
            not_recorded: Vec::new(),
            paid_fee_fen: 3500,
            not_closed: vec![entry(
                ("tk00000005", "E01-WO-202611-00004"),
                Status::Cancelled,
                None,
                None,
            )],
            numbering: NumberingCheck {
                numbered: 3,
                missing_count: 1,
                missing: vec![serial("E01-WO-202611-00002").unwrap()],
                complete: false,
                ..complete(4)
            },
        },
        coordination_tickets: ArchiveSection {
            series: "E01-CT-202611".into(),
            paid: Vec::new(),
            free: Vec::new(),
            not_recorded: Vec::new(),
            paid_fee_fen: 0,
            not_closed: vec![entry(
                ("tk00000003", "E01-CT-202611-00001"),
                Status::InProgress,
                None,
                None,
            )],
            numbering: complete(1),
        },
        verbal_dispatches: 2,
    };
    check_golden("report_monthly_archive", &archive);
}

// ---- The due list -------------------------------------------------------------

#[test]
fn r_p1_a_due_list_with_an_overdue_arrival_and_a_finish_due_soon_is_frozen() {
    use sync_protocol::time_rules::{Duty, RuleId};
    use sync_protocol::{DueItem, DueList, DueState, Responsible};
    let item =
        |(id, serial_number): (&str, &str), location: &str, rule, duty, due_at, state| DueItem {
            ticket_id: ticket_id(id),
            serial_number: serial(serial_number),
            kind: TicketKind::WorkOrder,
            category: Category::Repair,
            location: location.into(),
            rule,
            duty,
            due_at,
            state,
            responsible: Responsible::Technician { user: user("li") },
        };
    let list = DueList {
        items: vec![
            item(
                ("tk00000041", "E01-WO-202611-00041"),
                "3-1-502",
                RuleId::P1,
                Duty::Arrival,
                shanghai_time(27, 9, 16),
                DueState::Overdue,
            ),
            item(
                ("tk00000042", "E01-WO-202611-00042"),
                "5-2-1101",
                RuleId::K2,
                Duty::Finish,
                shanghai_time(28, 0, 0) - chrono::Duration::nanoseconds(1),
                DueState::DueSoon,
            ),
        ],
        // Asked with `limit=2`: three less urgent items were left off.
        left_off: 3,
    };
    check_golden("due_list", &list);
}

fn device_status() -> sync_protocol::DeviceStatus {
    sync_protocol::DeviceStatus {
        device_id: device("hh-zhang"),
        user: user("zhang"),
        estate: EstateId::parse("E01").unwrap(),
        last_seq: DeviceSeq(7),
        app_version: "1.4.2".into(),
        protocol_version: PROTOCOL_VERSION,
        outbox_depth: 3,
        oldest_pending_age_ms: Some(5_400_000),
        last_contact_at: at(11, 2),
        last_push_at: Some(at(11, 2)),
        last_pull_at: Some(at(10, 30)),
        clock_offset_ms: -1_200,
        retired_at: None,
    }
}

#[test]
fn a_supervision_snapshot_with_a_crew_row_and_an_empty_queue_is_frozen() {
    let snapshot = sync_protocol::SupervisionSnapshot {
        generated_at: at(11, 5),
        last_event_id: 1_795_000_000_000_042,
        online_window_minutes: 5,
        due_soon_window_minutes: 60,
        crew: vec![sync_protocol::crew_row(
            &device_status(),
            at(11, 5),
            chrono::Duration::minutes(5),
            2,
            1,
        )],
        crew_left_off: 0,
        at_risk: Vec::new(),
        at_risk_left_off: 0,
        review_queue: Vec::new(),
        review_left_off: 0,
    };
    check_golden("supervision_snapshot", &snapshot);
}

#[test]
fn a_review_request_is_frozen() {
    let request = sync_protocol::ReviewRequest {
        mutation_id: sync_protocol::MutationId::new(device("hh-zhang"), DeviceSeq(7)),
        decision: sync_protocol::ReviewDecision::Annotate,
        note: Some("The reassignment crossed his visit; the arrival stands.".into()),
    };
    check_golden("review_request", &request);
}

#[test]
fn a_live_event_of_a_device_contact_is_frozen() {
    let event = sync_protocol::LiveEvent {
        id: 1_795_000_000_000_043,
        at: at(11, 2),
        body: sync_protocol::LiveEventBody::DeviceContact {
            contact: sync_protocol::ContactKind::Push,
            device: device_status(),
        },
    };
    check_golden("live_event_device_contact", &event);
}

/// One completion record with its canonical JSON and hash: what every
/// client must compute byte for byte before the owner signs (section 4.5).
#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
struct RecordHashVector {
    record: CompletionRecord,
    canonical: String,
    sha256: Sha256Hex,
}

#[test]
fn the_completion_record_hashes_are_frozen() {
    let material = |name: &str, quantity: &str| sync_protocol::Material {
        name: name.into(),
        quantity: quantity.into(),
    };
    let records = [
        paid_result(),
        CompletionRecord {
            work_done: "更换灯座 replaced the lamp holder".into(),
            materials: vec![],
            charge: Charge::Free {},
        },
        CompletionRecord {
            work_done: "quotes \" and \\ backslash, tab\tnewline\nreturn\r".into(),
            materials: vec![material(
                "form feed \u{c} bell \u{7} escape \u{1b}",
                "0.5 m",
            )],
            charge: Charge::Paid { fee_fen: 0 },
        },
        CompletionRecord {
            work_done: "  leading and trailing spaces are kept  ".into(),
            materials: vec![
                material("阀门 valve", "2"),
                material("生料带 PTFE tape 🧻", "1 卷"),
                material("del \u{7f} and slash /", ""),
            ],
            charge: Charge::Paid {
                fee_fen: sync_protocol::MAX_FEE_FEN,
            },
        },
    ];
    let vectors: Vec<RecordHashVector> = records
        .into_iter()
        .map(|record| RecordHashVector {
            canonical: serde_json::to_string(&record).unwrap(),
            sha256: record.record_hash(),
            record,
        })
        .collect();
    assert_eq!(
        vectors[0].sha256.as_str(),
        "fa5eda3f272f800fb6c0c987b95fa97fa059a15aa7e772bb68805dff6b58834d",
        "the worked example of docs/protocol.md"
    );
    check_frozen(
        "completion_record_hashes",
        vectors_path("completion_record_hashes"),
        &vectors,
    );
}
