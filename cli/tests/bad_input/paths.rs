//! Ids that try to leave their path segment or break what reads them: encoded and raw `..`, NUL,
//! CR LF, over-long, non-ASCII and invalid UTF-8 ids, in every path parameter of every route. Each is
//! refused as a bad id (400) or an absent one (404), to the operator too.

use super::admin::NO_TASK;
use super::check::{Body, Suite};
use super::client::Req;
use super::fixtures::Publication;
use super::server::OPERATOR;

/// Encoded forms, put in place of one path parameter.
fn hostile_ids(b: &Publication) -> Vec<String> {
    let mut ids: Vec<String> = [
        "..",
        ".",
        "%2e%2e",
        "%2E%2E%2F%2E%2E%2Fpub-alpha",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "..%5C..%5Cwindows",
        "%252e%252e%252f",
        "%00",
        "%C0%AE%C0%AE",
        "%C3%A9t%C3%A9",
        "%F0%9F%98%80",
        "%FF%FE",
        "%20",
        "~",
        "*",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    ids.push(format!("{}%00", b.id));
    ids.push(format!("{}%2F..%2Fpub-alpha", b.id));
    ids.push(format!("{}%0D%0ASet-Cookie:%20injected=1", b.id));
    ids.push(format!("{};x=1", b.id));
    ids.push(format!("{}%3F", b.id));
    ids.push(b.id.to_uppercase());
    ids.push("p".repeat(5000));
    ids
}

/// Route templates with one `{}` for the hostile id, and a method and body for each.
fn templates(b: &Publication) -> Vec<(&'static str, String, Option<&'static str>)> {
    let admin = format!("/admin/publications/{}", b.id);
    vec![
        ("GET", "/admin/publications/{}".into(), None),
        ("PUT", "/admin/publications/{}".into(), Some(r#"{"name": "x"}"#)),
        ("POST", "/admin/publications/{}/keys".into(), None),
        ("GET", "/admin/publications/{}/keys".into(), None),
        ("DELETE", format!("{admin}/keys/{{}}"), None),
        ("GET", "/admin/publications/{}/customers".into(), None),
        ("POST", "/admin/publications/{}/customers".into(), Some(r#"{"email": "new.reader@example.com"}"#)),
        ("GET", "/admin/publications/{}/backfill".into(), None),
        ("GET", "/admin/publications/{}/revenue".into(), None),
        ("GET", "/admin/publications/{}/sync".into(), None),
        ("GET", "/admin/publications/{}/tasks".into(), None),
        ("GET", "/admin/publications/{}/exports/customers".into(), None),
        ("GET", format!("{admin}/customers/{{}}"), None),
        ("PATCH", format!("{admin}/customers/{{}}"), Some(r#"{"name": "x"}"#)),
        ("PATCH", format!("{admin}/tasks/{{}}"), Some(r#"{"status": "done"}"#)),
        ("GET", format!("{admin}/exports/{{}}"), None),
        ("POST", format!("{admin}/stripe-accounts/{{}}/webhook-endpoint"), None),
        ("POST", "/webhooks/stripe/{}/main".into(), Some("{}")),
        ("POST", format!("/webhooks/stripe/{}/{{}}", b.id), Some("{}")),
        ("GET", "/webhooks/piano/{}?data=x".into(), None),
        ("DELETE", "/api/subscriptions/{}".into(), None),
    ]
}

pub async fn traversal(suite: &mut Suite, b: &Publication) {
    for (method, template, body) in templates(b) {
        for id in hostile_ids(b) {
            let mut req = Req::new(method, template.replacen("{}", &id, 1)).bearer(OPERATOR);
            if let Some(body) = body {
                req = req.json(body);
            }
            suite.refused("path traversal", req, &[400, 404]).await;
        }
    }
    // Raw dot segments (no client would send them; nothing normalises them on the way in).
    let raw = [
        format!("/admin/publications/../publications/{}", b.id),
        format!("/admin/publications/pub-alpha/../{}/customers", b.id),
        format!("/admin/publications/{}/customers/../../pub-alpha/customers", b.id),
        format!("/admin/publications/{}/customers/..", b.id),
        format!("/admin/publications/{}/tasks/../{NO_TASK}", b.id),
        "/admin/publications/./customers".into(),
        "/admin/publications//customers".into(),
        "/admin/publications/%2e%2e/customers".into(),
        "/webhooks/piano/../../admin/publications".into(),
        "/../../../../etc/passwd".into(),
        "/api/subscriptions/../../admin/publications/pub-bravo".into(),
    ];
    for target in raw {
        suite.refused("path traversal", Req::new("GET", target).bearer(OPERATOR), &[400, 404, 405]).await;
    }
    // Bytes not allowed in a request target at all: the HTTP parser refuses them.
    for target in [
        b"/admin/publications/pub-\xff".as_slice(),
        b"/admin/publications/pub\x00bravo",
        b"/admin/publications/pub bravo",
        b"admin/publications/pub-bravo",
    ] {
        let req = Req::new("GET", target).bearer(OPERATOR);
        suite.refused_with("path traversal", req, &[400, 404], Body::Protocol).await;
    }
}
