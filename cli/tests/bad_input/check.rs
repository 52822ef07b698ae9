//! The suite's judge: sends each bad request, checks the answer is one of the statuses expected, a
//! 4xx with a JSON `{"error": "..."}` body (unless the HTTP parser itself refused the bytes), and
//! that no refusal carries a secret or another publication's data; counts requests per category and
//! collects every failure so one run reports them all.

use std::collections::BTreeMap;

use super::client::{self, Answer, Req};
use super::server::OPERATOR;

pub struct Suite {
    pub addr: String,
    tally: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
    /// Strings no refusal may contain, whoever asked: every secret of both publications.
    secrets: Vec<String>,
}

/// How strict to be about the body of a refusal.
#[derive(Clone, Copy, PartialEq)]
pub enum Body {
    /// The product answered: `{"error": "..."}`.
    JsonError,
    /// The bytes were not HTTP the server accepts; its parser answers with an empty body.
    Protocol,
}

impl Suite {
    pub fn new(addr: String, secrets: Vec<String>) -> Self {
        Self { addr, tally: BTreeMap::new(), failures: Vec::new(), secrets }
    }

    /// Sends `req` and checks it was refused with one of `allowed`.
    pub async fn refused(&mut self, category: &'static str, req: Req, allowed: &[u16]) -> Answer {
        self.refused_hiding(category, req, allowed, &[]).await
    }

    /// As `refused`, and the answer names none of `hidden` (another publication's data).
    pub async fn refused_hiding(
        &mut self,
        category: &'static str,
        req: Req,
        allowed: &[u16],
        hidden: &[String],
    ) -> Answer {
        let answer = client::send(&self.addr, &req).await;
        self.judge(category, &req.describe(), &answer, allowed, Body::JsonError, hidden);
        answer
    }

    /// As `refused`, saying how strict to be about the body.
    pub async fn refused_with(&mut self, category: &'static str, req: Req, allowed: &[u16], body: Body) -> Answer {
        let answer = client::send(&self.addr, &req).await;
        self.judge(category, &req.describe(), &answer, allowed, body, &[]);
        answer
    }

    /// Sends raw bytes (malformed HTTP) and checks the refusal.
    pub async fn refused_bytes(
        &mut self,
        category: &'static str,
        bytes: Vec<u8>,
        allowed: &[u16],
        body: Body,
    ) -> Answer {
        let what = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        let answer = client::send_bytes(&self.addr, bytes).await;
        self.judge(category, &what, &answer, allowed, body, &[]);
        answer
    }

    fn judge(
        &mut self,
        category: &'static str,
        what: &str,
        answer: &Answer,
        allowed: &[u16],
        body: Body,
        hidden: &[String],
    ) {
        *self.tally.entry(category).or_default() += 1;
        let mut wrong = Vec::new();
        if !allowed.contains(&answer.status) || !(400..500).contains(&answer.status) {
            wrong.push(format!("status {} (expected one of {allowed:?})", answer.status));
        }
        let protocol_refusal = body == Body::Protocol && answer.body.is_empty();
        if !protocol_refusal && answer.error().is_none_or(|e| e.is_empty()) {
            wrong.push("no JSON {\"error\": …} body".to_owned());
        }
        for secret in self.secrets.iter().chain(hidden) {
            if answer.body.contains(secret.as_str()) || answer.headers.iter().any(|(_, v)| v.contains(secret.as_str()))
            {
                wrong.push(format!("the answer contains {secret:?}"));
            }
        }
        if !wrong.is_empty() {
            let body: String = answer.body.chars().take(300).collect();
            self.fail(format!("[{category}] {what}: {} — body {body:?}", wrong.join("; ")));
        }
    }

    /// Sends `req`, which must be answered with `status` (a success the product gives on purpose, like
    /// Piano's 200 to a replay), with no secret in it, and whatever else `check` finds wrong.
    pub async fn answered(
        &mut self,
        category: &'static str,
        req: Req,
        status: u16,
        check: impl Fn(&Answer) -> Vec<String>,
    ) -> Answer {
        *self.tally.entry(category).or_default() += 1;
        let answer = client::send(&self.addr, &req).await;
        let mut wrong = check(&answer);
        if answer.status != status {
            wrong.push(format!("status {} (expected {status})", answer.status));
        }
        for secret in &self.secrets {
            if answer.body.contains(secret.as_str()) {
                wrong.push(format!("the answer contains {secret:?}"));
            }
        }
        if !wrong.is_empty() {
            let body: String = answer.body.chars().take(300).collect();
            self.fail(format!("[{category}] {}: {} — body {body:?}", req.describe(), wrong.join("; ")));
        }
        answer
    }

    pub fn fail(&mut self, message: String) {
        eprintln!("FAIL {message}");
        self.failures.push(message);
    }

    /// The server still answers a normal request (nothing above took it down).
    pub async fn alive(&mut self, after: &str) {
        let req = Req::new("GET", "/admin/publications/pub-alpha").bearer(OPERATOR);
        let answer = client::send(&self.addr, &req).await;
        if answer.status != 200 {
            self.fail(format!("after {after}: the server answered {} to a normal GET", answer.status));
        }
    }

    /// Every failure, and the number of requests of each category.
    pub fn finish(self) -> (Vec<String>, BTreeMap<&'static str, usize>) {
        (self.failures, self.tally)
    }
}
