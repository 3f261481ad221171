//! Calls to Redis over REST, driven from JavaScript: the core gives the
//! request to POST for a batch of calls, reads the reply, and tells each
//! call whether it is done, must be sent again (with EVAL, or after a
//! delay), or failed. Keeping the HTTP in JavaScript (the host's `fetch`)
//! keeps an HTTP client and an async runtime out of the module.

use std::rc::Rc;
use std::sync::Arc;

use wasm_bindgen::prelude::*;

use super::codes::{FetchFailure, Status};
use super::error::{invalid_argument, Coded};
use super::io;
use super::multi::numbers;
use crate::algorithm::AllOf;
use crate::algorithm::AnyAlgorithm;
use crate::algorithm::{Adjustment, LeaseOp, LeaseOutcome, QuotaRefund};
use crate::limiter::quota_book::{QuotaBook, Spend};
use crate::random;
use crate::store::redis_rest::{
    command_body, conclude, conclude_keys, decode, redis_key, Batch, DenyCache, Exchange, Grouping,
    Json, Reply, Request, ScriptCall, Step,
};
use crate::store::{
    Adjust, Consume, ConsumeAll, ConsumeQuota, Key, LeaseStep, Peek, RestOptions, Transition,
};
use crate::{Algorithm as _, Concurrency, Decision, Error, FailurePolicy, StoreError};

/// What a call asks Redis, and how its answer is read.
pub(crate) enum Ask {
    Rate {
        algorithm: AnyAlgorithm,
        cost: u64,
        peek: bool,
    },
    /// A rate decision under quota leases that the lease could not pay.
    Quota(QuotaAsk),
    /// A refund or a penalty.
    Adjust {
        algorithm: AnyAlgorithm,
        adjustment: Adjustment,
    },
    Lease {
        config: Concurrency,
        op: LeaseOp,
    },
    /// Several limits as one call.
    Multi(MultiAsk),
    Remove,
    /// Forgets the id's key under this prefix, not the target's.
    RemoveKey(String),
}

/// A call on several limits at once, and the keys' prefixes (each limit's,
/// then the block's).
pub(crate) struct MultiAsk {
    pub(crate) all: Rc<AllOf<AnyAlgorithm>>,
    pub(crate) prefixes: Rc<[String]>,
    pub(crate) cost: u64,
    pub(crate) peek: bool,
}

impl MultiAsk {
    fn step(&self) -> ConsumeAll<'_, AnyAlgorithm> {
        ConsumeAll {
            all: &self.all,
            cost: self.cost,
            peek: self.peek,
        }
    }

    fn keys<'a>(&'a self, id: &'a str) -> Vec<Key<'a>> {
        self.prefixes
            .iter()
            .map(|prefix| Key { prefix, id })
            .collect()
    }
}

/// Where a call's key lives and what answers for it when Redis cannot.
pub(crate) struct Target {
    pub(crate) prefix: String,
    pub(crate) id: String,
    pub(crate) options: RestOptions,
    pub(crate) failure: FailurePolicy,
    pub(crate) deny: Option<Rc<DenyCache>>,
    pub(crate) quota: Option<Rc<QuotaBook>>,
}

impl Target {
    fn key(&self) -> Key<'_> {
        Key {
            prefix: &self.prefix,
            id: &self.id,
        }
    }
}

/// A call in flight.
#[wasm_bindgen(js_name = CoreRestCall)]
pub struct WasmRestCall {
    ask: Ask,
    target: Target,
    exchange: Exchange,
    now_ms: u64,
    delay_ms: u64,
    /// A multi-limit call's answer, as numbers (see `multi::numbers`).
    multi: Option<Vec<f64>>,
}

/// The [`Status`]es `receiveFrom` answers besides denied and failed.
const ADMITTED: i32 = Status::Admitted as i32;
const SEND_AGAIN: i32 = Status::SendAgain as i32;
const RETRY_LATER: i32 = Status::RetryLater as i32;

impl WasmRestCall {
    /// The call for `ask` on `target` at `now_ms`, or the denial the deny
    /// cache proves (its numbers written to the output slots).
    pub(crate) fn new(ask: Ask, target: Target, now_ms: u64) -> Result<Option<Self>, Error> {
        let ask = match (ask, target.quota.as_deref()) {
            (
                Ask::Rate {
                    algorithm,
                    cost,
                    peek: false,
                },
                Some(book),
            ) => match book.spend(&target.id, now_ms, cost) {
                Spend::Local(decision) => {
                    io::write(&decision);
                    return Ok(None);
                }
                Spend::Ask { want, refund } => Ask::Quota(QuotaAsk {
                    algorithm,
                    cost,
                    want,
                    refund,
                }),
            },
            (ask, _) => ask,
        };
        let key = target.key();
        let call = match &ask {
            Ask::Rate {
                algorithm,
                cost,
                peek: false,
            } => {
                let consume = Consume {
                    algorithm,
                    cost: *cost,
                };
                if let Some(denied) = target
                    .deny
                    .as_deref()
                    .and_then(|cache| cache.answer(key, now_ms, &consume))
                {
                    io::write(&denied);
                    return Ok(None);
                }
                Some(prepare(key, now_ms, &consume, &target.options)?)
            }
            Ask::Rate { algorithm, .. } => {
                Some(prepare(key, now_ms, &Peek { algorithm }, &target.options)?)
            }
            Ask::Quota(quota) => {
                let step = quota.step();
                let denied = target
                    .deny
                    .as_deref()
                    .and_then(|cache| cache.answer(key, now_ms, &step));
                let prepared = match denied {
                    Some(denied) => Err(Ok(io::write(&denied.decision))),
                    None => prepare(key, now_ms, &step, &target.options).map_err(Err),
                };
                if let (Err(_), Some(book)) = (&prepared, target.quota.as_deref()) {
                    book.ask_ended(key.id);
                }
                match prepared {
                    Ok(call) => Some(call),
                    Err(Ok(_)) => return Ok(None),
                    Err(Err(error)) => return Err(error),
                }
            }
            Ask::Lease { config, op } => Some(prepare(
                key,
                now_ms,
                &LeaseStep { config, op: *op },
                &target.options,
            )?),
            Ask::Adjust {
                algorithm,
                adjustment,
            } => {
                // A denial cached for the key may not hold after it.
                if let Some(cache) = target.deny.as_deref() {
                    cache.forget(key);
                }
                let step = Adjust {
                    algorithm,
                    adjustment: *adjustment,
                };
                Some(prepare(key, now_ms, &step, &target.options)?)
            }
            Ask::Multi(multi) => {
                let keys = multi.keys(&target.id);
                let call =
                    ScriptCall::prepare_keys(&keys, now_ms, &multi.step(), target.options.time);
                Some(call?)
            }
            Ask::Remove => {
                if let Some(book) = target.quota.as_deref() {
                    book.forget(key.id);
                }
                None
            }
            Ask::RemoveKey(_) => None,
        };
        let request = match (call, &ask) {
            (Some(call), _) => Request::Script(Arc::new(call)),
            (None, ask) => {
                let key = match ask {
                    Ask::RemoveKey(prefix) => Key {
                        prefix,
                        id: &target.id,
                    },
                    _ => key,
                };
                if let Some(cache) = target.deny.as_deref() {
                    cache.forget(key);
                }
                Request::Command(command_body(["DEL", redis_key(key).as_str()]))
            }
        };
        Ok(Some(Self {
            ask,
            target,
            exchange: Exchange::new(request, random::next_u64()),
            now_ms,
            delay_ms: 0,
            multi: None,
        }))
    }

    fn step(&mut self, reply: Reply) -> i32 {
        match self.exchange.next(reply, &self.target.options) {
            Step::Done(json) => self.answer(&json),
            Step::SendAgain => SEND_AGAIN,
            Step::Retry(delay) => {
                self.delay_ms = delay.as_millis() as u64;
                RETRY_LATER
            }
            Step::Failed(error) => self.give_up(error),
        }
    }

    fn answer(&mut self, json: &Json) -> i32 {
        let (key, now, cache) = (self.target.key(), self.now_ms, self.target.deny.as_deref());
        let status = match &self.ask {
            Ask::Rate {
                algorithm,
                cost,
                peek: false,
            } => {
                let consume = Consume {
                    algorithm,
                    cost: *cost,
                };
                conclude(json, key, now, &consume, cache).map(rate)
            }
            // Reads and leases teach the deny cache nothing.
            Ask::Rate { algorithm, .. } => decode(json, &Peek { algorithm }).map(|answer| {
                let mut decision = answer.output;
                if let Some(book) = self.target.quota.as_deref() {
                    decision.remaining += book.unspent(key.id, now);
                }
                rate(decision)
            }),
            Ask::Quota(quota) => {
                let answer = conclude(json, key, now, &quota.step(), cache);
                match self.target.quota.as_deref() {
                    Some(book) => book.settle(key.id, now, answer),
                    None => answer.map(|answer| answer.decision),
                }
                .map(rate)
            }
            Ask::Lease { config, op } => {
                let step = LeaseStep { config, op: *op };
                decode(json, &step).map(|answer| lease(answer.output))
            }
            Ask::Adjust {
                algorithm,
                adjustment,
            } => {
                let step = Adjust {
                    algorithm,
                    adjustment: *adjustment,
                };
                conclude(json, key, now, &step, cache).map(rate)
            }
            Ask::Multi(multi) => conclude_keys(json, &multi.step()).map(|decided| {
                let status = rate(decided.decision);
                self.multi = Some(numbers(&decided));
                status
            }),
            // DEL answers how many keys it removed: any count is success.
            Ask::Remove | Ask::RemoveKey(_) => Ok(ADMITTED),
        };
        status.unwrap_or_else(|error| match error {
            Error::Store(error) => self.give_up(error),
            error => io::status(Err(error.to_js())),
        })
    }

    /// Ends the call on a store error: the failure policy decides where it
    /// applies (rate decisions, and acquiring or peeking leases), else the
    /// error is reported.
    fn give_up(&mut self, error: StoreError) -> i32 {
        if let (Ask::Quota(_), Some(book)) = (&self.ask, self.target.quota.as_deref()) {
            book.ask_ended(&self.target.id);
        }
        let policy = self.target.failure;
        if let Ask::Multi(multi) = &self.ask {
            if policy != FailurePolicy::Error && !error.is_misuse() {
                let decided = multi.all.alike(|limit| policy.decide(limit, self.now_ms));
                self.multi = Some(numbers(&decided));
                return rate(decided.decision);
            }
        }
        let limit = match &self.ask {
            Ask::Rate { algorithm, .. } | Ask::Quota(QuotaAsk { algorithm, .. }) => {
                Some(algorithm.limit())
            }
            Ask::Lease {
                config,
                op:
                    LeaseOp::Acquire { .. }
                    | LeaseOp::AcquireUnfair { .. }
                    | LeaseOp::Wait { .. }
                    | LeaseOp::Peek,
            } => Some(config.max()),
            _ => None,
        };
        match limit {
            // A refused token, a forbidden command or a wrong URL is raised
            // whatever the policy: admitting or denying all would hide it.
            Some(limit) if self.target.failure != FailurePolicy::Error && !error.is_misuse() => {
                rate(self.target.failure.decide(limit, self.now_ms))
            }
            _ => io::status(Err(Error::Store(error).to_js())),
        }
    }
}

/// A rate decision under quota leases: its cost, the units to take, and an
/// unspent lease to give back.
pub(crate) struct QuotaAsk {
    pub(crate) algorithm: AnyAlgorithm,
    pub(crate) cost: u64,
    pub(crate) want: u64,
    pub(crate) refund: Option<QuotaRefund>,
}

impl QuotaAsk {
    fn step(&self) -> ConsumeQuota<'_, AnyAlgorithm> {
        ConsumeQuota {
            algorithm: &self.algorithm,
            cost: self.cost,
            want: self.want,
            refund: self.refund,
        }
    }
}

fn prepare<T: Transition>(
    key: Key<'_>,
    now_ms: u64,
    transition: &T,
    options: &RestOptions,
) -> Result<ScriptCall, Error> {
    ScriptCall::prepare(key, now_ms, transition, options.time)
}

fn rate(decision: Decision) -> i32 {
    io::write(&decision) as i32
}

fn lease(outcome: LeaseOutcome) -> i32 {
    io::write_lease(&outcome) as i32
}

#[wasm_bindgen(js_class = CoreRestCall)]
impl WasmRestCall {
    /// How long the transport may wait for a reply, in milliseconds: calls
    /// with the same timeout may share a request.
    #[wasm_bindgen(getter, js_name = timeoutMs)]
    pub fn timeout_ms(&self) -> f64 {
        self.target.options.timeout.as_millis() as f64
    }

    /// A multi-limit call's answer once it is done (see
    /// `CoreMultiLimiter`), else `undefined`.
    #[wasm_bindgen(getter)]
    pub fn multi(&self) -> Option<Vec<f64>> {
        self.multi.clone()
    }

    /// How long to wait before sending again after `RETRY_LATER`.
    #[wasm_bindgen(getter, js_name = delayMs)]
    pub fn delay_ms(&self) -> f64 {
        self.delay_ms as f64
    }

    /// Reads this call's reply, entry `index` of `batch`, and answers a
    /// [`Status`]: admitted or done, denied (numbers in the output buffer),
    /// send again now, send again after `delayMs`, or failed (see
    /// `takeError`).
    #[wasm_bindgen(js_name = receiveFrom)]
    pub fn receive_from(&mut self, batch: &mut WasmRestBatch, index: usize) -> i32 {
        match batch.replies.get_mut(index).and_then(Option::take) {
            Some(reply) => self.step(reply),
            None => io::status(Err(invalid_argument("no reply for this call in the batch"))),
        }
    }
}

/// Calls sharing one HTTP request (see `store::redis_rest::batch`).
#[wasm_bindgen(js_name = CoreRestBatch)]
pub struct WasmRestBatch {
    batch: Batch,
    replies: Vec<Option<Reply>>,
    regroup: bool,
}

#[wasm_bindgen(js_class = CoreRestBatch)]
impl WasmRestBatch {
    /// An empty batch; `grouped`: consecutive script calls share one call
    /// of the batch script (until a store's Redis refuses to group keys of
    /// different cluster slots), else each goes in a pipeline.
    #[wasm_bindgen(constructor)]
    pub fn new(grouped: bool) -> WasmRestBatch {
        let grouping = if grouped {
            Grouping::Script
        } else {
            Grouping::Pipeline
        };
        Self {
            batch: Batch::new(grouping),
            replies: Vec::new(),
            regroup: false,
        }
    }

    /// Adds `call` as it must be sent now (EVALSHA, or EVAL after NOSCRIPT).
    pub fn add(&mut self, call: &WasmRestCall) {
        call.exchange.part().add_to(&mut self.batch);
    }

    /// The path to POST to, after the store's URL.
    #[wasm_bindgen(getter)]
    pub fn path(&self) -> String {
        self.batch.path().to_owned()
    }

    /// The JSON body to POST.
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> String {
        self.batch.body()
    }

    /// Whether Redis refused to group keys of different cluster slots: the
    /// store's later batches must not group script calls.
    #[wasm_bindgen(getter)]
    pub fn regroup(&self) -> bool {
        self.regroup
    }

    /// Reads the HTTP reply.
    pub fn receive(&mut self, status: u16, text: &str) {
        self.settle(Ok((status, text)));
    }

    /// Reports a request that got no reply within `timeout_ms`, `kind`
    /// numbered as [`FetchFailure`].
    pub fn fail(&mut self, kind: u8, message: String, timeout_ms: f64) {
        let error = FetchFailure::error(kind, message, timeout_ms as u64);
        self.settle(Err(error));
    }

    fn settle(&mut self, outcome: Result<(u16, &str), StoreError>) {
        let (replies, regroup) = self.batch.replies(outcome);
        self.replies = replies.into_iter().map(Some).collect();
        self.regroup = regroup;
    }
}
