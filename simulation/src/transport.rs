//! The handhelds' [`Transport`] in the simulation: each call as
//! `handheld::HttpCall` over [`HttpClient`], read back with
//! `handheld::read_answer`, exactly as the real transport does. On top:
//! the fault of an answer lost after the server processed the request, the
//! ticket versions the device is shown (for the journal), and the broken
//! variant's replays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use handheld::{
    HttpCall, HttpMethod, Transport, TransportError, TransportFuture, TransportResult, read_answer,
};
use hyper::Method;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use sync_protocol::{
    BlobReceipt, Change, DeviceSeq, LoginRequest, LoginResponse, Outcome, PullRequest,
    PullResponse, PushRequest, PushResponse, RefreshRequest, Sha256Hex,
};

use crate::http::HttpClient;
use crate::observe::Journal;
use crate::scenario::Variant;

/// Whether the faults are on; the driver turns them off to heal.
#[derive(Debug)]
pub struct FaultSwitch(AtomicBool);

impl FaultSwitch {
    pub fn on() -> Self {
        Self(AtomicBool::new(true))
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn turn_off(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// What a device's transport keeps across the device's restarts: its
/// randomness (so that a restart does not replay the same draws).
pub struct TransportDice(Mutex<ChaCha8Rng>);

impl TransportDice {
    pub fn new(rng: ChaCha8Rng) -> Self {
        Self(Mutex::new(rng))
    }

    fn chance(&self, probability: f64) -> bool {
        let mut rng = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        rng.random_bool(probability)
    }
}

pub struct SimTransport {
    /// The device's name in the journal.
    pub name: String,
    pub client: HttpClient,
    pub journal: Arc<Journal>,
    pub faults: Arc<FaultSwitch>,
    pub dice: Arc<TransportDice>,
    pub answer_loss: f64,
    pub variant: Variant,
}

impl SimTransport {
    async fn call<T: DeserializeOwned>(&self, call: HttpCall) -> TransportResult<T> {
        let method = match call.method {
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
        };
        let answer = self
            .client
            .send(method, &call.path, &call.headers, call.body)
            .await
            .map_err(TransportError::NoAnswer)?;
        if self.faults.is_on() && self.dice.chance(self.answer_loss) {
            self.journal.note(
                &self.name,
                format_args!("the answer to {} ({}) is lost", call.path, answer.status),
            );
            self.journal.count(|counts| counts.answers_lost += 1);
            return Err(TransportError::NoAnswer(
                "the connection dropped as the answer came back".to_owned(),
            ));
        }
        read_answer(answer.status, answer.protocol.as_deref(), &answer.body)
    }

    /// The broken variant: send `request` again under the numbers after
    /// `response.last_seq`, ignore that answer, and report no answer to the
    /// device, which will retry with the first numbers.
    async fn replay_renumbered(
        &self,
        token: &str,
        request: &PushRequest,
        response: &PushResponse,
    ) -> TransportError {
        let mut copy = request.clone();
        for (offset, mutation) in copy.mutations.iter_mut().enumerate() {
            mutation.seq = DeviceSeq(response.last_seq.0 + 1 + offset as u64);
        }
        let replayed = self
            .call::<PushResponse>(HttpCall::push(token, &copy))
            .await
            .is_ok();
        self.journal.note(
            &self.name,
            format_args!(
                "replays {} mutations under new numbers (answered: {replayed})",
                copy.mutations.len()
            ),
        );
        self.journal
            .count(|counts| counts.pushes_replayed_renumbered += 1);
        TransportError::NoAnswer("the broken client pretends the push went unanswered".to_owned())
    }

    fn saw_page(&self, page: &PullResponse) {
        for change in &page.changes {
            if let Change::Upsert { ticket, .. } = change {
                self.journal
                    .saw_version(&self.name, &ticket.id, ticket.version);
            }
        }
    }

    /// Each applied mutation's version in the order applied, then the
    /// versions after the whole push. A duplicate's version is the one of
    /// its first answer: history, not news.
    fn saw_push(&self, response: &PushResponse) {
        for outcome in &response.outcomes {
            if let Outcome::Applied(applied) = &outcome.outcome {
                self.journal
                    .saw_version(&self.name, &outcome.ticket_id, applied.ticket_version);
            }
        }
        for ticket in &response.ticket_versions {
            self.journal
                .saw_version(&self.name, &ticket.ticket_id, ticket.version);
        }
    }
}

/// Chance that the broken client replays a push it got an answer to.
const REPLAY_CHANCE: f64 = 0.3;

impl Transport for SimTransport {
    fn login<'a>(&'a self, request: &'a LoginRequest) -> TransportFuture<'a, LoginResponse> {
        Box::pin(self.call(HttpCall::login(request)))
    }

    fn refresh<'a>(&'a self, request: &'a RefreshRequest) -> TransportFuture<'a, LoginResponse> {
        Box::pin(self.call(HttpCall::refresh(request)))
    }

    fn pull<'a>(
        &'a self,
        token: &'a str,
        request: &'a PullRequest,
    ) -> TransportFuture<'a, PullResponse> {
        Box::pin(async move {
            let page: PullResponse = self.call(HttpCall::pull(token, request)).await?;
            self.saw_page(&page);
            Ok(page)
        })
    }

    fn push<'a>(
        &'a self,
        token: &'a str,
        request: &'a PushRequest,
    ) -> TransportFuture<'a, PushResponse> {
        Box::pin(async move {
            let response: PushResponse = self.call(HttpCall::push(token, request)).await?;
            self.saw_push(&response);
            if self.variant == Variant::ReplaysRenumbered
                && self.faults.is_on()
                && self.dice.chance(REPLAY_CHANCE)
            {
                return Err(self.replay_renumbered(token, request, &response).await);
            }
            Ok(response)
        })
    }

    fn put_blob<'a>(
        &'a self,
        token: &'a str,
        hash: &'a Sha256Hex,
        bytes: &'a [u8],
    ) -> TransportFuture<'a, BlobReceipt> {
        Box::pin(self.call(HttpCall::put_blob(token, hash, bytes)))
    }
}
