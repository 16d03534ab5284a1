//! Ticket cards: what the office console's ticket list shows of each ticket,
//! and the search and filters it answers (`GET /api/v1/ticket-cards`).
//!
//! A card is a few hundred bytes kept beside each ticket, so that a search
//! over an estate's hundred thousand tickets reads cards, never tickets.

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
    /// Not yet closed, cancelled or converted.
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
            StatusFilter::Open => status.is_open(),
            StatusFilter::Finished => !status.is_open(),
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
    /// Found in the serial number, the unit, the reporter's name or phone
    /// (case does not matter for Latin letters).
    text: Option<String>,
    pub kind: Option<TicketKind>,
    pub status: Option<StatusFilter>,
    pub technician: Option<UserId>,
    /// Open, with a deadline recorded as missed.
    pub overdue: bool,
}

/// A search text that is too long.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a search text has at most {MAX_SEARCH_CHARS} characters")]
pub struct SearchTooLong;

impl CardFilter {
    /// Blank text searches for nothing in particular.
    pub fn with_text(mut self, text: &str) -> Result<CardFilter, SearchTooLong> {
        let text = text.trim();
        if text.chars().count() > MAX_SEARCH_CHARS {
            return Err(SearchTooLong);
        }
        self.text = (!text.is_empty()).then(|| text.to_lowercase());
        Ok(self)
    }

    pub fn keeps(&self, card: &TicketCard) -> bool {
        self.kind.is_none_or(|kind| card.kind == kind)
            && self.status.is_none_or(|status| status.keeps(card.status))
            && self
                .technician
                .as_ref()
                .is_none_or(|user| card.assigned_technician.as_ref() == Some(user))
            && (!self.overdue || (card.status.is_open() && card.missed_deadlines > 0))
            && self.text.as_deref().is_none_or(|text| mentions(card, text))
    }

    /// Whether the stored bytes of a card can hold a match: a cheap test
    /// that lets a search skip decoding most cards. Never false for a card
    /// the filter keeps (text found in a field is found in its JSON, which
    /// escapes none of the characters a search can hold but `"` and `\`).
    pub fn may_keep_encoded(&self, encoded: &[u8]) -> bool {
        match &self.text {
            Some(text) if !text.contains(['"', '\\']) && !text.chars().any(char::is_control) => {
                contains_folded(encoded, text)
            }
            _ => true,
        }
    }
}

fn mentions(card: &TicketCard, text: &str) -> bool {
    let serial = card.serial_number.as_ref().map(ToString::to_string);
    [
        serial.as_deref(),
        Some(card.location.as_str()),
        Some(card.reporter.name.as_str()),
        card.reporter.phone.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|field| field.to_lowercase().contains(text))
}

/// Whether `haystack` holds `needle` (already lower case), ignoring the
/// case of ASCII letters in `haystack`; true as well whenever `needle` has
/// a cased letter beyond ASCII, whose lower case is not byte-wise.
fn contains_folded(haystack: &[u8], needle: &str) -> bool {
    let beyond_ascii_case = needle
        .chars()
        .any(|c| !c.is_ascii() && (c.is_lowercase() || c.is_uppercase()));
    if beyond_ascii_case || needle.is_empty() {
        return true;
    }
    let needle = needle.as_bytes();
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
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
            let encoded = serde_json::to_vec(&card).unwrap();
            assert!(filter.may_keep_encoded(&encoded), "{text}");
        }
        let filter = CardFilter::default().with_text("nothing like it").unwrap();
        assert!(!filter.keeps(&card));
        assert!(!filter.may_keep_encoded(&serde_json::to_vec(&card).unwrap()));
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
        assert_eq!(CardFilter::default().with_text(&long), Err(SearchTooLong));
        assert_eq!(
            CardFilter::default().with_text("   "),
            Ok(CardFilter::default())
        );
    }

    proptest::proptest! {
        /// The cheap test on the stored bytes never drops a card that the
        /// filter keeps.
        #[test]
        fn the_encoded_test_never_drops_a_kept_card(
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
                let encoded = serde_json::to_vec(&card).unwrap();
                if filter.keeps(&card) {
                    proptest::prop_assert!(filter.may_keep_encoded(&encoded));
                }
            }
        }
    }
}
