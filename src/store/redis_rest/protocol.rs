//! The Upstash REST protocol without I/O: request bodies out, replies in.
//! Both the native and the WebAssembly transports drive these functions,
//! so the protocol has one implementation.

use super::json::{self, Json};
use crate::scripts::Script;
use crate::StoreError;

/// What the transport brought back for one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// `{"result": …}`.
    Result(Json),
    /// The script is not cached: send its code with EVAL.
    NoScript,
    /// The call was not run (a batch's keys span cluster slots): send it
    /// again at once, grouped otherwise.
    Regroup,
    /// Anything else.
    Failed(StoreError),
}

/// The body of a call of `script` on `key_count` keys: `["EVALSHA",
/// "<sha1>","<key_count>",<keys>,<args>]`, or EVAL with the code when the
/// script must be sent (EVAL also caches it). `keys` and `args` are JSON
/// strings joined by commas.
pub(crate) fn script_body(
    script: &Script,
    eval: bool,
    key_count: usize,
    keys: &str,
    args: &str,
) -> String {
    let mut out = String::with_capacity(64 + keys.len() + args.len());
    if eval {
        out.push_str("[\"EVAL\",");
        json::push_str(&mut out, script.code());
    } else {
        out.push_str("[\"EVALSHA\",\"");
        out.push_str(script.sha1());
        out.push('"');
    }
    out.push_str(",\"");
    out.push_str(&key_count.to_string());
    out.push_str("\",");
    out.push_str(keys);
    out.push(',');
    out.push_str(args);
    out.push(']');
    out
}

/// The body of a plain command, e.g. `["DEL", key]`.
pub(crate) fn command_body<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    json::string_array(words)
}

/// Reads a response to a single command (`POST /`).
pub(crate) fn read_reply(status: u16, body: &str) -> Reply {
    match document(status, body) {
        Ok(document) => classify(status, document),
        Err(error) => Reply::Failed(error),
    }
}

/// The body of a pipeline (`POST /pipeline`) of command bodies.
pub(crate) fn pipeline_body(commands: &[String]) -> String {
    format!("[{}]", commands.join(","))
}

/// Reads a response to a pipeline of `expected` commands: one reply each,
/// in order, or the failure of the whole request.
pub(crate) fn read_pipeline(
    status: u16,
    body: &str,
    expected: usize,
) -> Result<Vec<Reply>, StoreError> {
    match document(status, body)? {
        Json::Array(items) if status == 200 && items.len() == expected => {
            Ok(items.into_iter().map(|item| classify(200, item)).collect())
        }
        document => match classify(status, document) {
            Reply::Failed(error) => Err(error),
            _ => Err(StoreError::MalformedReply(format!(
                "pipeline of {expected}: {}: {}",
                http(status),
                excerpt(body)
            ))),
        },
    }
}

/// `HTTP 503` and the like. (The status as a u64 reuses the one integer
/// formatting the WebAssembly module carries anyway.)
fn http(status: u16) -> String {
    format!("HTTP {}", u64::from(status))
}

/// The response's JSON, or why there is none.
fn document(status: u16, body: &str) -> Result<Json, StoreError> {
    match status {
        401 => return Err(StoreError::Unauthorized),
        403 => return Err(StoreError::Forbidden(refusal(body))),
        404 => return Err(StoreError::NotFound(http(status))),
        _ => {}
    }
    json::parse(body).ok_or_else(|| {
        if status >= 500 {
            StoreError::Unavailable(http(status))
        } else {
            StoreError::MalformedReply(format!("{}: not JSON: {}", http(status), excerpt(body)))
        }
    })
}

/// Redis error codes that mean the command was refused before it ran and
/// may succeed later.
const REFUSED_FOR_NOW: [&str; 5] = ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"];

/// One `{"result": …}` or `{"error": …}` object.
fn classify(status: u16, document: Json) -> Reply {
    if let Some(Json::Str(message)) = document.field("error") {
        return error_reply(status, message);
    }
    let kind = document.kind();
    match (status, document.into_field("result")) {
        (200, Some(result)) => Reply::Result(result),
        (status, _) if status >= 500 => Reply::Failed(StoreError::Unavailable(http(status))),
        (status, _) => Reply::Failed(StoreError::MalformedReply(format!(
            "{}: {kind} without a result",
            http(status),
        ))),
    }
}

/// The reply standing for Redis's error `message`, answered with HTTP
/// `status`.
pub(crate) fn error_reply(status: u16, message: &str) -> Reply {
    if message.starts_with("NOSCRIPT") {
        return Reply::NoScript;
    }
    let message = excerpt(message);
    if REFUSED_FOR_NOW.iter().any(|code| message.starts_with(code)) {
        return Reply::Failed(StoreError::Busy(message));
    }
    if message.starts_with("ERR unknown command") {
        return Reply::Failed(StoreError::NotFound(message));
    }
    Reply::Failed(if status >= 500 {
        StoreError::Unavailable(message)
    } else {
        StoreError::Command(message)
    })
}

/// The integers of an array reply, e.g. a script's decision.
pub(crate) fn integers(result: &Json) -> Result<Vec<i64>, StoreError> {
    let malformed = || {
        StoreError::MalformedReply(format!(
            "expected an array of integers, got {}",
            result.kind()
        ))
    };
    match result {
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::Int(n) => Ok(*n),
                _ => Err(malformed()),
            })
            .collect(),
        _ => Err(malformed()),
    }
}

/// At most 300 characters of `body`, for an error message: a reply of any
/// size never makes a large one.
fn excerpt(body: &str) -> String {
    let mut text: String = body.chars().take(300).collect();
    if text.len() < body.len() {
        text.push('…');
    }
    text
}

/// Why a 403 refused the command: the reply's `error`, else an excerpt.
fn refusal(body: &str) -> String {
    match json::parse(body) {
        Some(document) => match document.field("error") {
            Some(Json::Str(message)) => excerpt(message),
            _ => excerpt(body),
        },
        None => excerpt(body),
    }
}

/// Delay before retry `attempt` (0-based): exponential from `base_ms`,
/// capped at `max_ms`, with full jitter drawn from `random` so clients that
/// failed together do not retry together.
pub(crate) fn backoff_ms(attempt: u32, base_ms: u64, max_ms: u64, random: u64) -> u64 {
    let ceiling = base_ms
        .saturating_mul(1 << attempt.min(20))
        .min(max_ms)
        .max(1);
    ceiling / 2 + random % (ceiling / 2 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(
            read_reply(200, r#"{"result":[1,2]}"#),
            Reply::Result(Json::Array(vec![Json::Int(1), Json::Int(2)]))
        );
        assert_eq!(
            read_reply(
                400,
                r#"{"error":"NOSCRIPT No matching script. Please use EVAL."}"#
            ),
            Reply::NoScript
        );
        assert_eq!(
            read_reply(401, r#"{"error":"Unauthorized"}"#),
            Reply::Failed(StoreError::Unauthorized)
        );
        assert_eq!(
            read_reply(400, r#"{"error":"ERR wrong number of arguments"}"#),
            Reply::Failed(StoreError::Command("ERR wrong number of arguments".into()))
        );
        assert!(matches!(
            read_reply(503, r#"{"error":"redis unavailable"}"#),
            Reply::Failed(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            read_reply(502, "<html>bad gateway</html>"),
            Reply::Failed(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            read_reply(200, "{}"),
            Reply::Failed(StoreError::MalformedReply(_))
        ));
        assert!(matches!(
            read_reply(200, "[1"),
            Reply::Failed(StoreError::MalformedReply(_))
        ));
    }

    #[test]
    fn pipelines() {
        let body = pipeline_body(&[command_body(["GET", "a"]), command_body(["DEL", "b"])]);
        assert_eq!(body, r#"[["GET","a"],["DEL","b"]]"#);
        let replies = read_pipeline(
            200,
            r#"[{"result":[1]},{"error":"NOSCRIPT x"},{"error":"ERR y"}]"#,
            3,
        )
        .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Result(Json::Array(vec![Json::Int(1)])),
                Reply::NoScript,
                Reply::Failed(StoreError::Command("ERR y".into())),
            ]
        );
        assert!(matches!(
            read_pipeline(200, r#"[{"result":1}]"#, 2),
            Err(StoreError::MalformedReply(_))
        ));
        assert_eq!(
            read_pipeline(401, r#"{"error":"Unauthorized"}"#, 1),
            Err(StoreError::Unauthorized)
        );
        assert!(matches!(
            read_pipeline(503, r#"{"error":"down"}"#, 1),
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn refusals_before_running_are_busy() {
        let loading = read_reply(
            400,
            r#"{"error":"LOADING Redis is loading the dataset in memory"}"#,
        );
        assert!(
            matches!(&loading, Reply::Failed(e @ StoreError::Busy(_)) if e.is_transient() && e.surely_not_applied())
        );
        let busy = read_reply(400, r#"{"error":"BUSY Redis is busy running a script"}"#);
        assert!(matches!(busy, Reply::Failed(StoreError::Busy(_))));
    }

    #[test]
    fn integers_only() {
        assert_eq!(
            integers(&Json::Array(vec![Json::Int(1), Json::Int(-1)])),
            Ok(vec![1, -1])
        );
        assert!(integers(&Json::Array(vec![Json::Str("1".into())])).is_err());
        assert!(integers(&Json::Int(1)).is_err());
    }

    #[test]
    fn failures_say_what_came_back() {
        let failed = |status, body| read_reply(status, body);
        assert_eq!(
            failed(500, "<html>oops</html>"),
            Reply::Failed(StoreError::Unavailable("HTTP 500".into()))
        );
        assert_eq!(
            failed(499, "<html>oops</html>"),
            Reply::Failed(StoreError::MalformedReply(
                "HTTP 499: not JSON: <html>oops</html>".into()
            ))
        );
        assert_eq!(
            failed(401, r#"{"result":1}"#),
            Reply::Failed(StoreError::Unauthorized)
        );
        assert_eq!(
            failed(403, r#"{"result":1}"#),
            Reply::Failed(StoreError::Forbidden(r#"{"result":1}"#.into()))
        );
        assert_eq!(
            failed(403, r#"{"error":"NOPERM no"}"#),
            Reply::Failed(StoreError::Forbidden("NOPERM no".into()))
        );
        // A wrong URL path: whatever the server says, not a Redis error.
        for body in ["Not Found", r#"{"error":"ERR no"}"#, r#"{"result":1}"#] {
            assert_eq!(
                failed(404, body),
                Reply::Failed(StoreError::NotFound("HTTP 404".into())),
                "{body}"
            );
        }
        assert_eq!(
            failed(500, r#"{"result":1}"#),
            Reply::Failed(StoreError::Unavailable("HTTP 500".into()))
        );
        assert_eq!(
            failed(499, "[1]"),
            Reply::Failed(StoreError::MalformedReply(
                "HTTP 499: an array without a result".into()
            ))
        );
        assert_eq!(
            failed(500, r#"{"error":"ERR down"}"#),
            Reply::Failed(StoreError::Unavailable("ERR down".into()))
        );
        assert_eq!(
            failed(499, r#"{"error":"ERR no"}"#),
            Reply::Failed(StoreError::Command("ERR no".into()))
        );
        // A long body is cut to its first 300 characters, and says so.
        let long = "x".repeat(500);
        let Reply::Failed(StoreError::MalformedReply(message)) = failed(200, &long) else {
            panic!("not malformed");
        };
        assert_eq!(message, format!("HTTP 200: not JSON: {}…", &long[..300]));
        // As is a Redis error of any length.
        let Reply::Failed(StoreError::Command(message)) =
            failed(400, &format!(r#"{{"error":"ERR {long}"}}"#))
        else {
            panic!("not a command error");
        };
        assert_eq!(message.chars().count(), 301);
    }

    #[test]
    fn a_pipeline_answers_with_status_200_only() {
        assert_eq!(
            read_pipeline(500, r#"[{"result":1}]"#, 1),
            Err(StoreError::Unavailable("HTTP 500".into()))
        );
        assert_eq!(
            read_pipeline(200, r#"{"result":1}"#, 1),
            Err(StoreError::MalformedReply(
                r#"pipeline of 1: HTTP 200: {"result":1}"#.into()
            ))
        );
    }

    #[test]
    fn backoff_jitter_spans_the_upper_half_exactly() {
        // Attempt 0 from 50 ms: between 25 and 50 ms, both ends reachable.
        assert_eq!(backoff_ms(0, 50, 1000, 25), 50);
        assert_eq!(backoff_ms(0, 50, 1000, 26), 25);
        assert_eq!(backoff_ms(3, 50, 1000, 0), 200);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for random in [0, 1, 7, u64::MAX] {
            let delays: Vec<u64> = (0..8).map(|a| backoff_ms(a, 50, 1000, random)).collect();
            for (attempt, &d) in delays.iter().enumerate() {
                let ceiling = (50u64 << attempt).min(1000);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d}");
            }
        }
        assert_eq!(backoff_ms(100, 50, 1000, 0), 500);
    }
}
