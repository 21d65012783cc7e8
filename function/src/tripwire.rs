//! The ransomware tripwire's judgement, without I/O: whether a set's changed fraction is far
//! above what its volume's own history makes normal (periodic spikes such as a weekly dump
//! learned from that history), and how random a sample of changed blocks looks.

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// How many earlier incremental sets of a volume it takes before its changes are judged at
/// all (two weeks of a daily schedule: a weekly spike is seen twice); a volume with less
/// history is never flagged. A volume's first set is full, not a change, and is no history.
pub const MIN_HISTORY: usize = 14;
/// A set that changes less than this fraction of its volume is never suspicious, whatever the
/// history: a quiet volume's ordinary day is not an attack.
pub const FLOOR: f64 = 0.2;
/// The default sensitivity: how many times the volume's usual peak a set must change.
pub const DEFAULT_MULTIPLIER: f64 = 1.5;
/// Bits per byte above which sampled blocks look encrypted (random data is close to 8).
pub const ENCRYPTED_BITS_PER_BYTE: f64 = 7.5;

/// The tripwire's sensitivity for an environment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensitivity {
    /// A set is suspicious when it changes more than this many times the volume's usual peak.
    pub multiplier: f64,
    /// ...and more than this fraction of the volume.
    pub floor: f64,
}

impl Default for Sensitivity {
    fn default() -> Self {
        Sensitivity {
            multiplier: DEFAULT_MULTIPLIER,
            floor: FLOOR,
        }
    }
}

/// Equal as numbers: [`Sensitivity::problem`] refuses a NaN, so equality is total on every
/// value a deployment runs with.
impl Eq for Sensitivity {}

impl Sensitivity {
    /// What is wrong with these settings, with the fix.
    pub fn problem(&self) -> Option<String> {
        if !(1.0..=100.0).contains(&self.multiplier) {
            return Some(format!(
                "tripwire.multiplier {} is not 1 to 100 (how many times a volume's usual peak a \
                 set must change to be suspicious; default {DEFAULT_MULTIPLIER})",
                self.multiplier
            ));
        }
        if !(0.01..=1.0).contains(&self.floor) {
            return Some(format!(
                "tripwire.floor {} is not 0.01 to 1 (the least fraction of a volume a suspicious \
                 set changes; default {FLOOR})",
                self.floor
            ));
        }
        None
    }
}

/// What the tripwire makes of one set of one volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Too little history to judge: never flagged.
    Learning { history: usize },
    /// Within what the volume's history makes normal.
    Normal { threshold: f64 },
    /// Far above it: the set changed `fraction`; the volume's usual peak is `usual_peak` and
    /// its median `median`.
    Suspicious {
        fraction: f64,
        usual_peak: f64,
        median: f64,
        threshold: f64,
    },
}

impl Verdict {
    pub fn is_suspicious(&self) -> bool {
        matches!(self, Verdict::Suspicious { .. })
    }
}

/// Judges a set that changed `fraction` (0-1) of its volume, given the fractions of the
/// volume's earlier sets (`history`, any order). The usual peak is the history's largest
/// change once its single largest is set aside (one odd day does not raise the bar), which
/// learns a periodic spike such as a weekly full dump as normal while it recurs.
pub fn judge(history: &[f64], fraction: f64, sensitivity: Sensitivity) -> Verdict {
    let mut sorted: Vec<f64> = history
        .iter()
        .copied()
        .filter(|f| f.is_finite())
        .map(|f| f.clamp(0.0, 1.0))
        .collect();
    if sorted.len() < MIN_HISTORY {
        return Verdict::Learning {
            history: sorted.len(),
        };
    }
    sorted.sort_by(f64::total_cmp);
    let usual_peak = sorted[sorted.len() - 2];
    let median = sorted[sorted.len() / 2];
    let threshold = (usual_peak * sensitivity.multiplier).max(sensitivity.floor);
    if fraction > threshold {
        Verdict::Suspicious {
            fraction,
            usual_peak,
            median,
            threshold,
        }
    } else {
        Verdict::Normal { threshold }
    }
}

/// Shannon entropy of `data` in bits per byte (0 for no data).
pub fn bits_per_byte(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for byte in data {
        counts[usize::from(*byte)] += 1;
    }
    let total = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Whether sampled blocks look encrypted: most of them above [`ENCRYPTED_BITS_PER_BYTE`].
pub fn looks_encrypted(samples: &[f64]) -> bool {
    !samples.is_empty()
        && samples
            .iter()
            .filter(|bits| **bits >= ENCRYPTED_BITS_PER_BYTE)
            .count()
            * 2
            > samples.len()
}
