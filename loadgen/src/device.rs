//! One simulated handheld: it pulls its technician's tickets, records a
//! morning's work offline, then uploads its signatures and pushes its outbox.
//!
//! Request bodies are prepared before the push phase (a handheld keeps its
//! outbox serialized on disk) and responses to pulls are parsed after the
//! pull phase, so that the load generator, which shares the machine with the
//! server, spends as little CPU as it can inside the measured phases.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sync_protocol::{
    Change, Charge, CompletionRecord, Cursor, DeviceId, DeviceMutation, DeviceOp, DeviceReport,
    DeviceSeq, Material, Outcome, PROTOCOL_HEADER, PROTOCOL_VERSION, PullRequest, PullResponse,
    PushRequest, PushResponse, Sha256Hex, Ticket, TicketId, UserId, Version,
};

/// Mutations recorded per ticket: arrival, two notes, the result, the signature.
pub const MUTATIONS_PER_TICKET: usize = 5;
/// Size of a signature image.
pub const SIGNATURE_BYTES: usize = 4096;
/// Size of a processing note.
pub const NOTE_BYTES: usize = 200;
/// Most pages one pull phase follows before it gives up (bounded loops).
const MAX_PULL_PAGES: usize = 100;

pub struct Device {
    pub index: usize,
    pub technician: UserId,
    pub device_id: DeviceId,
    token: String,
    client: reqwest::Client,
    base_url: String,
}

/// A pull's raw pages, kept unparsed until the pull phase is over.
pub struct RawPull {
    pub pages: Vec<Vec<u8>>,
    pub latencies: Vec<Duration>,
}

/// What a device knows after its pull.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub tickets: Vec<(TicketId, Version)>,
    pub cursor: Cursor,
}

/// One push request ready to send, with the signature images it needs.
pub struct PreparedPush {
    pub body: Vec<u8>,
    pub blobs: Vec<(Sha256Hex, Vec<u8>)>,
    pub n_mutations: usize,
    pub last_seq: DeviceSeq,
}

/// A device's outbox after the offline morning, split into pushes.
pub struct Outbox {
    pub pushes: Vec<PreparedPush>,
    /// Every ticket and the state the device expects the server to reach.
    pub expected: Vec<ExpectedTicket>,
}

#[derive(Clone, Debug)]
pub struct ExpectedTicket {
    pub ticket_id: TicketId,
    pub version: Version,
    pub signature_blob: Sha256Hex,
    pub signed_record: Sha256Hex,
}

/// How a device's pushes went.
#[derive(Clone, Debug, Default)]
pub struct PushTally {
    pub push_latencies: Vec<Duration>,
    pub blob_latencies: Vec<Duration>,
    pub applied: usize,
    pub late: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub missing_blobs: usize,
    pub blobs_stored: usize,
    pub errors: Vec<String>,
}

/// When a technician's offline morning starts, and the time between two
/// of its steps (five per ticket).
#[derive(Clone, Copy, Debug)]
pub struct Morning {
    pub starts_at: DateTime<Utc>,
    pub step: chrono::Duration,
}

/// The cheap part of a pull page the device needs to follow the pages.
#[derive(Deserialize)]
struct PageHead {
    next_cursor: Cursor,
    has_more: bool,
}

impl Device {
    pub fn new(
        index: usize,
        technician: UserId,
        token: String,
        client: reqwest::Client,
        base_url: String,
    ) -> Self {
        let device_id =
            DeviceId::parse(&format!("hh-{index:05}")).expect("generated device ids are valid");
        Self {
            index,
            technician,
            device_id,
            token,
            client,
            base_url,
        }
    }

    fn report(&self, outbox_depth: u32, device_time: DateTime<Utc>) -> DeviceReport {
        DeviceReport {
            device_id: self.device_id.clone(),
            app_version: "loadgen-field-day/1".to_owned(),
            outbox_depth,
            oldest_pending_age_ms: None,
            device_time,
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
    }

    /// Open the connection before a measured phase (a handheld keeps one).
    pub async fn connect(&self) -> Result<(), String> {
        let response = self
            .client
            .get(format!("{}/healthz", self.base_url))
            .send()
            .await
            .map_err(|error| format!("health check: {error}"))?;
        expect_success(response, "health check").await.map(|_| ())
    }

    /// Pull everything from `cursor` with pages of `limit`; each page's time
    /// runs from sending the request to having the whole body.
    pub async fn pull_raw(&self, cursor: Cursor, limit: u32) -> Result<RawPull, String> {
        let mut cursor = cursor;
        let mut raw = RawPull {
            pages: Vec::new(),
            latencies: Vec::new(),
        };
        for _ in 0..MAX_PULL_PAGES {
            let request = PullRequest {
                protocol_version: PROTOCOL_VERSION,
                device: self.report(0, Utc::now()),
                cursor,
                limit: Some(limit),
            };
            let body = serde_json::to_vec(&request).expect("a pull request serializes");
            let started = Instant::now();
            let response = self
                .post("/api/v1/sync/pull")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|error| format!("pull: {error}"))?;
            let page = expect_success(response, "pull").await?;
            raw.latencies.push(started.elapsed());
            let head: PageHead = serde_json::from_slice(&page)
                .map_err(|error| format!("pull: unreadable page: {error}"))?;
            raw.pages.push(page);
            if !head.has_more {
                return Ok(raw);
            }
            cursor = head.next_cursor;
        }
        Err(format!("pull: more than {MAX_PULL_PAGES} pages"))
    }

    /// Read a pull's pages the way a handheld applies them.
    pub fn apply_pull(&self, raw: &RawPull) -> Result<Pulled, String> {
        let mut tickets: Vec<(TicketId, Version)> = Vec::new();
        let mut cursor = Cursor(0);
        for page in &raw.pages {
            let response: PullResponse = serde_json::from_slice(page)
                .map_err(|error| format!("pull: the page does not parse: {error}"))?;
            for change in response.changes {
                match change {
                    Change::Upsert { ticket, .. } => {
                        if ticket.assigned_technician.as_ref() != Some(&self.technician) {
                            return Err(format!("pull: got {} of someone else", ticket.id));
                        }
                        tickets.retain(|(id, _)| id != &ticket.id);
                        tickets.push((ticket.id.clone(), ticket.version));
                    }
                    Change::Revoked { ticket_id, .. } => {
                        tickets.retain(|(id, _)| id != &ticket_id);
                    }
                }
            }
            cursor = response.next_cursor;
        }
        tickets.sort();
        Ok(Pulled { tickets, cursor })
    }

    /// The technician's morning: on every ticket an arrival, two notes, the
    /// result and the owner's signature over it, recorded offline, then split
    /// into pushes of `batch` mutations.
    pub fn record_offline(&self, pulled: &Pulled, batch: usize, morning: Morning) -> Outbox {
        let mut mutations = Vec::new();
        let mut blobs = Vec::new();
        let mut expected = Vec::new();
        for (ticket_number, (ticket_id, version)) in pulled.tickets.iter().enumerate() {
            let arrived_at = morning.starts_at + morning.step * (5 * ticket_number as i32);
            let result = completion_record(ticket_id);
            let signed_record = result.record_hash();
            let image = signature_image(self.index, ticket_number);
            let blob = Sha256Hex::of(&image);
            let operations = [
                DeviceOp::RecordArrival { position: None },
                DeviceOp::AddNote {
                    text: note_text(ticket_id, 1),
                },
                DeviceOp::AddNote {
                    text: note_text(ticket_id, 2),
                },
                DeviceOp::Complete { result },
                DeviceOp::AttachSignature {
                    blob: blob.clone(),
                    signed_record: signed_record.clone(),
                    signer_name: "王女士".to_owned(),
                    rating: None,
                    strokes: None,
                },
            ];
            for (step, op) in operations.into_iter().enumerate() {
                mutations.push(DeviceMutation {
                    seq: DeviceSeq(mutations.len() as u64 + 1),
                    ticket_id: ticket_id.clone(),
                    // Offline: the device has seen nothing newer than its pull.
                    base_version: *version,
                    recorded_at: arrived_at + morning.step * step as i32,
                    op,
                });
            }
            blobs.push((blob.clone(), image));
            expected.push(ExpectedTicket {
                ticket_id: ticket_id.clone(),
                version: Version(version.0 + MUTATIONS_PER_TICKET as u64),
                signature_blob: blob,
                signed_record,
            });
        }

        let total = mutations.len();
        let mut pushes = Vec::new();
        let mut sent = 0;
        for chunk in mutations.chunks(batch) {
            // Upload a signature image before the push that refers to it.
            let needed: Vec<(Sha256Hex, Vec<u8>)> = chunk
                .iter()
                .filter_map(|mutation| match &mutation.op {
                    DeviceOp::AttachSignature { blob, .. } => blobs
                        .iter()
                        .find(|(hash, _)| hash == blob)
                        .map(|(hash, bytes)| (hash.clone(), bytes.clone())),
                    _ => None,
                })
                .collect();
            let request = PushRequest {
                protocol_version: PROTOCOL_VERSION,
                device: self.report((total - sent) as u32, Utc::now()),
                mutations: chunk.to_vec(),
            };
            sent += chunk.len();
            pushes.push(PreparedPush {
                body: serde_json::to_vec(&request).expect("a push request serializes"),
                blobs: needed,
                n_mutations: chunk.len(),
                last_seq: chunk.last().expect("chunks are not empty").seq,
            });
        }
        Outbox { pushes, expected }
    }

    /// Upload and push the whole outbox, one request at a time, as a
    /// handheld on one connection does. Stops at the first failure, since
    /// later pushes would leave a sequence gap.
    pub async fn push_outbox(&self, pushes: Vec<PreparedPush>) -> PushTally {
        let mut tally = PushTally::default();
        for push in pushes {
            if let Err(error) = self.push_one(push, &mut tally).await {
                tally.errors.push(format!("{}: {error}", self.device_id));
                break;
            }
        }
        tally
    }

    async fn push_one(&self, push: PreparedPush, tally: &mut PushTally) -> Result<(), String> {
        for (hash, bytes) in push.blobs {
            let started = Instant::now();
            let response = self
                .client
                .put(format!("{}/api/v1/blobs/{hash}", self.base_url))
                .bearer_auth(&self.token)
                .header("content-type", "application/octet-stream")
                .body(bytes)
                .send()
                .await
                .map_err(|error| format!("blob upload: {error}"))?;
            let body = expect_success(response, "blob upload").await?;
            tally.blob_latencies.push(started.elapsed());
            let receipt: sync_protocol::BlobReceipt = serde_json::from_slice(&body)
                .map_err(|error| format!("blob upload: unreadable receipt: {error}"))?;
            if receipt.sha256.as_str() != hash.as_str() {
                return Err(format!("blob upload: a receipt for {}", receipt.sha256));
            }
            tally.blobs_stored += 1;
        }

        let started = Instant::now();
        let response = self
            .post("/api/v1/sync/push")
            .header("content-type", "application/json")
            .body(push.body)
            .send()
            .await
            .map_err(|error| format!("push: {error}"))?;
        let body = expect_success(response, "push").await?;
        tally.push_latencies.push(started.elapsed());
        let answer: PushResponse = serde_json::from_slice(&body)
            .map_err(|error| format!("push: unreadable response: {error}"))?;
        if answer.outcomes.len() != push.n_mutations {
            return Err(format!(
                "push: {} outcomes for {} mutations",
                answer.outcomes.len(),
                push.n_mutations
            ));
        }
        for outcome in &answer.outcomes {
            match &outcome.outcome {
                Outcome::Applied(applied) if applied.late.is_none() => tally.applied += 1,
                Outcome::Applied(_) => tally.late += 1,
                Outcome::Duplicate { .. } => tally.duplicates += 1,
                Outcome::Rejected(rejection) => {
                    tally.rejected += 1;
                    if tally.errors.len() < 3 {
                        tally.errors.push(format!(
                            "{} seq {}: rejected {:?}: {}",
                            self.device_id, outcome.seq, rejection.code, rejection.reason
                        ));
                    }
                }
            }
        }
        tally.missing_blobs += answer.missing_blobs.len();
        if answer.last_seq != push.last_seq {
            return Err(format!(
                "push: the server is at seq {}, the device sent up to {}",
                answer.last_seq, push.last_seq
            ));
        }
        Ok(())
    }

    /// The ticket as the server has it now.
    pub async fn ticket(&self, id: &TicketId) -> Result<Ticket, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/tickets/{id}", self.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|error| format!("get ticket: {error}"))?;
        let body = expect_success(response, "get ticket").await?;
        serde_json::from_slice(&body).map_err(|error| format!("get ticket: {error}"))
    }
}

/// The body of a 2xx answer, or what went wrong.
pub async fn expect_success(response: reqwest::Response, what: &str) -> Result<Vec<u8>, String> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("{what}: reading the body: {error}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(format!(
            "{what}: HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    Ok(body.to_vec())
}

/// What was done, paid: the record the owner signs.
pub fn completion_record(ticket_id: &TicketId) -> CompletionRecord {
    CompletionRecord {
        work_done: format!(
            "更换厨房水管接头 replaced the kitchen pipe joint and tested for leaks ({ticket_id})"
        ),
        materials: vec![Material {
            name: "pipe joint DN20".to_owned(),
            quantity: "1".to_owned(),
        }],
        charge: Charge::Paid { fee_fen: 3500 },
    }
}

/// A processing note of exactly [`NOTE_BYTES`] bytes.
fn note_text(ticket_id: &TicketId, number: usize) -> String {
    let mut text = format!(
        "Note {number} on {ticket_id}: shut the riser valve, opened the cabinet under the sink, \
         found the compression joint corroded and weeping; owner agreed to the paid repair. "
    );
    while text.len() < NOTE_BYTES {
        text.push('.');
    }
    text.truncate(NOTE_BYTES);
    text
}

/// A signature image of [`SIGNATURE_BYTES`] pseudo-random bytes, different
/// for every device and ticket, so that every upload stores a new blob.
pub fn signature_image(device: usize, ticket_number: usize) -> Vec<u8> {
    let mut state =
        (device as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (ticket_number as u64 + 1);
    let mut image = Vec::with_capacity(SIGNATURE_BYTES);
    while image.len() < SIGNATURE_BYTES {
        // xorshift64*: cheap, deterministic, good enough to defeat compression.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        image.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    image.truncate(SIGNATURE_BYTES);
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_protocol::FactKind;

    fn morning() -> Morning {
        Morning {
            starts_at: Utc::now() - chrono::Duration::hours(8),
            step: chrono::Duration::minutes(2),
        }
    }

    fn device() -> Device {
        Device::new(
            3,
            UserId::parse("tech-00003").unwrap(),
            "token".to_owned(),
            reqwest::Client::new(),
            "http://127.0.0.1:1".to_owned(),
        )
    }

    fn pulled(n: usize) -> Pulled {
        Pulled {
            tickets: (0..n)
                .map(|i| (TicketId::parse(&format!("tk{i:08}")).unwrap(), Version(2)))
                .collect(),
            cursor: Cursor(7),
        }
    }

    #[test]
    fn the_outbox_holds_five_mutations_per_ticket_in_order_with_consecutive_seqs() {
        let outbox = device().record_offline(&pulled(3), 5, morning());
        assert_eq!(outbox.pushes.len(), 3);
        let mut seq = 0;
        for push in &outbox.pushes {
            let request: PushRequest = serde_json::from_slice(&push.body).unwrap();
            let kinds: Vec<FactKind> = request.mutations.iter().map(|m| m.op.fact_kind()).collect();
            assert_eq!(
                kinds,
                [
                    FactKind::Arrival,
                    FactKind::Note,
                    FactKind::Note,
                    FactKind::Result,
                    FactKind::Signature
                ]
            );
            for mutation in &request.mutations {
                seq += 1;
                assert_eq!(mutation.seq, DeviceSeq(seq));
            }
            assert_eq!(push.blobs.len(), 1);
            assert_eq!(push.blobs[0].1.len(), SIGNATURE_BYTES);
            assert_eq!(push.blobs[0].0, Sha256Hex::of(&push.blobs[0].1));
        }
    }

    #[test]
    fn the_signature_binds_to_the_hash_of_the_result_it_follows() {
        let outbox = device().record_offline(&pulled(1), 5, morning());
        let request: PushRequest = serde_json::from_slice(&outbox.pushes[0].body).unwrap();
        let DeviceOp::Complete { result } = &request.mutations[3].op else {
            panic!("the fourth mutation completes");
        };
        let DeviceOp::AttachSignature { signed_record, .. } = &request.mutations[4].op else {
            panic!("the fifth mutation signs");
        };
        assert_eq!(signed_record, &result.record_hash());
        assert_eq!(outbox.expected[0].version, Version(7));
    }

    #[test]
    fn larger_batches_carry_every_signature_image_they_refer_to() {
        let outbox = device().record_offline(&pulled(40), 50, morning());
        assert_eq!(outbox.pushes.len(), 4);
        assert_eq!(outbox.pushes[0].blobs.len(), 10);
        let mutations: usize = outbox.pushes.iter().map(|p| p.n_mutations).sum();
        assert_eq!(mutations, 200);
        let small = device().record_offline(&pulled(2), 3, morning());
        let blobs: Vec<usize> = small.pushes.iter().map(|p| p.blobs.len()).collect();
        assert_eq!(blobs, [0, 1, 0, 1]);
    }

    #[test]
    fn notes_are_two_hundred_bytes_and_images_differ() {
        let id = TicketId::parse("tk00000001").unwrap();
        assert_eq!(note_text(&id, 1).len(), NOTE_BYTES);
        assert_ne!(signature_image(0, 0), signature_image(0, 1));
        assert_ne!(signature_image(0, 0), signature_image(1, 0));
    }
}
