//! Several calls in one HTTP request, without I/O: which request carries a
//! batch, and which reply belongs to which call. Every transport that
//! batches (the async native store, the host's `fetch` in JavaScript)
//! shares these two functions, so a batch means the same everywhere.
//!
//! Each call in a batch keeps its own [`Exchange`](super::exchange::Exchange):
//! its reply may be a result, NOSCRIPT (it joins a later batch with EVAL),
//! or an error of its own; a failure of the whole request reaches every
//! call, and each decides by its own idempotence whether to try again.

use super::protocol::{self, Reply};
use crate::StoreError;

/// The path and body carrying `bodies`: a single call goes to `/` as it
/// would unbatched; more go to `/pipeline` in order (Redis runs them in
/// that order, each script atomic on its own).
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn request(bodies: &[String]) -> (&'static str, String) {
    (path(bodies.len()), body(bodies))
}

/// The path of [`request`] for `count` calls.
pub(crate) fn path(count: usize) -> &'static str {
    match count {
        1 => "",
        _ => "/pipeline",
    }
}

/// The body of [`request`].
pub(crate) fn body(bodies: &[String]) -> String {
    match bodies {
        [one] => one.clone(),
        _ => protocol::pipeline_body(bodies),
    }
}

/// The reply of each of `count` calls sent by [`request`], from what the
/// transport got: an HTTP status and body, or no reply at all.
pub(crate) fn replies(count: usize, outcome: Result<(u16, &str), StoreError>) -> Vec<Reply> {
    let shared_failure = |error: StoreError| vec![Reply::Failed(error); count];
    match outcome {
        Err(error) => shared_failure(error),
        Ok((status, body)) if count == 1 => vec![protocol::read_reply(status, body)],
        Ok((status, body)) => {
            protocol::read_pipeline(status, body, count).unwrap_or_else(shared_failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::json::Json;
    use super::*;

    #[test]
    fn one_call_goes_alone_more_go_as_a_pipeline() {
        let one = vec![r#"["EVALSHA","a","1","k"]"#.to_owned()];
        assert_eq!(request(&one), ("", one[0].clone()));
        let two = vec![one[0].clone(), r#"["DEL","k"]"#.to_owned()];
        assert_eq!(
            request(&two),
            ("/pipeline", format!("[{},{}]", two[0], two[1]))
        );
    }

    #[test]
    fn each_call_gets_its_own_reply_or_the_shared_failure() {
        let body = r#"[{"result":[1]},{"error":"NOSCRIPT x"},{"error":"ERR y"}]"#;
        assert_eq!(
            replies(3, Ok((200, body))),
            vec![
                Reply::Result(Json::Array(vec![Json::Int(1)])),
                Reply::NoScript,
                Reply::Failed(StoreError::Command("ERR y".into())),
            ]
        );
        assert_eq!(
            replies(1, Ok((400, r#"{"error":"NOSCRIPT x"}"#))),
            vec![Reply::NoScript]
        );
        let refused = StoreError::Unreachable("refused".into());
        assert_eq!(
            replies(2, Err(refused.clone())),
            vec![Reply::Failed(refused.clone()), Reply::Failed(refused)]
        );
        assert_eq!(
            replies(2, Ok((401, r#"{"error":"Unauthorized"}"#))),
            vec![
                Reply::Failed(StoreError::Unauthorized),
                Reply::Failed(StoreError::Unauthorized)
            ]
        );
        assert!(
            matches!(
                &replies(2, Ok((200, r#"[{"result":1}]"#)))[..],
                [
                    Reply::Failed(StoreError::MalformedReply(_)),
                    Reply::Failed(StoreError::MalformedReply(_))
                ]
            ),
            "a pipeline reply of the wrong length fails every call"
        );
    }
}
