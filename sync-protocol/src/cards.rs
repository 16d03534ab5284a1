//! Ticket cards: what the office console's ticket list shows of each ticket,
//! and the search and filters it answers (`GET /api/v1/ticket-cards`).
//!
//! A card is a few hundred bytes kept beside each ticket, so that a search
//! over an estate's hundred thousand tickets reads cards, never tickets.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{TicketId, UserId};
use crate::serial::SerialNumber;
use crate::ticket::{Area, Category, HistoryEvent, Reporter, Source, Ticket, TicketKind};
use crate::workflow::Status;

/// Most characters of a search text.
pub const MAX_SEARCH_CHARS: usize = 64;

/// One line of the console's ticket list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketCard {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
    pub kind: TicketKind,
    pub category: Category,
    pub area: Area,
    pub source: Source,
    pub status: Status,
    pub location: String,
    pub reporter: Reporter,
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_technician: Option<UserId>,
    /// Deadlines the time rules recorded as missed (`deadline_missed` in
    /// the history): the list's "overdue" filter keeps open tickets with any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed_deadlines: u32,
    /// R-P5: the ticket was escalated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escalated: bool,
    pub updated_at: DateTime<Utc>,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl TicketCard {
    pub fn of(ticket: &Ticket) -> TicketCard {
        let missed = ticket
            .history
            .iter()
            .filter(|entry| matches!(entry.event, HistoryEvent::DeadlineMissed { .. }))
            .count();
        TicketCard {
            ticket_id: ticket.id.clone(),
            serial_number: ticket.serial_number.clone(),
            kind: ticket.kind,
            category: ticket.category,
            area: ticket.area,
            source: ticket.source,
            status: ticket.status,
            location: ticket.location.clone(),
            reporter: ticket.reporter.clone(),
            received_at: ticket.received_at,
            assigned_technician: ticket.assigned_technician.clone(),
            missed_deadlines: u32::try_from(missed).unwrap_or(u32::MAX),
            escalated: ticket
                .history
                .iter()
                .any(|entry| matches!(entry.event, HistoryEvent::Escalated { .. })),
            updated_at: ticket.updated_at,
        }
    }
}

/// Which statuses a list keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Not yet closed, cancelled or converted (completed ones included:
    /// they wait to be closed, R-C1, or signed off, R-C3).
    Open,
    /// Closed, cancelled or converted.
    Finished,
    Received,
    Dispatched,
    InProgress,
    Completed,
    Closed,
    Converted,
    Cancelled,
}

impl StatusFilter {
    fn keeps(self, status: Status) -> bool {
        match self {
            StatusFilter::Open => !is_finished(status),
            StatusFilter::Finished => is_finished(status),
            StatusFilter::Received => status == Status::Received,
            StatusFilter::Dispatched => status == Status::Dispatched,
            StatusFilter::InProgress => status == Status::InProgress,
            StatusFilter::Completed => status == Status::Completed,
            StatusFilter::Closed => status == Status::Closed,
            StatusFilter::Converted => status == Status::Converted,
            StatusFilter::Cancelled => status == Status::Cancelled,
        }
    }
}

/// Closed, cancelled or converted: nothing more is done on it but follow-ups.
fn is_finished(status: Status) -> bool {
    matches!(
        status,
        Status::Closed | Status::Converted | Status::Cancelled
    )
}

/// The order of a list: by receipt time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardOrder {
    #[default]
    Newest,
    Oldest,
}

/// What a ticket list keeps: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardFilter {
    /// Found in the serial number, the unit, the reporter's name or phone,
    /// in lower case.
    text: Option<String>,
    pub kind: Option<TicketKind>,
    pub status: Option<StatusFilter>,
    pub technician: Option<UserId>,
    /// Not finished, with a deadline recorded as missed.
    pub overdue: bool,
}

/// A search text that cannot be searched for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSearch {
    #[error("a search text has at most {MAX_SEARCH_CHARS} characters")]
    TooLong,
    #[error("a search text holds no control characters")]
    ControlCharacter,
}

/// A stored card that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("a stored ticket card does not decode: {0}")]
pub struct CardDecodeError(String);

impl CardFilter {
    /// Blank text searches for nothing in particular.
    pub fn with_text(mut self, text: &str) -> Result<CardFilter, InvalidSearch> {
        let text = text.trim();
        if text.chars().count() > MAX_SEARCH_CHARS {
            return Err(InvalidSearch::TooLong);
        }
        // The search line separates its fields with a control character.
        if text.chars().any(char::is_control) {
            return Err(InvalidSearch::ControlCharacter);
        }
        self.text = (!text.is_empty()).then(|| text.to_lowercase());
        Ok(self)
    }

    pub fn keeps(&self, card: &TicketCard) -> bool {
        self.keeps_line(search_line(card).as_bytes()) && self.keeps_fields(&CardFields::of(card))
    }

    /// Whether the filter keeps the card stored as `stored` ([`StoredCard`]),
    /// read as cheaply as it allows: a search looks at the search line
    /// only, and only the fields the other conditions read are decoded,
    /// borrowed from the bytes.
    pub fn keeps_stored(&self, stored: &[u8]) -> Result<bool, CardDecodeError> {
        let (line, json) = split_stored(stored)?;
        if !self.keeps_line(line) {
            return Ok(false);
        }
        if self.kind.is_none()
            && self.status.is_none()
            && self.technician.is_none()
            && !self.overdue
        {
            return Ok(true);
        }
        let fields: CardFields<'_> =
            serde_json::from_slice(json).map_err(|error| CardDecodeError(error.to_string()))?;
        Ok(self.keeps_fields(&fields))
    }

    fn keeps_line(&self, line: &[u8]) -> bool {
        self.text
            .as_deref()
            .is_none_or(|text| memchr::memmem::find(line, text.as_bytes()).is_some())
    }

    fn keeps_fields(&self, card: &CardFields<'_>) -> bool {
        self.kind.is_none_or(|kind| card.kind == kind)
            && self.status.is_none_or(|status| status.keeps(card.status))
            && self
                .technician
                .as_ref()
                .is_none_or(|user| card.assigned_technician.as_deref() == Some(user.as_str()))
            && (!self.overdue || (!is_finished(card.status) && card.missed_deadlines > 0))
    }
}

/// What the conditions other than the text read of a card, borrowed from
/// its stored bytes where they can be.
#[derive(Deserialize)]
struct CardFields<'a> {
    kind: TicketKind,
    status: Status,
    #[serde(borrow, default)]
    assigned_technician: Option<Cow<'a, str>>,
    #[serde(default)]
    missed_deadlines: u32,
}

impl<'a> CardFields<'a> {
    fn of(card: &'a TicketCard) -> Self {
        CardFields {
            kind: card.kind,
            status: card.status,
            assigned_technician: card
                .assigned_technician
                .as_ref()
                .map(|user| Cow::Borrowed(user.as_str())),
            missed_deadlines: card.missed_deadlines,
        }
    }
}

/// What a search looks in: the serial number, the unit, the reporter's
/// name and phone, each in lower case, apart by a control character (which
/// no search holds, so no match spans two fields).
fn search_line(card: &TicketCard) -> String {
    let serial = card.serial_number.as_ref().map(ToString::to_string);
    [
        serial.as_deref(),
        Some(card.location.as_str()),
        Some(card.reporter.name.as_str()),
        card.reporter.phone.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::to_lowercase)
    .collect::<Vec<_>>()
    .join("\u{1f}")
}

/// A card as the store keeps it: the length of its search line (4 bytes,
/// big-endian), the line, then the card's JSON.
pub struct StoredCard;

impl StoredCard {
    pub fn encode(card: &TicketCard) -> Vec<u8> {
        let line = search_line(card);
        let json = serde_json::to_vec(card).expect("a card always serializes");
        let length = u32::try_from(line.len()).expect("a search line is short");
        [&length.to_be_bytes()[..], line.as_bytes(), &json].concat()
    }

    pub fn decode(stored: &[u8]) -> Result<TicketCard, CardDecodeError> {
        let (_, json) = split_stored(stored)?;
        serde_json::from_slice(json).map_err(|error| CardDecodeError(error.to_string()))
    }
}

fn split_stored(stored: &[u8]) -> Result<(&[u8], &[u8]), CardDecodeError> {
    let malformed = || CardDecodeError("no search line".to_owned());
    let (length, rest) = stored.split_first_chunk::<4>().ok_or_else(malformed)?;
    let length = usize::try_from(u32::from_be_bytes(*length)).map_err(|_| malformed())?;
    (rest.len() >= length)
        .then(|| rest.split_at(length))
        .ok_or_else(malformed)
}

/// The answer of `GET /api/v1/ticket-cards`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketCardPage {
    pub cards: Vec<TicketCard>,
    /// Pass as `after` for the next page; absent when the list ends here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A unit (location) reported before, for the intake form's suggestions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownUnit {
    pub location: String,
    pub area: Area,
    /// Who reported from it last.
    pub reporter: Reporter,
    pub last_reported_at: DateTime<Utc>,
}

impl KnownUnit {
    pub fn of(ticket: &Ticket) -> KnownUnit {
        KnownUnit {
            location: ticket.location.clone(),
            area: ticket.area,
            reporter: ticket.reporter.clone(),
            last_reported_at: ticket.received_at,
        }
    }
}

/// The answer of `GET /api/v1/units`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownUnits {
    pub units: Vec<KnownUnit>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::office::tests as fixtures;

    fn card() -> TicketCard {
        TicketCard::of(&fixtures::dispatched_ticket("li"))
    }

    #[test]
    fn a_card_is_found_by_unit_reporter_phone_or_serial_whatever_the_case() {
        let card = card();
        let phone = card.reporter.phone.clone().unwrap_or_default();
        let serial = card
            .serial_number
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        for text in [
            card.location.as_str(),
            card.reporter.name.as_str(),
            phone.as_str(),
            &serial.to_lowercase(),
        ] {
            let filter = CardFilter::default().with_text(text).unwrap();
            assert!(filter.keeps(&card), "{text}");
            let stored = StoredCard::encode(&card);
            assert!(filter.keeps_stored(&stored).unwrap(), "{text}");
        }
        let filter = CardFilter::default().with_text("nothing like it").unwrap();
        assert!(!filter.keeps(&card));
        assert!(!filter.keeps_stored(&StoredCard::encode(&card)).unwrap());
        assert_eq!(
            StoredCard::decode(&StoredCard::encode(&card)).unwrap(),
            card
        );
        assert!(StoredCard::decode(b"\0\0\0\x09short").is_err());
    }

    #[test]
    fn filters_keep_only_what_they_name() {
        let card = card();
        let kept = |filter: CardFilter| filter.keeps(&card);
        assert!(kept(CardFilter {
            status: Some(StatusFilter::Open),
            ..CardFilter::default()
        }));
        assert!(!kept(CardFilter {
            status: Some(StatusFilter::Finished),
            ..CardFilter::default()
        }));
        assert!(kept(CardFilter {
            technician: Some(UserId::parse("li").unwrap()),
            ..CardFilter::default()
        }));
        assert!(!kept(CardFilter {
            technician: Some(UserId::parse("wang").unwrap()),
            ..CardFilter::default()
        }));
        assert!(!kept(CardFilter {
            kind: Some(TicketKind::CoordinationTicket),
            ..CardFilter::default()
        }));
        assert!(!kept(CardFilter {
            overdue: true,
            ..CardFilter::default()
        }));
        let mut completed = card.clone();
        completed.status = Status::Completed;
        let open = CardFilter {
            status: Some(StatusFilter::Open),
            ..CardFilter::default()
        };
        assert!(open.keeps(&completed), "completed waits to be closed");
        completed.status = Status::Cancelled;
        assert!(!open.keeps(&completed));
        let mut missed = card.clone();
        missed.missed_deadlines = 1;
        assert!(
            CardFilter {
                overdue: true,
                ..CardFilter::default()
            }
            .keeps(&missed)
        );
    }

    #[test]
    fn a_search_text_is_bounded() {
        let long = "3".repeat(MAX_SEARCH_CHARS + 1);
        assert_eq!(
            CardFilter::default().with_text(&long),
            Err(InvalidSearch::TooLong)
        );
        assert_eq!(
            CardFilter::default().with_text("a\u{1f}b"),
            Err(InvalidSearch::ControlCharacter)
        );
        assert_eq!(
            CardFilter::default().with_text("   "),
            Ok(CardFilter::default())
        );
    }

    proptest::proptest! {
        /// Reading the stored bytes keeps exactly the cards the filter keeps.
        #[test]
        fn the_stored_bytes_are_judged_as_the_card_is(
            name in "[a-zA-Z0-9 王李张师傅-]{1,12}",
            location in "[a-zA-Z0-9 -]{1,12}",
            start in 0usize..12,
            length in 1usize..6,
        ) {
            let mut card = card();
            card.reporter.name = name.clone();
            card.location = location;
            let chars: Vec<char> = name.chars().collect();
            let start = start.min(chars.len() - 1);
            let end = (start + length).min(chars.len());
            let text: String = chars[start..end].iter().collect();
            if let Ok(filter) = CardFilter::default().with_text(&text) {
                proptest::prop_assert!(filter.keeps(&card));
                proptest::prop_assert!(filter.keeps_stored(&StoredCard::encode(&card)).unwrap());
            }
        }

        /// Any text, found or not, with quotes, backslashes and capitals in
        /// the card and the search alike: the same verdict both ways.
        #[test]
        fn any_search_judges_the_stored_bytes_as_the_card(
            name in "[a-zA-ZÄÖ0-9 王李\"\\-]{1,12}",
            phone in proptest::option::of("[0-9 +-]{5,12}"),
            text in "[a-zäöA-ZÄÖ0-9 王李\"\\-]{1,6}",
            open in proptest::bool::ANY,
        ) {
            let mut card = card();
            card.reporter.name = name;
            card.reporter.phone = phone;
            let mut filter = CardFilter::default().with_text(&text).unwrap();
            if open {
                filter.status = Some(StatusFilter::Open);
            }
            let stored = StoredCard::encode(&card);
            proptest::prop_assert_eq!(filter.keeps_stored(&stored).unwrap(), filter.keeps(&card));
            // A search finds what the fields hold, in any case, and only that.
            let fields = [card.location.clone(), card.reporter.name.clone(), card.reporter.phone.clone().unwrap_or_default()];
            let in_fields = fields.iter().any(|field| field.to_lowercase().contains(&text.trim().to_lowercase()))
                || card.serial_number.as_ref().is_some_and(|serial| serial.to_string().to_lowercase().contains(&text.trim().to_lowercase()));
            if !open {
                proptest::prop_assert_eq!(filter.keeps(&card), in_fields || text.trim().is_empty());
            }
        }
    }
}
