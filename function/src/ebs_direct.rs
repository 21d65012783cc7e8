//! The EBS direct API's `ListChangedBlocks`, every page, as a SigV4-signed GET through the SDK's
//! own runtime and HTTP client: what a set changed, without the EBS SDK client (whose 132 KB
//! the function's zip budget cannot take, docs/function.md).

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

/// What `ListChangedBlocks` found between two snapshots of a volume, in blocks: every block
/// that differs, those of them the first snapshot did not have (written since) and those the
/// second no longer has (freed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    pub blocks: u64,
    pub new: u64,
    pub freed: u64,
}

/// A page of `ListChangedBlocks`: what it lists, and the token of the next page.
#[derive(Debug)]
struct Page {
    changed: Changed,
    next: Option<String>,
}

/// A `ListChangedBlocks` call that failed, with EBS's error code when it gave one.
#[derive(Debug)]
pub struct EbsError {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for EbsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for EbsError {}

/// Signs each request with SigV4 for `ebs` in the region, with credentials read before.
#[derive(Debug)]
struct Sign {
    identity: aws_smithy_runtime_api::client::identity::Identity,
    region: String,
}

impl Intercept for Sign {
    fn name(&self) -> &'static str {
        "SignEbsDirect"
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
        let signable = aws_sigv4::http_request::SignableRequest::new(
            request.method(),
            request.uri(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            aws_sigv4::http_request::SignableBody::Bytes(&[]),
        )?;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("ebs")
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

/// Which blocks of `second` differ from `first` (every block of `second` without a first),
/// reading every page.
pub async fn changed_blocks(
    sdk: &aws_config::SdkConfig,
    first: Option<&str>,
    second: &str,
) -> Result<Changed, EbsError> {
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let endpoint = sdk
        .endpoint_url()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("https://ebs.{region}.amazonaws.com"));
    let credentials = sdk
        .credentials_provider()
        .ok_or_else(|| EbsError {
            code: "NoCredentials".into(),
            message: "no credentials to sign with".into(),
        })?
        .provide_credentials()
        .await
        .map_err(|e| EbsError {
            code: "NoCredentials".into(),
            message: e.to_string(),
        })?;
    let mut operation = Operation::builder()
        .service_name("ebs")
        .operation_name("ListChangedBlocks")
        .endpoint_url(&endpoint)
        .no_auth()
        .no_retry()
        .interceptor(Sign {
            identity: credentials.into(),
            region,
        });
    if let Some(client) = sdk.http_client() {
        operation = operation.http_client(client);
    }
    if let Some(sleep) = sdk.sleep_impl() {
        operation = operation.sleep_impl(sleep);
    }
    let second = second.to_owned();
    let first = first.map(str::to_owned);
    let operation = operation
        .serializer(move |token: Option<String>| {
            let mut query = vec![("maxResults".to_owned(), "10000".to_owned())];
            if let Some(first) = &first {
                query.push(("firstSnapshotId".to_owned(), first.clone()));
            }
            if let Some(token) = token {
                query.push(("pageToken".to_owned(), token));
            }
            let query: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            let uri = format!(
                "/snapshots/{}/changedblocks?{}",
                encode(&second),
                query.join("&")
            );
            let mut request = HttpRequest::new(SdkBody::empty());
            request.set_method("GET")?;
            request.set_uri(uri)?;
            Ok(request)
        })
        .deserializer(|response: &HttpResponse| {
            let body = response.body().bytes().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let text = String::from_utf8_lossy(body);
            if !response.status().is_success() {
                return Err(OrchestratorError::operation(error_of(
                    response.status().as_u16(),
                    response.headers().get("x-amzn-ErrorType"),
                    &json,
                    &text,
                )));
            }
            let blocks = json["ChangedBlocks"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            let without = |token: &str| blocks.iter().filter(|b| b.get(token).is_none()).count();
            Ok(Page {
                changed: Changed {
                    blocks: blocks.len() as u64,
                    new: without("FirstBlockToken") as u64,
                    freed: without("SecondBlockToken") as u64,
                },
                next: json["NextToken"].as_str().map(str::to_owned),
            })
        })
        .build();
    let mut total = Changed::default();
    let mut token: Option<String> = None;
    loop {
        let page = operation.invoke(token.take()).await.map_err(|e| match e {
            aws_smithy_runtime_api::client::result::SdkError::ServiceError(service) => {
                service.into_err()
            }
            other => EbsError {
                code: "RequestFailed".into(),
                message: format!(
                    "{}",
                    aws_smithy_types::error::display::DisplayErrorContext(&other)
                ),
            },
        })?;
        total.blocks += page.changed.blocks;
        total.new += page.changed.new;
        total.freed += page.changed.freed;
        match page.next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(total),
        }
    }
}

/// EBS's error: its code from the `x-amzn-ErrorType` header (rest-json), the JSON body, or an
/// XML body (an authorization refusal), and its message; the status and the body's start else.
fn error_of(status: u16, header: Option<&str>, json: &serde_json::Value, text: &str) -> EbsError {
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
    EbsError { code, message }
}

/// Percent-encodes a query or path value (unreserved characters kept).
fn encode(value: &str) -> String {
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
