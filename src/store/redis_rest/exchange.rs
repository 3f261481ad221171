//! One request's life, without I/O: EVALSHA first, EVAL after NOSCRIPT, and
//! retries only where safe. Every transport (reqwest natively, blocking or
//! async, and the host's `fetch` from WebAssembly) drives it, so the policy
//! has one implementation. An exchange owns what it sends and hands the
//! transport each attempt's part; randomness (the retries' jitter) comes in
//! as a seed, so an exchange is a pure function of its inputs.

use std::sync::Arc;
use std::time::Duration;

use super::batch::Batch;
use super::call::ScriptCall;
use super::json::Json;
use super::options::RestOptions;
use super::protocol::Reply;
use super::retry::retry_delay;
use crate::StoreError;

/// What an exchange sends.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// A script call.
    Script(Arc<ScriptCall>),
    /// Any other command (a reset's DEL), as its JSON body; always safe to
    /// send twice.
    Command(String),
}

/// A request as one attempt sends it.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) request: Request,
    /// With the script's code (EVAL), after NOSCRIPT.
    pub(crate) eval: bool,
}

impl Part {
    /// Its body when it travels alone.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn body(&self) -> String {
        match &self.request {
            Request::Script(call) => call.body(self.eval),
            Request::Command(body) => body.clone(),
        }
    }

    /// Adds it to `batch`.
    pub(crate) fn add_to(&self, batch: &mut Batch) {
        match &self.request {
            Request::Script(call) => batch.add_script(call, self.eval),
            Request::Command(body) => batch.add_command(body.clone()),
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    request: Request,
    idempotent: bool,
    eval: bool,
    attempt: u32,
    /// Drawn from for each retry's jitter.
    seed: u64,
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
    /// The exchange of `request`; `seed` spreads its retries' jitter.
    pub(crate) fn new(request: Request, seed: u64) -> Self {
        let idempotent = match &request {
            Request::Script(call) => call.idempotent,
            Request::Command(_) => true,
        };
        Self {
            request,
            idempotent,
            eval: false,
            attempt: 0,
            seed,
        }
    }

    /// What the next attempt sends.
    pub(crate) fn part(&self) -> Part {
        Part {
            request: self.request.clone(),
            eval: self.eval,
        }
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
                let random = splitmix(self.seed.wrapping_add(u64::from(self.attempt)));
                match retry_delay(&error, self.attempt, self.idempotent, options, random) {
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

/// Calls sent together until each has an answer: each keeps its own
/// exchange (EVAL after NOSCRIPT, retries as its idempotence allows); those
/// still unanswered go together again, after the longest delay any asked.
/// (The JavaScript transport batches calls that each run their own.)
#[derive(Debug)]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) struct Exchanges {
    exchanges: Vec<Exchange>,
    answers: Vec<Option<Result<Json, StoreError>>>,
    /// The calls the last request carried, in its order.
    sent: Vec<usize>,
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
impl Exchanges {
    pub(crate) fn new(exchanges: Vec<Exchange>) -> Self {
        let answers = vec![None; exchanges.len()];
        Self {
            exchanges,
            answers,
            sent: Vec::new(),
        }
    }

    /// Adds to `batch` every call still unanswered; false when none is.
    pub(crate) fn request(&mut self, batch: &mut Batch) -> bool {
        self.sent = (0..self.exchanges.len())
            .filter(|&i| self.answers[i].is_none())
            .collect();
        for &i in &self.sent {
            self.exchanges[i].part().add_to(batch);
        }
        !self.sent.is_empty()
    }

    /// Takes the replies to the last request, one per call it carried, and
    /// answers how long to wait before the next (zero: at once).
    pub(crate) fn receive(&mut self, replies: Vec<Reply>, options: &RestOptions) -> Duration {
        let mut delay = Duration::ZERO;
        for (&i, reply) in self.sent.iter().zip(replies) {
            match self.exchanges[i].next(reply, options) {
                Step::Done(json) => self.answers[i] = Some(Ok(json)),
                Step::SendAgain => {}
                Step::Retry(wait) => delay = delay.max(wait),
                Step::Failed(error) => self.answers[i] = Some(Err(error)),
            }
        }
        delay
    }

    /// Each call's answer, in order.
    pub(crate) fn answers(self) -> Vec<Result<Json, StoreError>> {
        self.answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| Err(StoreError::MalformedReply("no reply".into())))
            })
            .collect()
    }
}

/// A well-spread number from `state` (SplitMix64's output function).
fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::FixedWindow;
    use crate::store::TimeSource;
    use crate::store::{Consume, Key};

    /// A call taking a unit: not safe to apply twice.
    fn consuming() -> Request {
        let algorithm = FixedWindow::new(5, "1 s").unwrap();
        let key = Key {
            prefix: "p",
            id: "a",
        };
        let consume = Consume {
            algorithm: &algorithm,
            cost: 1,
        };
        let call = ScriptCall::prepare(key, 0, &consume, TimeSource::Caller).unwrap();
        Request::Script(Arc::new(call))
    }

    #[test]
    fn evals_once_then_retries_what_is_safe() {
        let options = RestOptions::default();
        let mut exchange = Exchange::new(consuming(), 7);
        assert!(!exchange.part().eval);
        assert!(matches!(
            exchange.next(Reply::NoScript, &options),
            Step::SendAgain
        ));
        assert!(exchange.part().eval);
        assert!(exchange.part().body().contains("\"EVAL\""));
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
        let mut consuming = Exchange::new(consuming(), 7);
        assert!(matches!(
            consuming.next(timeout.clone(), &options),
            Step::Failed(_)
        ));
        let mut reading = Exchange::new(Request::Command("[\"DEL\",\"k\"]".into()), 7);
        assert!(matches!(reading.next(timeout, &options), Step::Retry(_)));
        assert!(matches!(
            reading.next(Reply::Result(Json::Int(1)), &options),
            Step::Done(Json::Int(1))
        ));
    }

    #[test]
    fn the_seed_decides_the_jitter() {
        let options = RestOptions::default();
        let delays = |seed| {
            let mut exchange = Exchange::new(Request::Command("[]".into()), seed);
            (0..options.retries)
                .map(|_| {
                    match exchange
                        .next(Reply::Failed(StoreError::Unreachable("x".into())), &options)
                    {
                        Step::Retry(delay) => delay,
                        step => panic!("{step:?}"),
                    }
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(delays(1), delays(1), "same seed, same delays");
        assert!(
            (0..8).any(|seed| delays(seed) != delays(1)),
            "seeds spread them"
        );
    }

    #[test]
    fn jitter_comes_from_splitmix64() {
        // SplitMix64's first outputs from seed 0, as published with it.
        assert_eq!(splitmix(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix(0x3C6E_F372_FE94_F82A), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn calls_together_until_each_is_answered() {
        let options = RestOptions::default();
        let exchanges = vec![
            Exchange::new(consuming(), 1),
            Exchange::new(consuming(), 2),
            Exchange::new(Request::Command("[\"DEL\",\"k\"]".into()), 3),
        ];
        let mut calls = Exchanges::new(exchanges);
        let mut batch = Batch::new(super::super::Grouping::Pipeline);
        assert!(calls.request(&mut batch));
        assert_eq!(batch.path(), "/pipeline");
        // The first is answered, the second needs its code, the third
        // failed before arriving.
        let refused = Reply::Failed(StoreError::Unreachable("refused".into()));
        let delay = calls.receive(
            vec![Reply::Result(Json::Int(1)), Reply::NoScript, refused],
            &options,
        );
        assert!(delay > Duration::ZERO, "the refused call waits");
        let mut again = Batch::new(super::super::Grouping::Pipeline);
        assert!(calls.request(&mut again));
        let body = again.body();
        assert!(body.contains("\"EVAL\"") && body.contains("DEL"), "{body}");
        let delay = calls.receive(
            vec![Reply::Result(Json::Int(2)), Reply::Result(Json::Int(0))],
            &options,
        );
        assert_eq!(delay, Duration::ZERO);
        assert!(!calls.request(&mut Batch::new(super::super::Grouping::Pipeline)));
        let answers = calls.answers();
        assert!(matches!(
            answers[..],
            [Ok(Json::Int(1)), Ok(Json::Int(2)), Ok(Json::Int(0))]
        ));
    }
}
