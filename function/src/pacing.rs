//! Client-side pacing of EC2 writes: one token bucket per write action, shared by every
//! concurrent task, sized to a share of EC2's own bucket, so that throttling is rare instead of
//! being the pacing mechanism. A throttled answer slows the bucket down; successes bring it
//! back. The bucket itself is pure (time is an argument); `Pacer` puts it behind a lock and a
//! clock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// EC2's documented token bucket for `CreateSnapshots` and `DeleteSnapshot`, per account and
/// region: a burst of 100 calls, refilled at 5 per second.
pub const EC2_BURST: f64 = 100.0;
/// See [`EC2_BURST`].
pub const EC2_REFILL_PER_SECOND: f64 = 5.0;
/// A throttled answer divides the rate by this much...
const SLOW_DOWN: f64 = 2.0;
/// ...but never below this share of the configured rate.
const MIN_RATE_SHARE: f64 = 0.1;
/// Each success gives back this share of the configured rate.
const RECOVERY_SHARE: f64 = 0.05;

/// The size of one bucket: how many calls at once and how many per second after that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSize {
    pub burst: f64,
    pub refill_per_second: f64,
}

impl BucketSize {
    /// `share` (0-1] of an account bucket that refills at `refill_per_second` after EC2's burst.
    pub fn share_of_ec2(refill_per_second: f64, share: f64) -> Self {
        BucketSize {
            burst: (EC2_BURST * share).max(1.0),
            refill_per_second: refill_per_second * share,
        }
    }

    /// How long `calls` calls take at the least through this bucket, starting full.
    pub fn minimum_time(&self, calls: usize) -> Duration {
        let beyond = (calls as f64 - self.burst).max(0.0);
        Duration::from_secs_f64(beyond / self.refill_per_second)
    }
}

/// A token bucket with reservations: a caller takes a token now and is told how long to wait
/// before using it, so concurrent callers queue up in order instead of polling.
#[derive(Debug, Clone)]
pub struct Bucket {
    size: BucketSize,
    rate: f64,
    /// May go negative: tokens promised to callers that are still waiting.
    tokens: f64,
    /// When `tokens` was last brought up to date, as time since an origin.
    at: Duration,
}

impl Bucket {
    /// A full bucket at time `now`.
    pub fn new(size: BucketSize, now: Duration) -> Self {
        Bucket {
            size,
            rate: size.refill_per_second,
            tokens: size.burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        if now > self.at {
            let earned = (now - self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.size.burst);
            self.at = now;
        }
    }

    /// How long a call made at `now` must wait for its token, if that is at most `within`;
    /// `None` (and nothing taken) when it would have to wait longer.
    pub fn reserve(&mut self, now: Duration, within: Duration) -> Option<Duration> {
        self.refill(now);
        let wait = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        };
        if wait > within {
            return None;
        }
        self.tokens -= 1.0;
        Some(wait)
    }

    /// EC2 throttled a call: its bucket holds less than this one thought (other callers share
    /// it). Halve the rate and spend what was saved up.
    pub fn throttled(&mut self, now: Duration) {
        self.refill(now);
        let floor = self.size.refill_per_second * MIN_RATE_SHARE;
        self.rate = (self.rate / SLOW_DOWN).max(floor);
        self.tokens = self.tokens.min(0.0);
    }

    /// A call went through: recover some of the rate a throttle took.
    pub fn succeeded(&mut self) {
        self.rate = (self.rate + self.size.refill_per_second * RECOVERY_SHARE)
            .min(self.size.refill_per_second);
    }

    /// The current refill rate, per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// The EC2 write actions SmartVault paces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    CreateSnapshots,
    DeleteSnapshot,
    CopySnapshot,
    LockSnapshot,
    /// Sharing a snapshot with the vault account, or ending the share.
    ModifySnapshotAttribute,
    /// Recording what a snapshot changed on it (the tripwire).
    CreateTags,
    /// A consistent set's pre or post stage (Systems Manager's Run Command).
    SendCommand,
    /// Moving a snapshot to the archive tier.
    ModifySnapshotTier,
    /// Enabling or disabling a snapshot's fast snapshot restores.
    FastSnapshotRestores,
}

/// The buckets of one function instance, one per action and region (EC2's buckets are per
/// account and region), shared by every task of every invocation it serves (EC2's buckets do
/// not reset between invocations either).
#[derive(Debug)]
pub struct Pacer {
    origin: Instant,
    size: BucketSize,
    /// By action and region; `None` is the function's own region.
    lanes: Mutex<BTreeMap<(Action, Option<String>), Bucket>>,
}

impl Pacer {
    pub fn new(size: BucketSize) -> Self {
        Pacer {
            origin: Instant::now(),
            size,
            lanes: Mutex::new(BTreeMap::new()),
        }
    }

    fn with<T>(
        &self,
        action: Action,
        region: Option<&str>,
        f: impl FnOnce(&mut Bucket, Duration) -> T,
    ) -> T {
        let now = self.origin.elapsed();
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = lanes
            .entry((action, region.map(str::to_owned)))
            .or_insert_with(|| Bucket::new(self.size, now));
        f(bucket, now)
    }

    /// Waits for a token for `action` in `region` (`None`: the function's own). Returns
    /// `false` at once, taking nothing, when the token would come after `cutoff`: the call is
    /// then left for a later invocation.
    pub async fn ready(
        &self,
        action: Action,
        region: Option<&str>,
        cutoff: Option<Instant>,
    ) -> bool {
        let now = Instant::now();
        if cutoff.is_some_and(|c| c <= now) {
            return false;
        }
        let within = cutoff.map_or(Duration::MAX, |c| c - now);
        match self.with(action, region, |bucket, now| bucket.reserve(now, within)) {
            None => false,
            Some(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                true
            }
        }
    }

    /// Tells the bucket how a paced call went.
    pub fn record(&self, action: Action, region: Option<&str>, throttled: Throttled) {
        self.with(action, region, |bucket, now| match throttled {
            Throttled::Yes => bucket.throttled(now),
            Throttled::No => bucket.succeeded(),
        });
    }
}

/// Whether EC2 throttled a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    Yes,
    No,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: BucketSize = BucketSize {
        burst: 4.0,
        refill_per_second: 2.0,
    };

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_burst_goes_at_once_then_calls_queue_at_the_rate() {
        let mut bucket = Bucket::new(SIZE, at(0));
        let waits: Vec<Option<Duration>> = (0..7)
            .map(|_| bucket.reserve(at(0), Duration::MAX))
            .collect();
        assert_eq!(
            waits,
            vec![
                Some(at(0)),
                Some(at(0)),
                Some(at(0)),
                Some(at(0)),
                Some(at(500)),
                Some(at(1000)),
                Some(at(1500)),
            ],
            "four at once, then one every half second, in order"
        );
        // A second later two tokens have come in, both already promised.
        assert_eq!(bucket.reserve(at(1000), Duration::MAX), Some(at(1000)));
    }

    #[test]
    fn a_token_beyond_the_cutoff_is_not_taken() {
        let mut bucket = Bucket::new(SIZE, at(0));
        for _ in 0..4 {
            bucket.reserve(at(0), Duration::ZERO).unwrap();
        }
        assert_eq!(bucket.reserve(at(0), at(499)), None);
        assert_eq!(
            bucket.reserve(at(0), at(500)),
            Some(at(500)),
            "nothing was taken"
        );
    }

    #[test]
    fn a_throttle_halves_the_rate_and_successes_bring_it_back() {
        let mut bucket = Bucket::new(SIZE, at(0));
        bucket.throttled(at(0));
        assert_eq!(bucket.rate(), 1.0);
        assert_eq!(
            bucket.reserve(at(0), Duration::MAX),
            Some(at(1000)),
            "the saved-up burst is spent: the next call waits at the lower rate"
        );
        for _ in 0..10 {
            bucket.throttled(at(0));
        }
        assert!((bucket.rate() - 0.2).abs() < 1e-9, "never below a tenth");
        for _ in 0..100 {
            bucket.succeeded();
        }
        assert_eq!(bucket.rate(), 2.0, "back to the configured rate, not above");
    }

    #[test]
    fn a_share_of_ec2s_bucket_and_its_minimum_time() {
        let size = BucketSize::share_of_ec2(EC2_REFILL_PER_SECOND, 0.8);
        assert_eq!(size.burst, 80.0);
        assert_eq!(size.refill_per_second, 4.0);
        assert_eq!(size.minimum_time(80), Duration::ZERO);
        assert_eq!(size.minimum_time(1080), Duration::from_secs(250));
    }

    #[tokio::test]
    async fn the_pacer_refuses_what_it_cannot_give_before_the_cutoff() {
        let pacer = Pacer::new(BucketSize {
            burst: 1.0,
            refill_per_second: 1.0,
        });
        let passed = Some(Instant::now());
        assert!(
            !pacer.ready(Action::CreateSnapshots, None, passed).await,
            "a cutoff that has passed starts nothing, even with tokens to spare"
        );
        let soon = Some(Instant::now() + Duration::from_millis(100));
        assert!(pacer.ready(Action::CreateSnapshots, None, soon).await);
        assert!(!pacer.ready(Action::CreateSnapshots, None, soon).await);
        assert!(
            pacer.ready(Action::DeleteSnapshot, None, soon).await,
            "each action has its own bucket"
        );
        assert!(
            pacer
                .ready(Action::CreateSnapshots, Some("us-west-2"), soon)
                .await,
            "and each region"
        );
        assert!(
            !pacer
                .ready(Action::CreateSnapshots, Some("us-west-2"), soon)
                .await
        );
    }
}
