//! The lives of seeded tickets, shared by the benchmarks that seed an
//! estate (`report-bench`, `ticket-list`): each report lives through the
//! core's own functions (`create_ticket`, `apply_office_op`, device
//! mutations through `merge`, `convert_work_order`) up to the run's moment.
//! What the benchmarks' estates differ in is theirs: what a report is
//! about and where, when and by whom it comes in (`Reports`), and how often
//! each life ends where (`Mix`). The draws are made in a fixed order, so
//! the same seed gives the same tickets.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sync_protocol::{
    Area, Category, Charge, CompletionRecord, DeviceId, DeviceMutation, DeviceOp, DeviceSeq,
    Intake, OfficeOp, Rating, Recorder, SerialKind, SerialMonth, SerialNumber, SerialSeries,
    Sha256Hex, Ticket, TicketId, TicketKind, TrackingKind, UserId, WorkingCalendar,
    apply_office_op, convert_work_order, create_ticket, merge,
};

/// xorshift64*: a small, seedable generator, so runs are repeatable.
pub(crate) struct Random(pub(crate) u64);

impl Random {
    /// The generator of the ticket mix of `seed`.
    pub(crate) fn seeded(seed: u64) -> Self {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `low..=high`.
    pub(crate) fn between(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }

    pub(crate) fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }
}

/// What a benchmark's reports are: their categories, and the intakes that
/// record them. Each may draw from `random`, in the same order every run.
pub(crate) trait Reports {
    /// The category of the next report of `kind`.
    fn category(&mut self, random: &mut Random, kind: TicketKind) -> Category;

    /// The next report, as the agent records it.
    fn intake(
        &mut self,
        random: &mut Random,
        kind: TicketKind,
        category: Category,
        area: Area,
    ) -> Intake;

    /// The month whose series numbers a ticket numbered at `at` (R-A1).
    fn serial_month(&self, at: DateTime<Utc>) -> SerialMonth;
}

/// How the lives of a benchmark's tickets go where the benchmarks differ.
pub(crate) struct Mix {
    /// Share of verbal dispatches closed by whoever took them.
    pub(crate) verbal_closed: f64,
    /// Share of work orders in a public area; the rest are in a unit.
    pub(crate) public_work_orders: f64,
    /// Share of unbooked work orders given an appointment after dispatch;
    /// `None` draws nothing for it.
    pub(crate) appointments: Option<f64>,
    pub(crate) fates: Fates,
    /// Minutes from dispatch to arrival, at the least and at the most.
    pub(crate) arrival_minutes: (i64, i64),
    /// The owner's rating at signing drawn (60 % satisfied, 25 % basically,
    /// 10 % dissatisfied, 5 % none) rather than always satisfied.
    pub(crate) varied_ratings: bool,
    /// Who dispatches a coordination ticket.
    pub(crate) coordination_dispatcher: &'static str,
    /// The work done on a completed coordination ticket.
    pub(crate) coordination_work_done: &'static str,
}

/// Where a work order's life stops, by one draw in `[0, 1)`: below each
/// bound and above the one before, at that step. Above the last it is
/// closed.
#[derive(Clone, Copy)]
pub(crate) struct Fates {
    /// Never dispatched.
    pub(crate) undispatched: f64,
    /// Cancelled after dispatch.
    pub(crate) cancelled: f64,
    /// Dispatched, never reached.
    pub(crate) unreached: f64,
    /// Converted the next day into a coordination ticket (R-C2).
    pub(crate) converted: f64,
    /// Left in progress.
    pub(crate) in_progress: f64,
    /// Completed and signed, not closed.
    pub(crate) unclosed: f64,
}

/// Shares of the reports: 10 % verbal dispatches, 75 % work orders, the
/// rest coordination tickets.
const VERBAL_DISPATCHES: f64 = 0.10;
const VERBAL_DISPATCHES_AND_WORK_ORDERS: f64 = 0.85;

/// Tickets of one estate, report after report.
pub(crate) struct Lives<R: Reports> {
    reports: R,
    mix: Mix,
    random: Random,
    calendar: WorkingCalendar,
    now: DateTime<Utc>,
    technicians: Vec<(UserId, DeviceId)>,
    next_ticket: u64,
    serials: BTreeMap<SerialSeries, u64>,
}

/// One ticket's life being written: every step happens at a later time,
/// and the life stops at the first step that would lie after `now`.
struct Life {
    ticket: Ticket,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    technician: Option<(UserId, DeviceId)>,
    calendar: WorkingCalendar,
}

impl Life {
    /// Move the clock on; false (and the life ends) when that passes `now`.
    fn wait(&mut self, minutes: i64) -> bool {
        self.at += Duration::minutes(minutes);
        self.at <= self.now
    }

    fn office(&mut self, by: &str, op: OfficeOp) {
        let by = UserId::parse(by).expect("a valid user");
        self.ticket = apply_office_op(&self.ticket, &op, &by, &self.calendar, self.at)
            .unwrap_or_else(|error| panic!("{op:?} on {}: {error}", self.ticket.id));
    }

    fn field(&mut self, op: DeviceOp) {
        let (user, device) = self.technician.as_ref().expect("dispatched first");
        let recorder = Recorder {
            user: user.clone(),
            device: device.clone(),
            clock_offset_ms: 0,
        };
        let mutation = DeviceMutation {
            seq: DeviceSeq(self.ticket.version.0 + 1),
            ticket_id: self.ticket.id.clone(),
            base_version: self.ticket.version,
            recorded_at: self.at,
            op,
        };
        self.ticket = merge(&self.ticket, &recorder, &mutation, self.at)
            .ticket
            .expect("the mutation applies");
    }

    fn track(&mut self, kind: TrackingKind) {
        let op = OfficeOp::Track {
            kind,
            note: String::new(),
        };
        self.office("zhuanyuan", op);
    }
}

impl<R: Reports> Lives<R> {
    /// Lives up to `now`, the reports drawn from `seed`, the dispatched
    /// tickets given to one of `technicians` at random.
    pub(crate) fn new(
        reports: R,
        mix: Mix,
        calendar: &WorkingCalendar,
        now: DateTime<Utc>,
        seed: u64,
        technicians: Vec<(UserId, DeviceId)>,
    ) -> Self {
        Self {
            reports,
            mix,
            random: Random::seeded(seed),
            calendar: calendar.clone(),
            now,
            technicians,
            next_ticket: 0,
            serials: BTreeMap::new(),
        }
    }

    /// The next report and what became of it; a converted work order comes
    /// with its coordination ticket.
    pub(crate) fn next_report(&mut self) -> Vec<Ticket> {
        let roll = self.random.unit();
        if roll < VERBAL_DISPATCHES {
            vec![self.verbal_dispatch()]
        } else if roll < VERBAL_DISPATCHES_AND_WORK_ORDERS {
            self.work_order()
        } else {
            let category = self
                .reports
                .category(&mut self.random, TicketKind::CoordinationTicket);
            let life = self.new_ticket(TicketKind::CoordinationTicket, category, Area::PrivateUnit);
            vec![self.coordination_ticket(life)]
        }
    }

    /// Tickets made so far, for the writer to number on from.
    pub(crate) fn tickets_made(&self) -> u64 {
        self.next_ticket
    }

    /// The last number of each series, for the writer to go on from.
    pub(crate) fn last_serials(&self) -> Vec<SerialNumber> {
        self.serials
            .iter()
            .map(|(series, last)| series.number(*last))
            .collect()
    }

    fn next_id(&mut self) -> TicketId {
        self.next_ticket += 1;
        TicketId::parse(&format!("tk{:08}", self.next_ticket)).expect("a valid id")
    }

    fn new_ticket(&mut self, kind: TicketKind, category: Category, area: Area) -> Life {
        let intake = self.reports.intake(&mut self.random, kind, category, area);
        let received_at = intake.received_at;
        let id = self.next_id();
        let agent = UserId::parse("kefu").expect("a valid user");
        let mut ticket =
            create_ticket(id, intake, agent, &self.calendar, received_at).expect("a valid intake");
        self.number(&mut ticket, received_at);
        self.life(ticket, received_at)
    }

    fn life(&self, ticket: Ticket, at: DateTime<Utc>) -> Life {
        Life {
            ticket,
            at,
            now: self.now,
            technician: None,
            calendar: self.calendar.clone(),
        }
    }

    /// R-A1: the next serial number of the ticket's kind.
    fn number(&mut self, ticket: &mut Ticket, at: DateTime<Utc>) {
        let Some(kind) = SerialKind::of(ticket.kind) else {
            return;
        };
        let month = self.reports.serial_month(at);
        let series = SerialSeries::new(ticket.estate.clone(), kind, month);
        let last = self.serials.entry(series.clone()).or_insert(0);
        *last += 1;
        ticket.serial_number = Some(series.number(*last));
    }

    fn pick_technician(&mut self) -> (UserId, DeviceId) {
        let index = self.random.between(0, self.technicians.len() as i64 - 1) as usize;
        self.technicians[index].clone()
    }

    /// Closed by whoever took it, 5-60 minutes later, or left open.
    fn verbal_dispatch(&mut self) -> Ticket {
        let category = self
            .reports
            .category(&mut self.random, TicketKind::VerbalDispatch);
        let mut life = self.new_ticket(TicketKind::VerbalDispatch, category, Area::PublicArea);
        if self.random.chance(self.mix.verbal_closed) && life.wait(self.random.between(5, 60)) {
            life.office("kefu", OfficeOp::Close {});
        }
        life.ticket
    }

    /// A work order's life, stopped where its fate says; a closed one has a
    /// result and the owner's signature, 80 % of them followed up.
    fn work_order(&mut self) -> Vec<Ticket> {
        let category = self
            .reports
            .category(&mut self.random, TicketKind::WorkOrder);
        let area = if self.random.chance(self.mix.public_work_orders) {
            Area::PublicArea
        } else {
            Area::PrivateUnit
        };
        let technician = self.pick_technician();
        let fate = self.random.unit();
        let fates = self.mix.fates;
        let mut life = self.new_ticket(TicketKind::WorkOrder, category, area);
        if fate < fates.undispatched || !life.wait(self.random.between(1, 30)) {
            return vec![life.ticket];
        }
        let dispatch = OfficeOp::Dispatch {
            technician: technician.0.clone(),
        };
        life.technician = Some(technician);
        life.office("diaodu", dispatch);
        // A booking's time is the one agreed with the owner (R-S2): no appointment.
        if let Some(share) = self.mix.appointments
            && self.random.chance(share)
            && life.ticket.booking.is_none()
            && life.wait(5)
        {
            let at = life.at + Duration::hours(2);
            life.office(
                "kefu",
                OfficeOp::SetAppointment {
                    at,
                    note: String::new(),
                },
            );
            if !life.wait(115) {
                return vec![life.ticket];
            }
        }
        if fate < fates.cancelled {
            if life.wait(self.random.between(10, 60)) {
                let reason = "业主已自行解决 solved by the owner".to_owned();
                life.office("kefu", OfficeOp::Cancel { reason });
            }
            return vec![life.ticket];
        }
        let (fastest, slowest) = self.mix.arrival_minutes;
        if fate < fates.unreached || !life.wait(self.random.between(fastest, slowest)) {
            return vec![life.ticket];
        }
        life.field(DeviceOp::RecordArrival { position: None });
        if fate < fates.converted {
            if !life.wait(24 * 60) {
                return vec![life.ticket];
            }
            let new_id = self.next_id();
            let by = UserId::parse("diaodu").expect("a valid user");
            let (converted, mut coordination) =
                convert_work_order(&life.ticket, new_id, "需订货 needs a part", &by, life.at)
                    .expect("an open work order converts");
            self.number(&mut coordination, life.at);
            let coordination = self.life(coordination, life.at);
            return vec![converted, self.coordination_ticket(coordination)];
        }
        if fate < fates.in_progress || !life.wait(self.random.between(20, 180)) {
            return vec![life.ticket];
        }
        let charge = if self.random.chance(0.4) {
            Charge::Paid {
                fee_fen: self.random.between(10, 300) as u64 * 100,
            }
        } else {
            Charge::Free {}
        };
        let result = CompletionRecord {
            work_done: "更换水管接头 replaced the pipe joint".to_owned(),
            materials: Vec::new(),
            charge,
        };
        life.field(DeviceOp::Complete {
            result: result.clone(),
        });
        let rating = if self.mix.varied_ratings {
            self.rating()
        } else {
            Some(Rating::Satisfied)
        };
        let signer_name = life.ticket.reporter.name.clone();
        life.field(DeviceOp::AttachSignature {
            blob: Sha256Hex::of(life.ticket.id.as_str().as_bytes()),
            signed_record: result.record_hash(),
            signer_name,
            rating,
            strokes: None,
        });
        if fate < fates.unclosed || !life.wait(self.random.between(5, 120)) {
            return vec![life.ticket];
        }
        let closer = match category {
            Category::Environment => "huanjing",
            _ => "diaodu",
        };
        life.office(closer, OfficeOp::Close {});
        if self.random.chance(0.8) && life.wait(self.random.between(60, 40 * 60)) {
            self.follow_up(&mut life);
        }
        vec![life.ticket]
    }

    fn rating(&mut self) -> Option<Rating> {
        let roll = self.random.unit();
        if roll < 0.6 {
            Some(Rating::Satisfied)
        } else if roll < 0.85 {
            Some(Rating::BasicallySatisfied)
        } else if roll < 0.95 {
            Some(Rating::Dissatisfied)
        } else {
            None
        }
    }

    fn follow_up(&mut self, life: &mut Life) {
        let reached = self.random.chance(0.9);
        life.office(
            "kefu",
            OfficeOp::RecordFollowUp {
                reached,
                rating: reached.then_some(Rating::Satisfied),
                note: String::new(),
            },
        );
    }

    /// A coordination ticket's life from its issue: collection, inspection
    /// booked, a reply, dispatch, 1-5 checks every 1.5-3.5 days, and for
    /// 40 % completion, sign-off, closure and a follow-up.
    fn coordination_ticket(&mut self, mut life: Life) -> Ticket {
        let technician = self.pick_technician();
        let done = self.random.chance(0.4);
        if !life.wait(self.random.between(10, 60)) {
            return life.ticket;
        }
        life.track(TrackingKind::CollectionAcknowledged {});
        if !life.wait(self.random.between(30, 8 * 60)) {
            return life.ticket;
        }
        let inspection_at = life.at + Duration::days(1);
        life.track(TrackingKind::InspectionBooked { at: inspection_at });
        if !life.wait(self.random.between(60, 30 * 60)) {
            return life.ticket;
        }
        life.track(TrackingKind::OwnerReply {});
        let dispatch = OfficeOp::Dispatch {
            technician: technician.0.clone(),
        };
        life.technician = Some(technician);
        life.office(self.mix.coordination_dispatcher, dispatch);
        for round in 0..self.random.between(1, 5) {
            if !life.wait(self.random.between(36 * 60, 84 * 60)) {
                return life.ticket;
            }
            life.track(TrackingKind::Check {});
            if round % 2 == 1 {
                life.track(TrackingKind::OwnerReply {});
            }
        }
        if !done || !life.wait(self.random.between(60, 24 * 60)) {
            return life.ticket;
        }
        life.field(DeviceOp::RecordArrival { position: None });
        life.field(DeviceOp::Complete {
            result: CompletionRecord {
                work_done: self.mix.coordination_work_done.to_owned(),
                materials: Vec::new(),
                charge: Charge::Free {},
            },
        });
        if !life.wait(self.random.between(60, 24 * 60)) {
            return life.ticket;
        }
        life.office(
            "banzhang",
            OfficeOp::SignOff {
                note: String::new(),
            },
        );
        if !life.wait(self.random.between(30, 8 * 60)) {
            return life.ticket;
        }
        life.office("kefu-jingli", OfficeOp::Close {});
        if self.random.chance(0.8) && life.wait(self.random.between(60, 40 * 60)) {
            self.follow_up(&mut life);
        }
        life.ticket
    }
}
