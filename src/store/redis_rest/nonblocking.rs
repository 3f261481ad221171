//! The native async REST store: reqwest's async client on the same sans-IO
//! exchange as every other transport, with concurrent calls batched.

use std::sync::Arc;

use super::batcher::{Batcher, Post};
use super::body;
use super::call::{conclude, conclude_keys, redis_key, ScriptCall};
use super::deny_cache::DenyCache;
use super::endpoint;
use super::exchange::{Exchange, Part, Request, Step};
use super::json::Json;
use super::options::{Batching, RestOptions};
use super::protocol;
use crate::random;
use crate::store::{AsyncStore, Key, KeysTransition, Transition};
use crate::{Error, StoreError};

/// State in Redis over the Upstash REST protocol, for async code (tokio):
/// the same scripts, retries, failure handling and deny cache as
/// [`RedisRestStore`](super::RedisRestStore), without blocking a thread.
///
/// Concurrent calls share HTTP requests ([`Batching`]): while the limit of
/// requests is in flight, arriving calls wait and then go out together as
/// one `/pipeline` request. Each keeps its own answer, error, NOSCRIPT
/// recovery and retries. Clones share the connection pool, the batches and
/// the deny cache.
///
/// Needs a tokio runtime (it spawns the task sending each batch); outside
/// one, calls fail with [`StoreError::NoAsyncRuntime`].
///
/// ```no_run
/// use edgelimit::store::AsyncRedisRestStore;
/// use edgelimit::{Limiter, TokenBucket};
///
/// # async fn handler() -> Result<(), Box<dyn std::error::Error>> {
/// let store = AsyncRedisRestStore::new("http://127.0.0.1:8079", "token")?;
/// let limiter = Limiter::new(TokenBucket::new(10, 1, "1 s")?).with_store(store);
/// let decision = limiter.limit_async("user:42").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncRedisRestStore {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<Transport>,
    options: RestOptions,
    /// `None`: one request per call.
    batcher: Option<Arc<Batcher>>,
    deny: Option<DenyCache>,
}

/// Where requests go.
struct Transport {
    http: reqwest::Client,
    url: String,
    token: String,
    timeout_ms: u64,
}

impl std::fmt::Debug for AsyncRedisRestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("AsyncRedisRestStore")
            .field("url", &self.inner.transport.url)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl AsyncRedisRestStore {
    /// A store at `url` authenticating with `token`, with default options
    /// and batching.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Result<Self, StoreError> {
        Self::with_options(url, token, RestOptions::default(), Batching::default())
    }

    /// A store at `UPSTASH_REDIS_REST_URL` with `UPSTASH_REDIS_REST_TOKEN`
    /// (else Vercel KV's `KV_REST_API_URL` and `KV_REST_API_TOKEN`), as
    /// Upstash's console and `vercel env pull` write them.
    pub fn from_env() -> Result<Self, StoreError> {
        let (url, token) = endpoint::from_env()?;
        Self::new(url, token)
    }

    /// Like [`new`](Self::new), with timeouts, retries, time source, deny
    /// cache and batching ([`Batching::OFF`]: one request per call).
    pub fn with_options(
        url: impl Into<String>,
        token: impl Into<String>,
        options: RestOptions,
        batching: Batching,
    ) -> Result<Self, StoreError> {
        let url = endpoint::checked_url(url.into())?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| StoreError::Unreachable(format!("HTTP client: {e}")))?;
        let transport = Transport {
            http,
            url,
            token: token.into(),
            timeout_ms: options.timeout.as_millis().try_into().unwrap_or(u64::MAX),
        };
        let batches =
            batching.max_calls > 1 || batching.max_in_flight < Batching::OFF.max_in_flight;
        Ok(Self {
            inner: Arc::new(Inner {
                transport: Arc::new(transport),
                batcher: batches.then(|| Arc::new(Batcher::new(batching))),
                deny: DenyCache::new(&options),
                options,
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &RestOptions {
        &self.inner.options
    }

    /// One part's reply, batched with others when batching is on.
    async fn exchange(&self, part: Part) -> protocol::Reply {
        let inner = &*self.inner;
        if let Some(batcher) = &inner.batcher {
            return batcher.send(&inner.transport, part).await;
        }
        match inner.transport.post("", part.body()).await {
            Ok((status, text)) => protocol::read_reply(status, &text),
            Err(error) => protocol::Reply::Failed(error),
        }
    }

    /// Sends `request` until it has an answer, retrying as the options and
    /// its idempotence allow.
    async fn send(&self, request: Request) -> Result<Json, StoreError> {
        let mut exchange = Exchange::new(request, random::next_u64());
        loop {
            let reply = self.exchange(exchange.part()).await;
            match exchange.next(reply, &self.inner.options) {
                Step::Done(json) => return Ok(json),
                Step::SendAgain => {}
                Step::Retry(delay) => tokio::time::sleep(delay).await,
                Step::Failed(error) => return Err(error),
            }
        }
    }
}

impl Post for Transport {
    async fn post(&self, path: &'static str, body: String) -> Result<(u16, String), StoreError> {
        let sent = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let mut response = sent.map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        if body::declared_too_large(response.content_length()) {
            return Err(body::too_large());
        }
        // Read up to the cap, within the client's timeout (which covers
        // the body).
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if bytes.len() + chunk.len() > body::MAX_REPLY_BYTES {
                return Err(body::too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, body::text(bytes)))
    }
}

impl Transport {
    fn transport_error(&self, error: &reqwest::Error) -> StoreError {
        if error.is_timeout() {
            StoreError::Timeout {
                ms: self.timeout_ms,
            }
        } else if error.is_connect() {
            StoreError::Unreachable(error.to_string())
        } else {
            StoreError::Unavailable(error.to_string())
        }
    }
}

/// Refuses to start outside tokio, where sending would panic.
fn needs_runtime() -> Result<(), StoreError> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| StoreError::NoAsyncRuntime)
}

impl AsyncStore for AsyncRedisRestStore {
    async fn transact_async<'a, T>(
        &'a self,
        key: Key<'a>,
        now_ms: u64,
        transition: &'a T,
    ) -> Result<T::Output, Error>
    where
        T: Transition + Sync,
        T::Output: Send,
    {
        needs_runtime()?;
        let cache = self.inner.deny.as_ref();
        if let Some(denied) = cache.and_then(|c| c.answer(key, now_ms, transition)) {
            return Ok(denied);
        }
        let call = ScriptCall::prepare(key, now_ms, transition, self.inner.options.time)?;
        let json = self.send(Request::Script(Arc::new(call))).await?;
        conclude(&json, key, now_ms, transition, cache)
    }

    async fn transact_keys_async<'a, T>(
        &'a self,
        keys: &'a [Key<'a>],
        now_ms: u64,
        transition: &'a T,
    ) -> Result<T::Output, Error>
    where
        T: KeysTransition + Sync,
        T::Output: Send,
    {
        needs_runtime()?;
        let time = self.inner.options.time;
        let call = ScriptCall::prepare_keys(keys, now_ms, transition, time)?;
        let json = self.send(Request::Script(Arc::new(call))).await?;
        conclude_keys(&json, transition)
    }

    async fn remove_async<'a>(&'a self, key: Key<'a>) -> Result<(), Error> {
        needs_runtime()?;
        if let Some(cache) = &self.inner.deny {
            cache.forget(key);
        }
        let key = redis_key(key);
        let body = protocol::command_body(["DEL", key.as_str()]);
        self.send(Request::Command(body)).await?;
        Ok(())
    }
}
