//! Every admin route is its own Lambda function (`shared::api::admin_routes`): each
//! declaration's router serves its route and no other admin route, each function crate runs one, and
//! the group routers `crm serve` merges serve them all.

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use shared::api::admin_routes::{self, ALL, AdminRoute, Group};
use tower::ServiceExt;

/// The route's path with every `{parameter}` filled in.
fn concrete(route: &AdminRoute) -> String {
    route.path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/")
}

/// Whether `router` routes `route`'s method and path (whatever the handler then answers).
async fn serves(router: &axum::Router, route: &AdminRoute) -> bool {
    let request = Request::builder().method(route.method).uri(concrete(route)).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    !(status == StatusCode::METHOD_NOT_ALLOWED || body.as_ref() == br#"{"error":"no such route"}"#)
}

#[tokio::test]
async fn each_function_serves_its_own_route_and_no_other() {
    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    for route in ALL {
        let router = route.router(state.clone());
        assert!(serves(&router, route).await, "{} does not serve {} {}", route.function, route.method, route.path);
        for other in ALL.iter().filter(|o| o.function != route.function) {
            assert!(
                !serves(&router, other).await,
                "{} also serves {} {} (of {})",
                route.function,
                other.method,
                other.path,
                other.function
            );
        }
        // And what tests and `template.rs` call the function's router is this one.
        assert!(serves(&support::router_of(route.function, state.clone()), route).await, "{}", route.function);
    }
}

#[tokio::test]
async fn the_group_routers_and_crm_serve_serve_every_route() {
    let store = support::embedded_store();
    let state = support::app_state(store.store.clone());
    let settings = shared::api::settings::router(state.clone());
    let customers = shared::api::customers::router(state.clone());
    let everything = shared::api::all_routes(state.clone());
    for route in ALL {
        let group = if route.group == Group::Settings { &settings } else { &customers };
        assert!(serves(group, route).await, "{:?} group misses {} {}", route.group, route.method, route.path);
        assert!(serves(&everything, route).await, "crm serve misses {} {}", route.method, route.path);
        let other = if route.group == Group::Settings { &customers } else { &settings };
        assert!(!serves(other, route).await, "{} {} is in two groups", route.method, route.path);
    }
}

#[test]
fn one_declaration_per_function_and_route_each_with_its_crate() {
    let functions: BTreeSet<&str> = ALL.iter().map(|r| r.function).collect();
    assert_eq!(functions.len(), ALL.len(), "a function serves two declarations");
    let routes: BTreeSet<(&str, &str)> = ALL.iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(routes.len(), ALL.len(), "a route is declared twice");
    for route in ALL {
        assert_eq!(admin_routes::by_function(route.function).map(|r| r.path), Some(route.path));
        let main = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions")
            .join(route.function)
            .join("src/main.rs");
        let text = std::fs::read_to_string(&main).unwrap_or_else(|e| panic!("{}: {e}", main.display()));
        let constant = route.function.to_uppercase().replace('-', "_");
        assert!(
            text.contains(&format!("admin_routes::{constant}.router(")),
            "{} runs the router of admin_routes::{constant}",
            main.display()
        );
        assert!(text.contains("admin: true"), "{} authenticates the operator", main.display());
    }
    assert!(admin_routes::by_function("revenue-api").is_none());
}
