//! Several limits decided as one call, all or nothing, and the block after
//! abuse: pure functions of the states, the time and the cost.

use super::contract::clamp_time;
use super::limits::{self, span};
use super::{check_cost, Algorithm};
use crate::{ConfigError, Decision, Error, IntoMillis, Reason};

/// Most limits one [`AllOf`] combines: each is a key a call reads.
pub const MAX_LIMITS: usize = 16;

/// A block's state: the id is denied until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockState {
    /// When the block ends.
    pub until_ms: u64,
}

/// Limits that decide every call together: a call is admitted only when
/// each of them admits it, and is then charged to all of them; denied by
/// any, it is charged to none. With a block (see
/// [`with_block`](Self::with_block)), an id denied once stays denied for
/// the block's duration, whatever the limits would say.
///
/// Each limit keeps its own state, under its own key: two limits reading
/// one state (the same algorithm over the same window) would count every
/// call twice, so they are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllOf<A> {
    limits: Vec<A>,
    block_ms: u64,
}

/// What [`AllOf`] decided on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiDecision {
    /// The call's decision: admitted only when every limit admits it;
    /// `remaining` the smallest of the limits', `reset_ms` the latest,
    /// `retry_after_ms` the time after which all of them would admit it
    /// (and the block would be over), `limit` that of the limit denying, or
    /// else of the one with the least left. `reason` is
    /// [`Reason::Blocked`] while the id is blocked.
    pub decision: Decision,
    /// Each limit's own decision, in the order given. When the call is
    /// denied nothing is charged, and the limits that would have admitted
    /// it report what they have left without it.
    pub limits: Vec<Decision>,
    /// The first limit that denied the call, if one did.
    pub denied_by: Option<usize>,
}

/// What [`AllOf::decide`] did to the states besides deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllOutcome {
    /// The decision.
    pub decision: MultiDecision,
    /// For each limit, how long its new state must be kept, or `None` when
    /// its state was left as it was.
    pub ttls: Vec<Option<u64>>,
    /// How long the block started by this call must be kept, if it started
    /// one.
    pub block_ttl: Option<u64>,
}

impl<A: Algorithm> AllOf<A> {
    /// The limits, in the order decisions report them. At least one and at
    /// most [`MAX_LIMITS`], no two on one state (the same
    /// [`key_space`](Algorithm::key_space)).
    pub fn new<L: Into<A>>(limits: impl IntoIterator<Item = L>) -> Result<Self, ConfigError> {
        let limits: Vec<A> = limits.into_iter().map(Into::into).collect();
        limits::nonzero("limits", limits.len() as u64)?;
        limits::at_most("limits", limits.len() as u128, MAX_LIMITS as u128)?;
        for (i, limit) in limits.iter().enumerate() {
            let space = limit.key_space();
            if limits[..i].iter().any(|other| other.key_space() == space) {
                return Err(ConfigError::SharedState { space });
            }
        }
        Ok(Self {
            limits,
            block_ms: 0,
        })
    }

    /// These limits, and once a call is denied its id stays denied for
    /// `duration` (the classic rule against guessing passwords): no call
    /// is admitted, or charged, until the block is over. Calls denied while
    /// blocked do not prolong it; the first call after it is decided by the
    /// limits again, and blocks again if they deny it.
    pub fn with_block(mut self, duration: impl IntoMillis) -> Result<Self, ConfigError> {
        self.block_ms = span("block", duration.into_millis()?)?;
        Ok(self)
    }

    /// The limits.
    pub fn limits(&self) -> &[A] {
        &self.limits
    }

    /// The block's duration in milliseconds, 0 without one.
    pub fn block_ms(&self) -> u64 {
        self.block_ms
    }

    /// One decision made alike for every limit, from its limit (the access
    /// lists', the failure policy's): the first limit's stands for the call.
    pub fn alike(&self, decide: impl Fn(u64) -> Decision) -> MultiDecision {
        let limits: Vec<Decision> = self.limits.iter().map(|l| decide(l.limit())).collect();
        MultiDecision {
            decision: limits[0],
            limits,
            denied_by: None,
        }
    }

    /// Rejects a cost some limit can never admit, before anything changes.
    pub(crate) fn check_cost(&self, cost: u64) -> Result<(), Error> {
        self.limits
            .iter()
            .try_for_each(|limit| check_cost(cost, limit.limit()))
    }

    /// Decides a call of `cost` on `states` (one per limit, in order) and
    /// `block` (the block's state: `None` when there is none or it is
    /// over) at `now_ms`. A cost above any limit is an error and changes
    /// nothing.
    pub fn decide(
        &self,
        states: &mut [Option<A::State>],
        block: &mut Option<BlockState>,
        now_ms: u64,
        cost: u64,
    ) -> Result<AllOutcome, Error> {
        self.check_cost(cost)?;
        let mut blocked_until = block.filter(|b| b.until_ms > now_ms).map(|b| b.until_ms);
        let mut trial = states.to_vec();
        let mut decisions = Vec::with_capacity(self.limits.len());
        for (limit, state) in self.limits.iter().zip(&mut trial) {
            decisions.push(limit.decide(state, now_ms, cost)?);
        }
        let admitted = decisions.iter().all(|o| o.decision.allowed);
        if admitted && blocked_until.is_none() {
            states.clone_from_slice(&trial);
            let ttls = decisions.iter().map(|o| Some(o.ttl_ms)).collect();
            let limits = decisions.into_iter().map(|o| o.decision).collect();
            return Ok(AllOutcome {
                decision: combine(limits, None, now_ms, cost),
                ttls,
                block_ttl: None,
            });
        }
        // Nothing is charged: a limit that would have admitted the call
        // reports what it has without it.
        let mut limits = Vec::with_capacity(decisions.len());
        for ((limit, state), outcome) in self.limits.iter().zip(&*states).zip(decisions) {
            limits.push(match outcome.decision.allowed {
                true => limit.decide(&mut state.clone(), now_ms, 0)?.decision,
                false => outcome.decision,
            });
        }
        // A denial starts the block (a read, of cost 0, is never denied).
        let mut block_ttl = None;
        if !admitted && self.block_ms > 0 && blocked_until.is_none() {
            // From the clamped time, as every limit counts (and the Lua twin).
            let until_ms = clamp_time(now_ms).saturating_add(self.block_ms);
            *block = Some(BlockState { until_ms });
            blocked_until = Some(until_ms);
            block_ttl = Some(self.block_ms);
        }
        Ok(AllOutcome {
            decision: combine(limits, blocked_until, now_ms, cost),
            ttls: vec![None; self.limits.len()],
            block_ttl,
        })
    }

    /// What a call of cost 0 would be told, changing nothing.
    pub fn peek(
        &self,
        states: &[Option<A::State>],
        block: Option<BlockState>,
        now_ms: u64,
    ) -> Result<MultiDecision, Error> {
        let mut limits = Vec::with_capacity(self.limits.len());
        for (limit, state) in self.limits.iter().zip(states) {
            limits.push(limit.decide(&mut state.clone(), now_ms, 0)?.decision);
        }
        let blocked_until = block.filter(|b| b.until_ms > now_ms).map(|b| b.until_ms);
        Ok(combine(limits, blocked_until, now_ms, 0))
    }
}

/// The call's decision from each limit's (`limits`, as [`MultiDecision`]
/// reports them) and the block's end, when the id is blocked at `now_ms`.
/// A store that decides remotely combines its reply with it too.
pub fn combine(
    limits: Vec<Decision>,
    blocked_until: Option<u64>,
    now_ms: u64,
    cost: u64,
) -> MultiDecision {
    let denied_by = limits.iter().position(|d| !d.allowed);
    let least = limits
        .iter()
        .enumerate()
        .min_by_key(|(_, d)| d.remaining)
        .map_or(0, |(i, _)| i);
    let binding = denied_by.unwrap_or(least);
    let blocked = blocked_until.is_some();
    let mut decision = Decision {
        allowed: denied_by.is_none() && !(blocked && cost > 0),
        limit: limits.get(binding).map_or(0, |d| d.limit),
        remaining: limits.get(least).map_or(0, |d| d.remaining),
        reset_ms: limits.iter().map(|d| d.reset_ms).max().unwrap_or(now_ms),
        retry_after_ms: 0,
        reason: None,
    };
    if let Some(until_ms) = blocked_until {
        decision.remaining = 0;
        decision.reset_ms = decision.reset_ms.max(until_ms);
        decision.reason = Some(Reason::Blocked);
    }
    if !decision.allowed {
        let limits_retry = limits.iter().map(|d| d.retry_after_ms).max().unwrap_or(0);
        let block_retry = blocked_until.map_or(0, |until| until.saturating_sub(now_ms));
        decision.retry_after_ms = limits_retry.max(block_retry).max(1);
    }
    MultiDecision {
        decision,
        limits,
        denied_by,
    }
}
