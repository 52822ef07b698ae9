//! `Path` and `Query` for the handlers: axum's, except that a refusal is an `ApiError` (so it gets the
//! `{"error": "..."}` body every other error has, instead of axum's plain text) and that a query
//! string whose parameters are not UTF-8 once decoded is refused, where axum's would decode it lossily.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The route's path parameters; 400 with a JSON body when they do not decode.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// The query string's parameters; 400 with a JSON body when they are not UTF-8 or do not fit `T`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if !parts.uri.query().is_none_or(super::form::is_utf8) {
            return Err(ApiError::BadRequest("the query string is not UTF-8 once decoded".into()));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Deserialize)]
    struct Page {
        limit: Option<u32>,
        email: Option<String>,
    }

    async fn handler(Path(id): Path<String>, Query(page): Query<Page>) -> String {
        format!("{id} {:?} {:?}", page.limit, page.email)
    }

    async fn get_uri(uri: &str) -> (StatusCode, String) {
        let app = Router::new().route("/things/{id}", get(handler));
        let response = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn error_of(body: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        value["error"].as_str().unwrap_or_else(|| panic!("no error in {body}")).to_owned()
    }

    #[tokio::test]
    async fn refusals_are_json_errors() {
        let (status, body) = get_uri("/things/%FF%FE").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).contains("`id`"), "{body}");
        let (status, body) = get_uri("/things/a?limit=abc").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).contains("limit"), "{body}");
    }

    #[tokio::test]
    async fn a_query_that_is_not_utf8_is_refused_not_mangled() {
        let (status, body) = get_uri("/things/a?email=%FF%FE%40example.com").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&body), "the query string is not UTF-8 once decoded");
        let (status, body) = get_uri("/things/caf%C3%A9?limit=5&email=%C3%A9%40example.com").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "café Some(5) Some(\"é@example.com\")"));
    }
}
