//! One call to Redis over REST, driven from JavaScript: the core gives the
//! body to POST, reads each reply, and says whether to send again, wait and
//! retry, or stop. Keeping the HTTP in JavaScript (the host's `fetch`) keeps
//! an HTTP client and an async runtime out of the module.

use wasm_bindgen::prelude::*;

use super::algorithm::AnyAlgorithm;
use super::error::Coded;
use super::io;
use crate::algorithm::{LeaseOp, LeaseOutcome};
use crate::store::redis_rest::{
    command_body, integers, read_reply, redis_key, Exchange, Json, Reply, ScriptCall, Step,
};
use crate::store::{Consume, Key, LeaseStep, Peek, RestOptions, Transition};
use crate::{Algorithm as _, Concurrency, Decision, Error, FailurePolicy, StoreError};

/// What a call asks Redis, and how its answer is read.
pub(crate) enum Ask {
    Rate {
        algorithm: AnyAlgorithm,
        cost: u64,
        peek: bool,
    },
    Lease {
        config: Concurrency,
        op: LeaseOp,
    },
    Remove,
}

/// A call in flight.
#[wasm_bindgen(js_name = CoreRestCall)]
pub struct WasmRestCall {
    body: Box<dyn Fn(bool) -> String>,
    ask: Ask,
    exchange: Exchange,
    options: RestOptions,
    failure: FailurePolicy,
    now_ms: u64,
    delay_ms: u64,
}

/// Status codes `receive` and `fail` answer besides 0 (denied) and -1
/// (failed, see `takeError`).
const ADMITTED: i32 = 1;
const SEND_AGAIN: i32 = 2;
const RETRY_LATER: i32 = 3;

impl WasmRestCall {
    /// The call for `ask` on Redis key `key` (its hash-tagged form).
    pub(crate) fn new(
        key: Key<'_>,
        ask: Ask,
        options: RestOptions,
        failure: FailurePolicy,
        now_ms: u64,
    ) -> Result<Self, Error> {
        let call = match &ask {
            Ask::Rate {
                algorithm,
                cost,
                peek: false,
            } => Some(prepare(
                key,
                now_ms,
                &Consume {
                    algorithm,
                    cost: *cost,
                },
                options,
            )?),
            Ask::Rate { algorithm, .. } => {
                Some(prepare(key, now_ms, &Peek { algorithm }, options)?)
            }
            Ask::Lease { config, op } => Some(prepare(
                key,
                now_ms,
                &LeaseStep { config, op: *op },
                options,
            )?),
            Ask::Remove => None,
        };
        let (body, idempotent): (Box<dyn Fn(bool) -> String>, bool) = match call {
            Some(call) => {
                let idempotent = call.idempotent;
                (Box::new(move |eval| call.body(eval)), idempotent)
            }
            None => {
                let key = redis_key(key);
                let body = command_body(["DEL", key.as_str()]);
                (Box::new(move |_| body.clone()), true)
            }
        };
        Ok(Self {
            body,
            ask,
            exchange: Exchange::new(idempotent),
            options,
            failure,
            now_ms,
            delay_ms: 0,
        })
    }

    fn step(&mut self, reply: Reply) -> i32 {
        match self.exchange.next(reply, &self.options) {
            Step::Done(json) => self.answer(&json),
            Step::SendAgain => SEND_AGAIN,
            Step::Retry(delay) => {
                self.delay_ms = delay.as_millis() as u64;
                RETRY_LATER
            }
            Step::Failed(error) => self.give_up(error),
        }
    }

    fn answer(&self, json: &Json) -> i32 {
        if let Ask::Remove = self.ask {
            // DEL answers how many keys it removed: any count is success.
            return ADMITTED;
        }
        let reply = match integers(json) {
            Ok(reply) => reply,
            Err(error) => return self.give_up(error),
        };
        let decoded = match &self.ask {
            Ask::Rate {
                algorithm,
                cost,
                peek: false,
            } => Consume {
                algorithm,
                cost: *cost,
            }
            .decode(&reply)
            .map(rate),
            Ask::Rate { algorithm, .. } => Peek { algorithm }.decode(&reply).map(rate),
            Ask::Lease { config, op } => LeaseStep { config, op: *op }.decode(&reply).map(lease),
            Ask::Remove => Ok(ADMITTED),
        };
        decoded.unwrap_or_else(|error| self.give_up(error))
    }

    /// Ends the call on a store error: the failure policy decides where it
    /// applies (rate decisions, and acquiring or peeking leases), else the
    /// error is reported.
    fn give_up(&self, error: StoreError) -> i32 {
        let limit = match &self.ask {
            Ask::Rate { algorithm, .. } => Some(algorithm.limit()),
            Ask::Lease {
                config,
                op: LeaseOp::Acquire { .. } | LeaseOp::Peek,
            } => Some(config.max()),
            _ => None,
        };
        match limit {
            Some(limit) if self.failure != FailurePolicy::Error => {
                rate(self.failure.decide(limit, self.now_ms))
            }
            _ => io::status(Err(Error::Store(error).to_js())),
        }
    }
}

fn prepare<T: Transition>(
    key: Key<'_>,
    now_ms: u64,
    transition: &T,
    options: RestOptions,
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
    /// The JSON body to POST now.
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> String {
        (self.body)(self.exchange.eval())
    }

    /// How long the transport may wait for a reply, in milliseconds.
    #[wasm_bindgen(getter, js_name = timeoutMs)]
    pub fn timeout_ms(&self) -> f64 {
        self.options.timeout.as_millis() as f64
    }

    /// How long to wait before sending again after `RETRY_LATER`.
    #[wasm_bindgen(getter, js_name = delayMs)]
    pub fn delay_ms(&self) -> f64 {
        self.delay_ms as f64
    }

    /// Reads an HTTP reply: 1 admitted / done, 0 denied (numbers in the
    /// output buffer), 2 send again now, 3 send again after `delayMs`, -1
    /// failed (see `takeError`).
    pub fn receive(&mut self, status: u16, text: &str) -> i32 {
        self.step(read_reply(status, text))
    }

    /// Reports a request that got no reply: `kind` 0 timed out, 1 refused
    /// (it never arrived), 2 anything else (it may have run).
    pub fn fail(&mut self, kind: u8, message: String) -> i32 {
        let error = match kind {
            0 => StoreError::Timeout {
                ms: self.options.timeout.as_millis() as u64,
            },
            1 => StoreError::Unreachable(message),
            _ => StoreError::Unavailable(message),
        };
        self.step(Reply::Failed(error))
    }
}
