//! The mark a run leaves while it goes on over several invocations, so that a scheduled run
//! firing meanwhile does not start a second pass in parallel. It is a tag on the deployment's
//! topic (no state store): written when a link hands on, removed by the link that finishes.
//! Pure: the tag's value and the decision; the handler reads and writes the tag.

use crate::plan::format_time;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// The topic tag that marks a run going on over several invocations.
pub const TAG: &str = "smartvault:run-in-progress";
/// A mark older than this is a run that died (a link crashed or was never started): no Lambda
/// invocation lasts more than 15 minutes, so a live chain renews it well within this.
pub const STALE_AFTER: Duration = Duration::minutes(30);

/// A run in progress: when it started, which link comes next, and when that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMark {
    pub run_started_at: OffsetDateTime,
    pub next_link: u32,
    pub written_at: OffsetDateTime,
}

impl RunMark {
    /// The tag value, e.g. `run 2026-11-26T01:00:00Z link 3 at 2026-11-26T01:29:40Z`.
    pub fn value(&self) -> String {
        format!(
            "run {} link {} at {}",
            format_time(self.run_started_at),
            self.next_link,
            format_time(self.written_at)
        )
    }

    /// Reads a tag value; `None` when it is not one this module wrote.
    pub fn parse(value: &str) -> Option<Self> {
        let mut words = value.split(' ');
        let (Some("run"), Some(run), Some("link"), Some(link), Some("at"), Some(at), None) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            return None;
        };
        Some(RunMark {
            run_started_at: OffsetDateTime::parse(run, &Rfc3339).ok()?,
            next_link: link.parse().ok()?,
            written_at: OffsetDateTime::parse(at, &Rfc3339).ok()?,
        })
    }

    /// Whether this is the mark of the run that started at `run_started_at` (to the second,
    /// as the tag keeps it).
    pub fn is_of(&self, run_started_at: OffsetDateTime) -> bool {
        format_time(self.run_started_at) == format_time(run_started_at)
    }

    /// Whether this mark keeps a new run, starting at `now`, from starting: it is another
    /// run's, and fresh. A mark that cannot be read keeps nothing from starting.
    pub fn blocks(&self, now: OffsetDateTime) -> bool {
        now - self.written_at < STALE_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2026-11-26 01:00 UTC);

    #[test]
    fn a_mark_round_trips_through_its_tag_value() {
        let mark = RunMark {
            run_started_at: START,
            next_link: 3,
            written_at: START + Duration::minutes(29),
        };
        assert_eq!(
            mark.value(),
            "run 2026-11-26T01:00:00Z link 3 at 2026-11-26T01:29:00Z"
        );
        assert_eq!(RunMark::parse(&mark.value()), Some(mark.clone()));
        assert!(
            mark.is_of(START + Duration::milliseconds(400)),
            "to the second"
        );
        assert!(!mark.is_of(START + Duration::seconds(1)));
        for foreign in [
            "",
            "yes",
            "run x link 3 at y",
            "run 2026-11-26T01:00:00Z link 3",
        ] {
            assert_eq!(RunMark::parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn only_a_fresh_mark_blocks_a_new_run() {
        let mark = RunMark {
            run_started_at: START,
            next_link: 2,
            written_at: START + Duration::minutes(15),
        };
        assert!(mark.blocks(START + Duration::minutes(16)));
        assert!(mark.blocks(START + Duration::minutes(44)));
        assert!(
            !mark.blocks(START + Duration::minutes(45)),
            "thirty minutes without a link: the chain died, the next run goes ahead"
        );
    }
}
