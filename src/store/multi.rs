//! Steps on several keys at once: several limits decided as one call.

use super::contract::{key_prefix, malformed, Remote};
use crate::algorithm::{combine, Algorithm, AllOf, AnyState, BlockState, MultiDecision, StateKind};
use crate::scripts::{self, Scripted};
use crate::{Error, StoreError};

/// One atomic step on the states of several distinct keys: what a store
/// runs for a [`MultiLimiter`](crate::MultiLimiter)'s call.
pub trait KeysTransition {
    /// What it answers.
    type Output;

    /// Runs the step on `states`, one per key in the order of the keys
    /// (`None`: no state, or expired), at `now_ms`. Returns the answer and,
    /// per key, how long its new state must be kept, or `None` to leave it
    /// as it was. On error every state must be left as it was.
    fn apply(
        &self,
        states: &mut [Option<AnyState>],
        now_ms: u64,
    ) -> Result<(Self::Output, Vec<Option<u64>>), Error>;

    /// Units key `key`'s state holds after the step (see
    /// [`Transition::held`](super::Transition::held)).
    fn held(&self, output: &Self::Output, key: usize) -> u64;

    /// The same step as one script call on all the keys.
    fn remote(&self) -> Result<Remote, Error>;

    /// Reads the script's reply.
    fn decode(&self, reply: &[i64]) -> Result<Self::Output, StoreError>;
}

/// What the keys of `all`'s limits start with under `prefix` (each as a
/// [`Limiter`](crate::Limiter)'s of its algorithm would), then the block's,
/// when there is one: the block's space names every limit's, so blocks of
/// other limiters sharing the prefix are apart.
pub fn key_prefixes<A: Algorithm>(all: &AllOf<A>, prefix: &str) -> Vec<String> {
    let spaces: Vec<String> = all.limits().iter().map(|l| l.key_space()).collect();
    let mut prefixes: Vec<String> = spaces.iter().map(|s| key_prefix(prefix, s)).collect();
    if all.block_ms() > 0 {
        prefixes.push(key_prefix(prefix, &format!("blk:{}", spaces.join(","))));
    }
    prefixes
}

/// A call on several limits at once, all or nothing (see [`AllOf`]). Its
/// keys are the limits', in order, then the block's when there is one.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeAll<'a, A> {
    /// The limits.
    pub all: &'a AllOf<A>,
    /// Units the call costs (0: a read).
    pub cost: u64,
    /// Whether only to look: decide as a call of cost 0 would, and write
    /// nothing.
    pub peek: bool,
}

impl<A: Algorithm> ConsumeAll<'_, A> {
    /// How many keys the step reads.
    pub fn key_count(&self) -> usize {
        self.all.limits().len() + usize::from(self.all.block_ms() > 0)
    }
}

impl<A: Algorithm> KeysTransition for ConsumeAll<'_, A> {
    type Output = MultiDecision;

    fn apply(
        &self,
        states: &mut [Option<AnyState>],
        now_ms: u64,
    ) -> Result<(MultiDecision, Vec<Option<u64>>), Error> {
        let n = self.all.limits().len();
        // A state of another kind (limiters sharing a prefix) starts afresh.
        let mut typed: Vec<Option<A::State>> = states[..n]
            .iter()
            .map(|state| state.clone().and_then(A::State::from_any))
            .collect();
        let mut block = states
            .get(n)
            .cloned()
            .flatten()
            .and_then(BlockState::from_any);
        if self.peek {
            let decision = self.all.peek(&typed, block, now_ms)?;
            return Ok((decision, vec![None; states.len()]));
        }
        let outcome = self.all.decide(&mut typed, &mut block, now_ms, self.cost)?;
        let mut ttls = outcome.ttls;
        for ((state, new), ttl) in states.iter_mut().zip(typed).zip(&ttls) {
            if ttl.is_some() {
                *state = new.map(StateKind::into_any);
            }
        }
        if let Some(ttl) = outcome.block_ttl {
            states[n] = block.map(StateKind::into_any);
            ttls.push(Some(ttl));
        } else if n < states.len() {
            ttls.push(None);
        }
        Ok((outcome.decision, ttls))
    }

    fn held(&self, output: &MultiDecision, key: usize) -> u64 {
        match output.limits.get(key) {
            Some(decision) => decision.used(),
            // A block holds its id entirely: a flood of new ids must not
            // evict it.
            None => u64::MAX,
        }
    }

    fn remote(&self) -> Result<Remote, Error> {
        self.all.check_cost(self.cost)?;
        let cost = if self.peek { 0 } else { self.cost };
        let mut args = vec![
            cost.to_string(),
            self.all.block_ms().to_string(),
            (if self.peek { "1" } else { "0" }).to_owned(),
        ];
        for limit in self.all.limits() {
            let number = limit.script().batch_number().unwrap_or(0);
            let config = limit.config_args();
            args.push(number.to_string());
            args.push(config.len().to_string());
            args.extend(config.iter().map(u64::to_string));
        }
        Ok(Remote {
            script: &scripts::MULTI,
            args,
            // A look changes nothing; a call sent twice may charge twice.
            idempotent: self.peek,
        })
    }

    fn decode(&self, reply: &[i64]) -> Result<MultiDecision, StoreError> {
        let bad = || malformed(reply);
        let (&[now, blocked_until], mut rest) = reply.split_first_chunk().ok_or_else(bad)?;
        let now_ms = u64::try_from(now).map_err(|_| bad())?;
        let blocked_until = u64::try_from(blocked_until).map_err(|_| bad())?;
        let mut limits = Vec::with_capacity(self.all.limits().len());
        for limit in self.all.limits() {
            let (&len, after) = rest.split_first().ok_or_else(bad)?;
            let len = usize::try_from(len).map_err(|_| bad())?;
            let own = after.get(..len).ok_or_else(bad)?;
            let (decision, _) = scripts::parse_rate_reply(own, limit.limit()).ok_or_else(bad)?;
            limits.push(decision);
            rest = &after[len..];
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        let blocked = (blocked_until > now_ms).then_some(blocked_until);
        let cost = if self.peek { 0 } else { self.cost };
        Ok(combine(limits, blocked, now_ms, cost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{AnyAlgorithm, FixedWindow, Gcra};
    use crate::Reason;

    fn limits() -> AllOf<AnyAlgorithm> {
        AllOf::new([
            AnyAlgorithm::from(FixedWindow::new(3, "1 s").unwrap()),
            Gcra::new(5, "1 m").unwrap().into(),
        ])
        .unwrap()
    }

    #[test]
    fn the_script_gets_the_cost_the_block_the_mode_then_each_limit() {
        let all = limits().with_block("2 s").unwrap();
        let call = ConsumeAll {
            all: &all,
            cost: 2,
            peek: false,
        };
        assert_eq!(call.key_count(), 3);
        let remote = call.remote().unwrap();
        assert!(std::ptr::eq(remote.script, &scripts::MULTI));
        assert_eq!(
            remote.args,
            ["2", "2000", "0", "1", "2", "3", "1000", "5", "3", "5", "60000", "5"]
        );
        assert!(!remote.idempotent);
        let peek = ConsumeAll { peek: true, ..call };
        let remote = peek.remote().unwrap();
        assert_eq!(remote.args[..3], ["0", "2000", "1"]);
        assert!(remote.idempotent);
        // A cost no limit could ever admit fails before a round trip.
        let too_much = ConsumeAll { cost: 4, ..call };
        assert!(matches!(
            too_much.remote(),
            Err(Error::CostExceedsLimit { cost: 4, limit: 3 })
        ));
        assert_eq!(
            ConsumeAll {
                all: &limits(),
                ..call
            }
            .key_count(),
            2
        );
    }

    #[test]
    fn a_reply_is_read_limit_by_limit_and_combined() {
        let all = limits().with_block("2 s").unwrap();
        let call = ConsumeAll {
            all: &all,
            cost: 1,
            peek: false,
        };
        // Blocked until 3 000 at 1 000; the window would admit, the GCRA
        // denies (with its state appended, as a denial sends it).
        let reply = [
            1_000, 3_000, 5, 1, 2, 2_000, 0, 1_000, 7, 0, 0, 61_000, 12_000, 1_000, 73_000, 0,
        ];
        let decided = call.decode(&reply).unwrap();
        assert_eq!(decided.denied_by, Some(1));
        assert_eq!(decided.limits[0].remaining, 2);
        assert_eq!(decided.limits[1].retry_after_ms, 12_000);
        let d = decided.decision;
        assert!(!d.allowed);
        assert_eq!((d.limit, d.remaining), (5, 0));
        assert_eq!((d.reset_ms, d.retry_after_ms), (61_000, 12_000));
        assert_eq!(d.reason, Some(Reason::Blocked));
        // The block over by the reply's time, or ending at it: not blocked.
        for now in [5_000, 3_000] {
            let over = [&[now, 3_000][..], &reply[2..]].concat();
            assert_eq!(call.decode(&over).unwrap().decision.reason, None, "{now}");
        }
        // Anything else is a malformed reply.
        for bad in [
            &reply[..1],
            &reply[..reply.len() - 1],
            &[reply.as_slice(), &[0]].concat(),
            &[&[-1, 0][..], &reply[2..]].concat(),
            &[&reply[..2], &[-5][..], &reply[3..]].concat(),
        ] {
            assert!(
                matches!(call.decode(bad), Err(StoreError::MalformedReply(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn without_a_block_the_keys_are_the_limits_alone() {
        let all = limits();
        assert_eq!(key_prefixes(&all, "p"), ["p:fw:1000:", "p:gcra:60000/5:"]);
        let blocking = limits().with_block("1 s").unwrap();
        assert_eq!(
            key_prefixes(&blocking, "p:"),
            [
                "p:fw:1000:",
                "p:gcra:60000/5:",
                "p:blk:fw:1000,gcra:60000/5:"
            ]
        );
        // One TTL per key: none for a block that is not there.
        let call = ConsumeAll {
            all: &all,
            cost: 3,
            peek: false,
        };
        let mut states = vec![None, None];
        let (_, ttls) = call.apply(&mut states, 0).unwrap();
        assert_eq!(ttls.len(), 2);
        let (denied, ttls) = call.apply(&mut states, 0).unwrap();
        assert!(!denied.decision.allowed);
        assert_eq!(ttls, [None, None]);
    }

    #[test]
    fn held_units_are_each_limits_and_a_block_holds_everything() {
        let all = limits().with_block("2 s").unwrap();
        let call = ConsumeAll {
            all: &all,
            cost: 2,
            peek: false,
        };
        let mut states = vec![None, None, None];
        let (decided, ttls) = call.apply(&mut states, 10_000).unwrap();
        assert_eq!(ttls, [Some(1_000), Some(24_000), None]);
        assert_eq!((call.held(&decided, 0), call.held(&decided, 1)), (2, 2));
        assert_eq!(call.held(&decided, 2), u64::MAX);
        // Denied: nothing written but the block.
        let (_, ttls) = call.apply(&mut states, 10_000).unwrap();
        assert_eq!(ttls, [None, None, Some(2_000)]);
        assert!(matches!(states[2], Some(AnyState::Block(_))));
        let peek = ConsumeAll { peek: true, ..call };
        let (looked, ttls) = peek.apply(&mut states, 10_000).unwrap();
        assert_eq!(ttls, [None, None, None]);
        assert_eq!(looked.decision.reason, Some(Reason::Blocked));
    }
}
