//! The public subscription routes with bad callers: no or foreign Origin, no token, and tokens that
//! must not pass (alg none, HS512, another publication's or a wrong secret, expired, no or another
//! `aud`). Each gets the seed's exact message, and no CORS grant for an origin nobody configured.
//! C has no JWT secret: its readers' tokens are verified by Piano (the suite's fake, which accepts
//! none), and tokens that cannot be live are refused without asking it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::check::Suite;
use super::client::Req;
use super::fixtures::Publication;
use crate::fake_piano::FakePiano;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn signed(algorithm: Algorithm, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("sign a test token")
}

/// A token with a header of our making and the given signature segment.
fn forged(header: &Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", part(header), part(claims))
}

/// Origin, token, status, the seed's message.
type Caller = (Option<String>, Option<String>, u16, &'static str);

/// Valid tokens of A for Piano users A has no record of, whose Piano accounts claim A's reader's
/// email: one Piano says is unconfirmed, one it says is confirmed. Their first visit must link nothing
/// (the first has no evidence; A's reader has no Stripe customer to reach), so both are "not found".
pub struct FirstVisits {
    unconfirmed: String,
    confirmed: String,
}

impl FirstVisits {
    /// Registers both at the fake Piano, with the users Piano's API shows.
    pub fn register(a: &Publication, piano: &FakePiano) -> Self {
        let token = |uid: &str| {
            signed(Algorithm::HS256, &json!({"aud": a.aid, "sub": uid, "exp": now() + 600}), a.jwt_secret())
        };
        let visits = Self { unconfirmed: token("PNIunknownReader"), confirmed: token("PNIclaimsAlpha") };
        piano.add_app(a.aid, a.api_token);
        piano.accept_token_unconfirmed(a.aid, a.api_token, &visits.unconfirmed, "PNIunknownReader");
        piano.add_user(a.aid, "PNIunknownReader", a.email, "Claims", "Alpha");
        piano.accept_token(a.aid, a.api_token, &visits.confirmed, "PNIclaimsAlpha");
        piano.add_user(a.aid, "PNIclaimsAlpha", a.email, "Claims", "Alpha");
        visits
    }
}

/// Each bad caller of A and B.
fn callers(a: &Publication, b: &Publication, visits: &FirstVisits) -> Vec<Caller> {
    let claims = |aud: &str| json!({"aud": aud, "sub": "PNIunknownReader", "exp": now() + 600});
    let live = claims(a.aid);
    let hs256 = |c: &Value, secret: &str| signed(Algorithm::HS256, c, secret);
    let valid_sig = visits.unconfirmed.clone();
    let signature = valid_sig.rsplit('.').next().unwrap_or_default().to_owned();
    let (ao, bo) = (Some(a.origin.to_owned()), Some(b.origin.to_owned()));
    let some = |t: String| Some(t);
    vec![
        (None, None, 400, "Origin not found."),
        (None, some(valid_sig.clone()), 400, "Origin not found."),
        (ao.clone(), None, 400, "Token not found."),
        (ao.clone(), some("garbage".into()), 400, "Invalid token - no aud."),
        (ao.clone(), some("a.b.c".into()), 400, "Invalid token - no aud."),
        (
            ao.clone(),
            some(hs256(&json!({"sub": "PNIx", "exp": now() + 600}), a.jwt_secret())),
            400,
            "Invalid token - no aud.",
        ),
        (ao.clone(), some(format!("{}.{}", "e".repeat(9000), "x.y")), 400, "Invalid token - no aud."),
        (ao.clone(), some(forged(&json!({"alg": "none", "typ": "JWT"}), &live, "")), 401, "Invalid token."),
        (ao.clone(), some(forged(&json!({"alg": "none"}), &live, &signature)), 401, "Invalid token."),
        (ao.clone(), some(forged(&json!({"alg": "hs256"}), &live, &signature)), 401, "Invalid token."),
        (ao.clone(), some(forged(&json!({"alg": "HS256"}), &live, "")), 401, "Invalid token."),
        (ao.clone(), some(signed(Algorithm::HS512, &live, a.jwt_secret())), 401, "Invalid token."),
        (ao.clone(), some(signed(Algorithm::HS384, &live, a.jwt_secret())), 401, "Invalid token."),
        (ao.clone(), some(hs256(&live, "a-wrong-secret-0123456789")), 401, "Invalid token."),
        (ao.clone(), some(hs256(&live, b.jwt_secret())), 401, "Invalid token."),
        (
            ao.clone(),
            some(hs256(&json!({"aud": a.aid, "sub": "PNIx", "exp": now() - 3600}), a.jwt_secret())),
            401,
            "Invalid token.",
        ),
        (ao.clone(), some(hs256(&json!({"aud": a.aid, "sub": "PNIx"}), a.jwt_secret())), 401, "Invalid token."),
        (ao.clone(), some(hs256(&claims("UnknownAid9"), a.jwt_secret())), 400, "Publication not found."),
        // A's audience from B's pages, and B's audience signed with A's secret.
        (bo.clone(), some(valid_sig.clone()), 400, "Publication not found."),
        (bo.clone(), some(hs256(&claims(b.aid), a.jwt_secret())), 401, "Invalid token."),
        (
            bo.clone(),
            some(hs256(&json!({"aud": [b.aid], "sub": "PNIx", "exp": now() + 600}), a.jwt_secret())),
            401,
            "Invalid token.",
        ),
        (Some("https://evil.example".into()), some(valid_sig.clone()), 400, "Publication not found."),
        (Some(format!("{}.evil.example", a.origin)), some(valid_sig.clone()), 400, "Publication not found."),
        (Some("null".into()), some(valid_sig.clone()), 400, "Publication not found."),
        (Some(format!("{}/path", a.origin)), some(valid_sig.clone()), 400, "Publication not found."),
        // Everything right but the reader, whom A does not know; a first visit whose Piano account
        // claims A's reader's email, unconfirmed and confirmed: nothing is linked.
        (ao.clone(), some(valid_sig), 400, "Piano user not found."),
        (ao.clone(), some(visits.confirmed.clone()), 400, "Piano user not found."),
    ]
}

/// One bad caller on each of the three routes: `status` and the seed's `message`, none of `hidden`,
/// and a CORS grant only for one of the `configured` origins.
async fn ask_every_route(
    suite: &mut Suite,
    (origin, token, status, message): Caller,
    hidden: &[String],
    configured: &[&str],
) {
    let query = token.as_deref().map(|t| format!("?token={t}")).unwrap_or_default();
    let winback = r#"{"subscriptionId": "sub_123", "newPriceId": "price_123"}"#;
    for req in [
        Req::new("GET", format!("/api/subscriptions{query}")),
        Req::new("DELETE", format!("/api/subscriptions/sub_123{query}")),
        Req::new("POST", format!("/api/subscriptions/winback{query}")).json(winback),
    ] {
        let req = match &origin {
            Some(o) => req.header("Origin", o),
            None => req,
        };
        let answer = suite.refused_hiding("public routes", req, &[status], hidden).await;
        if answer.error().as_deref() != Some(message) {
            suite.fail(format!("public route answered {:?}, expected {message:?}", answer.body));
        }
        let granted = answer.header("access-control-allow-origin");
        if granted.is_some() && !configured.iter().any(|c| origin.as_deref() == Some(*c)) {
            suite.fail(format!("CORS granted to {origin:?}: {granted:?}"));
        }
    }
}

pub async fn routes(suite: &mut Suite, a: &Publication, b: &Publication, visits: &FirstVisits) {
    let hidden = b.data();
    for caller in callers(a, b, visits) {
        ask_every_route(suite, caller, &hidden, &[a.origin, b.origin]).await;
    }
    // Preflight from origins no publication serves pages from.
    for origin in ["https://evil.example", "null", "https://www.alpha.example.evil.example"] {
        for path in ["/api/subscriptions", "/api/subscriptions/sub_123", "/api/subscriptions/winback"] {
            let preflight =
                Req::new("OPTIONS", path).header("Origin", origin).header("Access-Control-Request-Method", "DELETE");
            let answer = suite.refused("public routes", preflight, &[403]).await;
            if answer.header("access-control-allow-origin").is_some() {
                suite.fail(format!("preflight from {origin} was granted"));
            }
        }
    }
}

/// Bad callers of C, each naming a reader: refused before Piano is asked when the token cannot be live
/// (another algorithm, no signature, expired, no `exp`), on Piano's word when it is a well-made forgery.
fn piano_callers(c: &Publication, a: &Publication) -> Vec<Caller> {
    let reader = |exp: Option<i64>| match exp {
        Some(exp) => json!({"aud": c.aid, "sub": "PNIcharlieReader", "exp": exp}),
        None => json!({"aud": c.aid, "sub": "PNIcharlieReader"}),
    };
    let live = reader(Some(now() + 600));
    let guess = "an-attackers-guess-0123456789";
    let forgery = signed(Algorithm::HS256, &live, guess);
    let signature = forgery.rsplit('.').next().unwrap_or_default().to_owned();
    let (co, ao) = (Some(c.origin.to_owned()), Some(a.origin.to_owned()));
    let invalid = |token: String| (co.clone(), Some(token), 401, "Invalid token.");
    vec![
        invalid(forged(&json!({"alg": "none", "typ": "JWT"}), &live, "")),
        invalid(forged(&json!({"alg": "none"}), &live, &signature)),
        invalid(forged(&json!({"alg": "HS256"}), &live, "")),
        invalid(signed(Algorithm::HS512, &live, guess)),
        invalid(signed(Algorithm::HS256, &reader(Some(now() - 3600)), guess)),
        invalid(signed(Algorithm::HS256, &reader(None), guess)),
        // The one Piano is asked about, once per route.
        invalid(forgery.clone()),
        (ao, Some(forgery), 400, "Publication not found."),
        (
            co,
            Some(signed(Algorithm::HS256, &json!({"aud": a.aid, "sub": "PNIx", "exp": now() + 600}), a.jwt_secret())),
            400,
            "Publication not found.",
        ),
    ]
}

/// C's bad callers; then every request Piano received must be one verification of the well-made
/// forgery per route, and A's first visits (`FirstVisits`): one verification each (Piano's answer is
/// kept a minute), and a read of the user per route for the confirmed one only. Nothing else in the
/// barrage may reach Piano.
pub async fn piano_verified(suite: &mut Suite, c: &Publication, a: &Publication, piano: &FakePiano) {
    let hidden = a.data();
    for caller in piano_callers(c, a) {
        ask_every_route(suite, caller, &hidden, &[c.origin, a.origin]).await;
    }
    let asked = piano.requests();
    let count = |path: &str, aid: &str| {
        asked
            .iter()
            .filter(|r| r.path == path && (r.param("aid") == Some(aid) || r.field("aid").as_deref() == Some(aid)))
            .count()
    };
    let verify = shared::piano::client::TOKEN_VERIFY_PATH;
    let user = shared::piano::client::USER_GET_PATH;
    let seen = (count(verify, c.aid), count(verify, a.aid), count(user, a.aid), asked.len());
    if seen != (3, 2, 3, 8) {
        let paths: Vec<&str> = asked.iter().map(|r| r.path.as_str()).collect();
        suite.fail(format!("Piano got (C verifications, A verifications, A user reads, all) = {seen:?}: {paths:?}"));
    }
}
