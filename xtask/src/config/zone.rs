//! IANA time zones for the schedules' fire times: the `time` crate's dates and offsets (the
//! workspace's one date-time library) with the rules of the bundled time-zone database
//! (`tzdb_data`), so a preview never depends on the machine's own zone files.

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// One IANA time zone's rules.
#[derive(Clone, Copy)]
pub struct Zone(tz::TimeZoneRef<'static>);

/// What a wall-clock time in a zone is.
#[derive(Debug, PartialEq, Eq)]
pub enum Local {
    /// One instant.
    One(OffsetDateTime),
    /// Twice (the autumn change repeats it): the earlier instant.
    Repeated(OffsetDateTime),
    /// Never (the spring change skips it).
    Skipped,
}

impl Zone {
    /// The zone named exactly `name`, or one of the database's names written in another case
    /// (see [`canonical_name`]).
    pub fn named(name: &str) -> Option<Zone> {
        tzdb_data::find_tz(name.as_bytes()).map(|zone| Zone(*zone))
    }

    /// The UTC offset in force at `at`.
    pub fn offset_at(&self, at: OffsetDateTime) -> UtcOffset {
        self.0
            .find_local_time_type(at.unix_timestamp())
            .ok()
            .and_then(|kind| UtcOffset::from_whole_seconds(kind.ut_offset()).ok())
            .unwrap_or(UtcOffset::UTC)
    }

    /// `at` on this zone's wall clock.
    pub fn at(&self, at: OffsetDateTime) -> OffsetDateTime {
        at.to_offset(self.offset_at(at))
    }

    /// When the wall clock of this zone shows `local`. Every offset in force within a day of
    /// it is tried: the ones that give back `local` are its instants.
    pub fn resolve(&self, local: PrimitiveDateTime) -> Local {
        let near = local.assume_utc();
        let mut offsets: Vec<UtcOffset> = [-1, 0, 1]
            .iter()
            .filter_map(|days| near.checked_add(time::Duration::days(*days)))
            .map(|instant| self.offset_at(instant))
            .collect();
        offsets.sort_by_key(|offset| std::cmp::Reverse(offset.whole_seconds()));
        offsets.dedup();
        // The larger offset first: it gives the earlier instant.
        let instants: Vec<OffsetDateTime> = offsets
            .into_iter()
            .map(|offset| local.assume_offset(offset))
            .filter(|instant| self.offset_at(*instant) == instant.offset())
            .collect();
        match instants.as_slice() {
            [] => Local::Skipped,
            [one] => Local::One(*one),
            [earlier, ..] => Local::Repeated(*earlier),
        }
    }
}

/// How the time-zone database writes `name` (`Europe/Berlin` for `europe/berlin`), when it
/// knows it in any case.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    tzdb_data::TZ_NAMES
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// `at` as `2027-03-28 03:00`.
pub fn minutes(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    at.format(&format).unwrap_or_default()
}

/// `at` as `2027-03-28`.
pub fn day(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    at.format(&format).unwrap_or_default()
}

/// `at` as `03:00`.
pub fn clock(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[hour]:[minute]");
    at.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn wall_clock_times_resolve_as_the_database_says_in_both_hemispheres() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        // Winter and summer.
        assert_eq!(
            berlin.resolve(datetime!(2027-01-10 02:00)),
            Local::One(datetime!(2027-01-10 02:00 +1))
        );
        assert_eq!(
            berlin.resolve(datetime!(2027-07-10 02:00)),
            Local::One(datetime!(2027-07-10 02:00 +2))
        );
        // 2027-03-28: 02:00-03:00 does not exist; 2027-10-31: 02:00-03:00 happens twice.
        assert_eq!(berlin.resolve(datetime!(2027-03-28 02:30)), Local::Skipped);
        assert_eq!(
            berlin.resolve(datetime!(2027-10-31 02:30)),
            Local::Repeated(datetime!(2027-10-31 02:30 +2))
        );
        // Sydney springs forward on 2027-10-03 and falls back on 2027-04-04.
        let sydney = Zone::named("Australia/Sydney").unwrap();
        assert_eq!(sydney.resolve(datetime!(2027-10-03 02:30)), Local::Skipped);
        assert_eq!(
            sydney.resolve(datetime!(2027-04-04 02:30)),
            Local::Repeated(datetime!(2027-04-04 02:30 +11))
        );
        // A half-hour zone without daylight saving, and UTC.
        let kolkata = Zone::named("Asia/Kolkata").unwrap();
        assert_eq!(
            kolkata.resolve(datetime!(2027-03-28 02:30)),
            Local::One(datetime!(2027-03-28 02:30 +5:30))
        );
        assert_eq!(
            Zone::named("UTC")
                .unwrap()
                .resolve(datetime!(2027-03-28 02:30)),
            Local::One(datetime!(2027-03-28 02:30 UTC))
        );
        assert_eq!(
            berlin.at(datetime!(2027-03-28 01:30 UTC)),
            datetime!(2027-03-28 03:30 +2)
        );
    }

    #[test]
    fn names_are_found_as_the_database_writes_them() {
        assert_eq!(canonical_name("europe/berlin"), Some("Europe/Berlin"));
        assert_eq!(canonical_name("UTC"), Some("UTC"));
        assert_eq!(canonical_name("Mars/Olympus"), None);
        assert!(Zone::named("Mars/Olympus").is_none());
        // The bundled database is recent: Paraguay kept summer time all year from 2024-10
        // (tz 2025a).
        let asuncion = Zone::named("America/Asuncion").unwrap();
        assert_eq!(
            asuncion.offset_at(datetime!(2027-07-01 12:00 UTC)),
            time::macros::offset!(-3)
        );
        assert_eq!(minutes(datetime!(2027-03-28 03:05 +2)), "2027-03-28 03:05");
        assert_eq!(day(datetime!(2027-03-28 03:05 +2)), "2027-03-28");
        assert_eq!(clock(datetime!(2027-03-28 03:05 +2)), "03:05");
    }
}
