//! The Piano proxy's fan-out: a forward job replays Piano's original request (method, query string
//! with `data`, body, content type) to one legacy endpoint. Jobs travel on the forward queue, one per
//! endpoint, so a dead endpoint retries (and ends in the dead-letter queue) without delaying others.
//! Private, loopback and link-local targets are refused unless the deployment allows them
//! (`CRM_FORWARD_ALLOW_PRIVATE=1`, for tests and local runs); the checked address is the one used.
//! Automation notifications (`notify`) travel the same way: a JSON POST with an `Idempotency-Key`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::ids::PublicationId;
use crate::queue::Received;
use crate::queue::worker::{BatchHandler, each_concurrently};

/// One delivery of one Piano request to one legacy endpoint (or of one automation notification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardJob {
    pub publication: PublicationId,
    /// The legacy endpoint, without the original query (which `query` carries).
    pub url: String,
    pub method: String,
    /// The original query string, `data` included, as received.
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    /// Further request headers (a notification's `Idempotency-Key`); jobs written before it have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl ForwardJob {
    /// The target's scheme and host, for logs: the path of a chat webhook URL is its secret.
    pub fn target(&self) -> String {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{}://{h}", u.scheme())))
            .unwrap_or_else(|| "(invalid URL)".into())
    }
}

/// One Piano request as every forward job of it replays it; `job` writes the job of one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    pub publication: &'a PublicationId,
    pub method: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a str,
}

impl Replay<'_> {
    /// The queue message of the job delivering this request to `url`: `ForwardJob`'s JSON, written
    /// from the borrowed request (a request fans out to up to 10 endpoints; its `data` is copied
    /// once per job, into the message, and nowhere else).
    pub fn job(&self, url: &str) -> serde_json::Result<String> {
        /// `ForwardJob`'s fields, in its order, borrowed (a replay has no `headers`, which a job omits when empty).
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Job<'a> {
            publication: &'a PublicationId,
            url: &'a str,
            method: &'a str,
            query: Option<&'a str>,
            content_type: Option<&'a str>,
            body: &'a str,
        }
        let job = Job {
            publication: self.publication,
            url,
            method: self.method,
            query: self.query,
            content_type: self.content_type,
            body: self.body,
        };
        // Room for the fields and their names; JSON escapes in the query or body are rare.
        let room = 128 + url.len() + self.query.map_or(0, str::len) + self.body.len();
        let mut out = Vec::with_capacity(room);
        serde_json::to_writer(&mut out, &job)?;
        // serde_json writes UTF-8 only.
        Ok(String::from_utf8(out).expect("JSON is UTF-8"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("job is not valid: {0}")]
    BadJob(String),
    #[error("target refused: {0}")]
    Refused(String),
    #[error("delivery failed: {0}")]
    Failed(String),
}

const TIMEOUT: Duration = Duration::from_secs(15);

/// Whether a legacy endpoint may be reached at `ip`: not in any block of IANA's IPv4 and IPv6
/// Special-Purpose Address registries (private, loopback, link-local, shared `100.64/10`, `0/8`,
/// `192.0.0/24`, benchmarking `198.18/15`, reserved `240/4`, documentation, IPv4-mapped, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`, unique-local, …: the `iprfc` crate's
/// snapshot of them), nor multicast, nor an IPv4-compatible `::/96` address (RFC 4291).
fn is_public(ip: IpAddr) -> bool {
    ![iprfc::RFC6890, iprfc::RFC4291, iprfc::RFC3171].iter().any(|blocks| blocks.contains(&ip))
}

/// Delivers forward jobs.
pub struct Forwarder {
    client: crate::http::outbound::LazyClient,
    allow_private: bool,
}

impl Forwarder {
    pub fn new(allow_private: bool) -> Self {
        let client = crate::http::outbound::LazyClient::new(|builder| {
            // A legacy endpoint redirecting elsewhere must not get around the address check.
            builder.timeout(TIMEOUT).connect_timeout(Duration::from_secs(5)).redirect(reqwest::redirect::Policy::none())
        });
        Self { client, allow_private }
    }

    /// The address to connect to, after the check (resolving once, so a second lookup cannot differ).
    async fn target(&self, url: &url::Url) -> Result<SocketAddr, ForwardError> {
        let host = url.host_str().ok_or_else(|| ForwardError::BadJob("URL without host".into()))?;
        let port = url.port_or_known_default().ok_or_else(|| ForwardError::BadJob("URL without port".into()))?;
        let mut addresses = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| ForwardError::Failed(format!("resolving {host}: {e}")))?;
        let address = addresses.next().ok_or_else(|| ForwardError::Failed(format!("{host} has no address")))?;
        if !self.allow_private && !is_public(address.ip()) {
            return Err(ForwardError::Refused(format!("{host} resolves to a non-public address")));
        }
        Ok(address)
    }

    pub async fn deliver(&self, job: &ForwardJob) -> Result<u16, ForwardError> {
        let mut url = url::Url::parse(&job.url).map_err(|e| ForwardError::BadJob(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ForwardError::BadJob("only http(s) targets".into()));
        }
        url.set_query(job.query.as_deref());
        let method =
            reqwest::Method::from_bytes(job.method.as_bytes()).map_err(|e| ForwardError::BadJob(e.to_string()))?;
        let address = self.target(&url).await?;
        let client = self.client.get().map_err(ForwardError::Failed)?;
        // Pin the checked address for this request only (a per-request client keeps the pool clean).
        let pinned = match url.host_str() {
            Some(host) if url.host().is_some_and(|h| matches!(h, url::Host::Domain(_))) => reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .resolve(host, address)
                .build()
                .map_err(|e| ForwardError::Failed(e.to_string()))?,
            _ => client.clone(),
        };
        let mut request = pinned.request(method, url).body(job.body.clone());
        if let Some(content_type) = &job.content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in &job.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ForwardError::BadJob(format!("header name: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| ForwardError::BadJob(format!("header {name}: {e}")))?;
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| ForwardError::Failed(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(ForwardError::Failed(format!("{} answered {status}", job.target())))
        }
    }
}

/// `piano-forwarder`: each message is one job; a failed delivery fails only its message.
pub struct ForwardWorker {
    forwarder: Arc<Forwarder>,
}

impl ForwardWorker {
    pub fn new(forwarder: Arc<Forwarder>) -> Self {
        Self { forwarder }
    }

    async fn one(&self, message: &Received) -> bool {
        let job: ForwardJob = match serde_json::from_str(&message.body) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "forward job is not valid; it goes to the dead-letter queue");
                return false;
            }
        };
        match self.forwarder.deliver(&job).await {
            Ok(status) => {
                tracing::info!(target_host = %job.target(), status, publication = %job.publication, "forward job delivered");
                true
            }
            Err(e) => {
                tracing::warn!(target_host = %job.target(), error = %e, attempt = message.receive_count, "forward failed; will retry");
                false
            }
        }
    }
}

#[async_trait]
impl BatchHandler for ForwardWorker {
    async fn handle(&self, batch: &[Received]) -> Vec<String> {
        each_concurrently(batch, |m| self.one(m)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_writes_the_forward_job_of_each_endpoint() {
        let publication = PublicationId::parse("daily").unwrap();
        for (query, content_type, body) in [
            (Some("data=abc%7E%7E%7Edef&v=2"), None, ""),
            (None, Some("application/json"), "{\"data\":\"a\\\"b\u{e9}\n\"}"),
            (Some(""), Some("application/x-www-form-urlencoded"), "data=x+y%26"),
        ] {
            let replay = Replay { publication: &publication, method: "POST", query, content_type, body };
            let url = "https://legacy.example/hook?site=daily";
            let expected = ForwardJob {
                publication: publication.clone(),
                url: url.to_owned(),
                method: "POST".to_owned(),
                query: query.map(str::to_owned),
                content_type: content_type.map(str::to_owned),
                body: body.to_owned(),
                headers: Vec::new(),
            };
            let message = replay.job(url).unwrap();
            assert_eq!(message, serde_json::to_string(&expected).unwrap());
            assert_eq!(serde_json::from_str::<ForwardJob>(&message).unwrap(), expected);
        }
    }

    #[test]
    fn every_special_purpose_range_is_refused() {
        // One address per range: IANA's IPv4 and IPv6 special-purpose registries, multicast, and
        // IPv6 forms that carry an IPv4 address.
        for special in [
            "0.1.2.3",          // 0.0.0.0/8 "this network"
            "0.0.0.0",          // unspecified
            "10.1.2.3",         // 10/8 private
            "100.64.0.1",       // 100.64/10 shared (carrier-grade NAT)
            "127.0.0.1",        // 127/8 loopback
            "169.254.169.254",  // 169.254/16 link-local (cloud metadata)
            "172.16.5.4",       // 172.16/12 private
            "192.0.0.8",        // 192.0.0/24 IETF protocol assignments
            "192.0.2.1",        // 192.0.2/24 documentation
            "192.88.99.1",      // 192.88.99/24 6to4 relay anycast
            "192.168.0.1",      // 192.168/16 private
            "198.18.0.1",       // 198.18/15 benchmarking
            "198.51.100.7",     // 198.51.100/24 documentation
            "203.0.113.9",      // 203.0.113/24 documentation
            "224.0.0.251",      // 224/4 multicast
            "240.0.0.1",        // 240/4 reserved
            "255.255.255.255",  // limited broadcast
            "::",               // unspecified
            "::1",              // loopback
            "::127.0.0.1",      // IPv4-compatible (deprecated, ::/96)
            "::ffff:127.0.0.1", // IPv4-mapped
            "::ffff:8.8.8.8",   // IPv4-mapped, even of a public address
            "64:ff9b::a00:1",   // NAT64 64:ff9b::/96
            "64:ff9b:1::1",     // local-use NAT64 64:ff9b:1::/48
            "100::1",           // discard-only 100::/64
            "2001::1",          // Teredo 2001::/32
            "2001:db8::1",      // documentation
            "2002:a00:1::1",    // 6to4 2002::/16
            "3fff::1",          // documentation 3fff::/20
            "fd00::1",          // unique-local fc00::/7
            "fe80::1",          // link-local
            "ff02::1",          // multicast
        ] {
            assert!(!is_public(special.parse().unwrap()), "{special}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "1.1.1.1", "8.8.8.8", "2a00:1450:4001::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
