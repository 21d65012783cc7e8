//! The function's log lines: with Lambda's JSON log format, one flat JSON object per event
//! (level, message, the event's fields, the request id once), a few hundred bytes each.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The runtime's span field that carries the invocation's request id.
const REQUEST_ID: &str = "requestId";

/// Installs the subscriber, filtered by [`filter`]; with `AWS_LAMBDA_LOG_FORMAT=JSON` (as
/// Lambda's advanced logging controls set it) one flat JSON object per event, else tracing's
/// plain text format.
pub fn init() {
    let filter = filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry();
    if json {
        let layer = layer.fmt_fields(JsonFields::new()).event_format(FlatJson);
        registry.with(layer.with_filter(filter)).init();
    } else {
        registry.with(layer.with_filter(filter)).init();
    }
}

/// What is logged: `RUST_LOG`'s per-target directives (`aws_smithy_runtime=debug`), at the
/// level `AWS_LAMBDA_LOG_LEVEL` names (else `RUST_LOG`'s own default level, else INFO).
/// tracing's `Targets` rather than `EnvFilter`, whose regex engine would cost the Lambda zip
/// tens of kilobytes for patterns nobody sets here.
pub fn filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let targets: Targets = rust_log
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_default();
    let level = lambda_level
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .or(targets.default_level())
        .unwrap_or(LevelFilter::INFO);
    targets.with_default(level)
}

/// One flat JSON object per event.
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Written by hand to keep this order: level, message, fields, request id.
        let mut line: Vec<(String, serde_json::Value)> =
            vec![("level".into(), event.metadata().level().as_str().into())];
        if let Some(message) = fields.message {
            line.push(("message".into(), message.into()));
        }
        line.extend(fields.others);
        // The innermost span that names a request (the runtime's invoke span) gives its id.
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                let id = extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|f| serde_json::from_str::<serde_json::Value>(&f.fields).ok())
                    .and_then(|v| v.get(REQUEST_ID).cloned());
                if let Some(id) = id {
                    line.push((REQUEST_ID.into(), id));
                    break;
                }
            }
        }
        let members: Vec<String> = line
            .iter()
            .map(|(key, value)| format!("{}:{value}", serde_json::Value::from(key.as_str())))
            .collect();
        let text = format!("{{{}}}", members.join(","));
        writeln!(writer, "{text}")
    }
}

/// An event's fields: its message apart, the others as JSON values in the order given.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    others: Vec<(String, serde_json::Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.others.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn lambdas_level_sets_the_default_and_rust_log_adds_targets() {
        let debug = tracing::Level::DEBUG;
        let info = tracing::Level::INFO;
        // Nothing set: INFO.
        let plain = filter(None, None);
        assert!(plain.would_enable("function", &info));
        assert!(!plain.would_enable("function", &debug));
        // Lambda's level, in the case Lambda writes it.
        assert!(filter(Some("DEBUG"), None).would_enable("function", &debug));
        assert!(!filter(Some("WARN"), None).would_enable("function", &info));
        // Lambda's FATAL is not a tracing level: INFO rather than nothing.
        assert!(filter(Some("FATAL"), None).would_enable("function", &info));
        // RUST_LOG alone, as a level or per target, on top of the default.
        assert!(filter(None, Some("debug")).would_enable("function", &debug));
        let targeted = filter(Some("WARN"), Some("aws_smithy_runtime=debug"));
        assert!(targeted.would_enable("aws_smithy_runtime::client", &debug));
        assert!(!targeted.would_enable("function", &info));
        // Unreadable directives are ignored, never fatal.
        assert!(filter(None, Some("=?!")).would_enable("function", &info));
    }

    #[test]
    fn an_event_in_the_runtime_span_is_one_flat_line_with_the_request_id_once() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_writer(captured.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // The span lambda_runtime opens around each invocation.
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
                xrayTraceId = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700"
            );
            let _entered = span.enter();
            tracing::info!(
                instance_id = "i-0123456789abcdef0",
                volumes = 3_u64,
                dry_run = false,
                "snapshot created"
            );
            tracing::warn!(snapshot_id = %"snap-1", "expired snapshot in use, kept");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines[0],
            r#"{"level":"INFO","message":"snapshot created","instance_id":"i-0123456789abcdef0","volumes":3,"dry_run":false,"requestId":"8476a536-e9f4-11e8-9739-2dfe598c3fcd"}"#
        );
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["level"], "WARN");
        assert_eq!(second["snapshot_id"], "snap-1");
        for line in &lines {
            assert_eq!(line.matches("8476a536").count(), 1, "{line}");
            assert!(!line.contains("span"), "{line}");
            assert!(line.len() < 300, "{} bytes: {line}", line.len());
        }
    }

    #[test]
    fn an_event_outside_any_invocation_has_no_request_id() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(variable = "SNS_TOPIC_ARN", "invalid configuration");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.trim_end(),
            r#"{"level":"ERROR","message":"invalid configuration","variable":"SNS_TOPIC_ARN"}"#
        );
    }
}
