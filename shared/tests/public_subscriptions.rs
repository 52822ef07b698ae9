//! The public subscription routes of seed 002 through fake Stripe and Piano servers: every success
//! shape and error string, tokens for other publications, other readers' subscriptions, prices not
//! offered, `alg: none`, expired tokens, disallowed origins, and CORS; and a publication without a JWT
//! secret, whose readers' tokens only Piano verifies (issue 25).

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::api::ApiConfig;
use support::public_site::{AID, API_TOKEN, JWT_SECRET, ORIGIN, READER, Site, jwt, now, reader_token};

fn error(message: &str) -> Value {
    json!({ "error": message })
}

#[tokio::test]
async fn list_answers_every_subscription_with_its_account() {
    let site = Site::new().await;
    let (status, headers, body) =
        site.call("GET", &format!("/api/subscriptions?token={}", reader_token()), Some(ORIGIN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["subscriptions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"sub_R1") && ids.contains(&"sub_R0"), "canceled ones too (status=all): {ids:?}");
    let first = &body["subscriptions"][0];
    assert_eq!(first["object"], "subscription", "Stripe's object as Stripe returned it");
    assert_eq!(first["stripeAccountName"], "Daily Media Ltd");
    assert_eq!(first["stripeAccountId"], "acct_1PgafTB7WZ01zgkW", "as Stripe's GET /v1/account names it");
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(headers["vary"], "Origin");
    let asked = site.stripe.requests().into_iter().find(|r| r.path == "/v1/subscriptions").unwrap();
    assert_eq!(asked.param("status"), Some("all"));
    assert!(site.piano.requests().is_empty(), "the list stays cheap: no call to Piano");

    // The account id was asked once and kept: the next list does not ask again.
    let account_reads = || site.stripe.requests().iter().filter(|r| r.path == "/v1/account").count();
    assert_eq!(account_reads(), 1);
    let (_, _, again) =
        site.call("GET", &format!("/api/subscriptions?token={}", reader_token()), Some(ORIGIN), None).await;
    assert_eq!(again["subscriptions"][0]["stripeAccountId"], "acct_1PgafTB7WZ01zgkW");
    assert_eq!(account_reads(), 1);
}

#[tokio::test]
async fn every_resolution_error_of_the_seed() {
    let site = Site::new().await;
    let token = site.token.clone();
    let other_app = jwt(json!({"aud": "OtherAid", "sub": READER, "exp": now() + 3600}), JWT_SECRET);
    let no_aud = jwt(json!({"sub": READER, "exp": now() + 3600}), JWT_SECRET);
    let stranger = jwt(json!({"aud": AID, "sub": "PNIunknown", "exp": now() + 3600}), JWT_SECRET);
    let no_stripe = jwt(json!({"aud": AID, "sub": "PNInostripe3", "exp": now() + 3600}), JWT_SECRET);
    // Piano issued these: an unknown uid or one without Stripe customers is asked about (first visit).
    site.piano.accept_token_unconfirmed(AID, API_TOKEN, &stranger, "PNIunknown");
    site.piano.accept_token_unconfirmed(AID, API_TOKEN, &no_stripe, "PNInostripe3");
    let cases: Vec<(Option<&str>, String, &str)> = vec![
        (None, token.clone(), "Origin not found."),
        (Some(ORIGIN), String::new(), "Token not found."),
        (Some(ORIGIN), "not-a-jwt".into(), "Invalid token - no aud."),
        (Some(ORIGIN), no_aud, "Invalid token - no aud."),
        (Some(ORIGIN), other_app, "Publication not found."),
        (Some("https://evil.example"), token.clone(), "Publication not found."),
        (Some(ORIGIN), stranger, "Piano user not found."),
        (Some(ORIGIN), no_stripe, "CRM Stripe accounts not found."),
    ];
    for (origin, token, message) in cases {
        let (status, body) = site.list(&token, origin).await;
        assert_eq!((status, body), (StatusCode::BAD_REQUEST, error(message)), "{origin:?}");
    }
    let (_, headers, _) =
        site.call("GET", &format!("/api/subscriptions?token={token}"), Some("https://evil.example"), None).await;
    assert!(headers.get("access-control-allow-origin").is_none(), "no CORS for an origin nobody configured");
}

/// The publication's Stripe key refused by Stripe: the seed's message for a Stripe client it cannot get.
#[tokio::test]
async fn a_refused_stripe_key_is_reported_as_the_seed_says() {
    let site = Site::new().await;
    site.stripe.set_valid_key("sk_test_some_other_account_key");
    let (status, body) = site.list(&site.token, Some(ORIGIN)).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, error("Failed to get Stripe client for this publication.")));
}

#[tokio::test]
async fn forged_and_expired_tokens_are_refused() {
    let site = Site::new().await;
    let claims = json!({"aud": AID, "sub": READER, "exp": now() + 3600});
    let none = format!("{}.{}.", base64url(br#"{"alg":"none","typ":"JWT"}"#), base64url(claims.to_string().as_bytes()));
    let hs512 = {
        let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512), &claims, &key).unwrap()
    };
    let wrong_secret = jwt(claims.clone(), "someone-elses-secret-0123456789");
    let expired = jwt(json!({"aud": AID, "sub": READER, "exp": now() - 60}), JWT_SECRET);
    for token in [none, hs512, wrong_secret, expired] {
        let (status, body) = site.list(&token, Some(ORIGIN)).await;
        assert_eq!((status, body), (StatusCode::UNAUTHORIZED, error("Invalid token.")), "{token}");
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn cancel_sets_cancel_at_period_end_for_the_readers_own_subscription() {
    let site = Site::new().await;
    let token = site.token.clone();
    let (status, _, body) =
        site.call("DELETE", &format!("/api/subscriptions/sub_R1?token={token}"), Some(ORIGIN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["id"], "sub_R1");
    assert_eq!(body["data"]["cancel_at_period_end"], true);
    assert_eq!(site.stripe.object("sub_R1").unwrap()["cancel_at_period_end"], true);
    assert_eq!(site.piano.requests().len(), 1, "cancel asks Piano to verify the token");
    let post = site.stripe.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert!(post.idempotency_key.is_some());

    for other in ["sub_O1", "sub_nope", "cus_R", "sub_R1%2F..%2Fx", "sub_R1-x"] {
        let (status, _, body) =
            site.call("DELETE", &format!("/api/subscriptions/{other}?token={token}"), Some(ORIGIN), None).await;
        assert_eq!((status, body), (StatusCode::BAD_REQUEST, error("Subscription not found.")), "{other}");
    }
    assert_eq!(
        site.stripe.object("sub_O1").unwrap()["cancel_at_period_end"],
        false,
        "another reader's stays as it was"
    );
}

#[tokio::test]
async fn cancel_releases_a_schedule_first_and_reports_each_failure() {
    let site = Site::new().await;
    let token = site.token.clone();
    let client = site.stripe.client();
    let auth =
        shared::stripe::client::StripeAuth::new(shared::domain::secret::Secret::new("sk_test_daily_main_0123456789"));
    use shared::stripe::client::{Params, StripeApi};
    let schedule = client
        .post(&auth, "/v1/subscription_schedules", &Params::new().set("from_subscription", "sub_R1"), "k1")
        .await
        .unwrap();
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();

    site.stripe.fail_path("POST", &format!("/v1/subscription_schedules/{schedule_id}/release"), 500);
    let path = format!("/api/subscriptions/sub_R1?token={token}");
    let (status, _, body) = site.call("DELETE", &path, Some(ORIGIN), None).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, error("Failed to release subscription.")));
    site.stripe.clear_path_failures();

    site.stripe.fail_path("POST", "/v1/subscriptions/sub_R1", 500);
    let (status, _, body) = site.call("DELETE", &path, Some(ORIGIN), None).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, error("Failed to cancel subscription.")));
    site.stripe.clear_path_failures();
    assert_eq!(site.stripe.object(&schedule_id).unwrap()["status"], "released");

    let (status, _, body) = site.call("DELETE", &path, Some(ORIGIN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["cancel_at_period_end"], true);
}

#[tokio::test]
async fn piano_refusing_the_token_is_401_on_cancel_and_winback() {
    let site = Site::new().await;
    // Signed with the right secret, but Piano does not know it (revoked, logged out).
    let revoked = jwt(json!({"aud": AID, "sub": READER, "exp": now() + 3000}), JWT_SECRET);
    let (status, _, body) =
        site.call("DELETE", &format!("/api/subscriptions/sub_R1?token={revoked}"), Some(ORIGIN), None).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, error("Invalid token.")));
    let offer = json!({"subscriptionId": "sub_R1", "newPriceId": "price_half"});
    let (status, _, body) =
        site.call("POST", &format!("/api/subscriptions/winback?token={revoked}"), Some(ORIGIN), Some(offer)).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, error("Invalid token.")));
    assert_eq!(site.stripe.object("sub_R1").unwrap()["cancel_at_period_end"], false);
}

#[tokio::test]
async fn winback_now_changes_the_price() {
    let site = Site::new().await;
    let path = format!("/api/subscriptions/winback?token={}", site.token);
    let (status, _, body) = site
        .call("POST", &path, Some(ORIGIN), Some(json!({"subscriptionId": "sub_R1", "newPriceId": "price_half"})))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": {"message": "Plan changed. No schedule for this price."}, "error": null}))
    );
    assert_eq!(site.stripe.object("sub_R1").unwrap()["items"]["data"][0]["price"]["id"], "price_half");

    for (body, why) in [
        (json!({"subscriptionId": "sub_R1", "newPriceId": "price_monthly"}), "a price that is not an offer"),
        (json!({"subscriptionId": "sub_R1"}), "no price"),
        (json!("not an object"), "not an object"),
    ] {
        let (status, _, answer) = site.call("POST", &path, Some(ORIGIN), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
    }
    // The half price now applies; the offer only applies to the monthly price.
    let (status, _, answer) = site
        .call("POST", &path, Some(ORIGIN), Some(json!({"subscriptionId": "sub_R1", "newPriceId": "price_half"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _, answer) = site
        .call("POST", &path, Some(ORIGIN), Some(json!({"subscriptionId": "sub_O1", "newPriceId": "price_half"})))
        .await;
    assert_eq!((status, answer), (StatusCode::BAD_REQUEST, error("Subscription not found.")));
}

#[tokio::test]
async fn an_oversized_winback_body_is_a_json_413() {
    let site = Site::new().await;
    let path = format!("/api/subscriptions/winback?token={}", site.token);
    let huge = "x".repeat(shared::http::body::MAX_ADMIN_BODY);
    let (status, _, body) =
        site.call("POST", &path, Some(ORIGIN), Some(json!({"subscriptionId": "sub_R1", "newPriceId": huge}))).await;
    assert_eq!((status, body), (StatusCode::PAYLOAD_TOO_LARGE, error("request body too large")));
    assert!(site.stripe.requests().is_empty(), "refused before any call to Stripe");
}

#[tokio::test]
async fn winback_at_period_end_schedules_the_new_price() {
    let site = Site::new().await;
    let path = format!("/api/subscriptions/winback?token={}", site.token);
    let period_end = site.stripe.object("sub_R1").unwrap()["items"]["data"][0]["current_period_end"].clone();
    let (status, _, body) = site
        .call("POST", &path, Some(ORIGIN), Some(json!({"subscriptionId": "sub_R1", "newPriceId": "price_deal"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "success": true,
            "message": "Subscription plan will change at the end of your current billing period",
            "data": {"subscriptionId": "sub_R1", "currentPeriodEnd": period_end, "newPriceId": "price_deal"}
        })
    );
    let schedule_id = site.stripe.object("sub_R1").unwrap()["schedule"].as_str().unwrap().to_owned();
    let schedule = site.stripe.object(&schedule_id).unwrap();
    assert_eq!(schedule["phases"].as_array().unwrap().len(), 2);
    assert_eq!(schedule["phases"][0]["end_date"], period_end);
    assert_eq!(schedule["phases"][1]["items"][0]["price"], "price_deal");
    assert_eq!(site.stripe.object("sub_R1").unwrap()["items"]["data"][0]["price"]["id"], "price_monthly", "not yet");

    site.stripe.fail_path("POST", &format!("/v1/subscription_schedules/{schedule_id}"), 500);
    let (status, _, body) = site
        .call("POST", &path, Some(ORIGIN), Some(json!({"subscriptionId": "sub_R1", "newPriceId": "price_deal"})))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["error"].as_str().unwrap().contains("Correlation id"), "{body}");
}

#[tokio::test]
async fn preflight_allows_configured_origins_only() {
    let site = Site::new().await;
    for path in ["/api/subscriptions", "/api/subscriptions/sub_R1", "/api/subscriptions/winback"] {
        let (status, headers, _) = site.call("OPTIONS", path, Some(ORIGIN), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(headers["access-control-allow-origin"], ORIGIN);
        assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("DELETE"));
        let (status, headers, _) = site.call("OPTIONS", path, Some("https://evil.example"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(headers.get("access-control-allow-origin").is_none());
    }
}

/// The three routes with `token`: (method, path, body).
fn every_route(token: &str) -> [(&'static str, String, Option<Value>); 3] {
    [
        ("GET", format!("/api/subscriptions?token={token}"), None),
        ("DELETE", format!("/api/subscriptions/sub_R1?token={token}"), None),
        (
            "POST",
            format!("/api/subscriptions/winback?token={token}"),
            Some(json!({"subscriptionId": "sub_R1", "newPriceId": "price_half"})),
        ),
    ]
}

/// Issue 25: with `jwtSecret: null` the list once trusted whatever `sub` an unverified token named.
/// Each token here names the reader (the victim) and must be refused before Stripe hears of it.
#[tokio::test]
async fn without_a_jwt_secret_unverified_tokens_are_refused_before_stripe() {
    let site = Site::without_jwt_secret().await;
    let before = site.customers().await;
    let victim = json!({"aud": AID, "sub": READER, "exp": now() + 3600});
    let none = format!("{}.{}.", base64url(br#"{"alg":"none","typ":"JWT"}"#), base64url(victim.to_string().as_bytes()));
    let forged = jwt(victim, "an-attackers-guess-0123456789");
    let expired = jwt(json!({"aud": AID, "sub": READER, "exp": now() - 60}), JWT_SECRET);
    // Piano accepts this one, but as someone else than its `sub` claims.
    let someone_else = jwt(json!({"aud": AID, "sub": READER, "exp": now() + 3600, "n": 1}), JWT_SECRET);
    site.piano.accept_token(AID, API_TOKEN, &someone_else, "PNIother0002");
    for (token, why) in
        [(&none, "alg none"), (&forged, "forged signature"), (&expired, "expired"), (&someone_else, "sub")]
    {
        for (method, path, body) in every_route(token) {
            let (status, _, answer) = site.call(method, &path, Some(ORIGIN), body).await;
            assert_eq!((status, answer), (StatusCode::UNAUTHORIZED, error("Invalid token.")), "{why}: {method}");
        }
    }
    assert!(site.stripe.requests().is_empty(), "Stripe was called: {:?}", site.stripe.requests());
    assert_eq!(site.customers().await, before, "the store is unchanged");
    assert_eq!(site.stripe.object("sub_R1").unwrap()["cancel_at_period_end"], false);
    // Tokens that cannot be live are refused without asking Piano.
    let asked: Vec<String> = site.piano.requests().iter().filter_map(|r| r.param("token").map(str::to_owned)).collect();
    assert!(!asked.contains(&none) && !asked.contains(&expired), "Piano asked about a token refused locally");
    // Piano refuses the forged token on each route (a refusal is not kept); it accepts the other
    // reader's once, as someone else, and that answer is kept: refused again without asking.
    assert_eq!(site.piano.verify_calls(), 4, "the forged token on each route, the other reader's once");
}

#[tokio::test]
async fn without_a_jwt_secret_piano_verifies_and_its_answer_serves_the_list_for_a_while() {
    let site = Site::without_jwt_secret().await;
    let (status, body) = site.list(&site.token, Some(ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["subscriptions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"sub_R1") && ids.contains(&"sub_R0"), "{ids:?}");
    assert_eq!(site.piano.verify_calls(), 1);
    let (status, again) = site.list(&site.token, Some(ORIGIN)).await;
    assert_eq!((status, &again), (StatusCode::OK, &body));
    assert_eq!(site.piano.verify_calls(), 1, "the second list within the minute reused Piano's answer");

    // A write with a remembered answer still asks Piano, which may have revoked the token since.
    let (status, _, answer) =
        site.call("DELETE", &format!("/api/subscriptions/sub_R1?token={}", site.token), Some(ORIGIN), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(site.piano.verify_calls(), 2);

    // A token Piano verifies during the request itself is not verified a second time.
    let fresh = jwt(json!({"aud": AID, "sub": READER, "exp": now() + 1800, "n": 2}), "piano-signing-key-0123456789");
    site.piano.accept_token(AID, API_TOKEN, &fresh, READER);
    let offer = json!({"subscriptionId": "sub_R1", "newPriceId": "price_half"});
    let (status, _, answer) =
        site.call("POST", &format!("/api/subscriptions/winback?token={fresh}"), Some(ORIGIN), Some(offer)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(site.piano.verify_calls(), 3);
    assert_eq!(site.stripe.object("sub_R1").unwrap()["items"]["data"][0]["price"]["id"], "price_half");
}

#[tokio::test]
async fn without_a_jwt_secret_piano_down_is_a_503_and_stripe_is_not_called() {
    let mut site = Site::without_jwt_secret().await;
    let unavailable = error("service temporarily unavailable, retry");
    // Piano answering 503 to every attempt (the first and each retry) of the three routes.
    let attempts = shared::piano::client::MAX_RETRIES as usize + 1;
    site.piano.fail_next(3 * attempts, 503);
    for (method, path, body) in every_route(&site.token) {
        let (status, _, answer) = site.call(method, &path, Some(ORIGIN), body).await;
        assert_eq!((status, answer), (StatusCode::SERVICE_UNAVAILABLE, unavailable.clone()), "{method}");
    }
    assert_eq!(site.piano.verify_calls(), 3 * attempts);
    assert!(site.stripe.requests().is_empty(), "Stripe was called: {:?}", site.stripe.requests());

    // Nothing listening where Piano should be.
    let working = site.state.clone();
    let closed = ApiConfig { piano_api_base: Some("http://127.0.0.1:9".into()), ..ApiConfig::default() };
    site.state = site.state.clone().with_config(closed);
    for (method, path, body) in every_route(&site.token) {
        let (status, _, answer) = site.call(method, &path, Some(ORIGIN), body).await;
        assert_eq!((status, answer), (StatusCode::SERVICE_UNAVAILABLE, unavailable.clone()), "{method}");
    }
    assert!(site.stripe.requests().is_empty());

    // A failure is not remembered: once Piano answers, the same token lists.
    site.state = working;
    let (status, body) = site.list(&site.token, Some(ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
