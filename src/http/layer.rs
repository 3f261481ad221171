//! `RateLimitLayer`: a tower layer deciding each request with a limiter
//! before the service sees it.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::request::Parts;
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::headers::rate_limit_headers;
use crate::algorithm::Algorithm;
use crate::clock::Clock;
use crate::store::AsyncStore;
use crate::{Limiter, Reason};

/// Who a request counts against, from its head; `None`: nobody
/// identifiable, and such a request is refused with `400 Bad Request`
/// (no quota shared by all the unidentified, which one client could use up
/// for everyone).
pub type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// The default key: the peer's IP address from a [`SocketAddr`] in the
/// request's extensions, which a server inserts per connection (an IPv6
/// peer by its /64, which one host commonly holds whole). Never a header:
/// `X-Forwarded-For` and the like can be forged by any client. Behind a
/// proxy you trust, or with axum's `ConnectInfo`, set your own with
/// [`RateLimitLayer::with_key`].
fn peer_ip(parts: &Parts) -> Option<String> {
    let ip = parts.extensions.get::<SocketAddr>()?.ip().to_canonical();
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            format!("{}/64", Ipv6Addr::from(network))
        }
    })
}

/// Rate limits every request of the services it wraps: a denied request gets
/// `429 Too Many Requests` with `Retry-After` (the service is not called),
/// or `403 Forbidden` when the limiter's deny list holds its key;
/// every response carries `RateLimit-Policy`, `RateLimit` and the
/// `X-RateLimit-*` headers. A store failure is answered as the limiter's
/// [`FailurePolicy`](crate::FailurePolicy) says; with the default (an
/// error), the request gets `503 Service Unavailable` and `Retry-After: 1`.
///
/// ```
/// use std::time::Duration;
/// use edgelimit::http::RateLimitLayer;
/// use edgelimit::{Limiter, SlidingWindow};
///
/// let layer = RateLimitLayer::new(Limiter::new(SlidingWindow::new(100, "1 m")?))
///     .with_window(Duration::from_secs(60));
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimitLayer<A, S, C> {
    shared: Shared<A, S, C>,
}

/// What the layer and its services share.
struct Shared<A, S, C> {
    limiter: Arc<Limiter<A, S, C>>,
    key: KeyFn,
    window_ms: Option<u64>,
}

impl<A, S, C> Clone for Shared<A, S, C> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            window_ms: self.window_ms,
        }
    }
}

impl<A, S, C> Clone for RateLimitLayer<A, S, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<A, S, C> RateLimitLayer<A, S, C> {
    /// Limits requests with `limiter`, keyed by the peer's IP address.
    pub fn new(limiter: Limiter<A, S, C>) -> Self {
        Self {
            shared: Shared {
                limiter: Arc::new(limiter),
                key: Arc::new(peer_ip),
                window_ms: None,
            },
        }
    }

    /// Keys requests with `key` instead (an API key, a user id, a trusted
    /// proxy's header, axum's `ConnectInfo`).
    pub fn with_key(
        mut self,
        key: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.shared.key = Arc::new(key);
        self
    }

    /// Advertises `window` as the policy's window (`w=` of
    /// `RateLimit-Policy`).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.shared.window_ms = Some(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

impl<Svc, A, S, C> Layer<Svc> for RateLimitLayer<A, S, C> {
    type Service = RateLimit<Svc, A, S, C>;

    fn layer(&self, inner: Svc) -> Self::Service {
        RateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around another.
pub struct RateLimit<Svc, A, S, C> {
    inner: Svc,
    shared: Shared<A, S, C>,
}

impl<Svc: Clone, A, S, C> Clone for RateLimit<Svc, A, S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<Svc, A, S, C, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<Svc, A, S, C>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    Svc::Future: Send,
    A: Algorithm + Send + Sync + 'static,
    S: AsyncStore,
    C: Clock + Send + Sync + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = Svc::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready answers this request; a clone
        // takes its place for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let Some(id) = (shared.key)(&parts) else {
                return Ok(status(StatusCode::BAD_REQUEST));
            };
            let limiter = &shared.limiter;
            let decision = match limiter.limit_async(&id).await {
                Ok(decision) => decision,
                Err(_) => return Ok(unavailable()),
            };
            let now_ms = limiter.clock().now_ms();
            let mut response = match (decision.allowed, decision.reason) {
                (true, _) => inner.call(Request::from_parts(parts, body)).await?,
                // Waiting would not help: the client is refused.
                (false, Some(Reason::DenyList)) => status(StatusCode::FORBIDDEN),
                (false, _) => status(StatusCode::TOO_MANY_REQUESTS),
            };
            rate_limit_headers(response.headers_mut(), &decision, shared.window_ms, now_ms);
            Ok(response)
        })
    }
}

fn status<B: Default>(code: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = code;
    response
}

/// The store failed and the limiter's policy is an error: try again soon.
fn unavailable<B: Default>() -> Response<B> {
    let mut response = status(StatusCode::SERVICE_UNAVAILABLE);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1u32));
    response
}
