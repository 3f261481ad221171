//! One request's life, without I/O: EVALSHA first, EVAL after NOSCRIPT, and
//! retries only where safe. Both transports (reqwest natively, the host's
//! `fetch` from WebAssembly) drive it, so the policy has one implementation.

use std::time::Duration;

use super::json::Json;
use super::options::RestOptions;
use super::protocol::Reply;
use super::retry::retry_delay;
use crate::StoreError;

/// Where a request stands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange {
    idempotent: bool,
    eval: bool,
    attempt: u32,
}

/// What to do after a reply.
#[derive(Debug)]
pub(crate) enum Step {
    /// The answer.
    Done(Json),
    /// Send again at once: the script's code is needed (EVAL).
    SendAgain,
    /// Send again after this delay.
    Retry(Duration),
    /// Give up.
    Failed(StoreError),
}

impl Exchange {
    /// A request that may (`idempotent`) or may not be applied twice safely.
    pub(crate) fn new(idempotent: bool) -> Self {
        Self {
            idempotent,
            eval: false,
            attempt: 0,
        }
    }

    /// Whether the next body must carry the script's code.
    pub(crate) fn eval(&self) -> bool {
        self.eval
    }

    /// The step after `reply`.
    pub(crate) fn next(&mut self, reply: Reply, options: &RestOptions) -> Step {
        match reply {
            Reply::Result(json) => Step::Done(json),
            Reply::Regroup => Step::SendAgain,
            Reply::NoScript if !self.eval => {
                self.eval = true;
                Step::SendAgain
            }
            Reply::NoScript => {
                Step::Failed(StoreError::MalformedReply("NOSCRIPT after EVAL".into()))
            }
            Reply::Failed(error) => {
                match retry_delay(&error, self.attempt, self.idempotent, options) {
                    Some(delay) => {
                        self.attempt += 1;
                        Step::Retry(delay)
                    }
                    None => Step::Failed(error),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evals_once_then_retries_what_is_safe() {
        let options = RestOptions::default();
        let mut exchange = Exchange::new(false);
        assert!(matches!(
            exchange.next(Reply::NoScript, &options),
            Step::SendAgain
        ));
        assert!(exchange.eval());
        assert!(matches!(
            exchange.next(Reply::NoScript, &options),
            Step::Failed(_)
        ));

        let refused = || Reply::Failed(StoreError::Unreachable("refused".into()));
        for _ in 0..options.retries {
            assert!(matches!(exchange.next(refused(), &options), Step::Retry(_)));
        }
        assert!(
            matches!(exchange.next(refused(), &options), Step::Failed(_)),
            "out of retries"
        );

        let timeout = Reply::Failed(StoreError::Timeout { ms: 1 });
        let mut consuming = Exchange::new(false);
        assert!(matches!(
            consuming.next(timeout.clone(), &options),
            Step::Failed(_)
        ));
        let mut reading = Exchange::new(true);
        assert!(matches!(reading.next(timeout, &options), Step::Retry(_)));
        assert!(matches!(
            reading.next(Reply::Result(Json::Int(1)), &options),
            Step::Done(Json::Int(1))
        ));
    }
}
