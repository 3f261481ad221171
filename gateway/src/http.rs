//! HTTP routing: the Upstash REST surface.
//!
//! `POST /` one JSON command, `POST /pipeline`, `POST /multi-exec`, path
//! style `GET|POST /cmd/arg/...`, and an unauthenticated `GET /healthz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::auth::Tokens;
use crate::backend::Health;
use crate::cluster::{NodeHealth, SLOTS};
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::json;
use crate::metrics::Metrics;
use crate::resp::Value;
use crate::response::{json_bytes, json_response};

pub struct AppState {
    pub gateway: Gateway,
    pub metrics: Arc<Metrics>,
    pub tokens: Tokens,
    pub max_body: usize,
    pub request_timeout: Duration,
}

type Request = hyper::Request<Incoming>;

/// Answers one request, whatever its path and method.
pub async fn handle(app: Arc<AppState>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // Only the route kind is logged: paths carry keys and values, and the
    // query string may carry a token.
    let kind = route_kind(req.uri().path());
    let timeout = app.request_timeout;
    let read_only_script = AtomicBool::new(false);
    let outcome = if timeout.is_zero() {
        Ok(route(&app, req, &read_only_script).await)
    } else {
        let deadline = tokio::time::Instant::from_std(started) + timeout;
        tokio::time::timeout_at(deadline, route(&app, req, &read_only_script)).await
    };
    let mut reason = None;
    let resp = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let kind = match &e {
                ApiError::Unavailable(_) => Some("unavailable"),
                ApiError::Refused(_) => Some("refused"),
                _ => None,
            };
            if let Some(kind) = kind {
                app.metrics.failed(kind);
            }
            // The error's own text: Redis's message or why it could not be
            // reached, never the request (keys, values, tokens).
            reason = Some(e.to_string());
            e.into_response()
        }
        Err(_) => {
            app.metrics.failed("timeout");
            reason = Some(format!("no answer within {} ms", timeout.as_millis()));
            // A read-only token's script may still be running, holding
            // Redis for every client: it is killable (it wrote nothing).
            if read_only_script.load(Ordering::Relaxed) {
                let app = app.clone();
                tokio::spawn(async move { app.gateway.kill_busy_scripts().await });
            }
            ApiError::Timeout(timeout.as_millis() as u64).into_response()
        }
    };
    let status = resp.status().as_u16();
    let took = started.elapsed();
    app.metrics.record(kind, status, took);
    let micros = took.as_micros() as u64;
    if status >= 500 {
        let reason = reason.unwrap_or_default();
        tracing::warn!(%method, route = kind, status, micros, %reason, "request failed");
    } else {
        tracing::debug!(%method, route = kind, status, micros, "request");
    }
    resp
}

fn route_kind(path: &str) -> &'static str {
    match path {
        "/" => "command",
        "/pipeline" => "pipeline",
        "/multi-exec" => "multi-exec",
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        _ => "path",
    }
}

/// Whether `args` runs a script (read-only tokens can run only the `_RO`
/// forms, which Redis can kill).
fn runs_script(args: &[Bytes]) -> bool {
    args.first().is_some_and(|name| {
        [
            &b"eval_ro"[..],
            b"evalsha_ro",
            b"fcall_ro",
            b"eval",
            b"evalsha",
            b"fcall",
        ]
        .iter()
        .any(|s| name.eq_ignore_ascii_case(s))
    })
}

async fn route(
    app: &AppState,
    req: Request,
    read_only_script: &AtomicBool,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if path == "/healthz" {
        return health(app, &parts.method).await;
    }
    let access = app.tokens.check(&parts.headers, parts.uri.query())?;
    if path == "/metrics" && parts.method == Method::GET {
        let (redis_busy, scripts) = app.gateway.gauges();
        let text = app.metrics.render(redis_busy, scripts);
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        return Ok(([(header::CONTENT_TYPE, content_type)], text).into_response());
    }
    let base64 = wants_base64(&parts.headers);
    let gw = &app.gateway;
    match path {
        "/" => {
            require_post(&parts.method)?;
            let body = read_body(&parts.headers, body, app.max_body).await?;
            let args = json::parse_command(&body)?;
            gw.check(std::slice::from_ref(&args), access.read_only)
                .await?;
            if access.read_only && runs_script(&args) {
                read_only_script.store(true, Ordering::Relaxed);
            }
            single_reply(gw.single(args).await?, base64)
        }
        "/pipeline" | "/multi-exec" => {
            require_post(&parts.method)?;
            let body = read_body(&parts.headers, body, app.max_body).await?;
            let cmds = json::parse_commands(&body)?;
            gw.check(&cmds, access.read_only).await?;
            if access.read_only && cmds.iter().any(|c| runs_script(c)) {
                read_only_script.store(true, Ordering::Relaxed);
            }
            let out = if path == "/pipeline" {
                gw.pipeline(cmds).await?
            } else {
                gw.multi_exec(cmds).await?
            };
            let mut body = Vec::with_capacity(64 * out.len());
            body.push(b'[');
            for (i, v) in out.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                json::write_reply(&mut body, v, base64);
            }
            body.push(b']');
            Ok(json_bytes(StatusCode::OK, body))
        }
        _ => {
            let post = parts.method == Method::POST;
            if !post && parts.method != Method::GET {
                return Err(ApiError::MethodNotAllowed);
            }
            let mut args = path_args(path);
            if post {
                // The raw body is the last argument: the one binary-safe way
                // to send a value.
                let body = read_body(&parts.headers, body, app.max_body).await?;
                if !body.is_empty() {
                    args.push(body);
                }
            }
            gw.check(std::slice::from_ref(&args), access.read_only)
                .await?;
            if access.read_only && runs_script(&args) {
                read_only_script.store(true, Ordering::Relaxed);
            }
            single_reply(gw.single(args).await?, base64)
        }
    }
}

fn require_post(m: &Method) -> Result<(), ApiError> {
    if m == Method::POST {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

fn wants_base64(h: &HeaderMap) -> bool {
    h.get("upstash-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"base64"))
}

fn single_reply(v: Value, base64: bool) -> Result<Response, ApiError> {
    match v {
        Value::Error(e) if is_refused_for_now(&e) => {
            Err(ApiError::Refused(String::from_utf8_lossy(&e).into_owned()))
        }
        Value::Error(e) => Err(ApiError::Command(String::from_utf8_lossy(&e).into_owned())),
        v => {
            let mut body = vec![];
            json::write_reply(&mut body, &v, base64);
            Ok(json_bytes(StatusCode::OK, body))
        }
    }
}

/// Redis refused the command before running it, for a while (a failover,
/// a slot moving, a dataset loading, a script running): the same command
/// may succeed later.
fn is_refused_for_now(error: &[u8]) -> bool {
    ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"]
        .iter()
        .any(|code| error.starts_with(code.as_bytes()))
}

/// `/set/k%20x/v` -> `["set", "k x", "v"]`, percent-decoded to raw bytes.
fn path_args(path: &str) -> Vec<Bytes> {
    let mut segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.last() == Some(&"") {
        segs.pop();
    }
    segs.into_iter()
        .map(|s| Bytes::from(percent_decode_str(s).collect::<Vec<u8>>()))
        .collect()
}

async fn read_body(headers: &HeaderMap, body: Incoming, max: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::PayloadTooLarge(max));
    }
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(max))
        }
        Err(e) => Err(ApiError::BadRequest(format!("ERR cannot read body: {e}"))),
    }
}

async fn health(app: &AppState, method: &Method) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    match app.gateway.health().await {
        Health::Single(Ok(())) => Ok(json_response(StatusCode::OK, &json!({ "status": "ok" }))),
        Health::Single(Err(e)) | Health::Cluster(Err(e)) => Ok(unhealthy(&e)),
        Health::Cluster(Ok(nodes)) => Ok(cluster_health(&nodes)),
    }
}

/// A cluster is healthy when every hash slot is served by a master that
/// answers and says the cluster is ok: 200 `ok`. Otherwise 503, `degraded`
/// while some slots are served, `unavailable` when none is. The body counts
/// the slots served and lists the masters.
fn cluster_health(nodes: &[NodeHealth]) -> Response {
    let served: usize = nodes
        .iter()
        .filter(|n| n.problem.is_none())
        .map(|n| n.slots)
        .sum();
    let (status, word) = match served {
        SLOTS => (StatusCode::OK, "ok"),
        0 => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
    };
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| match &n.problem {
            None => json!({ "node": n.addr, "slots": n.slots, "ok": true }),
            Some(e) => json!({ "node": n.addr, "slots": n.slots, "ok": false, "error": e }),
        })
        .collect();
    let body = json!({
        "status": word,
        "slots_served": served,
        "slots": SLOTS,
        "nodes": nodes,
    });
    json_response(status, &body)
}

fn unhealthy(err: &str) -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({ "status": "unavailable", "error": err }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_path_arguments() {
        let a = path_args("/set/k%20x/%FF/");
        assert_eq!(
            a,
            vec![
                Bytes::from("set"),
                Bytes::from("k x"),
                Bytes::from(vec![0xff])
            ]
        );
    }
}
