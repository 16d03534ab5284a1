//! What the office console reads beside the tickets: each ticket's card
//! (the list, its search and filters), the units reported before (the
//! intake form), and the office writes named by an `Idempotency-Key`.

use chrono::{DateTime, Utc};
use sync_protocol::{
    AnsweredRequest, CardFilter, CardOrder, EstateId, IdempotencyKey, KnownUnit, StoredCard,
    Ticket, TicketCard, UserId,
};

use super::kv::{Space, StoreError};
use super::{Changes, Store, decode, digest_key, key2};

/// Cards read from the store at a time while searching.
const CARD_SCAN_PAGE: usize = 1000;
/// Most cards one list request reads: a search that finds too little in
/// them answers what it found and where to go on (about 200 ms here).
pub const MAX_CARDS_READ: usize = 150_000;
/// The byte after `estate\0` in a card key (the order of `digest_key`).
const BY_RECEIPT: u8 = b'r';

/// Where a card list goes on: the card key after the estate, opaque to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardCursor(Vec<u8>);

impl CardCursor {
    /// A cursor this server gave (hex); `None` for anything else.
    pub fn parse(raw: &str) -> Option<CardCursor> {
        let bytes = hex_decode(raw)?;
        (bytes.len() > 9 && bytes[0] == BY_RECEIPT).then_some(CardCursor(bytes))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

fn hex_decode(raw: &str) -> Option<Vec<u8>> {
    if !raw.len().is_multiple_of(2) || raw.len() > 256 {
        return None;
    }
    (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(raw.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One page of a card list and where the next one starts.
pub struct CardPage {
    pub cards: Vec<TicketCard>,
    pub next: Option<CardCursor>,
}

impl Store {
    /// The estate's cards that `filter` keeps, in `order` of receipt, after
    /// `after`, at most `limit`. Reads cards only: a page of an unfiltered
    /// list reads that page; a search reads until the page is full, or
    /// [`MAX_CARDS_READ`] cards, and says where it stopped.
    pub fn ticket_cards(
        &self,
        estate: &EstateId,
        filter: &CardFilter,
        order: CardOrder,
        after: Option<&CardCursor>,
        limit: usize,
    ) -> Result<CardPage, StoreError> {
        let prefix = key2(estate.as_str(), "");
        let mut first = [prefix.as_slice(), &[BY_RECEIPT]].concat();
        let mut end = [prefix.as_slice(), &[BY_RECEIPT + 1]].concat();
        if let Some(CardCursor(rest)) = after {
            let key = [prefix.as_slice(), rest].concat();
            match order {
                // The 0 byte after the key makes the range start just past it.
                CardOrder::Oldest => first = [key.as_slice(), &[0]].concat(),
                CardOrder::Newest => end = key,
            }
        }
        let mut cards = Vec::new();
        let mut read = 0;
        loop {
            let page = match order {
                CardOrder::Oldest => {
                    self.kv
                        .range(Space::TicketCards, &first, &end, CARD_SCAN_PAGE)?
                }
                CardOrder::Newest => {
                    self.kv
                        .range_back(Space::TicketCards, &first, &end, CARD_SCAN_PAGE)?
                }
            };
            let full = page.len() == CARD_SCAN_PAGE;
            read += page.len();
            for (key, value) in &page {
                let kept = filter
                    .keeps_stored(value)
                    .map_err(|error| corrupt(error.to_string()))?;
                if kept {
                    let card =
                        StoredCard::decode(value).map_err(|error| corrupt(error.to_string()))?;
                    cards.push(card);
                    if cards.len() == limit {
                        let next = CardCursor(key[prefix.len()..].to_vec());
                        return Ok(CardPage {
                            cards,
                            next: Some(next),
                        });
                    }
                }
            }
            match page.last() {
                // Read as much as one request may: the page may be short,
                // and the list goes on from here.
                Some((key, _)) if full && read >= MAX_CARDS_READ => {
                    let next = CardCursor(key[prefix.len()..].to_vec());
                    return Ok(CardPage {
                        cards,
                        next: Some(next),
                    });
                }
                Some((key, _)) if full => match order {
                    CardOrder::Oldest => first = [key.as_slice(), &[0]].concat(),
                    CardOrder::Newest => end = key.clone(),
                },
                _ => return Ok(CardPage { cards, next: None }),
            }
        }
    }

    /// Units of the estate whose name starts with `prefix` (any case), at
    /// most `limit`, in name order.
    pub fn known_units(
        &self,
        estate: &EstateId,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KnownUnit>, StoreError> {
        let from = unit_key(estate, prefix);
        // 0xFF never occurs in UTF-8: every name with the prefix sorts below.
        let end = [from.as_slice(), &[0xFF]].concat();
        self.kv
            .range(Space::Units, &from, &end, limit)?
            .iter()
            .map(|(_, value)| decode(Space::Units, value))
            .collect()
    }

    /// A named office write the user made before, if any.
    pub fn answered_request(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<AnsweredRequest>, StoreError> {
        self.get_json(Space::OfficeRequests, &key2(user.as_str(), key.as_str()))
    }

    /// Stage the forgetting of at most `limit` named writes answered before
    /// `before`, the oldest first.
    pub fn forget_answered_before(
        &self,
        changes: &mut Changes,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<(), StoreError> {
        let end = time_key(before, b"");
        for (key, _) in self
            .kv
            .range(Space::OfficeRequestsByTime, &[], &end, limit)?
        {
            changes.delete(Space::OfficeRequests, key[8..].to_vec());
            changes.delete(Space::OfficeRequestsByTime, key);
        }
        Ok(())
    }
}

impl Changes {
    /// The ticket's card, under its receipt time (which never changes).
    pub(super) fn put_ticket_card(&mut self, ticket: &Ticket) {
        let key = digest_key(
            &ticket.estate,
            BY_RECEIPT,
            ticket.received_at,
            ticket.id.as_str(),
        );
        self.put(
            Space::TicketCards,
            key,
            StoredCard::encode(&TicketCard::of(ticket)),
        );
    }

    /// The ticket's unit, with its reporter as the latest one from there.
    pub(super) fn put_known_unit(&mut self, ticket: &Ticket) {
        let key = unit_key(&ticket.estate, &ticket.location);
        self.put_json(Space::Units, key, &KnownUnit::of(ticket));
    }

    pub fn put_answered_request(
        &mut self,
        user: &UserId,
        key: &IdempotencyKey,
        answered: &AnsweredRequest,
    ) {
        let key = key2(user.as_str(), key.as_str());
        self.put(
            Space::OfficeRequestsByTime,
            time_key(answered.at, &key),
            Vec::new(),
        );
        self.put_json(Space::OfficeRequests, key, answered);
    }
}

/// The time (microseconds since 1970, sign bit flipped, big-endian: keys
/// sort in time order) followed by `rest`.
fn time_key(at: DateTime<Utc>, rest: &[u8]) -> Vec<u8> {
    let sortable = at.timestamp_micros().cast_unsigned() ^ (1 << 63);
    [sortable.to_be_bytes().as_slice(), rest].concat()
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        space: Space::TicketCards,
        reason,
    }
}

fn unit_key(estate: &EstateId, location: &str) -> Vec<u8> {
    key2(estate.as_str(), &location.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_what_the_server_gave_and_nothing_else() {
        let cursor = CardCursor([b"r".as_slice(), &[1; 8], b"tk00000001"].concat());
        assert_eq!(CardCursor::parse(&cursor.to_hex()), Some(cursor));
        assert_eq!(CardCursor::parse("zz"), None);
        assert_eq!(CardCursor::parse("72"), None);
        assert_eq!(CardCursor::parse(&"a".repeat(300)), None);
    }
}
