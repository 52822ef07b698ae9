//! `HttpPiano` against the fake Piano server over TCP: token verification's answers, user reads and
//! webhook settings, the requests they send, retries and their limits, and errors that never show the
//! API token or the reader's JWT.

mod support;

use shared::domain::secret::Secret;
use shared::piano::client::{
    MAX_RETRIES, PianoApi, PianoError, TOKEN_VERIFY_PATH, USER_GET_PATH, WEBHOOK_SETTINGS_PATH,
    WEBHOOK_SETTINGS_UPDATE_PATH,
};
use support::fake_piano::{Failure, FakePiano};

const AID: &str = "AbCdEfGhIj";
const API_TOKEN: &str = "pianoApiToken0123456789abcdefABCDEF";
const UID: &str = "PNIa1b2c3d4e5f6";
/// A JWT-shaped token with characters that must be percent-encoded in a query (`+`, `/`, `=`).
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJBYkNkRWZHaElqIiwic3ViIjoiUE5JYTFiMmMzZDRlNWY2In0.c2ln+bmF/0dXJl=";

fn api_token() -> Secret {
    Secret::new(API_TOKEN)
}

/// The error's Display and Debug contain neither secret (nor a recognisable part of the JWT).
fn assert_no_secrets(error: &PianoError) {
    let text = format!("{error} {error:?}");
    for secret in [API_TOKEN, JWT, "eyJhdWQiOiJBYkNkRWZHaElqIiwic3ViIjoiUE5JYTFiMmMzZDRlNWY2In0", "pianoApiToken0123"] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn a_valid_token_gives_the_uid() {
    let piano = FakePiano::start().await;
    piano.accept_token(AID, API_TOKEN, JWT, UID);

    let verdict = piano.client().verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap();
    assert_eq!(verdict.uid, UID);
    assert!(verdict.email_confirmed, "email_confirmation_required: false");

    let requests = piano.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", TOKEN_VERIFY_PATH));
    assert_eq!(request.param("aid"), Some(AID));
    assert_eq!(request.param("api_token"), Some(API_TOKEN));
    assert_eq!(request.param("token"), Some(JWT), "the JWT arrives intact, + / = included");
    assert_eq!(request.body, "");

    piano.accept_token_unconfirmed(AID, API_TOKEN, "eyJnew.reader.sig", "PNInew");
    let verdict = piano.client().verify_token(piano.base_url(), AID, &api_token(), "eyJnew.reader.sig").await.unwrap();
    assert_eq!((verdict.uid.as_str(), verdict.email_confirmed), ("PNInew", false), "email_confirmation_required: true");
}

#[tokio::test]
async fn an_unknown_token_is_invalid_and_not_retried() {
    let piano = FakePiano::start().await;
    piano.accept_token(AID, API_TOKEN, JWT, UID);

    let error =
        piano.client().verify_token(piano.base_url(), AID, &api_token(), "eyJother.token.sig").await.unwrap_err();
    assert_eq!(error, PianoError::InvalidToken);
    assert_eq!(piano.requests().len(), 1);
}

#[tokio::test]
async fn a_wrong_api_token_or_application_is_an_invalid_token() {
    let piano = FakePiano::start().await;
    piano.accept_token(AID, API_TOKEN, JWT, UID);
    let client = piano.client();

    let wrong_key = client.verify_token(piano.base_url(), AID, &Secret::new("anotherApiToken0123456789"), JWT).await;
    assert_eq!(wrong_key, Err(PianoError::InvalidToken));
    let wrong_app = client.verify_token(piano.base_url(), "OtherAppId", &api_token(), JWT).await;
    assert_eq!(wrong_app, Err(PianoError::InvalidToken));
}

#[tokio::test]
async fn an_empty_or_huge_token_is_invalid_without_a_call() {
    let piano = FakePiano::start().await;
    let client = piano.client();
    assert_eq!(client.verify_token(piano.base_url(), AID, &api_token(), "").await, Err(PianoError::InvalidToken));
    let huge = "a".repeat(100_000);
    assert_eq!(client.verify_token(piano.base_url(), AID, &api_token(), &huge).await, Err(PianoError::InvalidToken));
    assert!(piano.requests().is_empty());
}

#[tokio::test]
async fn a_server_error_is_retried_then_succeeds() {
    let piano = FakePiano::start().await;
    piano.accept_token(AID, API_TOKEN, JWT, UID);
    piano.fail_next(1, 500);

    let verdict = piano.client().verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap();
    assert_eq!(verdict.uid, UID);
    assert_eq!(piano.requests().len(), 2);

    piano.clear_requests();
    piano.fail_next(1, 503);
    piano.fail_next(1, 429);
    assert_eq!(piano.client().verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap().uid, UID);
    assert_eq!(piano.requests().len(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let piano = FakePiano::start().await;
    piano.accept_token(AID, API_TOKEN, JWT, UID);
    piano.fail_next(10, 502);

    let error = piano.client().verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap_err();
    let PianoError::Unavailable(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("502"), "{message}");
    assert_eq!(piano.requests().len(), 1 + MAX_RETRIES as usize);
    assert_no_secrets(&error);
}

#[tokio::test]
async fn other_client_errors_are_unavailable_and_not_retried() {
    let piano = FakePiano::start().await;
    piano.accept_token(AID, API_TOKEN, JWT, UID);
    for status in [400, 401, 404] {
        piano.clear_requests();
        piano.fail_next(1, status);
        let error = piano.client().verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap_err();
        let PianoError::Unavailable(message) = &error else { panic!("{status}: {error:?}") };
        assert!(message.contains(&status.to_string()), "{message}");
        assert_eq!(piano.requests().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn a_200_without_pub_id_is_not_a_uid() {
    let piano = FakePiano::start().await;
    piano.fail_next_with(1, Failure { status: 200, body: serde_json::json!({"access_token": "x"}) });
    let error = piano.client().verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap_err();
    assert!(matches!(error, PianoError::Unavailable(_)), "{error:?}");
    piano.fail_next_with(1, Failure { status: 200, body: serde_json::json!({"pub_id": ""}) });
    let error = piano.client().verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap_err();
    assert!(matches!(error, PianoError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn errors_never_show_the_api_token_or_the_jwt() {
    let piano = FakePiano::start().await;
    let client = piano.client();

    // Piano's refusal.
    let error = client.verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap_err();
    assert_eq!(error, PianoError::InvalidToken);
    assert_no_secrets(&error);

    // An answer that echoes the request, plain and percent-encoded, like a proxy's error page.
    let encoded: String = url::form_urlencoded::byte_serialize(JWT.as_bytes()).collect();
    let echo = format!("bad request /verify?api_token={API_TOKEN}&token={encoded} ({JWT})");
    piano.fail_next_with(3, Failure { status: 502, body: serde_json::json!({ "message": echo }) });
    let error = client.verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap_err();
    assert!(matches!(error, PianoError::Unavailable(_)), "{error:?}");
    assert_no_secrets(&error);
    piano.fail_next_with(1, Failure { status: 418, body: serde_json::json!({ "message": echo }) });
    let error = client.verify_token(piano.base_url(), AID, &api_token(), JWT).await.unwrap_err();
    assert!(error.to_string().contains("418"), "{error}");
    assert_no_secrets(&error);

    // No server at all: the transport error must not carry the URL and its query.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let error = client.verify_token(&closed, AID, &api_token(), JWT).await.unwrap_err();
    let PianoError::Unavailable(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("could not connect"), "{message}");
    assert_no_secrets(&error);

    // A base that is not a URL.
    let error = client.verify_token("not a url", AID, &api_token(), JWT).await.unwrap_err();
    assert!(matches!(error, PianoError::Unavailable(_)), "{error:?}");
    assert_no_secrets(&error);
}

#[tokio::test]
async fn a_user_is_read_with_a_form_body_and_named() {
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);
    piano.add_user(AID, UID, "reader@example.com", "Ada", "Reader");

    let user = piano.client().user(piano.base_url(), AID, &api_token(), UID).await.unwrap();
    assert_eq!(user.email.as_deref(), Some("reader@example.com"));
    assert_eq!(user.name().as_deref(), Some("Ada Reader"));
    let request = &piano.requests()[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", USER_GET_PATH));
    assert!(request.query.is_empty(), "the API token travels in the body, not the URL");
    assert_eq!(request.field("api_token").as_deref(), Some(API_TOKEN));
    assert_eq!(request.field("uid").as_deref(), Some(UID));

    // Piano's refusals (unknown user, wrong API token) are final and show no secret.
    let unknown = piano.client().user(piano.base_url(), AID, &api_token(), "PNInobody").await.unwrap_err();
    assert!(matches!(&unknown, PianoError::Rejected(m) if m.contains("User not found")), "{unknown}");
    let wrong = Secret::new("pianoApiToken0123-wrong");
    let denied = piano.client().user(piano.base_url(), AID, &wrong, UID).await.unwrap_err();
    assert!(matches!(denied, PianoError::Rejected(_)));
    assert!(!denied.is_transient());
    assert_no_secrets(&denied);

    // An outage is retried, then reported as one that may pass later.
    piano.clear_requests();
    piano.fail_next(1, 502);
    assert!(piano.client().user(piano.base_url(), AID, &api_token(), UID).await.is_ok());
    assert_eq!(piano.requests().len(), 2);
    piano.fail_next(usize::try_from(MAX_RETRIES).unwrap() + 1, 503);
    let down = piano.client().user(piano.base_url(), AID, &api_token(), UID).await.unwrap_err();
    assert!(down.is_transient(), "{down}");
}

#[tokio::test]
async fn the_webhook_url_is_set_and_read_back() {
    let piano = FakePiano::start().await;
    piano.add_app(AID, API_TOKEN);
    let client = piano.client();
    let url = "https://crm.example.com/webhooks/piano/daily";

    assert_eq!(client.webhook_settings(piano.base_url(), AID, &api_token()).await.unwrap().url, None);
    client.set_webhook_url(piano.base_url(), AID, &api_token(), url).await.unwrap();
    let held = client.webhook_settings(piano.base_url(), AID, &api_token()).await.unwrap();
    assert_eq!((held.url.as_deref(), held.enabled), (Some(url), Some(true)));
    let requests = piano.requests();
    let update = requests.iter().find(|r| r.path == WEBHOOK_SETTINGS_UPDATE_PATH).unwrap();
    assert_eq!(update.method, "POST");
    assert_eq!(update.field("url").as_deref(), Some(url));
    assert_eq!(update.field("enabled").as_deref(), Some("true"));
    let read = requests.iter().rfind(|r| r.path == WEBHOOK_SETTINGS_PATH).unwrap();
    assert_eq!((read.method.as_str(), read.param("aid")), ("GET", Some(AID)));

    let wrong = Secret::new("pianoApiToken0123-wrong");
    let denied = client.set_webhook_url(piano.base_url(), AID, &wrong, url).await.unwrap_err();
    assert!(matches!(denied, PianoError::Rejected(_)), "{denied}");
    assert_no_secrets(&denied);
}
