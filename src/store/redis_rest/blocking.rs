//! The native REST store: blocking HTTP through reqwest.

use std::sync::Arc;

use super::batch::{Batch, GroupingState};
use super::block::blocking;
use super::body;
use super::call::{conclude, conclude_keys, redis_key, ScriptCall};
use super::deny_cache::DenyCache;
use super::endpoint;
use super::exchange::{Exchange, Exchanges, Request, Step};
use super::json::Json;
use super::options::{Grouping, RestOptions};
use super::protocol::{self, Reply};

use crate::random;
use crate::store::{Key, KeysTransition, Store, Transition};
use crate::{Error, StoreError};

/// State in Redis, reached over the Upstash REST protocol (Upstash itself,
/// or `edgelimit-gateway` in front of your own Redis). Each decision is one
/// atomic Lua script, called by EVALSHA; on NOSCRIPT the script's code is
/// sent once with EVAL, which caches it.
///
/// Blocking: a call waits for the HTTP round trip. On a multi-threaded tokio
/// runtime's worker it blocks through `block_in_place` (the worker's other
/// tasks move to another thread first), and in a current-thread runtime's
/// task, where blocking would stall every task, it fails with
/// [`StoreError::BlockingInAsyncRuntime`]: use
/// [`AsyncRedisRestStore`](super::AsyncRedisRestStore) in async code. Clones
/// share one connection pool and one deny cache
/// ([`RestOptions::deny_cache`]).
#[derive(Clone)]
pub struct RedisRestStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping (see `Drop for Inner`).
    http: Option<reqwest::blocking::Client>,
    url: String,
    token: String,
    options: RestOptions,
    deny: Option<DenyCache>,
    /// How `limit_many`'s script calls travel (see [`Grouping`]).
    grouping: GroupingState,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The client owns a runtime, which must not be dropped on a thread
        // that runs async tasks: hand it to a thread of its own then.
        if let Some(http) = self.http.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(http));
            }
        }
    }
}

impl std::fmt::Debug for RedisRestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("RedisRestStore")
            .field("url", &self.inner.url)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl RedisRestStore {
    /// A store at `url` (e.g. `https://…upstash.io` or
    /// `http://127.0.0.1:8079`) authenticating with `token`.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Result<Self, StoreError> {
        Self::with_options(url, token, RestOptions::default())
    }

    /// A store at `UPSTASH_REDIS_REST_URL` with `UPSTASH_REDIS_REST_TOKEN`
    /// (else Vercel KV's `KV_REST_API_URL` and `KV_REST_API_TOKEN`), as
    /// Upstash's console and `vercel env pull` write them.
    pub fn from_env() -> Result<Self, StoreError> {
        let (url, token) = endpoint::from_env()?;
        Self::new(url, token)
    }

    /// Like [`new`](Self::new), with timeouts, retries, time source and
    /// deny cache.
    pub fn with_options(
        url: impl Into<String>,
        token: impl Into<String>,
        options: RestOptions,
    ) -> Result<Self, StoreError> {
        let http = blocking(|| {
            reqwest::blocking::Client::builder()
                .timeout(options.timeout)
                .build()
        })?
        .map_err(|e| StoreError::Unreachable(format!("HTTP client: {e}")))?;
        let url = endpoint::checked_url(url.into())?;
        Ok(Self {
            inner: Arc::new(Inner {
                http: Some(http),
                url,
                token: token.into(),
                deny: DenyCache::new(&options),
                grouping: GroupingState::new(Grouping::Script),
                options,
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &RestOptions {
        &self.inner.options
    }

    /// One HTTP round trip to `path` (`""` or `"/pipeline"`).
    fn post_to(&self, path: &str, body: String) -> Result<(u16, String), StoreError> {
        blocking(|| self.post_now(path, body))?
    }

    fn post_now(&self, path: &str, body: String) -> Result<(u16, String), StoreError> {
        let inner = &*self.inner;
        let Some(http) = &inner.http else {
            return Err(StoreError::Unavailable("the store is being dropped".into()));
        };
        http.post(format!("{}{path}", inner.url))
            .bearer_auth(&inner.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .map_err(|error| self.transport_error(&error))
            .and_then(|response| {
                let status = response.status().as_u16();
                if body::declared_too_large(response.content_length()) {
                    return Err(body::too_large());
                }
                // The reply read up to one byte past the cap, within the
                // client's timeout (which covers the body).
                let mut bytes = Vec::new();
                let limit = body::MAX_REPLY_BYTES as u64 + 1;
                std::io::Read::read_to_end(&mut std::io::Read::take(response, limit), &mut bytes)
                    .map_err(|error| self.read_error(&error))?;
                if bytes.len() > body::MAX_REPLY_BYTES {
                    return Err(body::too_large());
                }
                Ok((status, body::text(bytes)))
            })
    }

    fn post(&self, body: String) -> Reply {
        match self.post_to("", body) {
            Ok((status, text)) => protocol::read_reply(status, &text),
            Err(error) => Reply::Failed(error),
        }
    }

    /// A body that could not be read to its end.
    fn read_error(&self, error: &std::io::Error) -> StoreError {
        let inner = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<reqwest::Error>());
        match inner {
            Some(error) => self.transport_error(error),
            None if error.kind() == std::io::ErrorKind::TimedOut => StoreError::Timeout {
                ms: self.inner.options.timeout.as_millis() as u64,
            },
            None => StoreError::Unavailable(error.to_string()),
        }
    }

    fn transport_error(&self, error: &reqwest::Error) -> StoreError {
        if error.is_timeout() {
            StoreError::Timeout {
                ms: self.inner.options.timeout.as_millis() as u64,
            }
        } else if error.is_connect() {
            StoreError::Unreachable(error.to_string())
        } else {
            StoreError::Unavailable(error.to_string())
        }
    }

    /// Sends `request` until it has an answer, retrying as the options and
    /// its idempotence allow.
    fn send(&self, request: Request) -> Result<Json, StoreError> {
        let mut exchange = Exchange::new(request, random::next_u64());
        loop {
            let reply = self.post(exchange.part().body());
            match exchange.next(reply, &self.inner.options) {
                Step::Done(json) => return Ok(json),
                Step::SendAgain => {}
                Step::Retry(delay) => std::thread::sleep(delay),
                Step::Failed(error) => return Err(error),
            }
        }
    }

    fn prepare<T: Transition>(
        &self,
        key: Key<'_>,
        now_ms: u64,
        transition: &T,
    ) -> Result<ScriptCall, Error> {
        ScriptCall::prepare(key, now_ms, transition, self.inner.options.time)
    }

    /// Sends `calls` together until each has an answer (see [`Exchanges`]).
    fn run_batch(&self, calls: Vec<ScriptCall>) -> Vec<Result<Json, StoreError>> {
        let exchanges = calls
            .into_iter()
            .map(|call| Exchange::new(Request::Script(Arc::new(call)), random::next_u64()))
            .collect();
        let mut exchanges = Exchanges::new(exchanges);
        loop {
            let mut batch = Batch::new(self.inner.grouping.get());
            if !exchanges.request(&mut batch) {
                return exchanges.answers();
            }
            let outcome = self.post_to(batch.path(), batch.body());
            let replies = self.inner.grouping.replies(&batch, &outcome);
            let delay = exchanges.receive(replies, &self.inner.options);
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
        }
    }
}

impl Store for RedisRestStore {
    fn transact<T: Transition>(
        &self,
        key: Key<'_>,
        now_ms: u64,
        transition: &T,
    ) -> Result<T::Output, Error> {
        let cache = self.inner.deny.as_ref();
        if let Some(denied) = cache.and_then(|c| c.answer(key, now_ms, transition)) {
            return Ok(denied);
        }
        let call = self.prepare(key, now_ms, transition)?;
        let json = self.send(Request::Script(Arc::new(call)))?;
        conclude(&json, key, now_ms, transition, cache)
    }

    fn transact_keys<T: KeysTransition>(
        &self,
        keys: &[Key<'_>],
        now_ms: u64,
        transition: &T,
    ) -> Result<T::Output, Error> {
        let call = ScriptCall::prepare_keys(keys, now_ms, transition, self.inner.options.time)?;
        let json = self.send(Request::Script(Arc::new(call)))?;
        conclude_keys(&json, transition)
    }

    fn remove(&self, key: Key<'_>) -> Result<(), Error> {
        if let Some(cache) = &self.inner.deny {
            cache.forget(key);
        }
        let key = redis_key(key);
        self.send(Request::Command(protocol::command_body([
            "DEL",
            key.as_str(),
        ])))?;
        Ok(())
    }

    fn transact_many<T: Transition>(
        &self,
        calls: &[(Key<'_>, T)],
        now_ms: u64,
    ) -> Vec<Result<T::Output, Error>> {
        let cache = self.inner.deny.as_ref();
        // Each call is answered by the deny cache, fails before sending, or
        // goes out in the one pipeline.
        let mut answers: Vec<Option<Result<T::Output, Error>>> = Vec::with_capacity(calls.len());
        let mut ready = Vec::new();
        for (key, transition) in calls {
            let local = cache.and_then(|c| c.answer(*key, now_ms, transition));
            answers.push(match local {
                Some(denied) => Some(Ok(denied)),
                None => match self.prepare(*key, now_ms, transition) {
                    Ok(call) => {
                        ready.push(call);
                        None
                    }
                    Err(error) => Some(Err(error)),
                },
            });
        }
        let mut replies = self.run_batch(ready).into_iter();
        answers
            .into_iter()
            .zip(calls)
            .map(|(answer, (key, transition))| {
                answer.unwrap_or_else(|| {
                    let json = replies.next().unwrap_or_else(|| {
                        Err(StoreError::MalformedReply("pipeline reply missing".into()))
                    })?;
                    conclude(&json, *key, now_ms, transition, cache)
                })
            })
            .collect()
    }
}
