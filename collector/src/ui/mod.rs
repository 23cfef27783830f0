//! The web UI, served by the collector at `/` from assets compiled into the binary.
//!
//! # Layout
//!
//! - `assets/`: `index.html` (one shell for every page), `app.js` (routing, API calls,
//!   rendering with `textContent` only), `chart.js` (SVG line charts), `style.css`. No
//!   build step, nothing fetched from the network, no inline script or style, so the
//!   strict Content-Security-Policy below holds.
//! - Pages, rendered in the browser from the JSON API: services (`/`), a service
//!   (`/services/{service}`), a release (`/releases/{service}/{version}?environment=`),
//!   alerts (`/alerts`). Every page refreshes itself every few seconds.
//! - [`services`]: the summaries the pages need beyond the release API (`/api/v1/services`).

pub mod services;

use std::sync::Arc;

use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::evaluate::Evaluator;
use crate::releases::Releases;
use bellwether_alerting::alerts::AlertEngine;
use bellwether_store::ReleaseStore;

/// Scripts, styles, images and API calls from this origin only; nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const CHART_JS: &str = include_str!("assets/chart.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// What the UI's summary endpoints read.
#[derive(Clone)]
pub struct Views {
    pub store: Arc<dyn ReleaseStore>,
    pub releases: Releases,
    pub evaluator: Evaluator,
    pub alerts: AlertEngine,
}

/// The pages, their assets and `/api/v1/services`.
pub fn routes(views: Views) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/services/{service}", get(page))
        .route("/releases/{service}/{version}", get(page))
        .route("/alerts", get(page))
        .route(
            "/assets/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/chart.js",
            get(|| asset(CHART_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/style.css",
            get(|| asset(STYLE_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/assets/favicon.svg",
            get(|| asset(FAVICON, "image/svg+xml")),
        )
        .route("/favicon.ico", get(|| asset(FAVICON, "image/svg+xml")))
        .route("/api/v1/services", get(services::list))
        .route("/api/v1/services/{service}", get(services::detail))
        .with_state(views)
}

fn with_headers(body: &'static str, content_type: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

async fn page() -> Response {
    with_headers(INDEX, "text/html; charset=utf-8")
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    with_headers(body, content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_have_no_inline_script_or_style_and_no_html_sinks() {
        assert!(INDEX.contains("src=\"/assets/app.js\""));
        let inline_script = INDEX
            .split("<script")
            .skip(1)
            .any(|tag| !tag.trim_start().starts_with("src=") && !tag.contains(" src="));
        assert!(!inline_script, "index.html has an inline script");
        assert!(!INDEX.contains("style="), "index.html has an inline style");
        assert!(!INDEX.contains("<style"), "index.html has a style element");
        for (name, js) in [("app.js", APP_JS), ("chart.js", CHART_JS)] {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!js.contains(sink), "{name} uses {sink}");
            }
            let js = js.replace("'http://www.w3.org/2000/svg'", "");
            assert!(
                !js.contains("http://") && !js.contains("https://"),
                "{name} names a URL"
            );
        }
    }
}
