//! The publications the suite attacks, A (`pub-alpha`), B (`pub-bravo`) and C (`pub-charlie`), created
//! through the admin API as an operator would: settings with a Stripe account, Piano, a publication key
//! each and one customer each. A and B have a JWT secret, so their tokens are verified locally and no
//! request reaches Piano; C has none (`jwtSecret: null`), so only Piano can verify its readers' tokens.
//! Every secret is distinct, so a leak names its publication.

use serde_json::{Value, json};

use super::client::{self, Req};
use super::server::OPERATOR;

pub const A: &str = "pub-alpha";
pub const B: &str = "pub-bravo";
pub const C: &str = "pub-charlie";

/// One publication's settings and what the suite learned creating it.
pub struct Publication {
    pub id: &'static str,
    pub name: &'static str,
    pub origin: &'static str,
    pub aid: &'static str,
    /// `None`: tokens are verified by Piano only.
    pub jwt_secret: Option<&'static str>,
    pub webhook_secret: &'static str,
    pub private_key: &'static str,
    pub secret_key: &'static str,
    pub api_token: &'static str,
    pub email: &'static str,
    /// Filled in by `create`.
    pub key: String,
    pub customer: String,
}

pub fn alpha() -> Publication {
    Publication {
        id: A,
        name: "Alpha Daily",
        origin: "https://www.alpha.example",
        aid: "AlphaAid01",
        jwt_secret: Some("jwt-secret-of-alpha-0123456789abcdef"),
        webhook_secret: "whsec_alpha0123456789abcdefghijWXYZ",
        private_key: "alphaprivatekeyexactly32charsAAA",
        secret_key: "sk_test_51AlphaAbCdEfGhIjKlMnOpQr9a1a",
        api_token: "piano-api-token-alpha-0123456789",
        email: "alpha.reader@example.com",
        key: String::new(),
        customer: String::new(),
    }
}

pub fn bravo() -> Publication {
    Publication {
        id: B,
        name: "Bravo Weekly",
        origin: "https://www.bravo.example",
        aid: "BravoAid02",
        jwt_secret: Some("jwt-secret-of-bravo-fedcba9876543210"),
        webhook_secret: "whsec_bravo0123456789abcdefghijWXYZ",
        private_key: "bravoprivatekeyexactly32charsBBB",
        secret_key: "sk_test_51BravoAbCdEfGhIjKlMnOpQr9b2b",
        api_token: "piano-api-token-bravo-0123456789",
        email: "bravo.reader@example.com",
        key: String::new(),
        customer: String::new(),
    }
}

pub fn charlie() -> Publication {
    Publication {
        id: C,
        name: "Charlie Monthly",
        origin: "https://www.charlie.example",
        aid: "CharlieAid03",
        jwt_secret: None,
        webhook_secret: "whsec_charlie0123456789abcdefghijWXYZ",
        private_key: "charlieprivkeyexactly32charsCCCC",
        secret_key: "sk_test_51CharlieAbCdEfGhIjKlMnOpQr9c3c",
        api_token: "piano-api-token-charlie-0123456789",
        email: "charlie.reader@example.com",
        key: String::new(),
        customer: String::new(),
    }
}

impl Publication {
    /// The JWT secret of a publication that has one (A and B).
    pub fn jwt_secret(&self) -> &'static str {
        self.jwt_secret.unwrap_or_else(|| panic!("{} verifies tokens through Piano only", self.id))
    }

    pub fn settings(&self) -> Value {
        json!({
            "name": self.name,
            "origins": [self.origin],
            "stripeAccounts": [{"key": "main", "name": format!("{} Ltd", self.name), "secretKey": self.secret_key,
                                "webhookSecrets": [self.webhook_secret]}],
            "piano": {"aid": self.aid, "apiToken": self.api_token, "privateKey": self.private_key,
                      "jwtSecret": self.jwt_secret, "region": "us"}
        })
    }

    /// Every secret in the settings: never to be seen in any answer.
    pub fn secrets(&self) -> Vec<String> {
        [self.webhook_secret, self.private_key, self.secret_key, self.api_token, &self.key]
            .into_iter()
            .chain(self.jwt_secret)
            .map(str::to_owned)
            .collect()
    }

    /// What of this publication another publication's caller must never see.
    pub fn data(&self) -> Vec<String> {
        let mut data = vec![self.name.to_owned(), self.email.to_owned(), self.customer.clone(), self.aid.to_owned()];
        data.extend(self.secrets());
        data
    }

    /// Creates the publication, a key for it and a customer, through the admin API.
    pub async fn create(&mut self, addr: &str) {
        let path = format!("/admin/publications/{}", self.id);
        let put = Req::new("PUT", &path).bearer(OPERATOR).json(self.settings().to_string());
        assert_eq!(client::send(addr, &put).await.status, 201, "creating {}", self.id);
        let key = client::send(addr, &Req::new("POST", format!("{path}/keys")).bearer(OPERATOR)).await;
        assert_eq!(key.status, 201, "{}", key.body);
        self.key = json_field(&key.body, "key");
        let body = json!({"email": self.email, "name": self.name}).to_string();
        let customer =
            client::send(addr, &Req::new("POST", format!("{path}/customers")).bearer(&self.key).json(body)).await;
        assert_eq!(customer.status, 201, "{}", customer.body);
        self.customer = json_field(&customer.body, "id");
        // The first revenue report stores the publication's summary; later reads change nothing.
        let revenue = client::send(addr, &Req::new("GET", format!("{path}/revenue")).bearer(&self.key)).await;
        assert_eq!(revenue.status, 200, "{}", revenue.body);
    }
}

fn json_field(body: &str, field: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value[field].as_str().unwrap_or_else(|| panic!("no {field} in {body}")).to_owned()
}
