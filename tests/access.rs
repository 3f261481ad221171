//! Deny and allow lists on limiters: decided before the store, on the
//! memory store and on Redis through the gateway; the lists' matching
//! against a plain reference.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgelimit::store::{AsyncRedisRestStore, RedisRestStore};
use edgelimit::{
    AccessList, FixedWindow, Limiter, Listed, ManualClock, Reason, SlidingWindow, TokenBucket,
    WaitOutcome,
};
use proptest::prelude::*;
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::resp;

const T0: u64 = 1_700_000_000_000;

fn lists(deny: &[&str], allow: &[&str]) -> AccessList {
    let lists = AccessList::new();
    for entry in deny {
        lists.deny(entry).unwrap();
    }
    for entry in allow {
        lists.allow(entry).unwrap();
    }
    lists
}

#[test]
fn listed_ids_are_decided_without_counting() {
    let access = lists(
        &["203.0.113.0/24", "user:bad"],
        &["203.0.113.9", "user:ops"],
    );
    let limiter = Limiter::new(FixedWindow::new(2, "1 m").unwrap())
        .with_clock(ManualClock::new(T0))
        .with_access_list(access.clone())
        .with_metrics();
    for _ in 0..5 {
        let denied = limiter.limit("203.0.113.7").unwrap();
        assert_eq!(
            (denied.allowed, denied.remaining, denied.reason),
            (false, 0, Some(Reason::DenyList))
        );
        assert_eq!(
            (denied.retry_after_ms, denied.reset_ms),
            (u64::MAX, u64::MAX)
        );
        let admitted = limiter.limit_with_cost("user:ops", 2).unwrap();
        assert_eq!(
            (
                admitted.allowed,
                admitted.remaining,
                admitted.reset_ms,
                admitted.reason
            ),
            (true, 2, T0, Some(Reason::AllowList))
        );
    }
    // Nothing was counted for them: off the lists, each has its full limit.
    access.clear();
    for id in ["203.0.113.7", "user:ops"] {
        assert_eq!(limiter.limit(id).unwrap().remaining, 1, "{id}");
    }
    let metrics = limiter.metrics().unwrap();
    assert_eq!((metrics.admitted, metrics.denied), (7, 5));
}

#[test]
fn changes_apply_to_every_limiter_sharing_the_lists() {
    let access = AccessList::new();
    let a = Limiter::new(SlidingWindow::new(1, "1 h").unwrap()).with_access_list(access.clone());
    let b = Limiter::new(TokenBucket::new(1, 1, "1 h").unwrap()).with_access_list(access.clone());
    assert!(a.limit("10.1.2.3").unwrap().allowed);
    assert!(!a.limit("10.1.2.3").unwrap().allowed);
    access.allow("10.0.0.0/8").unwrap();
    assert_eq!(a.limit("10.1.2.3").unwrap().reason, Some(Reason::AllowList));
    access.deny("10.1.2.3").unwrap();
    for limiter_denies in [a.limit("10.1.2.3").unwrap(), b.limit("10.1.2.3").unwrap()] {
        assert_eq!(limiter_denies.reason, Some(Reason::DenyList));
    }
    assert_eq!(b.limit("10.1.2.4").unwrap().reason, Some(Reason::AllowList));
}

#[test]
fn waiting_gives_up_at_once_on_a_deny_listed_id() {
    let limiter = Limiter::new(FixedWindow::new(1, "1 h").unwrap())
        .with_access_list(lists(&["user:bad"], &[]));
    let started = std::time::Instant::now();
    match limiter
        .wait("user:bad", std::time::Duration::from_secs(60))
        .unwrap()
    {
        WaitOutcome::DeadlineExceeded(decision) => {
            assert_eq!(decision.reason, Some(Reason::DenyList))
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_listed_id_never_reaches_a_store_that_is_down() {
    // Nothing listens on port 9: any store request fails.
    let store = RedisRestStore::new("http://127.0.0.1:9", TOKEN).unwrap();
    let access = lists(&["user:bad"], &["user:ops"]);
    let limiter = Limiter::new(FixedWindow::new(10, "1 m").unwrap())
        .with_store(store)
        .with_access_list(access);
    assert_eq!(
        limiter.limit("user:bad").unwrap().reason,
        Some(Reason::DenyList)
    );
    assert_eq!(
        limiter.limit("user:ops").unwrap().reason,
        Some(Reason::AllowList)
    );
    assert!(
        limiter.limit("user:other").is_err(),
        "an unlisted id asks the store"
    );
    let answers = limiter.limit_many(&[("user:bad", 1), ("user:ops", 1)]);
    assert!(answers.iter().all(Result::is_ok));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = AsyncRedisRestStore::new("http://127.0.0.1:9", TOKEN).unwrap();
        let limiter = Limiter::new(FixedWindow::new(10, "1 m").unwrap())
            .with_store(store)
            .with_access_list(lists(&["user:bad"], &[]));
        let denied = limiter.limit_async("user:bad").await.unwrap();
        assert_eq!(denied.reason, Some(Reason::DenyList));
        assert!(limiter.limit_async("user:other").await.is_err());
    });
}

#[test]
fn on_redis_listed_calls_of_a_batch_are_answered_here_and_the_rest_sent() {
    let redis = Redis::start();
    let gateway = Gateway::start(redis.port);
    let store = RedisRestStore::new(gateway.url(), TOKEN).unwrap();
    let limiter = Limiter::new(FixedWindow::new(1, "1 h").unwrap())
        .with_store(store)
        .with_access_list(lists(&["10.0.0.0/8"], &["user:ops"]));
    let calls = [
        ("10.0.0.1", 1),
        ("user:a", 1),
        ("user:ops", 1),
        ("user:a", 1),
    ];
    let answers: Vec<_> = limiter
        .limit_many(&calls)
        .into_iter()
        .map(|answer| {
            let decision = answer.unwrap();
            (decision.allowed, decision.reason)
        })
        .collect();
    assert_eq!(
        answers,
        [
            (false, Some(Reason::DenyList)),
            (true, None),
            (true, Some(Reason::AllowList)),
            (false, None),
        ]
    );
    let keys = redis.conn().call(&["KEYS", "*"]).unwrap();
    let only = resp::Reply::Bulk(Some(b"edgelimit:fw:3600000:{user:a}".to_vec()));
    assert_eq!(
        keys,
        resp::Reply::Array(Some(vec![only])),
        "only the unlisted id was stored"
    );
}

/// An entry of the reference: `(bits, prefix length, is IPv6)` or an id.
#[derive(Debug, Clone)]
enum Reference {
    Id(String),
    Network(IpAddr, u8),
}

/// What the lists should answer, by scanning every entry: an exact id
/// first, then the longest network holding the id's address.
fn reference(entries: &[(Reference, Listed)], id: &str) -> Option<Listed> {
    let mut latest: Vec<(String, Listed)> = Vec::new();
    for (entry, list) in entries {
        let text = match entry {
            Reference::Id(id) => id.clone(),
            Reference::Network(address, len) => format!("{address}/{len}"),
        };
        latest.retain(|(t, _)| *t != text);
        latest.push((text, *list));
    }
    if let Some((_, list)) = latest.iter().find(|(text, _)| text == id) {
        return Some(*list);
    }
    let (address, id_len): (IpAddr, u8) = match id.split_once('/') {
        Some((a, l)) => (a.parse().ok()?, l.parse().ok()?),
        None => {
            let address: IpAddr = id.parse().ok()?;
            (address, if address.is_ipv4() { 32 } else { 128 })
        }
    };
    let inside = |network: &IpAddr, len: u8| match (network, address) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            len <= id_len && (len == 0 || (u32::from(*n) ^ u32::from(a)) >> (32 - len) == 0)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            len <= id_len && (len == 0 || (u128::from(*n) ^ u128::from(a)) >> (128 - len) == 0)
        }
        _ => false,
    };
    latest
        .iter()
        .filter_map(|(text, list)| {
            let (network, len) = text.split_once('/')?;
            let (network, len): (IpAddr, u8) = (network.parse().ok()?, len.parse().ok()?);
            inside(&network, len).then_some((len, *list))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, list)| list)
}

fn network() -> impl Strategy<Value = Reference> {
    // A few short, overlapping ranges, so that lookups often hit several.
    let v4 = (0u32..4, 0u8..=32).prop_map(|(high, len)| {
        let bits = (high << 30) | 0x0a0b_0c0d;
        let masked = if len == 0 {
            0
        } else {
            bits & (u32::MAX << (32 - len))
        };
        Reference::Network(IpAddr::V4(Ipv4Addr::from(masked)), len)
    });
    let v6 = (0u128..4, 0u8..=128).prop_map(|(high, len)| {
        let bits = (high << 126) | 0x2001_0db8_0000_0000_0000_0000_0000_0001;
        let masked = if len == 0 {
            0
        } else {
            bits & (u128::MAX << (128 - len))
        };
        Reference::Network(IpAddr::V6(Ipv6Addr::from(masked)), len)
    });
    prop_oneof![v4, v6, "user:[a-c]".prop_map(Reference::Id)]
}

fn probe() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..4, any::<u8>()).prop_map(|(high, low)| {
            Ipv4Addr::from((high << 30) | 0x0a0b_0c00 | u32::from(low)).to_string()
        }),
        (
            0u128..4,
            any::<u16>(),
            prop_oneof![Just(None), (0u8..=128).prop_map(Some)]
        )
            .prop_map(|(high, low, len)| {
                let bits =
                    (high << 126) | 0x2001_0db8_0000_0000_0000_0000_0000_0000 | u128::from(low);
                let address = Ipv6Addr::from(bits);
                match len {
                    None => address.to_string(),
                    Some(len) => {
                        let masked = if len == 0 {
                            0
                        } else {
                            bits & (u128::MAX << (128 - len))
                        };
                        format!("{}/{len}", Ipv6Addr::from(masked))
                    }
                }
            }),
        "user:[a-d]",
    ]
}

proptest! {
    #[test]
    fn the_lists_answer_as_the_reference_does(
        entries in prop::collection::vec((network(), prop_oneof![Just(Listed::Deny), Just(Listed::Allow)]), 0..24),
        removed in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        probes in prop::collection::vec(probe(), 1..16),
    ) {
        let access = AccessList::new();
        let text = |entry: &Reference| match entry {
            Reference::Id(id) => id.clone(),
            Reference::Network(address, len) => format!("{address}/{len}"),
        };
        for (entry, list) in &entries {
            access.put(&text(entry), *list).unwrap();
        }
        let mut kept = entries.clone();
        for index in removed {
            if kept.is_empty() {
                break;
            }
            let (entry, _) = kept[index.index(kept.len())].clone();
            let gone = text(&entry);
            prop_assert!(access.remove(&gone).unwrap());
            kept.retain(|(e, _)| text(e) != gone);
        }
        for id in &probes {
            prop_assert_eq!(access.check(id), reference(&kept, id), "id {}", id);
        }
    }
}
