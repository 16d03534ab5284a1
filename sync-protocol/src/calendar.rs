//! An estate's working calendar: its time zone, working hours, working
//! weekdays, public holidays and extra working days (调休). The time rules
//! (`time_rules.rs`) count "the same day" in the estate's local calendar and
//! "0.5 working day" (R-P3) in its working hours.
//!
//! Every function is pure: the instant to judge is always a parameter.
//!
//! Definitions used throughout:
//! - A *local day* is a calendar date in the estate's time zone, from local
//!   00:00 to the next local 00:00.
//! - A *working day* is a date that is an extra working day, or a working
//!   weekday that is not a public holiday.
//! - *Working time* is the half-open interval `[opens_at, closes_at)` of a
//!   working day: the shop opens at 08:30 and is closed at 17:30.
//! - There is one interval per day: a lunch break is working time, as it is on
//!   the paper forms' clock. Working hours never cross midnight.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Most public holidays, and most extra working days, one calendar may list:
/// ten years' worth of every day, far beyond any real holiday table.
pub const MAX_CALENDAR_DATES: usize = 3660;

/// The working hours of a working day, local time, minute precision
/// (`"08:30"`); `start` is before `end`, both on the same day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    #[serde(with = "hours_and_minutes")]
    pub start: NaiveTime,
    #[serde(with = "hours_and_minutes")]
    pub end: NaiveTime,
}

/// A working calendar as an estate configures it; parsed into a
/// [`WorkingCalendar`], which is what the rules use.
///
/// ```json
/// {
///   "time_zone": "Asia/Shanghai",
///   "working_hours": { "start": "08:30", "end": "17:30" },
///   "working_weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri"],
///   "public_holidays": ["2026-10-01", "2026-10-02"],
///   "extra_working_days": ["2026-10-10"]
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// An IANA time zone name, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    pub working_hours: WorkingHours,
    /// Defaults to Monday to Friday.
    #[serde(default = "monday_to_friday")]
    pub working_weekdays: Vec<Weekday>,
    /// Dates not worked although they fall on a working weekday.
    #[serde(default)]
    pub public_holidays: Vec<NaiveDate>,
    /// Dates worked although they fall on a non-working weekday (调休).
    #[serde(default)]
    pub extra_working_days: Vec<NaiveDate>,
}

/// Why a calendar configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("unknown time zone {0:?}: use an IANA name such as Asia/Shanghai (时区无效)")]
    UnknownTimeZone(String),
    #[error("working hours must start before they end, on the same day (工作时间无效)")]
    WorkingHoursEmpty,
    #[error("working hours are whole minutes, e.g. 08:30 (工作时间精确到分钟)")]
    WorkingHoursNotWholeMinutes,
    #[error("at least one weekday must be a working weekday (至少一个工作日)")]
    NoWorkingWeekday,
    #[error(
        "{0} is listed both as a public holiday and as an extra working day (节假日与调休冲突)"
    )]
    HolidayAndWorkingDay(NaiveDate),
    #[error(
        "at most {MAX_CALENDAR_DATES} public holidays and {MAX_CALENDAR_DATES} extra working days (日期过多)"
    )]
    TooManyDates,
}

/// A validated working calendar (see the module documentation for the
/// definitions). Serialized as its [`CalendarConfig`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarConfig", into = "CalendarConfig")]
pub struct WorkingCalendar {
    time_zone: Tz,
    working_hours: WorkingHours,
    /// Indexed by `Weekday::num_days_from_monday`.
    working_weekdays: [bool; 7],
    public_holidays: BTreeSet<NaiveDate>,
    extra_working_days: BTreeSet<NaiveDate>,
}

/// The working time of one working day, as instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpeningHours {
    pub opens_at: DateTime<Utc>,
    /// The first instant that is no longer working time.
    pub closes_at: DateTime<Utc>,
}

impl OpeningHours {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.opens_at <= at && at < self.closes_at
    }
}

impl WorkingCalendar {
    /// Parse a configuration: the time zone must be an IANA name, the working
    /// hours non-empty whole minutes, at least one weekday worked, and no date
    /// both a holiday and an extra working day.
    pub fn new(config: CalendarConfig) -> Result<Self, CalendarError> {
        let time_zone: Tz = config
            .time_zone
            .parse()
            .map_err(|_| CalendarError::UnknownTimeZone(config.time_zone.clone()))?;
        let WorkingHours { start, end } = config.working_hours;
        if start >= end {
            return Err(CalendarError::WorkingHoursEmpty);
        }
        let whole_minute = |time: NaiveTime| time.second() == 0 && time.nanosecond() == 0;
        if !whole_minute(start) || !whole_minute(end) {
            return Err(CalendarError::WorkingHoursNotWholeMinutes);
        }
        let mut working_weekdays = [false; 7];
        for weekday in config.working_weekdays {
            working_weekdays[weekday.num_days_from_monday() as usize] = true;
        }
        // With a working weekday and finitely many holidays, a next working
        // day always exists: the searches below rely on it.
        if !working_weekdays.contains(&true) {
            return Err(CalendarError::NoWorkingWeekday);
        }
        if config.public_holidays.len() > MAX_CALENDAR_DATES
            || config.extra_working_days.len() > MAX_CALENDAR_DATES
        {
            return Err(CalendarError::TooManyDates);
        }
        let public_holidays: BTreeSet<NaiveDate> = config.public_holidays.into_iter().collect();
        let extra_working_days: BTreeSet<NaiveDate> =
            config.extra_working_days.into_iter().collect();
        if let Some(date) = public_holidays.intersection(&extra_working_days).next() {
            return Err(CalendarError::HolidayAndWorkingDay(*date));
        }
        Ok(Self {
            time_zone,
            working_hours: config.working_hours,
            working_weekdays,
            public_holidays,
            extra_working_days,
        })
    }

    /// Asia/Shanghai, 08:30-17:30, Monday to Friday, no holidays: China's
    /// holidays and 调休 days are published every year, so estates list them.
    pub fn asia_shanghai() -> Self {
        Self::new(CalendarConfig {
            time_zone: "Asia/Shanghai".to_owned(),
            working_hours: WorkingHours {
                start: NaiveTime::from_hms_opt(8, 30, 0).expect("a valid time"),
                end: NaiveTime::from_hms_opt(17, 30, 0).expect("a valid time"),
            },
            working_weekdays: monday_to_friday(),
            public_holidays: Vec::new(),
            extra_working_days: Vec::new(),
        })
        .expect("the default calendar is valid")
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    pub fn working_hours(&self) -> WorkingHours {
        self.working_hours
    }

    /// The length of a working day by the clock on the wall (17:30 - 08:30 =
    /// 9 h): "0.5 working day" (R-P3) is half of it.
    pub fn working_day_duration(&self) -> Duration {
        self.working_hours.end - self.working_hours.start
    }

    /// An extra working day, or a working weekday that is not a holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.extra_working_days.contains(&date) {
            return true;
        }
        let weekday = date.weekday().num_days_from_monday() as usize;
        self.working_weekdays[weekday] && !self.public_holidays.contains(&date)
    }

    /// The working time of `date`, or `None` when it is not a working day.
    /// A date that does not exist locally (a time zone that skipped a whole
    /// day) has no working time.
    pub fn opening_hours(&self, date: NaiveDate) -> Option<OpeningHours> {
        if !self.is_working_day(date) {
            return None;
        }
        let opens_at = self.local_to_utc(date.and_time(self.working_hours.start));
        let closes_at = self.local_to_utc(date.and_time(self.working_hours.end));
        (self.local_date(opens_at) == date && opens_at < closes_at).then_some(OpeningHours {
            opens_at,
            closes_at,
        })
    }

    /// Whether `at` lies within the working hours of a working day.
    pub fn is_working_time(&self, at: DateTime<Utc>) -> bool {
        self.opening_hours(self.local_date(at))
            .is_some_and(|hours| hours.contains(at))
    }

    /// `at` itself when it is working time, otherwise the next opening.
    pub fn next_opening(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let mut date = self.local_date(at);
        for _ in 0..MAX_DAYS_TO_A_WORKING_DAY {
            if let Some(hours) = self.opening_hours(date)
                && at < hours.closes_at
            {
                return at.max(hours.opens_at);
            }
            date = date.succ_opt().expect("dates stay within chrono's range");
        }
        unreachable!(
            "a validated calendar has a working day within every {MAX_DAYS_TO_A_WORKING_DAY} days"
        )
    }

    /// The instant `duration` of working time after `start`, counting only
    /// working time. A start outside working time counts from the next
    /// opening (so a zero duration gives the next opening). When the duration
    /// runs out exactly at closing time the answer is that closing time: half
    /// a day from 13:00 is 17:30 the same day, not the next morning. So the
    /// result is always working time or a working day's closing instant.
    ///
    /// # Panics
    /// When `duration` is negative: rules only ever add.
    pub fn add_working_duration(&self, start: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
        assert!(
            duration >= Duration::zero(),
            "a working duration is never negative"
        );
        let mut cursor = self.next_opening(start);
        let mut remaining = duration;
        loop {
            let hours = self
                .opening_hours(self.local_date(cursor))
                .expect("next_opening lands in working time");
            let available = hours.closes_at - cursor;
            if remaining <= available {
                return cursor + remaining;
            }
            remaining -= available;
            cursor = self.next_opening(hours.closes_at);
        }
    }

    /// How much working time lies in `[from, to)`; zero when `to <= from`.
    pub fn working_duration_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if to <= from {
            return total;
        }
        let last = self.local_date(to);
        let mut date = self.local_date(from);
        while date <= last {
            if let Some(hours) = self.opening_hours(date) {
                let begin = from.max(hours.opens_at);
                let end = to.min(hours.closes_at);
                if begin < end {
                    total += end - begin;
                }
            }
            date = date.succ_opt().expect("dates stay within chrono's range");
        }
        total
    }

    /// `at` on the estate's wall clock.
    pub fn local_time(&self, at: DateTime<Utc>) -> DateTime<Tz> {
        at.with_timezone(&self.time_zone)
    }

    /// The estate's calendar date at `at`: 2026-11-27T23:30Z is 11-28 in Shanghai.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        self.local_time(at).date_naive()
    }

    /// Local 00:00 of `date` (or the first instant of the date when the
    /// clocks skip midnight).
    pub fn start_of_local_date(&self, date: NaiveDate) -> DateTime<Utc> {
        self.local_to_utc(date.and_time(NaiveTime::MIN))
    }

    /// The last instant of `date`, one nanosecond before the next local
    /// midnight, so that a deadline "by the end of the day" can be compared
    /// inclusively (`done_at <= due_at`) and read as 23:59:59.
    pub fn end_of_local_date(&self, date: NaiveDate) -> DateTime<Utc> {
        let next = date.succ_opt().expect("dates stay within chrono's range");
        self.start_of_local_date(next) - Duration::nanoseconds(1)
    }

    /// The last instant of the local day `at` falls in.
    pub fn end_of_local_day(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.end_of_local_date(self.local_date(at))
    }

    /// The next local midnight after `at`.
    pub fn start_of_next_local_day(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let next = self
            .local_date(at)
            .succ_opt()
            .expect("dates stay within chrono's range");
        self.start_of_local_date(next)
    }

    /// The same wall-clock time `days` local days later (or earlier): not
    /// always `days * 24 h` in a zone with daylight saving time.
    pub fn add_local_days(&self, at: DateTime<Utc>, days: i64) -> DateTime<Utc> {
        let local = self.local_time(at).naive_local() + Duration::days(days);
        self.local_to_utc(local)
    }

    /// The instant a wall-clock time names. An ambiguous time (clocks turned
    /// back) is its earlier instant; a time that does not exist (clocks
    /// turned forward) is read with the offset in force before the jump, which
    /// lands as far after the gap as it was into it, as a wall clock would.
    fn local_to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.time_zone.from_local_datetime(&local) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
            LocalResult::None => {
                // Read as UTC, a day earlier is well before any gap (offsets
                // are under 15 h, gaps at most a day).
                let before_gap = local - Duration::days(1);
                let offset = self
                    .time_zone
                    .offset_from_utc_datetime(&before_gap)
                    .fix()
                    .local_minus_utc();
                Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(offset))))
            }
        }
    }
}

impl Default for WorkingCalendar {
    fn default() -> Self {
        Self::asia_shanghai()
    }
}

impl TryFrom<CalendarConfig> for WorkingCalendar {
    type Error = CalendarError;

    fn try_from(config: CalendarConfig) -> Result<Self, Self::Error> {
        Self::new(config)
    }
}

impl From<WorkingCalendar> for CalendarConfig {
    fn from(calendar: WorkingCalendar) -> Self {
        let working_weekdays = (0..7u8)
            .filter(|&index| calendar.working_weekdays[usize::from(index)])
            .map(|index| Weekday::try_from(index).expect("0..7 are weekdays"))
            .collect();
        Self {
            time_zone: calendar.time_zone.name().to_owned(),
            working_hours: calendar.working_hours,
            working_weekdays,
            public_holidays: calendar.public_holidays.into_iter().collect(),
            extra_working_days: calendar.extra_working_days.into_iter().collect(),
        }
    }
}

/// With at least one working weekday and at most [`MAX_CALENDAR_DATES`]
/// holidays, every span this long holds a working day (a week per holiday,
/// plus a week, plus slack for a skipped date).
const MAX_DAYS_TO_A_WORKING_DAY: usize = 7 * (MAX_CALENDAR_DATES + 2);

fn monday_to_friday() -> Vec<Weekday> {
    vec![
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ]
}

/// `"08:30"` on the wire; seconds are accepted when reading and refused by
/// validation unless zero.
mod hours_and_minutes {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &NaiveTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&time.format("%H:%M"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("expected a local time such as \"08:30\""))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A Shanghai wall-clock time as a UTC instant (Shanghai is UTC+8, no DST).
    pub fn shanghai(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Tz::Asia__Shanghai
            .with_ymd_and_hms(2026, month, day, hour, minute, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    pub fn date(month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, month, day).unwrap()
    }

    /// Shanghai with the 2026 National Day week off (10-01..10-07) and Saturday
    /// 10-10 worked, as an estate might configure it.
    pub fn national_day_calendar() -> WorkingCalendar {
        let config: CalendarConfig = serde_json::from_value(serde_json::json!({
            "time_zone": "Asia/Shanghai",
            "working_hours": { "start": "08:30", "end": "17:30" },
            "public_holidays": [
                "2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"
            ],
            "extra_working_days": ["2026-10-10"]
        }))
        .unwrap();
        WorkingCalendar::new(config).unwrap()
    }

    #[test]
    fn the_default_calendar_is_shanghai_half_past_eight_to_half_past_five_on_weekdays() {
        let calendar = WorkingCalendar::default();
        assert_eq!(calendar.time_zone(), Tz::Asia__Shanghai);
        assert_eq!(calendar.working_day_duration(), Duration::hours(9));
        // 2026-11-27 is a Friday.
        assert!(calendar.is_working_day(date(11, 27)));
        assert!(!calendar.is_working_day(date(11, 28)));
        assert!(!calendar.is_working_day(date(11, 29)));
        assert!(calendar.is_working_day(date(11, 30)));
    }

    #[test]
    fn working_time_opens_at_half_past_eight_and_is_closed_at_half_past_five() {
        let calendar = WorkingCalendar::default();
        assert!(!calendar.is_working_time(shanghai(11, 27, 8, 29)));
        assert!(calendar.is_working_time(shanghai(11, 27, 8, 30)));
        assert!(calendar.is_working_time(shanghai(11, 27, 17, 29)));
        assert!(!calendar.is_working_time(shanghai(11, 27, 17, 30)));
        assert!(!calendar.is_working_time(shanghai(11, 28, 10, 0)));
    }

    #[test]
    fn a_utc_instant_late_in_the_evening_is_the_next_local_day_in_shanghai() {
        let calendar = WorkingCalendar::default();
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 23, 30, 0).unwrap();
        assert_eq!(calendar.local_date(at), date(11, 28));
        assert_eq!(
            calendar.start_of_local_date(date(11, 28)),
            shanghai(11, 28, 0, 0)
        );
        assert_eq!(
            calendar.end_of_local_day(at),
            shanghai(11, 29, 0, 0) - Duration::nanoseconds(1)
        );
        assert_eq!(calendar.start_of_next_local_day(at), shanghai(11, 29, 0, 0));
        assert_eq!(calendar.add_local_days(at, 3), shanghai(12, 1, 7, 30));
    }

    #[test]
    fn holidays_are_not_worked_and_extra_working_days_are() {
        let calendar = national_day_calendar();
        assert!(!calendar.is_working_day(date(10, 1)), "a Thursday holiday");
        assert!(!calendar.is_working_day(date(10, 3)), "a Saturday");
        assert!(
            calendar.is_working_day(date(10, 8)),
            "a Thursday after the week off"
        );
        assert!(
            calendar.is_working_day(date(10, 10)),
            "a Saturday worked (调休)"
        );
        assert!(calendar.is_working_time(shanghai(10, 10, 9, 0)));
        assert!(!calendar.is_working_day(date(10, 11)), "an ordinary Sunday");
    }

    #[test]
    fn a_start_before_opening_counts_from_the_opening() {
        let calendar = WorkingCalendar::default();
        let due = calendar.add_working_duration(shanghai(11, 27, 7, 0), Duration::hours(2));
        assert_eq!(due, shanghai(11, 27, 10, 30));
    }

    #[test]
    fn a_start_after_closing_counts_from_the_next_working_morning() {
        let calendar = WorkingCalendar::default();
        let due = calendar.add_working_duration(shanghai(11, 26, 19, 0), Duration::hours(2));
        assert_eq!(due, shanghai(11, 27, 10, 30));
        let due = calendar.add_working_duration(shanghai(11, 27, 17, 30), Duration::zero());
        assert_eq!(
            due,
            shanghai(11, 30, 8, 30),
            "Friday closing to Monday opening"
        );
    }

    #[test]
    fn a_duration_that_runs_out_at_closing_time_ends_at_closing_time() {
        let calendar = WorkingCalendar::default();
        let due = calendar.add_working_duration(shanghai(11, 27, 13, 0), Duration::minutes(270));
        assert_eq!(due, shanghai(11, 27, 17, 30));
    }

    #[test]
    fn working_time_skips_the_weekend_and_a_holiday_week_and_uses_an_extra_working_day() {
        let calendar = national_day_calendar();
        // Wednesday 09-30 16:30 + 3 h: 1 h on 09-30, then nothing until 10-08.
        let due = calendar.add_working_duration(shanghai(9, 30, 16, 30), Duration::hours(3));
        assert_eq!(due, shanghai(10, 8, 10, 30));
        // Friday 10-09 17:00 + 1 h: half an hour on Friday, then Saturday 10-10 (调休).
        let due = calendar.add_working_duration(shanghai(10, 9, 17, 0), Duration::hours(1));
        assert_eq!(due, shanghai(10, 10, 9, 0));
    }

    #[test]
    fn working_duration_between_counts_only_working_time() {
        let calendar = WorkingCalendar::default();
        let from = shanghai(11, 27, 16, 30);
        let to = shanghai(11, 30, 9, 30);
        assert_eq!(
            calendar.working_duration_between(from, to),
            Duration::hours(2)
        );
        assert_eq!(
            calendar.working_duration_between(to, from),
            Duration::zero()
        );
    }

    #[test]
    fn a_calendar_reads_and_writes_its_configuration() {
        let calendar = national_day_calendar();
        let json = serde_json::to_value(&calendar).unwrap();
        assert_eq!(json["time_zone"], "Asia/Shanghai");
        assert_eq!(json["working_hours"]["start"], "08:30");
        assert_eq!(
            json["working_weekdays"],
            serde_json::json!(["Mon", "Tue", "Wed", "Thu", "Fri"])
        );
        let back: WorkingCalendar = serde_json::from_value(json).unwrap();
        assert_eq!(back, calendar);
    }

    #[test]
    fn a_calendar_configuration_with_a_mistake_is_refused() {
        let refused = |json: serde_json::Value| {
            serde_json::from_value::<WorkingCalendar>(json)
                .unwrap_err()
                .to_string()
        };
        let hours = serde_json::json!({ "start": "08:30", "end": "17:30" });
        assert!(
            refused(serde_json::json!({ "time_zone": "Asia/Beijing", "working_hours": hours }))
                .contains("time zone")
        );
        assert!(
            refused(serde_json::json!({
                "time_zone": "Asia/Shanghai",
                "working_hours": { "start": "17:30", "end": "08:30" }
            }))
            .contains("start before")
        );
        assert!(
            refused(serde_json::json!({
                "time_zone": "Asia/Shanghai", "working_hours": hours, "working_weekdays": []
            }))
            .contains("working weekday")
        );
        assert!(
            refused(serde_json::json!({
                "time_zone": "Asia/Shanghai", "working_hours": hours,
                "public_holidays": ["2026-10-10"], "extra_working_days": ["2026-10-10"]
            }))
            .contains("2026-10-10")
        );
        assert!(
            refused(serde_json::json!({
                "time_zone": "Asia/Shanghai", "working_hours": hours, "holidays": []
            }))
            .contains("unknown field")
        );
    }

    #[test]
    fn a_zone_with_daylight_saving_time_keeps_its_wall_clock_hours() {
        let mut config = CalendarConfig::from(WorkingCalendar::default());
        config.time_zone = "Europe/Berlin".into();
        config.working_hours.start = NaiveTime::from_hms_opt(1, 0, 0).unwrap();
        config.working_hours.end = NaiveTime::from_hms_opt(5, 0, 0).unwrap();
        config.working_weekdays = vec![Weekday::Sun];
        let calendar = WorkingCalendar::new(config).unwrap();
        // On 2026-03-29 Berlin skips 02:00-03:00: the day has 3 working hours.
        let hours = calendar.opening_hours(date(3, 29)).unwrap();
        assert_eq!(hours.closes_at - hours.opens_at, Duration::hours(3));
        // Opening at 02:30, inside the skipped hour, opens when the wall clock
        // shows 03:30, as a clock on the wall would have jumped.
        let mut config = CalendarConfig::from(calendar.clone());
        config.working_hours.start = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let late_opening = WorkingCalendar::new(config).unwrap();
        let hours = late_opening.opening_hours(date(3, 29)).unwrap();
        assert_eq!(
            hours.opens_at,
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap()
        );
        assert_eq!(hours.closes_at - hours.opens_at, Duration::minutes(90));
        // A local day later is the same wall-clock time, 23 h later that night.
        let saturday = Tz::Europe__Berlin
            .with_ymd_and_hms(2026, 3, 28, 10, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let sunday = calendar.add_local_days(saturday, 1);
        assert_eq!(sunday - saturday, Duration::hours(23));
        assert_eq!(calendar.local_time(sunday).hour(), 10);
    }

    fn calendars() -> impl Strategy<Value = WorkingCalendar> {
        prop_oneof![
            Just(WorkingCalendar::default()),
            Just(national_day_calendar()),
            Just({
                let mut config = CalendarConfig::from(national_day_calendar());
                config.time_zone = "America/New_York".into();
                config.working_hours.start = NaiveTime::from_hms_opt(1, 30, 0).unwrap();
                config.working_weekdays = vec![Weekday::Sun, Weekday::Wed];
                WorkingCalendar::new(config).unwrap()
            }),
            Just({
                // Opens inside the hour Berlin skips on its spring Sunday.
                let mut config = CalendarConfig::from(WorkingCalendar::default());
                config.time_zone = "Europe/Berlin".into();
                config.working_hours.start = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
                config.working_weekdays = vec![Weekday::Sun];
                WorkingCalendar::new(config).unwrap()
            }),
        ]
    }

    fn instants() -> impl Strategy<Value = DateTime<Utc>> {
        // 2026-01-01 to 2027-01-01, whole seconds.
        (1_767_225_600i64..1_798_761_600).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    fn durations() -> impl Strategy<Value = Duration> {
        (0i64..40 * 24 * 3600).prop_map(Duration::seconds)
    }

    fn is_working_time_or_closing(calendar: &WorkingCalendar, at: DateTime<Utc>) -> bool {
        calendar.is_working_time(at)
            || calendar
                .opening_hours(calendar.local_date(at))
                .is_some_and(|hours| hours.closes_at == at)
    }

    proptest! {
        #[test]
        fn adding_working_time_is_monotonic_and_lands_in_working_time(
            calendar in calendars(),
            start in instants(),
            start_shift in durations(),
            duration in durations(),
            duration_growth in durations(),
        ) {
            let due = calendar.add_working_duration(start, duration);
            prop_assert!(due >= start);
            prop_assert!(is_working_time_or_closing(&calendar, due), "{due}");
            let later_start = calendar.add_working_duration(start + start_shift, duration);
            prop_assert!(later_start >= due);
            let longer = calendar.add_working_duration(start, duration + duration_growth);
            prop_assert!(longer >= due);
            // Exactly `duration` of working time lies between the start and the result.
            prop_assert_eq!(calendar.working_duration_between(start, due), duration);
        }

        #[test]
        fn the_next_opening_is_working_time_and_nothing_before_it_is(
            calendar in calendars(),
            at in instants(),
        ) {
            let opening = calendar.next_opening(at);
            prop_assert!(opening >= at);
            prop_assert!(calendar.is_working_time(opening));
            prop_assert_eq!(calendar.working_duration_between(at, opening), Duration::zero());
        }
    }
}
