//! Bodies no route may accept: larger than the route's limit (413), nested 100,000 deep (400, and no
//! stack overflow), not UTF-8 (400), and, on the admin JSON routes, well-formed JSON under a content
//! type that is not JSON (415). Webhook bodies are signed with the right secret, so the check past the
//! signature is the one exercised.

use shared::http::body::MAX_ADMIN_BODY;
use shared::stripe::signature::sign;
use shared::sync::envelope::MAX_BODY_BYTES;

use super::admin::NO_TASK;
use super::check::Suite;
use super::client::Req;
use super::fixtures::Publication;
use super::server::OPERATOR;

const DEPTH: usize = 100_000;

/// The admin routes that read a JSON body, each with a body it would accept.
fn json_routes(b: &Publication) -> Vec<(&'static str, String, String)> {
    let base = format!("/admin/publications/{}", b.id);
    vec![
        ("PUT", base.clone(), b.settings().to_string()),
        ("POST", format!("{base}/customers"), r#"{"email": "new.reader@example.com"}"#.into()),
        ("PATCH", format!("{base}/customers/{}", b.customer), r#"{"name": "Renamed"}"#.into()),
        ("PATCH", format!("{base}/tasks/{NO_TASK}"), r#"{"status": "done"}"#.into()),
        ("POST", format!("{base}/backfill"), r#"{"account": "main"}"#.into()),
    ]
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A Stripe delivery to B's account `main`, signed with B's signing secret.
fn stripe(b: &Publication, body: &[u8]) -> Req {
    let path = format!("/webhooks/stripe/{}/main", b.id);
    Req::new("POST", path).header("Stripe-Signature", sign(body, b.webhook_secret, now())).json(body)
}

fn winback(b: &Publication) -> Req {
    Req::new("POST", "/api/subscriptions/winback?token=x.y.z").header("Origin", b.origin)
}

pub async fn oversized(suite: &mut Suite, b: &Publication) {
    let admin = format!(r#"{{"name": "{}"}}"#, "x".repeat(MAX_ADMIN_BODY));
    for (method, path, _) in json_routes(b) {
        suite.refused("oversized", Req::new(method, path).bearer(OPERATOR).json(&admin), &[413]).await;
    }
    // Without a Content-Length: the limit holds while the body streams in.
    let chunk = "x".repeat(64 * 1024);
    let mut chunked = format!(
        "PUT /admin/publications/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {OPERATOR}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b.id
    );
    for _ in 0..(MAX_ADMIN_BODY / chunk.len() + 2) {
        chunked.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    chunked.push_str("0\r\n\r\n");
    suite.refused_bytes("oversized", chunked.into_bytes(), &[413], super::check::Body::JsonError).await;
    suite.refused("oversized", winback(b).json(&admin), &[413]).await;
    let webhook = format!(r#"{{"id": "evt_1", "object": "event", "pad": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    suite.refused("oversized", stripe(b, webhook.as_bytes()), &[413]).await;
    let piano = Req::new("POST", format!("/webhooks/piano/{}", b.id))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("data={}", "A".repeat(MAX_BODY_BYTES)));
    suite.refused("oversized", piano, &[413]).await;
}

pub async fn deep_json(suite: &mut Suite, b: &Publication) {
    let arrays = "[".repeat(DEPTH);
    // Five bytes a level: 40,000 levels stay under the admin routes' body limit.
    let objects = r#"{"a":"#.repeat(40_000);
    let closed = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let in_field = format!(r#"{{"name": {arrays}"#);
    for body in [&arrays, &objects, &closed, &in_field] {
        for (method, path, _) in json_routes(b) {
            suite.refused("deep JSON", Req::new(method, path).bearer(OPERATOR).json(body), &[400]).await;
        }
        suite.refused("deep JSON", stripe(b, body.as_bytes()), &[400]).await;
        let piano = Req::new("POST", format!("/webhooks/piano/{}", b.id)).json(format!(r#"{{"data": {body}}}"#));
        suite.refused("deep JSON", piano, &[400]).await;
        // The winback's caller is resolved before its body is read: the answer is about the token.
        suite.refused("deep JSON", winback(b).json(body), &[400]).await;
    }
}

pub async fn invalid_utf8(suite: &mut Suite, b: &Publication) {
    let bodies: [&[u8]; 4] = [
        b"{\"name\": \"\xff\xfe\"}",
        b"{\"email\": \"\xc3\x28@example.com\"}",
        b"{\"name\": \"caf\xe9\"}",
        b"{\"status\": \"\xed\xa0\x80\"}",
    ];
    for body in bodies {
        for (method, path, _) in json_routes(b) {
            suite.refused("invalid UTF-8", Req::new(method, path).bearer(OPERATOR).json(body), &[400]).await;
        }
        suite.refused("invalid UTF-8", stripe(b, body), &[400]).await;
        let form = Req::new("POST", format!("/webhooks/piano/{}", b.id))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body([b"data=".as_slice(), body].concat());
        suite.refused("invalid UTF-8", form, &[400]).await;
    }
    let base = format!("/admin/publications/{}", b.id);
    for query in [
        "/customers?email=%FF%FE%40example.com",
        "/customers?status=%C0%AF",
        "/customers?cursor=%ED%A0%80",
        "/tasks?status=%FF",
        "/revenue?from=%FF%FE",
        "/exports/customers?format=%FF",
    ] {
        suite.refused("invalid UTF-8", Req::new("GET", format!("{base}{query}")).bearer(OPERATOR), &[400]).await;
    }
    let piano = Req::new("GET", format!("/webhooks/piano/{}?data=%FF%FE%C0", b.id));
    suite.refused("invalid UTF-8", piano, &[400]).await;
    let public = Req::new("GET", "/api/subscriptions?token=%FF%FE.%C0.%80").header("Origin", b.origin);
    suite.refused("invalid UTF-8", public, &[400]).await;
}

pub async fn content_types(suite: &mut Suite, b: &Publication) {
    let wrong: [Option<&[u8]>; 9] = [
        None,
        Some(b"text/plain"),
        Some(b"application/x-www-form-urlencoded"),
        Some(b"multipart/form-data; boundary=x"),
        Some(b"application/xml"),
        Some(b"application/jsonx"),
        Some(b"json"),
        Some(b""),
        Some(b"application/json\xff"),
    ];
    for (method, path, body) in json_routes(b) {
        for content_type in wrong {
            let mut req = Req::new(method, &path).bearer(OPERATOR).body(&body);
            if let Some(value) = content_type {
                req = req.header("Content-Type", value);
            }
            suite.refused("content type", req, &[415]).await;
        }
    }
}
