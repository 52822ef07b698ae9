//! Header injection and malformed HTTP, written as raw bytes: CR LF and NUL in header values, obs-fold,
//! bad header names, conflicting lengths, a header block too large, and request ids and origins that
//! try to get themselves echoed into the answer's headers. The parser's refusals (empty 400/431) count
//! as clear; what reaches the product gets its JSON error, and no answer ever carries an injected header.

use super::check::{Body, Suite};
use super::client::Req;
use super::fixtures::Publication;
use super::server::OPERATOR;

fn request(head: &str) -> Vec<u8> {
    format!("{head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

pub async fn injection(suite: &mut Suite, a: &Publication, b: &Publication) {
    let bravo = format!("/admin/publications/{}", b.id);
    // Header values the parser refuses outright.
    let malformed: Vec<Vec<u8>> = vec![
        [format!("GET {bravo} HTTP/1.1\r\nAuthorization: Bearer ").as_bytes(), b"\x00", OPERATOR.as_bytes()].concat(),
        format!("GET {bravo} HTTP/1.1\r\nAuthorization: Bearer x\r\n  continued-{OPERATOR}").into_bytes(),
        format!("GET {bravo} HTTP/1.1\r\nBad Header: x").into_bytes(),
        format!("GET {bravo} HTTP/1.1\r\n: empty-name").into_bytes(),
        format!("PUT {bravo} HTTP/1.1\r\nContent-Length: abc").into_bytes(),
        format!("PUT {bravo} HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3").into_bytes(),
        format!("PUT {bravo} HTTP/1.1\r\nContent-Length: -1").into_bytes(),
        format!("PUT {bravo} HTTP/1.1\r\nTransfer-Encoding: gzip, chunked, identity").into_bytes(),
        format!("GET {bravo} HTTP/1.1\r\nX-Big: {}", "x".repeat(200 * 1024)).into_bytes(),
        format!("G\x01T {bravo} HTTP/1.1").into_bytes(),
    ];
    for head in malformed {
        let mut bytes = head;
        bytes.extend_from_slice(b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        suite.refused_bytes("header injection", bytes, &[400, 401, 404, 405, 413, 431], Body::Protocol).await;
    }
    // CR LF inside a value only ends the header: the rest is another request header, never an answer's.
    let split = [
        format!("GET {bravo} HTTP/1.1\r\nAuthorization: Bearer {}\r\nSet-Cookie: injected=1", a.key),
        format!(
            "GET {bravo} HTTP/1.1\r\nX-Request-Id: abc\r\nSet-Cookie: injected=1\r\nAuthorization: Bearer {}",
            a.key
        ),
        format!("GET {bravo} HTTP/1.1\r\nAuthorization: Bearer x\nX-Injected: {OPERATOR}"),
    ];
    for head in split {
        let answer = suite.refused_bytes("header injection", request(&head), &[400, 401, 404], Body::Protocol).await;
        if answer.header("set-cookie").is_some() || answer.header("x-injected").is_some() {
            suite.fail(format!("an injected header came back: {:?}", answer.headers));
        }
    }
    // Request ids the server must not echo: only short printable ASCII ids are kept (the parser itself
    // refuses some bytes, with no id at all).
    for id in [b"abc def".as_slice(), b"\xc3\xa9\xff", b"id\x7f", &[b'x'; 200]] {
        let req = Req::new("GET", &bravo).bearer(&a.key).header("X-Request-Id", id);
        let answer = suite.refused_with("header injection", req, &[400, 404], Body::Protocol).await;
        if let Some(echoed) = answer.header("x-request-id") {
            let fresh = echoed.len() == 26 && echoed.bytes().all(|c| c.is_ascii_alphanumeric());
            if !fresh {
                suite.fail(format!("x-request-id {echoed:?} echoes a bad id"));
            }
        }
    }
    // A Stripe-Signature or an Origin that is not text.
    let stripe = Req::new("POST", format!("/webhooks/stripe/{}/main", b.id))
        .header("Stripe-Signature", b"t=1,v1=\xff\xfe\x80")
        .json("{}");
    suite.refused("header injection", stripe, &[400]).await;
    for origin in
        [b"https://www.bravo.example\xff".as_slice(), b"https://www.bravo.example\tx", b"https://\xc3\xa9.example"]
    {
        let req = Req::new("GET", "/api/subscriptions?token=a.b.c").header("Origin", origin);
        let answer = suite.refused("header injection", req, &[400]).await;
        if answer.header("access-control-allow-origin").is_some() {
            suite.fail(format!("CORS granted to a malformed origin: {:?}", answer.headers));
        }
    }
    // Content-Type parameters and casing games on a JSON route: JSON is JSON, anything else is 415.
    for content_type in ["application/json; charset=\"\r\nX-Injected: 1\"", "text/plain; application/json"] {
        let req = Req::new("PUT", &bravo).bearer(OPERATOR).header("Content-Type", content_type).body("{}");
        suite.refused_with("header injection", req, &[400, 415], Body::Protocol).await;
    }
}
