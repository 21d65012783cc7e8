//! A fault-injecting loopback proxy between an AWS client and the emulator: EC2's per-action
//! token buckets (time-scaled), a share of 500/503 answers, delays, connection resets, and
//! answers lost after the emulator acted.

use crate::loopback::{Message, Reading, Server};
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to requests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// EC2's documented token buckets, with refill rates multiplied by this factor (so a test
    /// stays short); `None` disables throttling.
    pub throttle_time_scale: Option<f64>,
    /// Share of requests (0.0-1.0) answered 500 or 503 without reaching the emulator.
    pub error_share: f64,
    /// Delay added before every request is forwarded.
    pub delay: Duration,
    /// Share of requests whose connection is reset before they reach the emulator.
    pub reset_share: f64,
    /// Share of requests the emulator carries out whose answer is then lost: the connection
    /// closes without one, as when a network drops after AWS acted.
    pub lost_answer_share: f64,
    /// When set, answers are lost only for this action (e.g. `CopySnapshot`).
    pub lost_answer_action: Option<String>,
    /// `CreateSnapshots` for this instance fails as for an instance terminated mid-run.
    pub failing_instance: Option<String>,
    /// `DeleteSnapshot` of this snapshot is refused, as when a policy denies it.
    pub failing_snapshot: Option<String>,
    /// Every call of this action is refused, as when a policy denies it (e.g. `AttachVolume`).
    pub refused_action: Option<String>,
}

/// EC2's documented bucket for an action: (burst capacity, refill per second).
pub fn documented_bucket(action: &str) -> Option<(f64, f64)> {
    match action {
        "CreateSnapshots" | "CreateSnapshot" | "DeleteSnapshot" => Some((100.0, 5.0)),
        a if a.starts_with("Describe") => Some((100.0, 20.0)),
        _ => None,
    }
}

struct Bucket {
    tokens: f64,
    capacity: f64,
    refill: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        self.tokens =
            (self.tokens + (now - self.at).as_secs_f64() * self.refill).min(self.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the proxy saw, by action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub forwarded: HashMap<String, u64>,
    pub throttled: HashMap<String, u64>,
    pub errored: u64,
    pub reset: u64,
    /// Answers dropped after the emulator acted, by action.
    pub lost: HashMap<String, u64>,
}

struct State {
    faults: Faults,
    buckets: Mutex<HashMap<String, Bucket>>,
    counts: Mutex<Counts>,
    sequence: AtomicU64,
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct FaultProxy {
    server: Server,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream_port`.
    pub fn start(upstream_port: u16, faults: Faults) -> std::io::Result<Self> {
        let state = Arc::new(State {
            faults,
            buckets: Mutex::new(HashMap::new()),
            counts: Mutex::new(Counts::default()),
            sequence: AtomicU64::new(0),
        });
        let shared = Arc::clone(&state);
        let server = Server::start(move |stream| {
            let _ = serve(stream, upstream_port, &shared);
        })?;
        Ok(FaultProxy { server, state })
    }

    /// The endpoint URL clients use instead of the emulator's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address())
    }

    /// The faults it injects.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// What the proxy saw so far.
    pub fn counts(&self) -> Counts {
        self.state
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }
}

/// A deterministic draw in [0, 1) for the n-th request, so runs are repeatable.
fn draw(n: u64, salt: u64) -> f64 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A request, with the query action it names (`Action=...` in its form body).
struct Request {
    message: Message,
    action: String,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let Some(mut message) = Message::read(reader, Reading::Request)? else {
        return Ok(None);
    };
    // The upstream connection is used once: ask it to close when done.
    message.remove_header("connection");
    message.headers.push(("Connection".into(), "close".into()));
    let action = String::from_utf8_lossy(&message.body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("")
        .to_owned();
    Ok(Some(Request { message, action }))
}

/// An EC2-style XML error answer.
fn error_response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>proxy</RequestID></Response>"
    );
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    Message::response(
        &format!("{status} {reason}"),
        &[("Content-Type", "text/xml".to_owned())],
        body.as_bytes(),
    )
    .to_bytes()
}

fn serve(client: TcpStream, upstream_port: u16, state: &State) -> std::io::Result<()> {
    let mut writer = client.try_clone()?;
    let mut reader = BufReader::new(client);
    while let Some(request) = read_request(&mut reader)? {
        let n = state.sequence.fetch_add(1, Ordering::Relaxed);
        let faults = &state.faults;
        if !faults.delay.is_zero() {
            std::thread::sleep(faults.delay);
        }
        if faults.reset_share > 0.0 && draw(n, 0x5eed) < faults.reset_share {
            if let Ok(mut counts) = state.counts.lock() {
                counts.reset += 1;
            }
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        if faults.error_share > 0.0 && draw(n, 0xe77) < faults.error_share {
            if let Ok(mut counts) = state.counts.lock() {
                counts.errored += 1;
            }
            let (status, code) = if n.is_multiple_of(2) {
                (503, "Unavailable")
            } else {
                (500, "InternalError")
            };
            writer.write_all(&error_response(status, code, "injected by the fault proxy"))?;
            continue;
        }
        if let Some(instance) = &faults.failing_instance
            && request.action == "CreateSnapshots"
            && String::from_utf8_lossy(&request.message.body)
                .contains(&format!("InstanceSpecification.InstanceId={instance}"))
        {
            let message = format!(
                "The instance '{instance}' is not in a state from which it can be snapshotted."
            );
            writer.write_all(&error_response(400, "IncorrectState", &message))?;
            continue;
        }
        if let Some(snapshot) = &faults.failing_snapshot
            && request.action == "DeleteSnapshot"
            && String::from_utf8_lossy(&request.message.body)
                .contains(&format!("SnapshotId={snapshot}"))
        {
            let message = "You are not authorized to perform this operation.";
            writer.write_all(&error_response(403, "UnauthorizedOperation", message))?;
            continue;
        }
        if faults.refused_action.as_deref() == Some(request.action.as_str()) {
            let message = "You are not authorized to perform this operation.";
            writer.write_all(&error_response(403, "UnauthorizedOperation", message))?;
            continue;
        }
        if let (Some(scale), Some((capacity, refill))) = (
            faults.throttle_time_scale,
            documented_bucket(&request.action),
        ) {
            let allowed = state.buckets.lock().map(|mut buckets| {
                buckets
                    .entry(request.action.clone())
                    .or_insert_with(|| Bucket {
                        tokens: capacity,
                        capacity,
                        refill: refill * scale,
                        at: Instant::now(),
                    })
                    .take(Instant::now())
            });
            if matches!(allowed, Ok(false)) {
                if let Ok(mut counts) = state.counts.lock() {
                    *counts.throttled.entry(request.action.clone()).or_default() += 1;
                }
                writer.write_all(&error_response(
                    503,
                    "RequestLimitExceeded",
                    "Request limit exceeded.",
                ))?;
                continue;
            }
        }
        let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
        upstream.write_all(&request.message.to_bytes())?;
        let response = Message::read(
            &mut BufReader::new(upstream),
            Reading::ResponseTo(request.message.method()),
        )?
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the emulator closed early",
            )
        })?
        .to_bytes();
        if let Ok(mut counts) = state.counts.lock() {
            *counts.forwarded.entry(request.action.clone()).or_default() += 1;
        }
        if faults.lost_answer_share > 0.0
            && draw(n, 0x1057) < faults.lost_answer_share
            && faults
                .lost_answer_action
                .as_ref()
                .is_none_or(|only| *only == request.action)
        {
            if let Ok(mut counts) = state.counts.lock() {
                *counts.lost.entry(request.action).or_default() += 1;
            }
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        writer.write_all(&response)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 3.0,
            capacity: 3.0,
            refill: 10.0,
            at: start,
        };
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start), "empty after the burst");
        assert!(
            bucket.take(start + Duration::from_millis(100)),
            "one token after 1/10 s"
        );
        assert!(!bucket.take(start + Duration::from_millis(100)));
    }

    #[test]
    fn draws_are_spread_and_repeatable() {
        let hits = (0..10_000).filter(|n| draw(*n, 1) < 0.2).count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
        assert_eq!(draw(42, 7), draw(42, 7));
    }

    #[test]
    fn documented_buckets_match_ec2s() {
        assert_eq!(documented_bucket("CreateSnapshots"), Some((100.0, 5.0)));
        assert_eq!(documented_bucket("DeleteSnapshot"), Some((100.0, 5.0)));
        assert_eq!(documented_bucket("DescribeInstances"), Some((100.0, 20.0)));
        assert_eq!(documented_bucket("Publish"), None);
    }
}
