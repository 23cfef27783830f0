//! The axum middleware that checks bearer tokens on an HTTP listener.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method};

use super::{Denied, Need, Tokens};
use crate::error::Error;

/// Tokens plus the policy of one listener.
#[derive(Clone)]
pub struct Guard {
    pub tokens: Tokens,
    pub policy: fn(&Method, &str) -> Need,
}

impl Guard {
    /// Wraps `router` so every request is checked (no-op without tokens).
    pub fn wrap(self, router: axum::Router) -> axum::Router {
        if !self.tokens.is_enabled() {
            return router;
        }
        router.layer(axum::middleware::from_fn_with_state(self, check))
    }
}

async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let need = (guard.policy)(request.method(), request.uri().path());
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match guard.tokens.check(header, need) {
        Ok(_) => next.run(request).await,
        Err(denied) => {
            tracing::debug!(
                method = %request.method(),
                path = %request.uri().path(),
                reason = %denied,
                "request denied"
            );
            let ui_page =
                !request.uri().path().starts_with("/api/") && request.uri().path() != "/metrics";
            let unauthenticated = !matches!(denied, Denied::Forbidden { .. });
            let mut response = Error::from(denied).into_response();
            if unauthenticated {
                let headers = response.headers_mut();
                headers.append(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"bellwether\""),
                );
                // Pages opened in a browser: its login prompt sends the token as the password.
                if ui_page {
                    headers.append(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"bellwether\", charset=\"UTF-8\""),
                    );
                }
            }
            response
        }
    }
}
