//! The network half of [`Device`]: log in, and the sync loop of
//! docs/protocol.md §2: push the outbox in order, upload the signature
//! images, then pull the feed until it has no more.
//!
//! Nothing here renumbers a change to retry it. A push that gets no answer
//! (a timeout, a dropped connection, a 500 or a 503) ends the sync with its
//! changes still in the outbox, and the next sync sends the same changes
//! with the same numbers; what the server had processed comes back as
//! `duplicate` with its first answer.

use std::collections::BTreeSet;

use sync_protocol::{
    DeviceMutation, DeviceOp, DeviceSeq, ErrorBody, LoginRequest, MAX_MUTATIONS_PER_PUSH,
    MAX_PAGE_SIZE, PROTOCOL_VERSION, PullRequest, PushRequest, RefreshRequest, Role, Sha256Hex,
};

use crate::device::Device;
use crate::error::HandheldError;
use crate::outbox::{PUSH_LIMITS, next_batch_len, renumber_after_gap, renumber_after_reuse};
use crate::records::{OutcomeRecord, Session};
use crate::store::{Changes, meta};
use crate::transport::{Transport, TransportError};

/// Pages one sync pulls at most (of `MAX_PAGE_SIZE` changes each): far
/// more than a technician's tickets, and a bound on a feed that never ends.
const MAX_PAGES_PER_SYNC: usize = 1000;
/// Pushes one sync makes at most; each takes at least one change out of the outbox.
const MAX_PUSHES_PER_SYNC: usize = 1000;
/// An access token this close to its expiry is renewed before a sync.
const RENEW_AHEAD_SECONDS: i64 = 60;

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Every answer received, in the order the changes were sent.
    pub outcomes: Vec<OutcomeRecord>,
    pub pushes: usize,
    pub images_uploaded: usize,
    /// Images the server asked for that this device no longer has.
    pub images_unavailable: Vec<Sha256Hex>,
    pub pages: usize,
    pub tickets_updated: usize,
    pub tickets_revoked: usize,
    /// Changes given new numbers after a gap or a reuse (docs/protocol.md §2).
    pub renumbered: usize,
}

/// How a push phase ended.
enum PushEnd {
    /// The outbox is empty.
    Drained,
    /// `409 sequence_reused` at this number: renumber after a pull.
    SequenceReused(DeviceSeq),
}

impl Device {
    /// Log in as a technician and keep the token. The handheld belongs to
    /// the first technician who logs in on it (the server binds the device
    /// id to them); another one is refused.
    pub async fn login(
        &self,
        transport: &dyn Transport,
        username: &str,
        password: &str,
    ) -> Result<Session, HandheldError> {
        let request = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_id: Some(self.device_id().clone()),
        };
        let response = transport
            .login(&request)
            .await
            .map_err(|error| match error {
                TransportError::Refused { status: 401, .. } => HandheldError::InvalidCredentials,
                other => from_transport(other),
            })?;
        if response.role != Role::Technician {
            return Err(HandheldError::NotATechnician {
                user: response.user.to_string(),
            });
        }
        if let Some(owner) = self.owner()?
            && owner != response.user
        {
            return Err(HandheldError::DeviceOfAnotherUser {
                owner: owner.to_string(),
                user: response.user.to_string(),
            });
        }
        let session = Session::of(response);
        let mut changes = Changes::default();
        changes.put_meta(meta::OWNER, &session.user);
        changes.put_meta(meta::SESSION, &session);
        self.commit(changes)?;
        Ok(session)
    }

    /// One sync: push everything pending, then pull until the feed has no
    /// more. An access token that expired (or is about to) is renewed with
    /// the refresh token first, without the technician; only a refused
    /// refresh forgets the session (the technician logs in again), and the
    /// outbox stays as it is either way.
    pub async fn sync(&self, transport: &dyn Transport) -> Result<SyncSummary, HandheldError> {
        let mut session = self.session()?.ok_or(HandheldError::NotLoggedIn)?;
        if session.expires_at <= self.now() + chrono::Duration::seconds(RENEW_AHEAD_SECONDS) {
            session = self.renew(transport, &session).await?;
        }
        let mut summary = SyncSummary::default();
        let mut synced = self
            .sync_with(transport, &session.token, &mut summary)
            .await;
        if matches!(synced, Err(HandheldError::SessionExpired)) {
            // Refused before it expired by the clock: the server's clock, a
            // restart with a new signing key, or a changed account. Renew
            // once and go on where the sync stopped.
            session = self.renew(transport, &session).await?;
            synced = self
                .sync_with(transport, &session.token, &mut summary)
                .await;
        }
        match synced {
            Ok(()) => {
                let mut changes = Changes::default();
                changes.put_meta(meta::LAST_SYNC_AT, &self.now());
                self.commit(changes)?;
                Ok(summary)
            }
            Err(HandheldError::SessionExpired) => {
                self.forget_session()?;
                Err(HandheldError::SessionExpired)
            }
            Err(error) => Err(error),
        }
    }

    /// A new access token for the session's refresh token, stored before it
    /// is used. A refused refresh forgets the session; no answer keeps it.
    async fn renew(
        &self,
        transport: &dyn Transport,
        session: &Session,
    ) -> Result<Session, HandheldError> {
        let Some(refresh_token) = &session.refresh_token else {
            self.forget_session()?;
            return Err(HandheldError::SessionExpired);
        };
        let request = RefreshRequest {
            refresh_token: refresh_token.clone(),
            device_id: Some(self.device_id().clone()),
        };
        match transport.refresh(&request).await {
            Ok(response) => {
                let renewed = Session::of(response);
                let mut changes = Changes::default();
                changes.put_meta(meta::SESSION, &renewed);
                self.commit(changes)?;
                Ok(renewed)
            }
            Err(TransportError::Refused { status: 401, .. }) => {
                self.forget_session()?;
                Err(HandheldError::SessionExpired)
            }
            Err(other) => Err(from_transport(other)),
        }
    }

    fn forget_session(&self) -> Result<(), HandheldError> {
        let mut changes = Changes::default();
        changes.delete_meta(meta::SESSION);
        self.commit(changes)
    }

    async fn sync_with(
        &self,
        transport: &dyn Transport,
        token: &str,
        summary: &mut SyncSummary,
    ) -> Result<(), HandheldError> {
        match self.push_outbox(transport, token, summary).await {
            Ok(PushEnd::Drained) => self.pull_feed(transport, token, summary).await,
            Ok(PushEnd::SequenceReused(reused)) => {
                // The pull tells the last number the server processed.
                self.pull_feed(transport, token, summary).await?;
                let server_last_seq = self.server_last_seq()?;
                summary.renumbered += self.renumber(|pending| {
                    Ok(renumber_after_reuse(pending, reused, server_last_seq))
                })?;
                if let PushEnd::SequenceReused(again) =
                    self.push_outbox(transport, token, summary).await?
                {
                    return Err(HandheldError::ServerRefused {
                        code: "sequence_reused".to_owned(),
                        message: format!("seq {again} is still taken after renumbering"),
                    });
                }
                self.pull_feed(transport, token, summary).await
            }
            // A push that got no answer stays in the outbox for the next
            // sync; the pull may still get through (a large push timing out
            // on a weak uplink), and brings the office's changes, revocations
            // among them. The push's failure is what the sync reports,
            // unless the pull's needs someone to act (a refused token, a
            // storage fault).
            Err(push_error) if is_transient(&push_error) => {
                match self.pull_feed(transport, token, summary).await {
                    Err(pull_error) if !is_transient(&pull_error) => Err(pull_error),
                    _ => Err(push_error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Push the outbox oldest first, one batch at a time, each answered
    /// before the next is sent.
    async fn push_outbox(
        &self,
        transport: &dyn Transport,
        token: &str,
        summary: &mut SyncSummary,
    ) -> Result<PushEnd, HandheldError> {
        let mut renumbered_after_gap = false;
        for _ in 0..MAX_PUSHES_PER_SYNC {
            let head = self.store.outbox_head(MAX_MUTATIONS_PER_PUSH)?;
            if head.is_empty() {
                self.sweep_images(transport, token, summary).await?;
                return Ok(PushEnd::Drained);
            }
            let batch = &head[..next_batch_len(&head, PUSH_LIMITS)];
            // Images first, so that the server can close a signed ticket at once.
            self.upload_images_of(transport, token, batch, summary)
                .await?;
            let request = PushRequest {
                protocol_version: PROTOCOL_VERSION,
                device: self.report()?,
                mutations: batch.to_vec(),
            };
            match transport.push(token, &request).await {
                Ok(response) => {
                    summary.pushes += 1;
                    summary.outcomes.extend(self.settle(batch, &response)?);
                    self.upload_missing(transport, token, &response.missing_blobs, summary)
                        .await?;
                }
                Err(TransportError::Refused { status: 409, body })
                    if body.code == "sequence_gap" && !renumbered_after_gap =>
                {
                    let expected = detail_seq(&body, "expected_seq")?;
                    summary.renumbered +=
                        self.renumber(|pending| renumber_after_gap(pending, expected))?;
                    renumbered_after_gap = true;
                }
                Err(TransportError::Refused { status: 409, body })
                    if body.code == "sequence_reused" =>
                {
                    return Ok(PushEnd::SequenceReused(detail_seq(&body, "seq")?));
                }
                Err(error) => return Err(from_transport(error)),
            }
        }
        Err(HandheldError::BadAnswer {
            message: format!("the outbox did not drain in {MAX_PUSHES_PER_SYNC} pushes"),
        })
    }

    /// Upload the images the batch's signatures need that the server has
    /// not confirmed yet. An upload is idempotent by hash, so uploading
    /// again after an interruption is how it resumes.
    async fn upload_images_of(
        &self,
        transport: &dyn Transport,
        token: &str,
        batch: &[DeviceMutation],
        summary: &mut SyncSummary,
    ) -> Result<(), HandheldError> {
        let needed: BTreeSet<&Sha256Hex> = batch.iter().filter_map(image_of).collect();
        for hash in needed {
            if !self.store.is_uploaded(hash)? {
                self.upload_image(transport, token, hash, summary).await?;
            }
        }
        Ok(())
    }

    /// The server lists the images its tickets refer to and does not have;
    /// upload those this device holds, confirmed before or not.
    async fn upload_missing(
        &self,
        transport: &dyn Transport,
        token: &str,
        missing: &[Sha256Hex],
        summary: &mut SyncSummary,
    ) -> Result<(), HandheldError> {
        for hash in missing {
            self.upload_image(transport, token, hash, summary).await?;
        }
        Ok(())
    }

    /// Once the outbox is empty, an image no pending signature refers to is
    /// dropped from the device, after the server has confirmed it.
    async fn sweep_images(
        &self,
        transport: &dyn Transport,
        token: &str,
        summary: &mut SyncSummary,
    ) -> Result<(), HandheldError> {
        let referenced: BTreeSet<Sha256Hex> = self
            .pending()?
            .iter()
            .filter_map(image_of)
            .cloned()
            .collect();
        for hash in self.store.image_hashes()? {
            if referenced.contains(&hash) {
                continue;
            }
            if !self.store.is_uploaded(&hash)? {
                self.upload_image(transport, token, &hash, summary).await?;
            }
            let mut changes = Changes::default();
            changes.delete_image(&hash);
            self.commit(changes)?;
        }
        Ok(())
    }

    async fn upload_image(
        &self,
        transport: &dyn Transport,
        token: &str,
        hash: &Sha256Hex,
        summary: &mut SyncSummary,
    ) -> Result<(), HandheldError> {
        let Some(bytes) = self.store.image(hash)? else {
            summary.images_unavailable.push(hash.clone());
            return Ok(());
        };
        transport
            .put_blob(token, hash, &bytes)
            .await
            .map_err(from_transport)?;
        let mut changes = Changes::default();
        changes.mark_uploaded(hash);
        self.commit(changes)?;
        summary.images_uploaded += 1;
        Ok(())
    }

    /// Pull pages from the stored cursor until the feed has no more; each
    /// page is applied with its cursor in one durable write.
    async fn pull_feed(
        &self,
        transport: &dyn Transport,
        token: &str,
        summary: &mut SyncSummary,
    ) -> Result<(), HandheldError> {
        let mut restarted = false;
        for _ in 0..MAX_PAGES_PER_SYNC {
            let request = PullRequest {
                protocol_version: PROTOCOL_VERSION,
                device: self.report()?,
                cursor: self.cursor()?,
                limit: Some(MAX_PAGE_SIZE),
            };
            match transport.pull(token, &request).await {
                Ok(page) => {
                    let has_more = page.has_more;
                    let applied = self.apply_page(page)?;
                    summary.pages += 1;
                    summary.tickets_updated += applied.tickets_updated;
                    summary.tickets_revoked += applied.tickets_revoked;
                    if !has_more {
                        return Ok(());
                    }
                }
                // The server's feed is behind the stored cursor (restored
                // from a backup): start over from 0, once.
                Err(TransportError::Refused { status: 409, body })
                    if body.code == "cursor_ahead" && !restarted =>
                {
                    restarted = true;
                    let mut changes = Changes::default();
                    changes.delete_meta(meta::CURSOR);
                    self.commit(changes)?;
                }
                Err(error) => return Err(from_transport(error)),
            }
        }
        Err(HandheldError::BadAnswer {
            message: format!("the feed did not end within {MAX_PAGES_PER_SYNC} pages"),
        })
    }
}

fn image_of(mutation: &DeviceMutation) -> Option<&Sha256Hex> {
    match &mutation.op {
        DeviceOp::AttachSignature { blob, .. } => Some(blob),
        _ => None,
    }
}

/// A sequence number in an error's `details`.
fn detail_seq(body: &ErrorBody, name: &str) -> Result<DeviceSeq, HandheldError> {
    body.details
        .as_ref()
        .and_then(|details| details.get(name))
        .and_then(serde_json::Value::as_u64)
        .map(DeviceSeq)
        .ok_or_else(|| HandheldError::BadAnswer {
            message: format!("{} without details.{name}", body.code),
        })
}

/// Whether the failure may pass by itself: no answer, or a server that
/// could not answer now. Anything else (a refused token, another protocol)
/// needs someone to act.
fn is_transient(error: &HandheldError) -> bool {
    matches!(
        error,
        HandheldError::Offline { .. }
            | HandheldError::ServerUnavailable { .. }
            | HandheldError::BadAnswer { .. }
    )
}

/// What a failed call means for the technician.
fn from_transport(error: TransportError) -> HandheldError {
    match error {
        TransportError::NoAnswer(message) => HandheldError::Offline { message },
        TransportError::ProtocolMismatch(version) => HandheldError::ProtocolMismatch {
            message: format!(
                "the server speaks protocol {version}, this handheld {PROTOCOL_VERSION}"
            ),
        },
        TransportError::BadAnswer(message) => HandheldError::BadAnswer { message },
        TransportError::Refused { status: 401, .. } => HandheldError::SessionExpired,
        // Overloaded or throttled: it passes by itself, like a 5xx.
        TransportError::Refused { status, body } if status >= 500 || status == 429 => {
            HandheldError::ServerUnavailable {
                code: body.code,
                message: body.message,
            }
        }
        TransportError::Refused { body, .. } if body.code == "unsupported_protocol" => {
            HandheldError::ProtocolMismatch {
                message: body.message,
            }
        }
        TransportError::Refused { body, .. } => HandheldError::ServerRefused {
            code: body.code,
            message: body.message,
        },
    }
}
