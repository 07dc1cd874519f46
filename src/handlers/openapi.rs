//! `GET /api/schema/`: the OpenAPI 3 document of every endpoint, kept in
//! the repo beside this file and checked against the route tables so the
//! two cannot drift.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;

use crate::http::Response;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The document as a response.
pub(super) fn serve() -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from_static(DOCUMENT.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::handlers::allowed;
    use crate::route::{PUBLIC_ROUTES, Route, TENANT_ROUTES};

    fn routes() -> Vec<(&'static str, Route)> {
        let shared = [
            ("/api/token/", Route::Token),
            ("/api/token/refresh/", Route::TokenRefresh),
            ("/api/token/verify/", Route::TokenVerify),
            ("/api/schema/", Route::Schema),
        ];
        shared
            .into_iter()
            .chain(TENANT_ROUTES)
            .chain(PUBLIC_ROUTES)
            .collect()
    }

    #[test]
    fn document_lists_exactly_the_routes_and_methods() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        let paths = document["paths"].as_object().unwrap();
        let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
        let served: BTreeSet<&str> = routes().iter().map(|(path, _)| *path).collect();
        assert_eq!(
            documented, served,
            "openapi.json paths and the router differ"
        );

        for (path, route) in routes() {
            let methods: BTreeSet<String> = paths[path]
                .as_object()
                .unwrap()
                .keys()
                .filter(|key| !matches!(key.as_str(), "parameters" | "summary" | "description"))
                .map(|method| method.to_uppercase())
                .collect();
            let allowed: BTreeSet<String> = allowed(route)
                .split(", ")
                .filter(|method| *method != "HEAD")
                .map(str::to_owned)
                .collect();
            assert_eq!(methods, allowed, "methods of {path}");
        }
    }
}
