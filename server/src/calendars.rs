//! Each estate's working calendar: its time zone, working hours, working
//! weekdays, public holidays and extra working days (调休), which the time
//! rules, the serial-number months, the reports, the due list and the
//! scheduler count in. Estates declare theirs in the configuration file
//! (`[calendars.estates.E02]`); every other estate counts in the default
//! calendar (`[calendars.default]`, else Asia/Shanghai 08:30-17:30, Monday to
//! Friday, no holidays).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use sync_protocol::{CalendarConfig, CalendarError, EstateId, ParseError, WorkingCalendar};

/// The working calendars of all estates; cheap to clone, read-only once
/// built, so that every thread consults the same table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "CalendarsSection")]
pub struct Calendars {
    table: Arc<Table>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    default: WorkingCalendar,
    estates: HashMap<EstateId, WorkingCalendar>,
}

/// Why the `[calendars]` section was refused; names the calendar at fault.
#[derive(Debug, thiserror::Error)]
pub enum CalendarsError {
    #[error("calendars.default: {0}")]
    Default(CalendarError),
    #[error("calendars.estates.{estate}: {source}")]
    Estate {
        estate: String,
        source: CalendarError,
    },
    #[error("calendars.estates: {0}")]
    EstateId(ParseError),
}

impl Calendars {
    /// `default` for every estate, and each estate's own where it has one.
    pub fn new(
        default: WorkingCalendar,
        estates: impl IntoIterator<Item = (EstateId, WorkingCalendar)>,
    ) -> Self {
        Self {
            table: Arc::new(Table {
                default,
                estates: estates.into_iter().collect(),
            }),
        }
    }

    /// The calendar `estate` counts in: its own, else the default.
    pub fn of(&self, estate: &EstateId) -> &WorkingCalendar {
        self.table
            .estates
            .get(estate)
            .unwrap_or(&self.table.default)
    }

    /// These calendars, with `calendar` for `estate` unless the estate has
    /// one already: what the configuration says wins over a built-in one.
    pub fn or_for_estate(&self, estate: EstateId, calendar: WorkingCalendar) -> Self {
        if self.table.estates.contains_key(&estate) {
            return self.clone();
        }
        let mut estates = self.table.estates.clone();
        estates.insert(estate, calendar);
        Self::new(self.table.default.clone(), estates)
    }
}

/// The `[calendars]` section as written; each calendar is checked as the
/// file is read, so that a mistake stops the server at start with the
/// estate's name and the reason.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarsSection {
    #[serde(default)]
    default: Option<CalendarConfig>,
    #[serde(default)]
    estates: BTreeMap<String, CalendarConfig>,
}

impl TryFrom<CalendarsSection> for Calendars {
    type Error = CalendarsError;

    fn try_from(section: CalendarsSection) -> Result<Self, Self::Error> {
        let default = match section.default {
            Some(config) => WorkingCalendar::new(config).map_err(CalendarsError::Default)?,
            None => WorkingCalendar::default(),
        };
        let mut estates = HashMap::with_capacity(section.estates.len());
        for (estate, config) in section.estates {
            let calendar =
                WorkingCalendar::new(config).map_err(|source| CalendarsError::Estate {
                    estate: estate.clone(),
                    source,
                })?;
            let estate = EstateId::parse(&estate).map_err(CalendarsError::EstateId)?;
            estates.insert(estate, calendar);
        }
        Ok(Self::new(default, estates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime};

    fn estate(raw: &str) -> EstateId {
        EstateId::parse(raw).unwrap()
    }

    fn read(text: &str) -> Result<Calendars, toml::de::Error> {
        #[derive(Deserialize)]
        struct File {
            calendars: Calendars,
        }
        toml::from_str::<File>(text).map(|file| file.calendars)
    }

    fn refusal(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn an_estate_without_a_calendar_counts_in_the_default_one() {
        let calendars = read(
            r#"
            [calendars.estates.E02]
            time_zone = "Europe/London"
            working_hours = { start = "09:00", end = "17:00" }
            public_holidays = ["2025-12-25", "2025-12-26"]
            "#,
        )
        .unwrap();
        let london = calendars.of(&estate("E02"));
        assert_eq!(london.time_zone().name(), "Europe/London");
        assert!(!london.is_working_day(NaiveDate::from_ymd_opt(2025, 12, 25).unwrap()));
        assert_eq!(calendars.of(&estate("E01")), &WorkingCalendar::default());
    }

    #[test]
    fn the_default_calendar_can_be_replaced() {
        let calendars = read(
            r#"
            [calendars.default]
            time_zone = "Asia/Urumqi"
            working_hours = { start = "10:00", end = "19:00" }
            working_weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
            "#,
        )
        .unwrap();
        let calendar = calendars.of(&estate("E09"));
        assert_eq!(calendar.time_zone().name(), "Asia/Urumqi");
        assert_eq!(
            calendar.working_hours().start,
            NaiveTime::from_hms_opt(10, 0, 0).unwrap()
        );
    }

    #[test]
    fn an_invalid_calendar_is_refused_with_its_estate_and_the_reason() {
        let error = refusal(
            r#"
            [calendars.estates.E02]
            time_zone = "Asia/Beijing"
            working_hours = { start = "09:00", end = "17:00" }
            "#,
        );
        assert!(error.contains("calendars.estates.E02"), "{error}");
        assert!(error.contains("unknown time zone"), "{error}");
        let error = refusal(
            r#"
            [calendars.estates."E 02"]
            time_zone = "Asia/Shanghai"
            working_hours = { start = "09:00", end = "17:00" }
            "#,
        );
        assert!(error.contains("estate id"), "{error}");
        let error = refusal(
            r#"
            [calendars.default]
            time_zone = "Asia/Shanghai"
            working_hours = { start = "17:00", end = "09:00" }
            "#,
        );
        assert!(error.contains("calendars.default"), "{error}");
    }

    #[test]
    fn a_configured_calendar_wins_over_a_built_in_one() {
        let london = read(
            r#"
            [calendars.estates.E01]
            time_zone = "Europe/London"
            working_hours = { start = "09:00", end = "17:00" }
            "#,
        )
        .unwrap();
        let kept = london.or_for_estate(estate("E01"), WorkingCalendar::default());
        assert_eq!(kept.of(&estate("E01")).time_zone().name(), "Europe/London");
        let added =
            Calendars::default().or_for_estate(estate("E01"), london.of(&estate("E01")).clone());
        assert_eq!(added.of(&estate("E01")).time_zone().name(), "Europe/London");
    }
}
