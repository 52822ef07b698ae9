//! Admin routes: every route of B refused to every credential that is not B's or the operator's
//! (404 for A's key, as for a publication that does not exist; 401 without a valid key), and bad
//! parameters and bodies refused to the operator, who may see B.

use serde_json::json;

use super::check::Suite;
use super::client::{self, Req};
use super::fixtures::{A, Publication};
use super::server::OPERATOR;

/// A task id no task has.
pub const NO_TASK: &str = "tsk_01J00000000000000000000000";

/// Every admin route of publication `p`, each with a well-formed body where it takes one.
pub fn routes(p: &str, customer: &str) -> Vec<Req> {
    let base = format!("/admin/publications/{p}");
    let get = |path: &str| Req::new("GET", format!("{base}{path}"));
    let json = |method: &str, path: &str, body: serde_json::Value| {
        Req::new(method, format!("{base}{path}")).json(body.to_string())
    };
    vec![
        get(""),
        json("PUT", "", json!({"name": "Taken over"})),
        Req::new("POST", format!("{base}/keys")),
        get("/keys"),
        Req::new("DELETE", format!("{base}/keys/0123456789ab")),
        Req::new("POST", format!("{base}/stripe-accounts/main/webhook-endpoint")),
        Req::new("POST", format!("{base}/piano/webhook")),
        get("/backfill"),
        json("POST", "/backfill", json!({"account": "main"})),
        get("/customers"),
        get("/customers?email=bravo.reader%40example.com"),
        get("/customers?status=current"),
        json("POST", "/customers", json!({"email": "intruder@example.com"})),
        get(&format!("/customers/{customer}")),
        json("PATCH", &format!("/customers/{customer}"), json!({"name": "Renamed"})),
        get("/exports/customers"),
        get("/exports/subscriptions?format=jsonl"),
        get("/exports/invoices"),
        get("/revenue?from=2026-01"),
        get("/sync"),
        get("/tasks"),
        get("/tasks?status=done"),
        json("PATCH", &format!("/tasks/{NO_TASK}"), json!({"status": "done"})),
    ]
}

/// B's routes with A's key, with no key, with malformed keys and with another deployment's operator key.
pub async fn cross_publication(suite: &mut Suite, a: &Publication, b: &Publication) {
    let hidden = b.data();
    let mangled = format!("{}x", &a.key[..a.key.len() - 1]);
    let long = format!("crm_pk_{}", "A".repeat(300));
    let unauthorised: Vec<Headers> = vec![
        // no key
        vec![],
        // empty bearer
        vec![auth("Bearer ")],
        // bare key
        vec![auth(&a.key)],
        // basic
        vec![auth("Basic b3BlcmF0b3I6cGFzc3dvcmQ=")],
        // unknown publication key
        vec![auth("Bearer crm_pk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
        // mangled key of A
        vec![auth(&format!("Bearer {mangled}"))],
        // overlong key
        vec![auth(&format!("Bearer {long}"))],
        // non-ASCII key
        vec![("Authorization".into(), b"Bearer crm_pk_\xc3\xa9\xff".to_vec())],
        // another operator key
        vec![auth("Bearer operator-token-of-another-deployment-0000")],
        // operator key with a suffix
        vec![auth(&format!("Bearer {OPERATOR}x"))],
        // operator key cut short
        vec![auth(&format!("Bearer {}", &OPERATOR[..OPERATOR.len() - 1]))],
        // two keys in one header
        vec![auth(&format!("Bearer {} {OPERATOR}", a.key))],
        // a bad key before the operator's
        vec![auth("Bearer nope"), auth(&format!("Bearer {OPERATOR}"))],
    ];
    for req in routes(b.id, &b.customer) {
        let with_a = req.clone().bearer(&a.key);
        suite.refused_hiding("cross-publication", with_a, &[404], &hidden).await;
        for headers in &unauthorised {
            let mut refused = req.clone();
            for (name, value) in headers {
                refused = refused.header(name, value);
            }
            suite.refused_hiding("cross-publication", refused, &[401], &hidden).await;
        }
    }
    // A's key on A's own routes, naming B's customer: as absent as any unknown customer.
    let own = format!("/admin/publications/{A}/customers/{}", b.customer);
    suite.refused_hiding("cross-publication", Req::new("GET", &own).bearer(&a.key), &[404], &hidden).await;
    let rename = Req::new("PATCH", &own).bearer(&a.key).json(json!({"name": "Renamed"}).to_string());
    suite.refused_hiding("cross-publication", rename, &[404], &hidden).await;
    // A publication key never mints keys, not even for its own publication.
    let mint = Req::new("POST", format!("/admin/publications/{A}/keys")).bearer(&a.key);
    suite.refused_hiding("cross-publication", mint, &[403], &hidden).await;
    // Searching A for B's reader's email finds nobody (a 200, so checked here rather than by `refused`).
    let search = Req::new("GET", format!("/admin/publications/{A}/customers?email=bravo.reader%40example.com"));
    let found = client::send(&suite.addr, &search.bearer(&a.key)).await;
    if found.status != 200 || found.body != r#"{"data":[],"next":null}"# {
        suite.fail(format!("A's search for B's reader answered {}: {}", found.status, found.body));
    }
}

/// Request headers, as name and raw value.
type Headers = Vec<(String, Vec<u8>)>;

fn auth(value: &str) -> (String, Vec<u8>) {
    ("Authorization".into(), value.as_bytes().to_vec())
}

/// Bad parameters and bodies on B's routes, sent with the operator key.
pub async fn parameters(suite: &mut Suite, a: &Publication, b: &Publication) {
    let base = format!("/admin/publications/{}", b.id);
    let get = |path: &str| Req::new("GET", format!("{base}{path}")).bearer(OPERATOR);
    for (path, allowed) in [
        ("/customers?limit=0", 400),
        ("/customers?limit=201", 400),
        ("/customers?limit=abc", 400),
        ("/customers?limit=-1", 400),
        ("/customers?limit=99999999999999999999", 400),
        ("/customers?cursor=not-a-cursor", 400),
        ("/customers?cursor=%FF%FE", 400),
        ("/customers?status=bogus", 400),
        ("/customers?email=not-an-email", 400),
        ("/customers?email=", 400),
        ("/customers?email=%00%40example.com", 400),
        (&format!("/customers/{}", a.customer), 404),
        (&format!("/customers/{}?activitiesLimit=0", b.customer), 400),
        (&format!("/customers/{}?activitiesCursor=xyz", b.customer), 400),
        ("/tasks?status=bogus", 400),
        ("/tasks?cursor=xyz", 400),
        ("/tasks?limit=100000", 400),
        ("/revenue?from=2026-13", 400),
        ("/revenue?from=abcd", 400),
        ("/revenue?from=2026-1", 400),
        ("/revenue?from=2026-05&to=2026-01", 400),
        ("/revenue?from=1970-01&to=2026-01", 400),
        ("/revenue?to=%FF", 400),
        ("/exports/bogus", 404),
        ("/exports/customers?format=xml", 400),
        ("/keys/0123456789ab", 405),
        ("/nowhere", 404),
    ] {
        suite.refused("parameters", get(path), &[allowed]).await;
    }
    let send =
        |method: &str, path: &str, body: &str| Req::new(method, format!("{base}{path}")).bearer(OPERATOR).json(body);
    let long_name = "n".repeat(201);
    let patch = format!("/customers/{}", b.customer);
    let foreign = format!("/customers/{}", a.customer);
    for (method, path, body, allowed) in [
        ("PUT", "", "{}", 400),
        ("PUT", "", r#"{"name": "x", "unknown": 1}"#, 400),
        ("PUT", "", r#"{"name": "x", "origins": ["javascript:alert(1)"]}"#, 400),
        ("PUT", "", r#"{"name": "x", "piano": {"aid": "../x", "apiToken": "t", "privateKey": "k"}}"#, 400),
        (
            "PUT",
            "",
            r#"{"name": "x", "stripeAccounts": [{"key": "../main", "name": "n", "secretKey": "sk_test_x"}]}"#,
            400,
        ),
        ("PUT", "", "[]", 400),
        ("PUT", "", "", 400),
        ("PUT", "", "null", 400),
        ("POST", "/customers", r#"{"email": "bravo.reader@example.com"}"#, 409),
        ("POST", "/customers", r#"{"email": "x"}"#, 400),
        ("POST", "/customers", r#"{"email": 1}"#, 400),
        ("POST", "/customers", r#"{"email": "new.reader@example.com", "stripeAccount": "nope"}"#, 400),
        ("POST", "/customers", r#"{"email": "new.reader@example.com", "stripeAccount": "../main"}"#, 400),
        ("POST", "/customers", &format!(r#"{{"email": "new.reader@example.com", "name": "{long_name}"}}"#), 400),
        ("POST", "/customers", r#"{"email": "new.reader@example.com", "admin": true}"#, 400),
        ("POST", "/customers", "{}", 400),
        ("PATCH", &patch, r#"{"email": "not-an-email"}"#, 400),
        ("PATCH", &patch, &format!(r#"{{"name": "{long_name}"}}"#), 400),
        ("PATCH", &patch, r#"{"id": "cus_crm_01J00000000000000000000000"}"#, 400),
        ("PATCH", &foreign, r#"{"name": "x"}"#, 404),
        ("PATCH", &format!("/tasks/{NO_TASK}"), r#"{"status": "done"}"#, 404),
        ("PATCH", &format!("/tasks/{NO_TASK}"), r#"{"status": "bogus"}"#, 400),
        ("PATCH", &format!("/tasks/{NO_TASK}"), r#"{"status": "done", "title": "x"}"#, 400),
        ("POST", "/backfill", r#"{"account": "nope"}"#, 404),
        ("POST", "/backfill", r#"{"account": "../main"}"#, 400),
        ("POST", "/backfill", r#"{"account": "main", "rate": 0}"#, 400),
        ("POST", "/backfill", r#"{"account": "main", "rate": 1000}"#, 400),
        ("POST", "/backfill", r#"{"account": "main", "rate": -1}"#, 400),
        ("POST", "/backfill", r#"{"account": "main", "from": 0}"#, 400),
        ("POST", "/backfill", "{}", 400),
        ("DELETE", "", "", 405),
    ] {
        suite.refused("parameters", send(method, path, body), &[allowed]).await;
    }
    // Registering a webhook gives the providers a URL: the server has no CRM_PUBLIC_BASE_URL, so it is
    // built from the request's Host. No Host, or one that is no host[:port], leaves nothing for the
    // providers to call: refused before anything is asked of them (and before whether the account
    // exists is said). With a good Host they would be asked; the shared tests cover that with fakes.
    for host in [None, Some(""), Some("127.0.0.1/x"), Some("bad host"), Some("user@127.0.0.1"), Some("127.0.0.1:x")] {
        for path in
            ["/stripe-accounts/nope/webhook-endpoint", "/stripe-accounts/main/webhook-endpoint", "/piano/webhook"]
        {
            suite.refused("parameters", send("POST", path, "").host(host), &[400]).await;
        }
    }
    // If-Match: garbage is a bad request; a version that is not the current one changes nothing.
    let valid = b.settings().to_string();
    for (tag, allowed) in [("garbage", 400), ("\"999\"", 412), ("\"0\"", 412)] {
        let put = send("PUT", "", &valid).header("If-Match", tag);
        suite.refused("parameters", put, &[allowed]).await;
    }
}
