//! One SigV4-signed REST call through the SDK's own runtime and HTTP client, for the calls
//! whose SDK clients the zip cannot take (docs/function.md, "Zip size"): the EBS direct API's
//! `ListChangedBlocks` and Lambda's `Invoke` of the next link.

use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime::client::orchestrator::operation::Operation;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use std::time::SystemTime;

/// A call that failed, with the service's error code when it gave one.
#[derive(Debug)]
pub struct CallError {
    pub code: String,
    pub message: String,
    /// The answer's HTTP status; 0 when none came (or the call was never sent).
    pub status: u16,
}

/// The error codes of a throttled call (Systems Manager's, EBS's and EC2's): nothing was done.
const THROTTLED: &[&str] = &[
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
];

impl CallError {
    /// Whether the service may have acted although the call failed: no answer came, or it
    /// answered 5xx without being throttled.
    pub fn may_have_acted(&self) -> bool {
        self.code == REQUEST_FAILED || (self.status >= 500 && !self.throttled())
    }

    pub fn throttled(&self) -> bool {
        THROTTLED.contains(&self.code.as_str())
    }
}

/// The code of a call that got no answer (a timeout, a dropped connection).
const REQUEST_FAILED: &str = "RequestFailed";

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CallError {}

/// One request: `method` `path` (with its query, values encoded with [`encode`]) and `body`,
/// to `service` (its signing name, also its endpoint's prefix) at `endpoint`, or the SDK
/// configuration's, or AWS's regional one.
pub struct Call<'a> {
    pub service: &'static str,
    pub operation: &'static str,
    pub endpoint: Option<&'a str>,
    pub method: &'static str,
    pub path: String,
    pub headers: &'a [(&'static str, &'a str)],
    pub body: Vec<u8>,
}

/// Signs each request with SigV4 for the service in the region, with credentials read before.
#[derive(Debug)]
struct Sign {
    identity: aws_smithy_runtime_api::client::identity::Identity,
    region: String,
    service: &'static str,
}

impl Intercept for Sign {
    fn name(&self) -> &'static str {
        "SignedCall"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let body = request.body().bytes().unwrap_or_default();
        let signable = aws_sigv4::http_request::SignableRequest::new(
            request.method(),
            request.uri(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            aws_sigv4::http_request::SignableBody::Bytes(body),
        )?;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()?
            .into();
        let (instructions, _signature) =
            aws_sigv4::http_request::sign(signable, &params)?.into_parts();
        let (headers, _) = instructions.into_parts();
        for header in headers {
            request
                .headers_mut()
                .insert(header.name(), header.value().to_owned());
        }
        Ok(())
    }
}

/// Sends `call` once (no retry: the callers pace and retry as they do every call) and returns
/// the body of a successful answer.
pub async fn send(sdk: &aws_config::SdkConfig, call: Call<'_>) -> Result<Vec<u8>, CallError> {
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let endpoint = call
        .endpoint
        .or(sdk.endpoint_url())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("https://{}.{region}.{suffix}", call.service));
    let credentials = sdk
        .credentials_provider()
        .ok_or_else(|| CallError {
            code: "NoCredentials".into(),
            message: "no credentials to sign with".into(),
            status: 0,
        })?
        .provide_credentials()
        .await
        .map_err(|e| CallError {
            code: "NoCredentials".into(),
            message: e.to_string(),
            status: 0,
        })?;
    let mut operation = Operation::builder()
        .service_name(call.service)
        .operation_name(call.operation)
        .endpoint_url(&endpoint)
        .no_auth()
        .no_retry()
        .interceptor(Sign {
            identity: credentials.into(),
            region,
            service: call.service,
        });
    if let Some(client) = sdk.http_client() {
        operation = operation.http_client(client);
    }
    if let Some(sleep) = sdk.sleep_impl() {
        operation = operation.sleep_impl(sleep);
    }
    let (method, path) = (call.method, call.path);
    let headers: Vec<(&'static str, String)> = call
        .headers
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    let operation = operation
        .serializer(move |body: Vec<u8>| {
            let mut request = HttpRequest::new(SdkBody::from(body));
            request.set_method(method)?;
            request.set_uri(path.clone())?;
            for (name, value) in &headers {
                request.headers_mut().insert(*name, value.clone());
            }
            Ok(request)
        })
        .deserializer(|response: &HttpResponse| {
            let body = response.body().bytes().unwrap_or_default();
            if response.status().is_success() {
                return Ok(body.to_vec());
            }
            let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            Err(OrchestratorError::operation(error_of(
                response.status().as_u16(),
                response.headers().get("x-amzn-ErrorType"),
                &json,
                &String::from_utf8_lossy(body),
            )))
        })
        .build();
    operation.invoke(call.body).await.map_err(|e| match e {
        aws_smithy_runtime_api::client::result::SdkError::ServiceError(service) => {
            service.into_err()
        }
        other => CallError {
            code: REQUEST_FAILED.into(),
            status: 0,
            message: format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&other)
            ),
        },
    })
}

/// The service's error: its code from the `x-amzn-ErrorType` header (rest-json), the JSON body,
/// or an XML body (an authorization refusal), and its message; the status and the body's start
/// else.
fn error_of(status: u16, header: Option<&str>, json: &serde_json::Value, text: &str) -> CallError {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].to_owned())
    };
    let code = header
        .map(|h| h.split(':').next().unwrap_or(h).to_owned())
        .or_else(|| json["__type"].as_str().map(str::to_owned))
        .or_else(|| between("<Code>", "</Code>"))
        .map(|c| c.rsplit('#').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = json["message"]
        .as_str()
        .or(json["Message"].as_str())
        .map(str::to_owned)
        .or_else(|| between("<Message>", "</Message>"))
        .unwrap_or_else(|| {
            format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            )
        });
    CallError {
        code,
        message,
        status,
    }
}

/// Percent-encodes a query or path value (unreserved characters kept).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_from_the_header_json_or_xml() {
        let json = serde_json::json!({"message": "no such snapshot"});
        let e = error_of(
            404,
            Some("ResourceNotFoundException:http://internal"),
            &json,
            "",
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ResourceNotFoundException", "no such snapshot")
        );
        let typed = serde_json::json!({"__type": "com.amazon#ValidationException", "Message": "m"});
        assert_eq!(error_of(400, None, &typed, "").code, "ValidationException");
        let xml = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized to perform: ebs:ListChangedBlocks</Message></Error></ErrorResponse>";
        let e = error_of(403, None, &serde_json::Value::Null, xml);
        assert_eq!(e.code, "AccessDenied");
        assert!(e.message.contains("ebs:ListChangedBlocks"));
        let e = error_of(502, None, &serde_json::Value::Null, "bad gateway");
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("HTTP502", "HTTP 502: bad gateway")
        );
        assert_eq!(encode("snap-1/a b"), "snap-1%2Fa%20b");
    }
}
