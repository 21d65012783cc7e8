//! The mark a run leaves while it goes on over several invocations, so that a run of the same
//! schedule firing meanwhile does not start a second pass in parallel, and so that only the
//! link the function itself handed on is accepted as a continuation. It is a tag on the
//! deployment's topic, one per schedule (no state store): written when a link hands on,
//! removed by the link that finishes. Pure: the tag's value and the decisions; the handler
//! reads and writes the tag.

use crate::tags::format_time;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// The prefix of the topic tags that mark a run going on over several invocations; the
/// schedule's name follows it. A run of one schedule never waits for another schedule's run:
/// each makes its own set.
pub const TAG_PREFIX: &str = "smartvault:run-in-progress:";

/// The topic tag that marks a run of `schedule` going on, e.g.
/// `smartvault:run-in-progress:weekly`. Schedule names are 1 to 32 lowercase letters, digits
/// and hyphens, so the key stays within SNS's 128 characters and its allowed characters.
pub fn tag(schedule: &str) -> String {
    format!("{TAG_PREFIX}{schedule}")
}

/// How far a continuation's run start may lie ahead of the receiving link's clock (two Lambda
/// hosts' clocks differ by well under a second; anything more is not a run that started).
pub const CLOCK_SKEW: Duration = Duration::minutes(1);
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

/// Whether a continuation claiming to be link `number` of the run that started at
/// `run_started_at` may go on at `clock`, given the schedule's mark (`None`: no mark). Every
/// real continuation was handed on by a link that wrote the mark first, naming the run and the
/// next link, so anything else was not sent by the function: a forged or replayed event, which
/// could otherwise set the clock the run plans and expires with. A dry run writes no mark; its
/// continuation is held to the clock alone, and it writes and deletes nothing.
pub fn admit_continuation(
    mark: Option<&RunMark>,
    run_started_at: OffsetDateTime,
    number: u32,
    dry_run: bool,
    clock: OffsetDateTime,
) -> Result<(), String> {
    if run_started_at > clock + CLOCK_SKEW {
        return Err(format!(
            "`continuation.run_started_at` is {}, after this invocation's clock {}; a run \
             cannot go on before it started",
            format_time(run_started_at),
            format_time(clock)
        ));
    }
    if dry_run {
        return Ok(());
    }
    match mark {
        None => Err(format!(
            "no run of this schedule is going on (the topic carries no run mark), so link {number} \
             of a run started at {} was not handed on by the function; a continuation is sent \
             only by the function itself; start a run with {{\"action\": \"backup\"}} instead",
            format_time(run_started_at)
        )),
        Some(mark) if !mark.is_of(run_started_at) || mark.next_link != number => Err(format!(
            "the continuation names link {number} of a run started at {}, but the run going \
             on is `{}`; only the link the function handed on is accepted",
            format_time(run_started_at),
            mark.value()
        )),
        Some(_) => Ok(()),
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
    fn each_schedule_has_its_own_mark() {
        assert_eq!(tag("daily"), "smartvault:run-in-progress:daily");
        assert_ne!(tag("daily"), tag("weekly"));
        let longest = tag(&"a".repeat(32));
        assert!(longest.len() <= 128, "SNS tag keys hold 128 characters");
    }

    #[test]
    fn only_the_link_the_function_handed_on_is_admitted() {
        let mark = RunMark {
            run_started_at: START,
            next_link: 3,
            written_at: START + Duration::minutes(29),
        };
        let clock = START + Duration::minutes(30);
        let admit = |mark: Option<&RunMark>, start, number, dry_run| {
            admit_continuation(mark, start, number, dry_run, clock)
        };
        assert_eq!(admit(Some(&mark), START, 3, false), Ok(()));
        let refusals = [
            (
                admit(None, START, 3, false),
                "no run of this schedule is going on",
            ),
            (admit(Some(&mark), START, 4, false), "names link 4"),
            (admit(Some(&mark), START, 2, false), "names link 2"),
            (
                admit(Some(&mark), START - Duration::days(3), 3, false),
                "the run going on is",
            ),
            (
                admit(Some(&mark), datetime!(2099-01-01 00:00 UTC), 3, false),
                "cannot go on before it started",
            ),
            (
                admit(None, datetime!(2099-01-01 00:00 UTC), 2, true),
                "cannot go on before it started",
            ),
        ];
        for (verdict, expected) in refusals {
            let message = verdict.expect_err(expected);
            assert!(message.contains(expected), "{message}");
        }
        // A dry run writes no mark; held to the clock, it may go on.
        assert_eq!(admit(None, START, 2, true), Ok(()));
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
