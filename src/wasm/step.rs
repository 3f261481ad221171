//! A rate limiter's steps on the memory store (a call, a peek, a refund or
//! a penalty) as one transition type: the store's transaction, generic over
//! transitions, is then compiled once for all of them, where a type of
//! their own each would add a copy of it to the module (2 KB gzipped,
//! measured). The REST path keeps its own types: one enum there made the
//! module larger.

use crate::algorithm::AnyState;
use crate::store::{Adjust, Answer, Consume, Peek, Remote, Transition};
use crate::{Decision, Error, StoreError};

use crate::algorithm::AnyAlgorithm;

pub(crate) enum RateStep<'a> {
    Peek(Peek<'a, AnyAlgorithm>),
    Consume(Consume<'a, AnyAlgorithm>),
    Adjust(Adjust<'a, AnyAlgorithm>),
}

/// Runs `$body` with `$t` bound to the step's own transition.
macro_rules! with_step {
    ($step:expr, |$t:ident| $body:expr) => {
        match $step {
            RateStep::Peek($t) => $body,
            RateStep::Consume($t) => $body,
            RateStep::Adjust($t) => $body,
        }
    };
}

impl Transition for RateStep<'_> {
    type State = AnyState;
    type Output = Decision;

    fn apply(&self, state: &mut Option<AnyState>, now_ms: u64) -> Result<(Decision, u64), Error> {
        with_step!(self, |t| t.apply(state, now_ms))
    }

    fn held(&self, decision: &Decision) -> u64 {
        decision.used()
    }

    fn remote(&self) -> Result<Remote, Error> {
        with_step!(self, |t| t.remote())
    }

    fn decode(&self, reply: &[i64]) -> Result<Answer<Decision, AnyState>, StoreError> {
        with_step!(self, |t| t.decode(reply))
    }
}
