//! The Lua scripts against a real `redis-server`: their SHA-1s, and
//! differential tests requiring the same decisions as the Rust core.
//!
//! `redis-server` must be on PATH (`bash tools/ensure-redis.sh`, run by
//! `make test`). `PROPTEST_CASES` sets the number of random cases (default 64).

use std::cell::RefCell;
use std::collections::HashMap;

use edgelimit::algorithm::{
    Adjustment, Algorithm, AnyState, Concurrency, ConcurrencyState, LeaseOp, StateKind, MAX_TIME_MS,
};
use edgelimit::scripts::{
    self, parse_lease_reply, parse_rate_reply, Script, Scripted, MAX_LOG_ENTRIES_IN_REPLY,
    RATE_REPLY_LEN,
};
use edgelimit::{
    Decision, Error, FixedWindow, Gcra, Limiter, ManualClock, SlidingLog, SlidingWindow, Tier,
    TokenBucket,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use testkit::cases::proptest_cases;
use testkit::redis::Redis;
use testkit::resp::{Conn, Reply};

fn ms(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: proptest_cases(64),
        // Failures are kept in tests/<file>.proptest-regressions, committed.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    })
}

fn load_all(conn: &mut Conn) {
    for script in scripts::ALL {
        let reply = conn.call(&["SCRIPT", "LOAD", script.code()]).unwrap();
        assert_eq!(
            reply.text().as_deref(),
            Some(script.sha1()),
            "{}",
            script.name()
        );
    }
}

/// A rate script with its configuration.
struct RateScript {
    script: &'static Script,
    config: Vec<u64>,
    limit: u64,
}

impl RateScript {
    fn of<A: Algorithm>(alg: &A) -> Self {
        Self {
            script: alg.script(),
            config: alg.config_args(),
            limit: alg.limit(),
        }
    }

    /// EVALSHA: the decision, the time used and the state fields a denial
    /// sent back, or the error.
    fn eval(
        &self,
        conn: &mut Conn,
        key: &str,
        now: Option<u64>,
        cost: u64,
        peek: bool,
    ) -> Result<(Decision, u64, Vec<i64>), String> {
        self.eval_mode(conn, key, now, cost, if peek { "1" } else { "0" })
    }

    /// EVALSHA in `mode` (`ARGV[3]`: "0" a call, "1" a peek, "2" a refund,
    /// "3" a penalty of `cost` units).
    fn eval_mode(
        &self,
        conn: &mut Conn,
        key: &str,
        now: Option<u64>,
        cost: u64,
        mode: &str,
    ) -> Result<(Decision, u64, Vec<i64>), String> {
        let mut args = vec![
            "EVALSHA".to_owned(),
            self.script.sha1().to_owned(),
            "1".to_owned(),
            key.to_owned(),
            now.map_or(String::new(), |n| n.to_string()),
            cost.to_string(),
            mode.to_owned(),
        ];
        args.extend(self.config.iter().map(u64::to_string));
        match conn.call(&args).unwrap() {
            Reply::Error(e) => Err(e),
            reply => {
                let ints = reply.ints().expect("integers");
                let (decision, used) = parse_rate_reply(&ints, self.limit)
                    .unwrap_or_else(|| panic!("malformed reply {reply:?}"));
                Ok((decision, used, ints[RATE_REPLY_LEN..].to_vec()))
            }
        }
    }
}

#[test]
fn script_load_returns_each_sha1() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let names: Vec<_> = scripts::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "fixed_window",
            "sliding_window",
            "sliding_log",
            "token_bucket",
            "gcra",
            "concurrency",
            "batch",
            "multi"
        ]
    );
}

/// A configuration of one of the rate algorithms.
#[derive(Debug, Clone)]
enum RateConfig {
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
    Log(SlidingLog),
    Bucket(TokenBucket),
    Gcra(Gcra),
}

fn span() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 1..=10u64,
        4 => 1..=3_000u64,
        1 => Just(60_000u64),
        1 => 1..=86_400_000u64,
    ]
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 1..=20u64, 1 => 1..=1_000u64, 1 => Just(1u64 << 30)]
}

fn rate_config() -> impl Strategy<Value = RateConfig> {
    prop_oneof![
        (count(), span()).prop_filter_map("invalid", |(l, w)| FixedWindow::new(l, ms(w))
            .ok()
            .map(RateConfig::Fixed)),
        (count(), span()).prop_filter_map("invalid", |(l, w)| SlidingWindow::new(l, ms(w))
            .ok()
            .map(RateConfig::Sliding)),
        (1..=20u64, span())
            .prop_filter_map("invalid", |(l, w)| SlidingLog::new(l, ms(w)).ok().map(RateConfig::Log)),
        (count(), span(), any::<u64>(), any::<u64>()).prop_filter_map(
            "invalid",
            |(c, i, r, init)| {
                let refill = 1 + r % c;
                let initial = if init % 3 == 0 { c } else { init % (c + 1) };
                TokenBucket::new(c, refill, ms(i))
                    .and_then(|b| b.with_initial(initial))
                    .ok()
                    .map(RateConfig::Bucket)
            }
        ),
        (
            prop_oneof![4 => 1..=20u64, 1 => 1..=1_000_000u64, 1 => Just(1u64 << 40), 1 => Just(1u64 << 50)],
            span(),
            count()
        )
            .prop_filter_map("invalid", |(r, p, b)| Gcra::new(r, ms(p))
                .and_then(|g| g.with_burst(b))
                .ok()
                .map(RateConfig::Gcra)),
    ]
}

/// One call: which key, how much (scaled to the limit), how far the clock
/// moves first (scaled to the configuration's span), whether it only peeks.
#[derive(Debug, Clone, Copy)]
struct RawOp {
    key: usize,
    cost_kind: u8,
    cost_x: u64,
    step_kind: u8,
    step_x: u64,
    peek: bool,
    /// Under a tier of its own (a limit from `tier_x`), when `Some`.
    tier_x: Option<u64>,
    /// Not a call but a refund (`false`) or a penalty (`true`) of the
    /// cost's units, when `Some`.
    adjust: Option<bool>,
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    (
        0..3usize,
        0..8u8,
        any::<u64>(),
        0..13u8,
        any::<u64>(),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.3, any::<u64>()),
        prop::option::weighted(0.15, any::<bool>()),
    )
        .prop_map(
            |(key, cost_kind, cost_x, step_kind, step_x, peek, tier_x, adjust)| RawOp {
                key,
                cost_kind,
                cost_x,
                step_kind,
                step_x,
                peek,
                tier_x,
                adjust,
            },
        )
}

fn cost_of(op: &RawOp, limit: u64) -> u64 {
    match op.cost_kind {
        0 => 0,
        1 => 1,
        2 => limit,
        3 => limit + 1,
        4 => limit + 1 + op.cost_x % 1000,
        5 => (limit / 2).max(1),
        _ => op.cost_x % (limit + 1),
    }
}

/// The clock's move before a call: none, small, backwards, or a long idle gap.
fn step_of(op: &RawOp, span: u64, monotone: bool) -> i128 {
    let x = op.step_x;
    let span = i128::from(span);
    let step = match op.step_kind {
        0 | 1 => 0,
        2..=5 => i128::from(x) % (span + 1),
        6 => 1,
        7 => -(i128::from(x) % (2 * span + 1)),
        8 => -(i128::from(x % 5)),
        9 => span * i128::from(2 + x % 1000),
        10 => span,
        11 => -(i128::from(x % 100_000_000)),
        _ => i128::from(x % 10_000_000),
    };
    if monotone {
        step.abs()
    } else {
        step
    }
}

fn start_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=10_000u64,
        1_600_000_000_000..=1_900_000_000_000u64,
        (1u64 << 52)..=(1u64 << 52) + 10_000,
    ]
}

/// The reference: the pure algorithm with per-key state dropped once the TTL
/// it reported has passed (at once for a TTL of 0), as a store does.
struct Reference<S> {
    states: HashMap<usize, (S, u64)>,
}

impl<S: Clone> Reference<S> {
    fn new() -> Self {
        Self {
            states: HashMap::new(),
        }
    }

    /// Runs `f` on `key`'s state at `now`; `keep` false leaves the state as
    /// it was (a read-only peek, or an error).
    fn run<T>(
        &mut self,
        key: usize,
        now: u64,
        f: impl FnOnce(&mut Option<S>) -> (T, Option<u64>),
    ) -> T {
        let before = self.states.remove(&key);
        let mut state = before.clone().filter(|(_, exp)| *exp > now).map(|(s, _)| s);
        let (out, ttl) = f(&mut state);
        match ttl {
            None => {
                if let Some(before) = before {
                    self.states.insert(key, before);
                }
            }
            Some(ttl) => {
                if let Some(state) = state.filter(|_| ttl > 0) {
                    self.states.insert(key, (state, now.saturating_add(ttl)));
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
struct RateCase {
    config: RateConfig,
    start: u64,
    monotone: bool,
    ops: Vec<RawOp>,
}

fn rate_case() -> impl Strategy<Value = RateCase> {
    (
        rate_config(),
        start_time(),
        prop::bool::weighted(0.3),
        prop::collection::vec(raw_op(), 1..=60),
    )
        .prop_map(|(config, start, monotone, ops)| RateCase {
            config,
            start,
            monotone,
            ops,
        })
}

fn replay<A: Algorithm + Clone>(
    alg: &A,
    span: u64,
    case: &RateCase,
    conn: &mut Conn,
    prefix: &str,
) -> Result<(), TestCaseError> {
    let mut reference = Reference::<A::State>::new();
    // What users get: the in-memory store through a Limiter, compared on
    // every call, the clock stepping back included (it reclaims expired
    // states only when it needs room, never by a later call's time).
    let clock = ManualClock::new(case.start);
    let memory = Limiter::new(alg.clone())
        .with_prefix(prefix)
        .with_clock(clock.clone());
    let mut now = case.start;
    for (i, op) in case.ops.iter().enumerate() {
        let step = step_of(op, span, case.monotone);
        now = u64::try_from((i128::from(now) + step).max(0)).unwrap();
        if let Some(penalty) = op.adjust {
            clock.set(now);
            adjust(
                alg,
                op,
                now,
                penalty,
                (conn, prefix),
                &mut reference,
                &memory,
            )?;
            continue;
        }
        // A call under a tier: a limit up to twice the configured one, on
        // the same state (a tier that is no configuration of the
        // algorithm, e.g. a refill for a window, decides as configured).
        let tier = op
            .tier_x
            .map(|x| {
                let tier = Tier::limit(1 + x % (2 * alg.limit()));
                // A token bucket's tier may refill faster, too.
                match x % 3 {
                    0 => tier.with_refill(1 + (x >> 8) % (2 * alg.limit())),
                    _ => tier,
                }
            })
            .and_then(|tier| Some((tier, alg.tiered(&tier).ok()?)));
        let alg = tier.as_ref().map_or(alg, |(_, tiered)| tiered);
        let limit = alg.limit();
        let script = RateScript::of(alg);
        let cost = cost_of(op, limit);
        let expected = reference.run(op.key, now, |state| {
            if op.peek {
                let mut copy = state.clone();
                (alg.decide(&mut copy, now, cost), None)
            } else {
                let outcome = alg.decide(state, now, cost);
                let ttl = outcome.as_ref().ok().map(|o| o.ttl_ms);
                (outcome, ttl)
            }
        });
        let key = format!("{{{prefix}:{}}}", op.key);
        let got = script.eval(conn, &key, Some(now), cost, op.peek);
        let context = || format!("op {i} {op:?} at {now}, cost {cost}");
        match expected {
            Ok(outcome) => {
                let (decision, used, fields) =
                    got.map_err(|e| TestCaseError::fail(format!("{}: Lua error {e}", context())))?;
                prop_assert_eq!(decision, outcome.decision, "{}", context());
                prop_assert_eq!(used, now.min(MAX_TIME_MS), "{}", context());
                // A denial sends back the state Redis holds now, exactly the
                // core's (what a deny cache decides further calls on).
                let held = reference
                    .states
                    .get(&op.key)
                    .map(|(s, _)| s.clone().into_any());
                let sent = alg.state_from_reply(&fields);
                if decision.allowed {
                    prop_assert!(
                        fields.is_empty(),
                        "{}: an admission sends no state",
                        context()
                    );
                } else if op.peek {
                    // A read-only call (never cached) may send the state it
                    // computed without storing it.
                } else if sent.is_some() || !log_too_long(held.as_ref()) {
                    prop_assert_eq!(sent, held, "{}: the state a denial sent", context());
                }
            }
            Err(Error::CostExceedsLimit { .. }) => {
                let error = got.err().unwrap_or_default();
                prop_assert!(
                    error.contains("EDGELIMIT cost exceeds limit"),
                    "{}: Lua answered {:?}",
                    context(),
                    error
                );
            }
            Err(e) => return Err(TestCaseError::fail(format!("{}: {e}", context()))),
        }
        if !op.peek {
            let id = op.key.to_string();
            let from_memory = match &tier {
                Some((tier, _)) => memory.limit_under_at(&id, cost, tier, now),
                None => memory.limit_at(&id, cost, now),
            };
            match (from_memory, expected) {
                (Ok(m), Ok(e)) => prop_assert_eq!(m, e.decision, "memory store, {}", context()),
                (Err(_), Err(_)) => {}
                (m, e) => prop_assert!(false, "memory store {:?} vs {:?}, {}", m, e, context()),
            }
        }
    }
    Ok(())
}

/// A refund or penalty of `op`'s units at `now`: the Lua twin, the core and
/// the memory store answer alike.
fn adjust<A: Algorithm, C: edgelimit::Clock>(
    alg: &A,
    op: &RawOp,
    now: u64,
    penalty: bool,
    (conn, prefix): (&mut Conn, &str),
    reference: &mut Reference<A::State>,
    memory: &Limiter<A, edgelimit::MemoryStore, C>,
) -> Result<(), TestCaseError> {
    let units = cost_of(op, alg.limit());
    let (adjustment, mode) = match penalty {
        true => (Adjustment::Penalty(units), "3"),
        false => (Adjustment::Refund(units), "2"),
    };
    let expected = reference.run(op.key, now, |state| {
        let outcome = alg.adjust(state, now, adjustment);
        (outcome, Some(outcome.ttl_ms))
    });
    let key = format!("{{{prefix}:{}}}", op.key);
    let context = || format!("{adjustment:?} of key {} at {now}", op.key);
    let (decision, used, _) = RateScript::of(alg)
        .eval_mode(conn, &key, Some(now), units, mode)
        .map_err(|e| TestCaseError::fail(format!("{}: Lua error {e}", context())))?;
    prop_assert_eq!(decision, expected.decision, "{}", context());
    prop_assert_eq!(used, now.min(MAX_TIME_MS), "{}", context());
    let id = op.key.to_string();
    let from_memory = match penalty {
        true => memory.penalize(&id, units),
        false => memory.refund(&id, units),
    };
    prop_assert_eq!(
        from_memory,
        Ok(expected.decision),
        "memory store, {}",
        context()
    );
    Ok(())
}

/// Whether `state` is a sliding log too long to be sent with a denial.
fn log_too_long(state: Option<&AnyState>) -> bool {
    matches!(state, Some(AnyState::SlidingLog(log)) if log.entries.len() > MAX_LOG_ENTRIES_IN_REPLY)
}

#[test]
fn rate_scripts_decide_as_the_rust_core() {
    let server = Redis::start();
    let conn = RefCell::new(server.conn());
    load_all(&mut conn.borrow_mut());
    let counter = RefCell::new(0u64);
    runner()
        .run(&rate_case(), |case| {
            let mut n = counter.borrow_mut();
            *n += 1;
            let prefix = format!("rate{n}");
            let conn = &mut conn.borrow_mut();
            match &case.config {
                RateConfig::Fixed(a) => replay(a, a.window_ms(), &case, conn, &prefix),
                RateConfig::Sliding(a) => replay(a, a.window_ms(), &case, conn, &prefix),
                RateConfig::Log(a) => replay(a, a.window_ms(), &case, conn, &prefix),
                RateConfig::Bucket(a) => replay(a, a.config_args()[2], &case, conn, &prefix),
                RateConfig::Gcra(a) => replay(a, a.config_args()[1], &case, conn, &prefix),
            }
        })
        .unwrap();
}

/// The case the memory store once got wrong: after the clock steps back
/// past a state's TTL, an unrelated new key swept a state Redis keeps
/// (`gcra(1, "10 s")`: "a" at T + 100 s, "b" at T + 200 s, "a" at T).
#[test]
fn a_clock_stepping_back_past_a_ttl_decides_alike() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let op = |key, step_kind, step_x| RawOp {
        key,
        cost_kind: 1,
        cost_x: 0,
        step_kind,
        step_x,
        peek: false,
        tier_x: None,
        adjust: None,
    };
    let case = RateCase {
        config: RateConfig::Gcra(Gcra::new(1, "10 s").unwrap()),
        start: 1_700_000_100_000,
        monotone: false,
        ops: vec![op(0, 0, 0), op(1, 12, 100_000), op(0, 11, 200_000)],
    };
    let gcra = Gcra::new(1, "10 s").unwrap();
    replay(&gcra, 10_000, &case, &mut conn, "stepback").unwrap();
}

/// One lease operation, with the clock's move before it.
#[derive(Debug, Clone, Copy)]
struct LeaseCall {
    key: usize,
    op: u8,
    id: u64,
    ttl_kind: u8,
    ttl_x: u64,
    step: RawOp,
    /// For a waiter's try: its owner, which number it sends (0: none,
    /// 1: the owner's last number on the key, else a made-up one) and how
    /// many wait.
    owner: u64,
    number_kind: u8,
    waiters: u64,
    /// The owner's oldest number and its other waiters' (0: none).
    oldest: u64,
    next: u64,
}

#[derive(Debug, Clone)]
struct LeaseCase {
    max: u64,
    lease_ms: u64,
    start: u64,
    calls: Vec<LeaseCall>,
}

fn lease_case() -> impl Strategy<Value = LeaseCase> {
    let queue = (
        1..4u64,
        0..3u8,
        prop_oneof![0..4u64, Just(u64::MAX)],
        0..6u64,
        0..6u64,
    );
    let call = (
        0..2usize,
        0..9u8,
        0..5u64,
        0..4u8,
        any::<u64>(),
        raw_op(),
        queue,
    )
        .prop_map(
            |(key, op, id, ttl_kind, ttl_x, step, (owner, number_kind, waiters, oldest, next))| {
                LeaseCall {
                    key,
                    op,
                    id,
                    ttl_kind,
                    ttl_x,
                    step,
                    owner,
                    number_kind,
                    waiters,
                    oldest,
                    next,
                }
            },
        );
    (
        prop_oneof![1..=4u64, Just(10_000u64)],
        span(),
        start_time(),
        prop::collection::vec(call, 1..=60),
    )
        .prop_map(|(max, lease_ms, start, calls)| LeaseCase {
            max,
            lease_ms,
            start,
            calls,
        })
}

#[test]
fn concurrency_script_applies_as_the_rust_core() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let conn = RefCell::new(conn);
    let counter = RefCell::new(0u64);
    runner()
        .run(&lease_case(), |case| {
            let mut n = counter.borrow_mut();
            *n += 1;
            let conn = &mut conn.borrow_mut();
            let config = Concurrency::new(case.max, ms(case.lease_ms)).unwrap();
            let mut reference = Reference::<ConcurrencyState>::new();
            // The last number each (key, owner) was given.
            let mut numbers = std::collections::HashMap::<(usize, u64), u64>::new();
            let mut now = case.start;
            for (i, call) in case.calls.iter().enumerate() {
                let step = step_of(&call.step, case.lease_ms, false);
                now = u64::try_from((i128::from(now) + step).max(0)).unwrap();
                let ttl_ms = match call.ttl_kind {
                    0 => 0,
                    1 => 1 + call.ttl_x % (2 * case.lease_ms),
                    2 => call.ttl_x % 10,
                    _ => call.ttl_x,
                };
                let number = match call.number_kind {
                    0 => 0,
                    1 => numbers.get(&(call.key, call.owner)).copied().unwrap_or(0),
                    _ => 1 + call.ttl_x % 5,
                };
                let (op, name) = match call.op {
                    0 | 1 => (
                        LeaseOp::Acquire {
                            id: call.id,
                            ttl_ms,
                        },
                        "acquire",
                    ),
                    2 => (
                        LeaseOp::AcquireUnfair {
                            id: call.id,
                            ttl_ms,
                        },
                        "acquire_unfair",
                    ),
                    3 | 4 => (
                        LeaseOp::Wait {
                            id: call.id,
                            ttl_ms,
                            owner: call.owner,
                            number,
                            oldest: call.oldest,
                            next: call.next,
                            waiters: call.waiters,
                        },
                        "wait",
                    ),
                    5 => (LeaseOp::Leave { owner: call.owner }, "leave"),
                    6 => (LeaseOp::Release { id: call.id }, "release"),
                    7 => (
                        LeaseOp::Extend {
                            id: call.id,
                            ttl_ms,
                        },
                        "extend",
                    ),
                    _ => (LeaseOp::Peek, "peek"),
                };
                let expected = reference.run(call.key, now, |state| {
                    let outcome = config.apply(state, now, op);
                    (outcome, Some(outcome.ttl_ms))
                });
                if expected.number != 0 {
                    numbers.insert((call.key, call.owner), expected.number);
                }
                let key = format!("{{lease{n}:{}}}", call.key);
                let mut args = vec![
                    "EVALSHA".to_owned(),
                    scripts::CONCURRENCY.sha1().to_owned(),
                    "1".to_owned(),
                    key,
                    now.to_string(),
                    name.to_owned(),
                    call.id.to_string(),
                    ttl_ms.to_string(),
                    case.max.to_string(),
                    case.lease_ms.to_string(),
                ];
                if matches!(op, LeaseOp::Wait { .. } | LeaseOp::Leave { .. }) {
                    let queue = [call.owner, number, call.oldest, call.next, call.waiters];
                    args.extend(queue.map(|n| n.to_string()));
                }
                let reply = conn.call(&args).unwrap();
                let ints = reply
                    .ints()
                    .ok_or_else(|| TestCaseError::fail(format!("op {i}: reply {reply:?}")))?;
                let (got, used) = parse_lease_reply(&ints, case.max)
                    .ok_or_else(|| TestCaseError::fail(format!("op {i}: reply {ints:?}")))?;
                let context = format!("op {i} {op:?} on key {} at {now}", call.key);
                prop_assert_eq!(got.allowed, expected.allowed, "{}", context);
                prop_assert_eq!(got.decision, expected.decision, "{}", context);
                prop_assert_eq!(got.expires_at_ms, expected.expires_at_ms, "{}", context);
                prop_assert_eq!(got.number, expected.number, "{}", context);
                prop_assert_eq!(used, now.min(MAX_TIME_MS), "{}", context);
            }
            Ok(())
        })
        .unwrap();
}

fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn an_empty_time_uses_the_server_clock() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let alg = TokenBucket::new(5, 1, "1 s").unwrap();
    let before = system_ms();
    let (decision, used, _) = RateScript::of(&alg)
        .eval(&mut conn, "{t}:a", None, 2, false)
        .unwrap();
    let after = system_ms();
    assert!(
        used + 2_000 >= before && used <= after + 2_000,
        "server time {used} vs system clock {before}..{after}"
    );
    assert_eq!(decision.remaining, 3);
    assert_eq!(decision.reset_ms, used + 2_000);

    let args = [
        "EVALSHA",
        scripts::CONCURRENCY.sha1(),
        "1",
        "{t}:lease",
        "",
        "acquire",
        "7",
        "0",
        "2",
        "30000",
    ];
    let ints = conn.call(&args).unwrap().ints().unwrap();
    let (outcome, used) = parse_lease_reply(&ints, 2).unwrap();
    assert!(used + 2_000 >= before && used <= system_ms() + 2_000);
    assert_eq!(outcome.expires_at_ms, Some(used + 30_000));
    let pttl = conn.call(&["PTTL", "{t}:lease"]).unwrap();
    assert!(
        matches!(pttl, Reply::Int(ms) if ms > 29_000 && ms <= 30_000),
        "{pttl:?}"
    );
}

/// With the server's clock, a key expires when its state does, whether or
/// not a decision changed the expiry (one that does not leaves the key's
/// TTL as it was).
#[test]
fn a_key_expires_with_its_state() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let windows: [(&dyn Fn() -> RateScript, &str); 2] = [
        (
            &|| RateScript::of(&FixedWindow::new(2, "20 s").unwrap()),
            "{w}:fixed",
        ),
        (
            &|| RateScript::of(&SlidingWindow::new(2, "20 s").unwrap()),
            "{w}:sliding",
        ),
    ];
    for (script, key) in windows {
        // Two admissions, then denials: the window's end does not move.
        for cost in [1, 1, 1, 1] {
            script().eval(&mut conn, key, None, cost, false).unwrap();
            let exp: u64 = conn
                .call(&["HGET", key, "exp"])
                .unwrap()
                .text()
                .unwrap()
                .parse()
                .unwrap();
            let now = match conn.call(&["TIME"]).unwrap() {
                Reply::Array(Some(t)) => {
                    let secs: u64 = t[0].text().unwrap().parse().unwrap();
                    let micros: u64 = t[1].text().unwrap().parse().unwrap();
                    secs * 1_000 + micros / 1_000
                }
                other => panic!("TIME answered {other:?}"),
            };
            let Reply::Int(pttl) = conn.call(&["PTTL", key]).unwrap() else {
                panic!("no PTTL");
            };
            let left = exp.saturating_sub(now) as i64;
            assert!(
                (pttl - left).abs() <= 5,
                "{key}: PTTL {pttl} ms, state expires in {left} ms"
            );
        }
    }
}

fn snapshot(conn: &mut Conn, key: &str) -> (Vec<(String, String)>, Reply) {
    let fields = match conn.call(&["HGETALL", key]).unwrap() {
        Reply::Array(Some(items)) => {
            let mut pairs: Vec<_> = items
                .chunks(2)
                .map(|p| (p[0].text().unwrap(), p[1].text().unwrap()))
                .collect();
            pairs.sort();
            pairs
        }
        other => panic!("{other:?}"),
    };
    (fields, conn.call(&["PEXPIRETIME", key]).unwrap())
}

#[test]
fn peek_writes_nothing_and_decides_as_a_read() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let algorithms = [
        RateScript::of(&FixedWindow::new(5, "1 s").unwrap()),
        RateScript::of(&SlidingWindow::new(5, "1 s").unwrap()),
        RateScript::of(&SlidingLog::new(5, "1 s").unwrap()),
        RateScript::of(&TokenBucket::new(5, 1, "1 s").unwrap()),
        RateScript::of(
            &TokenBucket::new(5, 2, "300 ms")
                .unwrap()
                .with_initial(1)
                .unwrap(),
        ),
        RateScript::of(&Gcra::new(5, "1 s").unwrap()),
    ];
    for (n, script) in algorithms.iter().enumerate() {
        let name = script.script.name();
        let key = format!("{{peek{n}}}");
        // Times after several writes, including a clock gone back and an
        // expired state still in Redis.
        let mut times = vec![10_000u64, 10_000, 10_400, 10_900, 10_300, 11_500, 60_000];
        let mut now = 0;
        for (i, t) in times.drain(..).enumerate() {
            now = t;
            for cost in [0, 1, 2, 5] {
                let before = snapshot(&mut conn, &key);
                let peeked = script.eval(&mut conn, &key, Some(now), cost, true).unwrap();
                assert_eq!(snapshot(&mut conn, &key), before, "{} at {now}", name);
                if cost == 0 {
                    let read = script.eval(&mut conn, &key, Some(now), 0, false).unwrap();
                    assert_eq!(peeked, read, "{} at {now}", name);
                }
            }
            let cost = if i % 2 == 0 { 2 } else { 1 };
            script
                .eval(&mut conn, &key, Some(now), cost, false)
                .unwrap();
        }
        // A cost above the limit is an error that changes nothing.
        let before = snapshot(&mut conn, &key);
        let error = script
            .eval(&mut conn, &key, Some(now), script.limit + 1, false)
            .unwrap_err();
        assert!(error.contains("EDGELIMIT cost exceeds limit"), "{error}");
        assert_eq!(snapshot(&mut conn, &key), before);
    }
}

/// A GCRA debt above 2^52 but within a tolerance near 2^53 (a full burst
/// of 2^30 units over a period of about 72 minutes) is an ordinary debt:
/// Lua once took its far path there, answering no room left.
#[test]
fn a_debt_between_2_52_and_a_tolerance_near_2_53_decides_as_in_rust() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let alg = Gcra::new(1, ms(4_332_422))
        .unwrap()
        .with_burst(1 << 30)
        .unwrap();
    let script = RateScript::of(&alg);
    let mut reference = Reference::new();
    for (now, cost) in [(0, 1 << 30), (12_997_266, 1 << 29), (12_997_266, 0)] {
        let expected = reference.run(0, now, |state| {
            let outcome = alg.decide(state, now, cost).unwrap();
            (outcome.decision, Some(outcome.ttl_ms))
        });
        let (decision, _, _) = script
            .eval(&mut conn, "{gcra-wide}", Some(now), cost, false)
            .unwrap();
        assert_eq!(decision, expected, "{cost} at {now}");
    }
}

#[test]
fn times_beyond_the_clamp_are_clamped_as_in_rust() {
    // The algorithm clamps time to MAX_TIME_MS (2^52); expiry (in the store and in Lua)
    // compares the times as given, which Lua rounds to a double.
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let alg = FixedWindow::new(3, "1 s").unwrap();
    let script = RateScript::of(&alg);
    let mut reference = Reference::new();
    for (i, now) in [
        MAX_TIME_MS - 1,
        MAX_TIME_MS,
        MAX_TIME_MS + 1,
        (1 << 53) + 2,
        u64::MAX,
    ]
    .into_iter()
    .enumerate()
    {
        let expected = reference.run(0, now, |state| {
            let outcome = alg.decide(state, now, 1).unwrap();
            (outcome.decision, Some(outcome.ttl_ms))
        });
        let (decision, used, _) = script
            .eval(&mut conn, "{far}", Some(now), 1, false)
            .unwrap();
        assert_eq!(decision, expected, "call {i} at {now}");
        assert_eq!(used, now.min(MAX_TIME_MS));
    }
}

#[test]
fn a_sliding_log_expires_thousands_of_entries_at_once() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let alg = SlidingLog::new(100_000, "10 s").unwrap();
    let script = RateScript::of(&alg);
    let mut state = None;
    // 3000 entries (6000 hash fields), then a call after all have expired.
    let times = (0..3_000u64).map(|t| 1_000 + t).chain([20_000, 20_000]);
    for now in times {
        let cost = 1 + now % 3;
        let expected = alg.decide(&mut state, now, cost).unwrap().decision;
        let (decision, _, _) = script
            .eval(&mut conn, "{log}", Some(now), cost, false)
            .unwrap();
        assert_eq!(decision, expected, "at {now}");
    }
    let Reply::Int(fields) = conn.call(&["HLEN", "{log}"]).unwrap() else {
        panic!("HLEN")
    };
    assert_eq!(fields, 5 + 2, "bookkeeping fields and one entry");
}

#[test]
fn a_denial_sends_a_sliding_log_back_only_while_it_is_short() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    let max = MAX_LOG_ENTRIES_IN_REPLY as u64;
    for (limit, key) in [(max, "{short}"), (max + 1, "{long}")] {
        let alg = SlidingLog::new(limit, "1 m").unwrap();
        let script = RateScript::of(&alg);
        let mut state = None;
        // One entry per millisecond up to the limit, then a denial.
        for now in 1_000..1_000 + limit {
            alg.decide(&mut state, now, 1).unwrap();
            let (decision, _, fields) = script.eval(&mut conn, key, Some(now), 1, false).unwrap();
            assert!(decision.allowed && fields.is_empty(), "{key} at {now}");
        }
        let now = 1_000 + limit;
        assert!(!alg.decide(&mut state, now, 1).unwrap().decision.allowed);
        let (decision, _, fields) = script.eval(&mut conn, key, Some(now), 1, false).unwrap();
        assert!(!decision.allowed);
        if limit <= max {
            assert_eq!(
                fields.len(),
                2 + 2 * limit as usize,
                "total, latest and every entry"
            );
            assert_eq!(
                alg.state_from_reply(&fields),
                state.map(StateKind::into_any)
            );
        } else {
            assert!(fields.is_empty(), "a log of {limit} entries stays in Redis");
        }
    }
}

/// One call of a script: the script, its key and its ARGV (time first).
type Call = (&'static Script, String, Vec<String>);

/// Random calls of every script on a few keys, at times moving forward.
fn script_calls() -> impl Strategy<Value = Vec<Call>> {
    let call = (
        0..6usize,
        0..3usize,
        0..=3u64,
        0..40u64,
        prop::bool::weighted(0.1),
        0..4u8,
        // The previous call again, on any key: the batch sends only 0.
        prop::bool::weighted(0.3),
    );
    prop::collection::vec(call, 1..40).prop_map(|raw| {
        let mut now = 1_700_000_000_000u64;
        let mut previous = None;
        raw.into_iter()
            .map(|(which, key, cost, step, peek, op, again)| {
                let (which, cost, step, peek, op) = match previous {
                    Some((w, c, p, o)) if again => (w, c, 0, p, o),
                    _ => (which, cost, step, peek, op),
                };
                previous = Some((which, cost, peek, op));
                now += step;
                let t = now.to_string();
                let rate = |script: &'static Script, config: &[u64]| {
                    let peek = if peek { "1" } else { "0" };
                    let mut args = vec![t.clone(), cost.to_string(), peek.to_owned()];
                    args.extend(config.iter().map(u64::to_string));
                    (script, format!("{{{}:{key}}}", script.name()), args)
                };
                match which {
                    0 => rate(&scripts::FIXED_WINDOW, &[3, 100]),
                    1 => rate(&scripts::SLIDING_WINDOW, &[3, 100]),
                    2 => rate(&scripts::SLIDING_LOG, &[3, 100]),
                    3 => rate(&scripts::TOKEN_BUCKET, &[3, 1, 50, 3]),
                    4 => rate(&scripts::GCRA, &[3, 100, 3]),
                    _ => {
                        let op = ["acquire", "release", "extend", "peek"][usize::from(op)];
                        let args = [
                            t,
                            op.into(),
                            (key + 1).to_string(),
                            "0".into(),
                            "2".into(),
                            "100".into(),
                        ];
                        (
                            &scripts::CONCURRENCY,
                            format!("{{concurrency:{key}}}"),
                            args.to_vec(),
                        )
                    }
                }
            })
            .collect()
    })
}

/// The calls as one BATCH script call.
fn batch_command(calls: &[Call], prefix: &str) -> Vec<String> {
    let mut command = vec![
        "EVALSHA".to_owned(),
        scripts::BATCH.sha1().to_owned(),
        calls.len().to_string(),
    ];
    command.extend(calls.iter().map(|(_, key, _)| format!("{prefix}{key}")));
    let mut last: Option<(&Script, &Vec<String>)> = None;
    for (script, _, args) in calls {
        // The previous call's script and arguments again: only 0.
        if last.is_some_and(|(s, a)| std::ptr::eq(s, *script) && a == args) {
            command.push("0".into());
            continue;
        }
        command.push(script.batch_number().unwrap().to_string());
        command.push(args.len().to_string());
        command.extend(args.iter().cloned());
        last = Some((script, args));
    }
    command
}

#[test]
fn a_batch_script_call_answers_as_each_script_on_its_own() {
    let server = Redis::start();
    let conn = RefCell::new(server.conn());
    load_all(&mut conn.borrow_mut());
    let counter = RefCell::new(0u64);
    runner()
        .run(&script_calls(), |calls| {
            let mut n = counter.borrow_mut();
            *n += 1;
            let conn = &mut conn.borrow_mut();
            // One by one under one prefix, then as a batch under another.
            let alone: Vec<Reply> = calls
                .iter()
                .map(|(script, key, args)| {
                    let mut command =
                        vec!["EVALSHA".to_owned(), script.sha1().to_owned(), "1".into()];
                    command.push(format!("a{n}{key}"));
                    command.extend(args.iter().cloned());
                    conn.call(&command).unwrap()
                })
                .collect();
            let batch = conn.call(&batch_command(&calls, &format!("b{n}"))).unwrap();
            prop_assert_eq!(batch, Reply::Array(Some(alone)));
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_failed_call_in_a_batch_fails_alone() {
    let server = Redis::start();
    let mut conn = server.conn();
    load_all(&mut conn);
    conn.call(&["SET", "{broken}", "x"]).unwrap();
    let t = "1700000000000".to_owned();
    let call = |key: &str| -> Call {
        let args = [&t, "1", "0", "3", "100"].map(str::to_owned).to_vec();
        (&scripts::FIXED_WINDOW, key.to_owned(), args)
    };
    let bad_argument: Call = (&scripts::GCRA, "{g}".into(), vec![t.clone(), "x".into()]);
    let calls = [call("{a}"), call("{broken}"), bad_argument, call("{a}")];
    let Reply::Array(Some(replies)) = conn.call(&batch_command(&calls, "")).unwrap() else {
        panic!("an array")
    };
    assert_eq!(
        replies[0].ints(),
        Some(vec![1, 2, 1700000000100, 0, 1700000000000])
    );
    assert!(
        matches!(&replies[1], Reply::Bulk(Some(m)) if m.starts_with(b"WRONGTYPE")),
        "{:?}",
        replies[1]
    );
    assert!(
        matches!(&replies[2], Reply::Bulk(Some(m)) if String::from_utf8_lossy(m).contains("EDGELIMIT bad argument")),
        "{:?}",
        replies[2]
    );
    assert_eq!(
        replies[3].ints(),
        Some(vec![1, 1, 1700000000100, 0, 1700000000000])
    );
}
