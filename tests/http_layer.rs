//! The tower layer (feature `tower`) in front of real services: an axum app
//! served on 127.0.0.1 (memory store and the async Redis store through the
//! real gateway), and a bare service called with the peer's address.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use edgelimit::http::RateLimitLayer;
use edgelimit::store::AsyncRedisRestStore;
use edgelimit::{FixedWindow, Limiter};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use tower_service::Service;

/// Serves `app` on a free loopback port; the server stops with the runtime.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    url
}

/// axum's peer address, the key a server behind no proxy should use.
fn connect_info(parts: &http::request::Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

/// Status, `X-RateLimit-Remaining`, `Retry-After` and `RateLimit` of a GET.
async fn hit(
    client: &reqwest::Client,
    url: &str,
) -> (u16, Option<String>, Option<String>, Option<String>) {
    let response = client.get(url).send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        response.status().as_u16(),
        header("x-ratelimit-remaining"),
        header("retry-after"),
        header("ratelimit"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_app_on_the_memory_store() {
    let limiter = Limiter::new(FixedWindow::new(2, "1 m").unwrap());
    let layer = RateLimitLayer::new(limiter)
        .with_key(connect_info)
        .with_window(Duration::from_secs(60));
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(layer);
    let url = serve(app).await;
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(hit(&client, &url).await);
    }
    assert_eq!(seen[0].0, 200);
    assert_eq!(seen[0].1.as_deref(), Some("1"));
    assert_eq!(seen[0].2, None);
    assert!(seen[0]
        .3
        .as_deref()
        .unwrap()
        .starts_with("\"default\";r=1;t="));
    assert_eq!((seen[1].0, seen[1].1.as_deref()), (200, Some("0")));
    assert_eq!(seen[2].0, 429);
    let retry: u64 = seen[2].2.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let policy = client.get(&url).send().await.unwrap();
    assert_eq!(
        policy.headers().get("ratelimit-policy").unwrap(),
        "\"default\";q=2;w=60"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_app_on_the_async_redis_store() {
    let redis = Redis::start();
    let gateway = Gateway::start(redis.port);
    let store = AsyncRedisRestStore::new(gateway.url(), TOKEN).unwrap();
    let limiter = Limiter::new(FixedWindow::new(3, "1 m").unwrap()).with_store(store);
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(RateLimitLayer::new(limiter).with_key(connect_info));
    let url = serve(app).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(hit(&client, &url).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);

    // The store down and the limiter's policy an error: 503, retry soon.
    let down = AsyncRedisRestStore::new("http://127.0.0.1:9", TOKEN).unwrap();
    let limiter = Limiter::new(FixedWindow::new(3, "1 m").unwrap()).with_store(down);
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(RateLimitLayer::new(limiter).with_key(connect_info));
    let url = serve(app).await;
    let (status, _, retry, _) = hit(&client, &url).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
}

/// A service answering 200 with an empty body.
#[derive(Clone)]
struct Ok200;

impl Service<http::Request<()>> for Ok200 {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<()>) -> Self::Future {
        std::future::ready(Ok(http::Response::new("ok".to_owned())))
    }
}

/// The default key is the peer address a server puts in the extensions
/// (IPv6 by its /64); a forged `X-Forwarded-For` changes nothing, and a
/// request with no address is refused, sharing no quota with others.
#[tokio::test]
async fn the_default_key_trusts_no_header() {
    use tower_layer::Layer;
    let limiter = Limiter::new(FixedWindow::new(1, "1 m").unwrap());
    let mut service = RateLimitLayer::new(limiter).layer(Ok200);
    let mut statuses = Vec::new();
    for (peer, forwarded) in [
        (Some("192.0.2.1:5000"), "10.0.0.1"),
        (Some("192.0.2.1:5001"), "10.0.0.2"),
        (Some("192.0.2.2:5000"), "10.0.0.1"),
        (None, "10.0.0.3"),
        (None, "10.0.0.4"),
        (Some("[2001:db8:1:2::1]:443"), "10.0.0.1"),
        (Some("[2001:db8:1:2:ffff::9]:443"), "10.0.0.2"),
        (Some("[::ffff:192.0.2.3]:443"), "10.0.0.1"),
        (Some("192.0.2.3:1"), "10.0.0.1"),
    ] {
        let mut request = http::Request::builder()
            .header("x-forwarded-for", forwarded)
            .body(())
            .unwrap();
        if let Some(peer) = peer {
            request
                .extensions_mut()
                .insert(peer.parse::<SocketAddr>().unwrap());
        }
        poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
        statuses.push(service.call(request).await.unwrap().status().as_u16());
    }
    // The same address on another port is the same client, as is the same
    // IPv6 /64 and an IPv4 address mapped into IPv6; no address: 400.
    assert_eq!(statuses, [200, 429, 200, 400, 400, 200, 429, 200, 429]);
}
