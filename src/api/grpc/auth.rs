//! A tower layer that admits a gRPC call only with a valid API key and
//! hands the caller (the key and its workspace, and the change it must see)
//! to the handler as a request extension; the answer carries the cursor of
//! what the call committed (`api::freshness`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::api::freshness;
use crate::auth::{Authenticator, key_from_headers};
use crate::error::Error;
use crate::service::noting_commits;

/// Methods callable without a key: health checks and reflection, so probes,
/// grpcurl and `buf curl` work with no credentials.
const PUBLIC_PREFIXES: [&str; 2] = ["/grpc.health.", "/grpc.reflection."];

/// Shared by every call: cloning the authenticator itself would clone the
/// service it reads keys through, a dozen reference counts per call.
#[derive(Clone)]
pub struct RequireApiKey {
    authenticator: Arc<Authenticator>,
}

impl RequireApiKey {
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            authenticator: Arc::new(authenticator),
        }
    }
}

impl<S> Layer<S> for RequireApiKey {
    type Service = RequireApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireApiKeyService {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequireApiKeyService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S, B> Service<http::Request<B>> for RequireApiKeyService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone is ready only after poll_ready; keep the ready one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let path = request.uri().path();
            if PUBLIC_PREFIXES
                .iter()
                .any(|prefix| path.starts_with(prefix))
            {
                return inner.call(request).await;
            }
            let admitted = match key_from_headers(request.headers()) {
                Some(key) => authenticator
                    .caller_for(key)
                    .await
                    .and_then(|caller| freshness::seeing(request.headers(), caller)),
                None => Err(Error::Unauthenticated),
            };
            match admitted {
                Ok(caller) => {
                    crate::api::observe::record_caller(&caller);
                    request.extensions_mut().insert(caller);
                    let (response, cursor) = noting_commits(inner.call(request)).await;
                    response.map(|mut response| {
                        freshness::answer_with(response.headers_mut(), cursor);
                        response
                    })
                }
                Err(error) => Ok(tonic::Status::from(error).into_http()),
            }
        })
    }
}
