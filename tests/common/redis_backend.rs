//! A throwaway `redis-server` with the real gateway in front of it, and REST
//! stores on that gateway: what the Redis tests decide against.

use edgelimit::store::{RedisRestStore, RestOptions, TimeSource};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;

pub struct Backend {
    /// Kept running as long as the backend; some tests talk to it directly.
    #[allow(dead_code)]
    pub redis: Redis,
    pub gateway: Gateway,
}

impl Backend {
    pub fn start() -> Self {
        let redis = Redis::start();
        let gateway = Gateway::start(redis.port);
        Self { redis, gateway }
    }

    /// A store on the gateway, its time from `time`.
    pub fn store(&self, time: TimeSource) -> RedisRestStore {
        let options = RestOptions {
            time,
            ..RestOptions::default()
        };
        RedisRestStore::with_options(self.gateway.url(), TOKEN, options).unwrap()
    }
}
