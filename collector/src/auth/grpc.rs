//! A tower layer that checks bearer tokens (`authorization` metadata) on the gRPC
//! listener before any service sees the request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use tonic::codegen::Service;

use super::{policy, Tokens};
use crate::error::Error;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

#[derive(Clone)]
pub struct AuthLayer {
    tokens: Tokens,
}

impl AuthLayer {
    pub fn new(tokens: Tokens) -> Self {
        Self { tokens }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    tokens: Tokens,
}

impl<S, B, R> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let need = policy::grpc(request.uri().path());
        let header = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        match self.tokens.check(header, need) {
            Ok(_) => Box::pin(self.inner.call(request)),
            Err(denied) => {
                tracing::debug!(path = %request.uri().path(), reason = %denied, "request denied");
                let status = tonic::Status::from(Error::from(denied));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
