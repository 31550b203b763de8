//! In-memory limits: attempts per key in a fixed window, and the stateless CSRF token.
//!
//! Both are per process. The limiter's map is bounded: when it is full of live entries, new
//! keys are refused (429) rather than letting a flood of addresses evict the entries that hold
//! an attacker back.

use ring::hmac;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys a limiter keeps at most: a few MiB.
const MAX_KEYS: usize = 100_000;

/// At most `max` hits per key per `window`.
pub struct Limiter<K> {
    max: u32,
    window: Duration,
    map: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(max: u32, window: Duration) -> Limiter<K> {
        Limiter {
            max,
            window,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may try again; `Err(retry_after)` when it is over its limit.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.update(key, false)
    }

    /// Count one hit for `key`; `Err(retry_after)` when this hit is over the limit.
    pub fn hit(&self, key: &K) -> Result<(), Duration> {
        self.update(key, true)
    }

    fn update(&self, key: &K, count: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut map) = self.map.lock() else {
            return Err(self.window);
        };
        let live = |start: &Instant| now.duration_since(*start) < self.window;
        if let Some((n, start)) = map.get_mut(key)
            && live(start)
        {
            if *n >= self.max {
                return Err(self.window.saturating_sub(now.duration_since(*start)));
            }
            if count {
                *n += 1;
            }
            return Ok(());
        }
        if !count {
            return Ok(());
        }
        if map.len() >= MAX_KEYS {
            map.retain(|_, (_, start)| live(start));
            if map.len() >= MAX_KEYS {
                return Err(self.window);
            }
        }
        map.insert(key.clone(), (1, now));
        Ok(())
    }
}

/// How long a form stays good to submit.
pub const CSRF_MAX_AGE: i64 = 24 * 3600;

/// CSRF tokens without server state: `<unix time>.<HMAC(key, purpose, binding, time)>`, with a
/// key made at process start. A form from before a restart is refused (403) and reloaded.
pub struct Csrf {
    key: hmac::Key,
}

impl Csrf {
    pub fn new() -> anyhow::Result<Csrf> {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
        Ok(Csrf { key })
    }

    fn message(purpose: &str, binding: i64, at: i64) -> Vec<u8> {
        let mut m = Vec::with_capacity(purpose.len() + 17);
        m.extend_from_slice(purpose.as_bytes());
        m.push(0);
        m.extend_from_slice(&binding.to_be_bytes());
        m.extend_from_slice(&at.to_be_bytes());
        m
    }

    /// A token for a form of `purpose` about `binding` (the reset token's id; 0 for none).
    pub fn issue(&self, purpose: &str, binding: i64, now: i64) -> String {
        use base64::Engine;
        let tag = hmac::sign(&self.key, &Csrf::message(purpose, binding, now));
        format!(
            "{now}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Whether `value` was issued by this process for this form, less than a day ago.
    pub fn check(&self, purpose: &str, binding: i64, value: &str, now: i64) -> bool {
        use base64::Engine;
        let Some((at, tag)) = value.split_once('.') else {
            return false;
        };
        let Ok(at) = at.parse::<i64>() else {
            return false;
        };
        if at > now + 60 || now - at > CSRF_MAX_AGE {
            return false;
        }
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        hmac::verify(&self.key, &Csrf::message(purpose, binding, at), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_key_and_says_when() {
        let l = Limiter::new(2, Duration::from_secs(60));
        assert!(l.hit(&1).is_ok());
        assert!(l.check(&1).is_ok());
        assert!(l.hit(&1).is_ok());
        let wait = l.hit(&1).expect_err("third hit is over the limit");
        assert!(wait <= Duration::from_secs(60));
        assert!(l.check(&1).is_err());
        assert!(l.hit(&2).is_ok());
    }

    #[test]
    fn csrf_binds_purpose_token_and_time() {
        let c = Csrf::new().expect("rng");
        let v = c.issue("reset", 7, 1000);
        assert!(c.check("reset", 7, &v, 1000));
        assert!(!c.check("reset", 8, &v, 1000));
        assert!(!c.check("forgot", 7, &v, 1000));
        assert!(!c.check("reset", 7, &v, 1000 + CSRF_MAX_AGE + 1));
        assert!(!c.check("reset", 7, "", 1000));
        assert!(!c.check("reset", 7, "1000.AAAA", 1000));
        let other = Csrf::new().expect("rng");
        assert!(!other.check("reset", 7, &v, 1000));
    }
}
