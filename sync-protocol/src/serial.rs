//! R-A1 serial numbers: `{estate}-{WO|CT}-{yyyymm}-{nnnnn}`, e.g.
//! `E01-WO-202611-00042`.
//!
//! Work orders and coordination tickets are numbered per estate, per kind and
//! per month of the estate's local calendar, from 00001 with no gaps. This
//! module is the pure part: the types, their one text form, and which month a
//! moment belongs to. Handing numbers out (atomically, never reusing or
//! skipping one) is the server writer's job.
//!
//! A handheld never assigns a serial number. When a technician must write a
//! reference on paper while offline, the device uses a [`ProvisionalRef`],
//! which can never be mistaken for a serial number (docs/protocol.md,
//! "Serial numbers (R-A1)").

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::ids::{DeviceId, DeviceSeq, EstateId, MAX_ID_LEN, MutationId};
use crate::ticket::TicketKind;

/// The sequence part is zero-padded to this many digits; past 99999 it grows.
pub const MIN_SEQUENCE_DIGITS: usize = 5;

/// The kinds that carry a serial number (R-A1): a verbal dispatch (R-K1) has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SerialKind {
    /// `WO`: 派工单 (R-K2).
    WorkOrder,
    /// `CT`: 协调单 (R-K3).
    CoordinationTicket,
}

impl SerialKind {
    /// The series a ticket of this kind is numbered in, if any.
    pub fn of(kind: TicketKind) -> Option<Self> {
        match kind {
            TicketKind::VerbalDispatch => None,
            TicketKind::WorkOrder => Some(SerialKind::WorkOrder),
            TicketKind::CoordinationTicket => Some(SerialKind::CoordinationTicket),
        }
    }

    /// The two letters printed in the number.
    pub fn code(self) -> &'static str {
        match self {
            SerialKind::WorkOrder => "WO",
            SerialKind::CoordinationTicket => "CT",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "WO" => Some(SerialKind::WorkOrder),
            "CT" => Some(SerialKind::CoordinationTicket),
            _ => None,
        }
    }
}

/// A calendar month of the estate's local calendar, printed `yyyymm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SerialMonth {
    year: u16,
    month: u8,
}

impl SerialMonth {
    /// Years of four digits and months 1-12, or nothing.
    pub fn new(year: u16, month: u8) -> Option<Self> {
        ((1..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// The month a local calendar date lies in.
    ///
    /// # Panics
    ///
    /// When the year has more or fewer than four digits: no clock this
    /// server trusts is that far off.
    pub fn of_local_date(date: NaiveDate) -> Self {
        let year = u16::try_from(date.year())
            .ok()
            .and_then(|year| Self::new(year, date.month() as u8));
        year.unwrap_or_else(|| panic!("{date} lies outside the years 1-9999"))
    }

    /// The month of a moment as the estate's local calendar shows it.
    pub fn of_local_time(at: DateTime<FixedOffset>) -> Self {
        Self::of_local_date(at.date_naive())
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    fn parse(digits: &str) -> Option<Self> {
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = digits[..4].parse().ok()?;
        let month = digits[4..].parse().ok()?;
        Self::new(year, month)
    }
}

impl fmt::Display for SerialMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}", self.year, self.month)
    }
}

/// One run of numbers: an estate, a kind and a month, printed
/// `E01-WO-202611`. Each series counts from 1 on its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SerialSeries {
    pub estate: EstateId,
    pub kind: SerialKind,
    pub month: SerialMonth,
}

impl SerialSeries {
    pub fn new(estate: EstateId, kind: SerialKind, month: SerialMonth) -> Self {
        Self {
            estate,
            kind,
            month,
        }
    }

    /// The number at `sequence` (1, 2, 3, …) of this series.
    ///
    /// # Panics
    ///
    /// On 0: sequences start at 1, so 0 always means a counter bug.
    pub fn number(&self, sequence: u64) -> SerialNumber {
        assert!(sequence >= 1, "serial sequences start at 1");
        SerialNumber {
            series: self.clone(),
            sequence,
        }
    }
}

impl fmt::Display for SerialSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.estate, self.kind.code(), self.month)
    }
}

/// An R-A1 serial number. Ordered by series, then by sequence as a number,
/// so `…-99999` comes before `…-100000` although the text sorts the other way.
/// Every number has exactly one text form, so equal text means equal number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SerialNumber {
    series: SerialSeries,
    sequence: u64,
}

impl SerialNumber {
    /// Parse the canonical form: the estate id (which may itself contain
    /// `-`), `WO` or `CT`, six digits of year and month, and the sequence
    /// zero-padded to five digits, or more digits without a leading zero.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError::InvalidSerialNumber {
            value: raw.chars().take(MAX_ID_LEN * 2).collect(),
        };
        // The fixed parts are at the end, so split from the right.
        let mut parts = raw.rsplitn(4, '-');
        let sequence = parts.next().ok_or_else(invalid)?;
        let month = parts.next().ok_or_else(invalid)?;
        let kind = parts.next().ok_or_else(invalid)?;
        let estate = parts.next().ok_or_else(invalid)?;
        let sequence = parse_sequence(sequence).ok_or_else(invalid)?;
        let month = SerialMonth::parse(month).ok_or_else(invalid)?;
        let kind = SerialKind::from_code(kind).ok_or_else(invalid)?;
        let estate = EstateId::parse(estate).map_err(|_| invalid())?;
        Ok(SerialSeries::new(estate, kind, month).number(sequence))
    }

    pub fn series(&self) -> &SerialSeries {
        &self.series
    }

    /// The position in the series: 1 for the month's first ticket.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:0width$}",
            self.series,
            self.sequence,
            width = MIN_SEQUENCE_DIGITS
        )
    }
}

impl TryFrom<String> for SerialNumber {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<SerialNumber> for String {
    fn from(number: SerialNumber) -> String {
        number.to_string()
    }
}

/// The sequence in its one canonical form, or nothing.
fn parse_sequence(digits: &str) -> Option<u64> {
    let canonical_width = digits.len() == MIN_SEQUENCE_DIGITS || !digits.starts_with('0');
    if digits.len() < MIN_SEQUENCE_DIGITS
        || !canonical_width
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok().filter(|sequence| *sequence >= 1)
}

/// A reference a handheld can write on the paper form while offline, before
/// the ticket has its serial number: `{device_id}#{device_seq}`, e.g.
/// `hh-li-1#57`, the id of the device mutation that records the report.
///
/// It can never collide: device ids are unique and a device never reuses a
/// sequence number. And it can never be taken for a serial number, which
/// never contains `#`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProvisionalRef {
    pub device: DeviceId,
    pub seq: DeviceSeq,
}

impl ProvisionalRef {
    /// # Panics
    ///
    /// On sequence 0, which no device mutation has.
    pub fn new(device: DeviceId, seq: DeviceSeq) -> Self {
        assert!(seq.0 >= 1, "device sequence numbers start at 1");
        Self { device, seq }
    }

    /// Parse the canonical form: a device id, `#`, and the sequence number
    /// in decimal without leading zeros.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError::InvalidProvisionalRef {
            value: raw.chars().take(MAX_ID_LEN * 2).collect(),
        };
        let (device, seq) = raw.rsplit_once('#').ok_or_else(invalid)?;
        let canonical =
            !seq.is_empty() && !seq.starts_with('0') && seq.bytes().all(|b| b.is_ascii_digit());
        if !canonical {
            return Err(invalid());
        }
        let seq = seq.parse().map_err(|_| invalid())?;
        let device = DeviceId::parse(device).map_err(|_| invalid())?;
        Ok(Self::new(device, DeviceSeq(seq)))
    }

    /// The device mutation this reference names.
    pub fn mutation_id(&self) -> MutationId {
        MutationId::new(self.device.clone(), self.seq)
    }
}

impl fmt::Display for ProvisionalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.device, self.seq.0)
    }
}

impl TryFrom<String> for ProvisionalRef {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<ProvisionalRef> for String {
    fn from(reference: ProvisionalRef) -> String {
        reference.to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn shanghai() -> FixedOffset {
        FixedOffset::east_opt(8 * 60 * 60).unwrap()
    }

    fn series(estate: &str, kind: SerialKind, year: u16, month: u8) -> SerialSeries {
        SerialSeries::new(
            EstateId::parse(estate).unwrap(),
            kind,
            SerialMonth::new(year, month).unwrap(),
        )
    }

    #[test]
    fn r_a1_a_serial_number_prints_and_parses_in_its_one_form() {
        let number = series("E01", SerialKind::WorkOrder, 2026, 11).number(42);
        assert_eq!(number.to_string(), "E01-WO-202611-00042");
        assert_eq!(SerialNumber::parse("E01-WO-202611-00042").unwrap(), number);
        let coordination = series("E01", SerialKind::CoordinationTicket, 2027, 1).number(1);
        assert_eq!(coordination.to_string(), "E01-CT-202701-00001");
        // An estate id may contain `-` itself.
        let dashed = series("BJ-E07", SerialKind::WorkOrder, 2026, 3).number(7);
        assert_eq!(dashed.to_string(), "BJ-E07-WO-202603-00007");
        assert_eq!(SerialNumber::parse(&dashed.to_string()).unwrap(), dashed);
    }

    #[test]
    fn r_a1_a_serial_number_travels_as_a_json_string() {
        let number = SerialNumber::parse("E01-CT-202612-00003").unwrap();
        let json = serde_json::to_string(&number).unwrap();
        assert_eq!(json, "\"E01-CT-202612-00003\"");
        assert_eq!(serde_json::from_str::<SerialNumber>(&json).unwrap(), number);
        assert!(serde_json::from_str::<SerialNumber>("\"E01-CT-202612-3\"").is_err());
    }

    #[test]
    fn r_a1_a_number_that_is_not_canonical_is_refused() {
        for raw in [
            "",
            "E01",
            "E01-WO-202611",
            "E01-WO-202611-0042",    // too few digits
            "E01-WO-202611-000042",  // a second form of 42
            "E01-WO-202611-00000",   // sequences start at 1
            "E01-WO-202611-+0042",   // a sign
            "E01-VD-202611-00042",   // verbal dispatches have no number
            "E01-wo-202611-00042",   // codes are upper case
            "E01-WO-2026-00042",     // no month
            "E01-WO-202613-00042",   // no 13th month
            "E01-WO-202600-00042",   // no month 0
            "E01-WO-000011-00042",   // no year 0
            "E 01-WO-202611-00042",  // not an estate id
            "-WO-202611-00042",      // no estate
            "E01-WO-202611-00042-1", // trailing parts make an odd month
        ] {
            assert!(SerialNumber::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn r_a1_numbers_grow_past_99999_and_stay_in_order_and_unique() {
        let series = series("E01", SerialKind::WorkOrder, 2026, 11);
        let last_short = series.number(99_999);
        let first_long = series.number(100_000);
        assert_eq!(last_short.to_string(), "E01-WO-202611-99999");
        assert_eq!(first_long.to_string(), "E01-WO-202611-100000");
        assert_eq!(
            SerialNumber::parse("E01-WO-202611-100000").unwrap(),
            first_long
        );
        assert!(last_short < first_long, "ordered as numbers, not as text");
        // Parsing is the inverse of printing all around the change of width.
        let mut previous: Option<SerialNumber> = None;
        for sequence in (1..=12).chain(99_990..=100_010).chain([u64::MAX]) {
            let number = series.number(sequence);
            let text = number.to_string();
            assert_eq!(SerialNumber::parse(&text).unwrap(), number, "{text}");
            if let Some(previous) = previous {
                assert!(previous < number && previous.to_string() != text);
            }
            previous = Some(number);
        }
    }

    #[test]
    fn r_a1_numbers_order_by_estate_then_kind_then_month_then_sequence() {
        let november = series("E01", SerialKind::WorkOrder, 2026, 11);
        let december = series("E01", SerialKind::WorkOrder, 2026, 12);
        let coordination = series("E01", SerialKind::CoordinationTicket, 2026, 11);
        assert!(november.number(500) < december.number(1));
        assert!(december.number(500) < coordination.number(1));
        assert!(coordination.number(1) < series("E02", SerialKind::WorkOrder, 2026, 1).number(1));
    }

    #[test]
    fn r_a1_only_work_orders_and_coordination_tickets_are_numbered() {
        assert_eq!(SerialKind::of(TicketKind::VerbalDispatch), None);
        assert_eq!(
            SerialKind::of(TicketKind::WorkOrder),
            Some(SerialKind::WorkOrder)
        );
        assert_eq!(
            SerialKind::of(TicketKind::CoordinationTicket),
            Some(SerialKind::CoordinationTicket)
        );
    }

    #[test]
    fn r_a1_the_month_is_the_estates_local_month_at_plus_eight_hours() {
        let month = |at: DateTime<Utc>| {
            SerialMonth::of_local_time(at.with_timezone(&shanghai())).to_string()
        };
        // 2026-11-30T16:30Z is 00:30 on 1 December in Shanghai.
        assert_eq!(
            month(Utc.with_ymd_and_hms(2026, 11, 30, 16, 30, 0).unwrap()),
            "202612"
        );
        assert_eq!(
            month(Utc.with_ymd_and_hms(2026, 11, 30, 15, 59, 59).unwrap()),
            "202611"
        );
        assert_eq!(
            month(Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap()),
            "202612"
        );
        // New Year's Eve in UTC is already next year in Shanghai.
        assert_eq!(
            month(Utc.with_ymd_and_hms(2026, 12, 31, 20, 0, 0).unwrap()),
            "202701"
        );
        let local = shanghai().with_ymd_and_hms(2026, 12, 1, 0, 30, 0).unwrap();
        assert_eq!(SerialMonth::of_local_time(local).to_string(), "202612");
    }

    #[test]
    fn a_provisional_reference_round_trips_and_never_looks_like_a_serial_number() {
        let reference = ProvisionalRef::new(DeviceId::parse("hh-li-1").unwrap(), DeviceSeq(57));
        assert_eq!(reference.to_string(), "hh-li-1#57");
        assert_eq!(ProvisionalRef::parse("hh-li-1#57").unwrap(), reference);
        assert_eq!(reference.mutation_id().to_string(), "hh-li-1#57");
        let json = serde_json::to_string(&reference).unwrap();
        assert_eq!(
            serde_json::from_str::<ProvisionalRef>(&json).unwrap(),
            reference
        );
        // A device named like a serial series still cannot produce a serial number.
        let mimic = ProvisionalRef::new(
            DeviceId::parse("E01-WO-202611").unwrap(),
            DeviceSeq(100_000),
        );
        assert!(SerialNumber::parse(&mimic.to_string()).is_err());
        assert!(ProvisionalRef::parse("E01-WO-202611-00042").is_err());
        for raw in [
            "",
            "hh-li-1",
            "hh-li-1#",
            "hh-li-1#0",
            "hh-li-1#007",
            "hh-li-1#+7",
            "#7",
            "hh li#7",
        ] {
            assert!(ProvisionalRef::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
