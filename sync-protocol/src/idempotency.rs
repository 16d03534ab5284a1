//! Office writes named by the client: a request sent again with the same
//! `Idempotency-Key` (a double click, a retry after a timeout) is answered
//! with what the first one did, and changes nothing more.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::ids::{Sha256Hex, TicketId};

/// The request header that names an office write.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The response header of an answer given before.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Most characters of a key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 64;
/// How long a named write is remembered: retries come within minutes; a
/// key sent again after this is a new write.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;

/// 1 to 64 characters of `A-Z a-z 0-9 - _ . :`, chosen by the client
/// (a UUID fits), unique among its writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_IDEMPOTENCY_KEY_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ParseError::InvalidIdempotencyKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A named office write: its key, and the digest of what it asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedRequest {
    pub key: IdempotencyKey,
    pub fingerprint: Sha256Hex,
}

impl NamedRequest {
    pub fn new(key: IdempotencyKey, body: &impl Serialize) -> Self {
        let bytes = serde_json::to_vec(body).expect("a request that was parsed serializes");
        Self {
            key,
            fingerprint: Sha256Hex::of(&bytes),
        }
    }
}

/// What the server keeps of a named write it applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnsweredRequest {
    pub fingerprint: Sha256Hex,
    /// The ticket the write made or changed.
    pub ticket_id: TicketId,
    pub at: DateTime<Utc>,
}

/// What to do with a named write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Never seen: apply it.
    Fresh,
    /// Applied before: answer with this ticket as it is now.
    Answered(TicketId),
    /// The key was used for another request: refuse.
    KeyReused,
}

impl Replay {
    pub fn of(request: &NamedRequest, answered: Option<&AnsweredRequest>) -> Replay {
        match answered {
            None => Replay::Fresh,
            Some(answered) if answered.fingerprint == request.fingerprint => {
                Replay::Answered(answered.ticket_id.clone())
            }
            Some(_) => Replay::KeyReused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_and_plain() {
        assert!(IdempotencyKey::parse("4f1c2a9e-0b7d-4c55-9a1e-3d2f6b8c7e10").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"a".repeat(65)).is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("键").is_err());
    }

    #[test]
    fn the_same_request_is_answered_and_another_one_under_its_key_refused() {
        let key = IdempotencyKey::parse("k1").unwrap();
        let first = NamedRequest::new(key.clone(), &serde_json::json!({ "a": 1 }));
        let ticket = TicketId::parse("tk00000001").unwrap();
        let answered = AnsweredRequest {
            fingerprint: first.fingerprint.clone(),
            ticket_id: ticket.clone(),
            at: DateTime::UNIX_EPOCH,
        };
        assert_eq!(Replay::of(&first, None), Replay::Fresh);
        assert_eq!(
            Replay::of(&first, Some(&answered)),
            Replay::Answered(ticket)
        );
        let other = NamedRequest::new(key, &serde_json::json!({ "a": 2 }));
        assert_eq!(Replay::of(&other, Some(&answered)), Replay::KeyReused);
    }
}
