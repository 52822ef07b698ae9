//! The webhooks with bad deliveries: Stripe's without a valid signature of the right account (another
//! publication's secret included) or with a signed body that is no event; Piano's without `data`, with
//! `data` that does not decrypt, or with another publication's perfectly valid `data`.

use shared::domain::secret::Secret;
use shared::piano::webhook::encrypt;
use shared::stripe::signature::sign;

use super::check::Suite;
use super::client::Req;
use super::fixtures::Publication;

const EVENT: &str = r#"{"id":"evt_bad_input_1","object":"event","type":"customer.created","created":1767225600,"api_version":"2024-06-20","data":{"object":{"id":"cus_bad_input","object":"customer","email":"intruder@example.com","created":1767225600}},"livemode":false}"#;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub async fn stripe(suite: &mut Suite, a: &Publication, b: &Publication) {
    let url = format!("/webhooks/stripe/{}/main", b.id);
    let post = |signature: Option<&[u8]>, body: &[u8]| {
        let req = Req::new("POST", &url).json(body);
        match signature {
            Some(s) => req.header("Stripe-Signature", s),
            None => req,
        }
    };
    let event = EVENT.as_bytes();
    let t = now();
    let right = |body: &[u8], at: i64| sign(body, b.webhook_secret, at);
    let many = format!("t={t},{}", vec!["v1=00"; 2000].join(","));
    let cases: Vec<(Option<Vec<u8>>, Vec<u8>, u16)> = vec![
        (None, event.to_vec(), 400),
        (Some(b"".to_vec()), event.to_vec(), 400),
        (Some(b"garbage".to_vec()), event.to_vec(), 400),
        (Some(format!("t={t},v1=").into_bytes()), event.to_vec(), 400),
        (Some(format!("t={t},v1={}", "0".repeat(64)).into_bytes()), event.to_vec(), 400),
        (Some(format!("t=abc,v1={}", "0".repeat(64)).into_bytes()), event.to_vec(), 400),
        (Some(many.into_bytes()), event.to_vec(), 400),
        // A's secret on B's URL: another publication's delivery.
        (Some(sign(event, a.webhook_secret, t).into_bytes()), event.to_vec(), 400),
        // B's secret, but too old (a timestamp ahead of the clock passes, as in Stripe's libraries).
        (Some(right(event, t - 3600).into_bytes()), event.to_vec(), 400),
        (Some(right(event, 0).into_bytes()), event.to_vec(), 400),
        // A valid signature of other bytes.
        (Some(right(b"{}", t).into_bytes()), event.to_vec(), 400),
        (Some(b"t=1,v1=\xc3\xa9\xff".to_vec()), event.to_vec(), 400),
        // Signed with the right secret, but not a Stripe event.
        (Some(right(b"not json", t).into_bytes()), b"not json".to_vec(), 400),
        (Some(right(b"{\"object\":\"list\"}", t).into_bytes()), b"{\"object\":\"list\"}".to_vec(), 400),
        (Some(right(b"", t).into_bytes()), Vec::new(), 400),
        (Some(right(b"null", t).into_bytes()), b"null".to_vec(), 400),
    ];
    for (signature, body, status) in cases {
        suite.refused("webhooks", post(signature.as_deref(), &body), &[status]).await;
    }
    let signed = right(event, t);
    for path in [
        format!("/webhooks/stripe/{}/main", "pub-nobody"),
        format!("/webhooks/stripe/{}/second", b.id),
        format!("/webhooks/stripe/{}/MAIN", b.id),
    ] {
        let req = Req::new("POST", path).header("Stripe-Signature", &signed).json(event);
        suite.refused("webhooks", req, &[404]).await;
    }
    suite.refused("webhooks", Req::new("GET", &url), &[405]).await;
    suite.refused("webhooks", Req::new("PUT", &url).json(event), &[405]).await;
}

pub async fn piano(suite: &mut Suite, a: &Publication, b: &Publication) {
    let url = format!("/webhooks/piano/{}", b.id);
    let event = r#"{"type":"user_created","uid":"PNIintruder","aid":"AlphaAid01","email":"intruder@example.com"}"#;
    // Perfectly valid for A: B must refuse it (and A is never sent it, so nothing is applied).
    let alpha_data = encrypt(event, &Secret::new(a.private_key.to_owned()));
    let encoded: String = url::form_urlencoded::byte_serialize(alpha_data.as_bytes()).collect();
    let form =
        |body: String| Req::new("POST", &url).header("Content-Type", "application/x-www-form-urlencoded").body(body);
    let requests = vec![
        Req::new("GET", &url),
        Req::new("GET", format!("{url}?data=")),
        Req::new("GET", format!("{url}?data=garbage")),
        Req::new("GET", format!("{url}?data=%7E%7E%7E")),
        Req::new("GET", format!("{url}?data={}", "A".repeat(40_000))),
        Req::new("GET", format!("{url}?data={encoded}")),
        form(format!("data={encoded}")),
        Req::new("POST", &url).json(format!(r#"{{"data": "{alpha_data}"}}"#)),
        Req::new("POST", &url).json(r#"{"data": 1}"#),
        Req::new("POST", &url).json(r#"{"data": null}"#),
        Req::new("POST", &url).json("not json"),
        Req::new("POST", &url).header("Content-Type", "text/plain").body(format!("data={encoded}")),
        form("data=bm90IGVuY3J5cHRlZA%3D%3D%7E%7E%7Esig".into()),
        form(String::new()),
    ];
    for req in requests {
        suite.refused("webhooks", req, &[400]).await;
    }
    // B's own valid data for a publication that does not exist, or has no Piano settings.
    let bravo_data = encrypt(event, &Secret::new(b.private_key.to_owned()));
    let bravo_encoded: String = url::form_urlencoded::byte_serialize(bravo_data.as_bytes()).collect();
    for publication in ["pub-nobody", "PUB-BRAVO"] {
        let req = Req::new("GET", format!("/webhooks/piano/{publication}?data={bravo_encoded}"));
        suite.refused("webhooks", req, &[404]).await;
    }
    suite.refused("webhooks", Req::new("PUT", &url), &[405]).await;
}
