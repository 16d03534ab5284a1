//! The office as a simulated host: the engineering dispatcher reassigning
//! tickets, moving appointments, writing office notes, closing signed work
//! orders and cancelling, and the customer-service agent taking new reports
//! that the dispatcher then dispatches; all over the office HTTP API and
//! the same faulty network as the handhelds.
//!
//! Every action names the version it was decided on (`expected_version`),
//! and none is retried: an action whose answer was lost was applied at most
//! once. Each carries a marker (the note's text, the reason) by which the
//! checker counts it on the server afterwards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use handheld::{TransportError, read_answer};
use hyper::Method;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_protocol::{
    LoginRequest, LoginResponse, OfficeActionRequest, OfficeOp, PROTOCOL_HEADER, PROTOCOL_VERSION,
    Status, Ticket, TicketId, TicketPage, UserId,
};

use crate::estate;
use crate::http::HttpClient;
use crate::shared::{Phase, Shared};

/// The office's host name, and its observer name in the journal.
pub const OFFICE: &str = "office";

/// What an office action left to count on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    OfficeNote { ticket: TicketId, text: String },
    Reassignment { ticket: TicketId, reason: String },
    Cancellation { ticket: TicketId, reason: String },
    Report { description: String },
}

/// The answer an office action got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answered {
    Applied,
    Refused(String),
    /// No answer: applied once or not at all.
    Unknown,
}

/// The office: what outlives the host, and what it did.
pub struct Office {
    rng: Mutex<ChaCha8Rng>,
    tokens: Mutex<BTreeMap<String, String>>,
    actions: Mutex<Vec<(Marker, Answered)>>,
    next_number: Mutex<u64>,
}

impl Office {
    pub fn new(rng: ChaCha8Rng) -> Self {
        Self {
            rng: Mutex::new(rng),
            tokens: Mutex::new(BTreeMap::new()),
            actions: Mutex::new(Vec::new()),
            next_number: Mutex::new(0),
        }
    }

    /// Every marked action and its answer, in order.
    pub fn actions(&self) -> Vec<(Marker, Answered)> {
        lock(&self.actions).clone()
    }

    fn roll(&self, below: u32) -> u32 {
        lock(&self.rng).random_range(0..below)
    }

    fn number(&self) -> u64 {
        let mut next = lock(&self.next_number);
        *next += 1;
        *next
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // One thread runs the simulation; a panic there ends the run anyway.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The office's software: act while the run is active, then stop.
pub async fn work(office: Arc<Office>, shared: Arc<Shared>) -> turmoil::Result {
    let desk = Desk {
        office: &office,
        shared: &shared,
        client: HttpClient::new(shared.scenario.request_timeout),
    };
    loop {
        if shared.phase() == Phase::Active {
            desk.act().await;
            let pause = 1_000 + u64::from(office.roll(9_000));
            tokio::time::sleep(Duration::from_millis(pause)).await;
        } else {
            // Sequential: nothing of the office is in flight here.
            shared.stop_office();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

struct Desk<'a> {
    office: &'a Office,
    shared: &'a Shared,
    client: HttpClient,
}

impl Desk<'_> {
    /// One look at the estate's tickets and, mostly, one action on one of them.
    async fn act(&self) {
        let Ok(page) = self
            .call::<(), TicketPage>(
                estate::DISPATCHER,
                Method::GET,
                "/api/v1/tickets?limit=500",
                None,
            )
            .await
        else {
            return;
        };
        for ticket in &page.tickets {
            self.shared
                .journal
                .saw_version(OFFICE, &ticket.id, ticket.version);
        }
        let open = |statuses: &[Status]| -> Vec<&Ticket> {
            page.tickets
                .iter()
                .filter(|ticket| statuses.contains(&ticket.status))
                .collect()
        };
        let roll = self.office.roll(100);
        let number = self.office.number();
        let working = [Status::Dispatched, Status::InProgress];
        if roll < 30 {
            if let Some(ticket) = self.pick(&open(&working)) {
                let technician = self.other_technician(ticket);
                let reason = format!("调整 rebalancing, office action {number}");
                let op = OfficeOp::Reassign {
                    technician,
                    reason: reason.clone(),
                };
                let marker = Marker::Reassignment {
                    ticket: ticket.id.clone(),
                    reason,
                };
                self.office_action(ticket, op, Some(marker)).await;
            }
        } else if roll < 50 {
            let movable = [Status::Received, Status::Dispatched, Status::InProgress];
            if let Some(ticket) = self.pick(&open(&movable)) {
                // Some in the past: the scheduler then records R-P1 missed.
                let minutes = i64::from(self.office.roll(110)) - 50;
                let at = self.shared.clock.now() + chrono::Duration::minutes(minutes);
                let note = format!("业主改约 the owner moved it, office action {number}");
                self.office_action(ticket, OfficeOp::SetAppointment { at, note }, None)
                    .await;
            }
        } else if roll < 70 {
            if let Some(ticket) = self.pick(&page.tickets.iter().collect::<Vec<_>>()) {
                let text = format!("业主来电 the owner called, office action {number}");
                let marker = Marker::OfficeNote {
                    ticket: ticket.id.clone(),
                    text: text.clone(),
                };
                self.office_action(ticket, OfficeOp::AddNote { text }, Some(marker))
                    .await;
            }
        } else if roll < 82 {
            self.take_report(number).await;
        } else if roll < 92 {
            if let Some(ticket) = self.pick(&open(&[Status::Completed])) {
                self.office_action(ticket, OfficeOp::Close {}, None).await;
            }
        } else if roll < 96
            && let Some(ticket) = self.pick(&open(&working))
        {
            let reason = format!("业主撤单 the owner withdrew it, office action {number}");
            let marker = Marker::Cancellation {
                ticket: ticket.id.clone(),
                reason: reason.clone(),
            };
            self.office_action(ticket, OfficeOp::Cancel { reason }, Some(marker))
                .await;
        }
    }

    /// R-I2 intake by the agent, then R-D1 dispatch by the dispatcher.
    async fn take_report(&self, number: u64) {
        let intake = estate::report(1000 + number, self.shared.clock.now());
        let marker = Marker::Report {
            description: intake.description.clone(),
        };
        let created = self
            .call::<_, Ticket>(
                estate::AGENT,
                Method::POST,
                "/api/v1/tickets",
                Some(&intake),
            )
            .await;
        let answered = self.answered(&created, "takes a report");
        self.remember(Some(marker), answered);
        if let Ok(ticket) = created {
            let technician = estate::technician(self.office.roll(self.technicians()) as usize);
            self.office_action(&ticket, OfficeOp::Dispatch { technician }, None)
                .await;
        }
    }

    async fn office_action(&self, ticket: &Ticket, op: OfficeOp, marker: Option<Marker>) {
        let request = OfficeActionRequest {
            expected_version: Some(ticket.version),
            op,
        };
        let path = format!("/api/v1/tickets/{}/actions", ticket.id);
        let answer = self
            .call::<_, Ticket>(estate::DISPATCHER, Method::POST, &path, Some(&request))
            .await;
        if let Ok(next) = &answer {
            self.shared
                .journal
                .saw_version(OFFICE, &next.id, next.version);
        }
        let what = format!("{} on {}", op_name(&request.op), ticket.id);
        let answered = self.answered(&answer, &what);
        self.remember(marker, answered);
    }

    fn answered<T>(&self, answer: &Result<T, TransportError>, what: &str) -> Answered {
        self.shared
            .journal
            .count(|counts| counts.office_actions += 1);
        let answered = match answer {
            Ok(_) => Answered::Applied,
            Err(TransportError::Refused { body, .. }) => Answered::Refused(body.code.clone()),
            Err(_) => Answered::Unknown,
        };
        self.shared
            .journal
            .note(OFFICE, format_args!("{what}: {answered:?}"));
        answered
    }

    fn remember(&self, marker: Option<Marker>, answered: Answered) {
        if let Some(marker) = marker {
            lock(&self.office.actions).push((marker, answered));
        }
    }

    fn pick<'t>(&self, tickets: &[&'t Ticket]) -> Option<&'t Ticket> {
        if tickets.is_empty() {
            return None;
        }
        Some(tickets[self.office.roll(tickets.len() as u32) as usize])
    }

    fn technicians(&self) -> u32 {
        self.shared.scenario.technicians as u32
    }

    fn other_technician(&self, ticket: &Ticket) -> UserId {
        let count = self.technicians();
        let shift = 1 + self.office.roll(count.saturating_sub(1).max(1));
        let current = ticket
            .assigned_technician
            .as_ref()
            .and_then(|user| user.as_str().strip_prefix("tech"))
            .and_then(|index| index.parse::<u32>().ok())
            .unwrap_or(0);
        estate::technician(((current + shift) % count) as usize)
    }

    /// A call as `user`, logging in first when the office has no token.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, TransportError> {
        let token = self.token(user).await?;
        let body = body.map(|body| serde_json::to_vec(body).expect("wire types serialize"));
        let answer = self.send(method, path, Some(&token), body).await;
        if let Err(TransportError::Refused { status: 401, .. }) = &answer {
            lock(&self.office.tokens).remove(user);
        }
        answer
    }

    async fn token(&self, user: &str) -> Result<String, TransportError> {
        if let Some(token) = lock(&self.office.tokens).get(user) {
            return Ok(token.clone());
        }
        let login = LoginRequest {
            username: user.to_owned(),
            password: estate::PASSWORD.to_owned(),
            device_id: None,
        };
        let body = serde_json::to_vec(&login).expect("wire types serialize");
        let session: LoginResponse = self
            .send(Method::POST, "/api/v1/auth/login", None, Some(body))
            .await?;
        lock(&self.office.tokens).insert(user.to_owned(), session.token.clone());
        Ok(session.token)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<T, TransportError> {
        let mut headers = vec![(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())];
        if body.is_some() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        if let Some(token) = token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let answer = self
            .client
            .send(method, path, &headers, body.unwrap_or_default())
            .await
            .map_err(TransportError::NoAnswer)?;
        read_answer(answer.status, answer.protocol.as_deref(), &answer.body)
    }
}

fn op_name(op: &OfficeOp) -> &'static str {
    match op {
        OfficeOp::Dispatch { .. } => "dispatch",
        OfficeOp::Reassign { .. } => "reassign",
        OfficeOp::SetAppointment { .. } => "set appointment",
        OfficeOp::Cancel { .. } => "cancel",
        OfficeOp::AddNote { .. } => "office note",
        OfficeOp::Close {} => "close",
        OfficeOp::SignOff { .. } => "sign off",
        OfficeOp::Convert { .. } => "convert",
        OfficeOp::RecordFollowUp { .. } => "follow-up",
        OfficeOp::Track { .. } => "track",
        OfficeOp::RescheduleBooking { .. } => "reschedule booking",
    }
}
