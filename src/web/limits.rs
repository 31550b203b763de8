//! In-memory limits: attempts per key in a fixed window, and the stateless CSRF token.
//!
//! The limiter is per process; the CSRF key is the database's, shared by every `serve` on it.
//! The limiter's table is bounded: when it is full, the entry that matters least is forgotten
//! (the oldest of those not holding anyone back), so a flood of new addresses can neither grow
//! memory nor lock real clients out; an entry at its limit is passed over a few times before
//! it can go.

use ring::hmac;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries at their limit passed over before the oldest entry goes anyway: a table full of
/// blocked keys still takes new ones.
const SPARE: usize = 16;

/// The key a client address counts under: IPv6 by its /64 (one subscriber's network, which
/// hands out any number of addresses), IPv4 by itself.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

struct Entry {
    hits: u32,
    start: Instant,
}

struct Table<K> {
    map: HashMap<K, Entry>,
    /// Keys by the start of their window, oldest first; an item whose start no longer
    /// matches its entry is stale and skipped.
    order: VecDeque<(K, Instant)>,
}

/// At most `max` hits per key per `window`, for at most `entries` keys at a time.
pub struct Limiter<K> {
    max: u32,
    window: Duration,
    entries: usize,
    table: Mutex<Table<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(max: u32, window: Duration, entries: usize) -> Limiter<K> {
        Limiter {
            max,
            window,
            entries: entries.max(1),
            table: Mutex::new(Table {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
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

    /// Keys held now.
    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.table.lock().map_or(0, |t| t.map.len())
    }

    fn update(&self, key: &K, count: bool) -> Result<(), Duration> {
        let now = Instant::now();
        // A poisoned table holds plain counts; keep counting with it.
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let t = &mut *guard;
        let live = |start: Instant| now.duration_since(start) < self.window;
        if let Some(e) = t.map.get_mut(key)
            && live(e.start)
        {
            if e.hits >= self.max {
                return Err(self.window.saturating_sub(now.duration_since(e.start)));
            }
            if count {
                e.hits += 1;
            }
            return Ok(());
        }
        if !count {
            return Ok(());
        }
        self.forget_expired(t, now);
        if !t.map.contains_key(key) && t.map.len() >= self.entries {
            self.make_room(t, now);
        }
        t.map.insert(
            key.clone(),
            Entry {
                hits: 1,
                start: now,
            },
        );
        t.order.push_back((key.clone(), now));
        if t.order.len() > 2 * self.entries + SPARE {
            let map = &t.map;
            t.order
                .retain(|(k, at)| map.get(k).is_some_and(|e| e.start == *at));
        }
        Ok(())
    }

    /// Drop a few entries whose window is over, from the front: memory comes back as the
    /// flood ages, a few at a time so no single request pays for it all.
    fn forget_expired(&self, t: &mut Table<K>, now: Instant) {
        for _ in 0..8 {
            let Some((k, at)) = t.order.front() else {
                return;
            };
            let current = t.map.get(k).is_some_and(|e| e.start == *at);
            if current && now.duration_since(*at) < self.window {
                return;
            }
            if let Some((k, _)) = t.order.pop_front()
                && current
            {
                t.map.remove(&k);
            }
        }
    }

    /// Forget one entry: the oldest that holds nobody back, or after [`SPARE`] of those that
    /// do, the oldest of all.
    fn make_room(&self, t: &mut Table<K>, now: Instant) {
        let mut spared = 0;
        while let Some((k, at)) = t.order.pop_front() {
            let Some(e) = t.map.get(&k) else { continue };
            if e.start != at {
                continue;
            }
            let blocking = now.duration_since(e.start) < self.window && e.hits >= self.max;
            if blocking && spared < SPARE {
                t.order.push_back((k, at));
                spared += 1;
                continue;
            }
            t.map.remove(&k);
            return;
        }
    }
}

/// The visitor cookie the forgot form's CSRF value is bound to.
pub const VISITOR_COOKIE: &str = "pwreset_visitor";

/// A new visitor cookie value: 128 random bits, URL-safe base64.
pub fn new_visitor() -> anyhow::Result<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// The visitor cookie in a request's Cookie headers, if it is one this server could have set.
pub fn visitor_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == VISITOR_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| {
            v.len() == 22
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// How long a form stays good to submit.
pub const CSRF_MAX_AGE: i64 = 24 * 3600;

/// The name of the CSRF key among the database's shared secrets (`pwreset_secrets`).
pub const CSRF_SECRET: &str = "csrf";

/// The shortest stored key taken: HMAC-SHA-256's full strength.
pub const CSRF_KEY_LEN: usize = 32;

/// CSRF tokens without server state: `<unix time>.<HMAC(key, purpose, binding, time)>`, with a
/// key every `serve` on the database shares ([`CSRF_SECRET`]), so a form fetched from one
/// instance may be posted to another, and a form open across a restart stays good.
pub struct Csrf {
    key: hmac::Key,
}

impl Csrf {
    /// `key` is at least [`CSRF_KEY_LEN`] bytes (the caller checks, to say where it came from).
    pub fn from_key(key: &[u8]) -> Csrf {
        Csrf {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// A key for a database that has none yet.
    pub fn fresh_key() -> anyhow::Result<zeroize::Zeroizing<[u8; CSRF_KEY_LEN]>> {
        use ring::rand::SecureRandom;
        let mut key = zeroize::Zeroizing::new([0u8; CSRF_KEY_LEN]);
        ring::rand::SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
        Ok(key)
    }

    fn message(purpose: &str, binding: &[u8], at: i64) -> Vec<u8> {
        let mut m = Vec::with_capacity(purpose.len() + binding.len() + 17);
        m.extend_from_slice(purpose.as_bytes());
        m.push(0);
        m.extend_from_slice(&(binding.len() as u64).to_be_bytes());
        m.extend_from_slice(binding);
        m.extend_from_slice(&at.to_be_bytes());
        m
    }

    /// A token for a form of `purpose` bound to `binding`: the reset token's id for the reset
    /// form, the visitor's cookie for the forgot form.
    pub fn issue(&self, purpose: &str, binding: &[u8], now: i64) -> String {
        use base64::Engine;
        let tag = hmac::sign(&self.key, &Csrf::message(purpose, binding, now));
        format!(
            "{now}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Whether `value` was issued with this key for this form, less than a day ago.
    pub fn check(&self, purpose: &str, binding: &[u8], value: &str, now: i64) -> bool {
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
        let l = Limiter::new(2, Duration::from_secs(60), 100);
        assert!(l.hit(&1).is_ok());
        assert!(l.check(&1).is_ok());
        assert!(l.hit(&1).is_ok());
        let wait = l.hit(&1).expect_err("third hit is over the limit");
        assert!(wait <= Duration::from_secs(60));
        assert!(l.check(&1).is_err());
        assert!(l.hit(&2).is_ok());
    }

    #[test]
    fn a_flood_of_new_keys_neither_grows_the_table_nor_locks_anyone_out() {
        let l = Limiter::new(3, Duration::from_secs(900), 100_000);
        // Someone at their limit before the flood.
        let blocked = IpAddr::from([198, 51, 100, 1]);
        for _ in 0..3 {
            assert!(l.hit(&blocked).is_ok());
        }
        assert!(l.hit(&blocked).is_err());
        for i in 0..130_000u32 {
            let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            assert!(l.hit(&ip).is_ok(), "flood address {i} refused");
        }
        assert!(l.keys() <= 100_000, "{}", l.keys());
        let fresh = IpAddr::from([203, 0, 113, 7]);
        assert!(l.hit(&fresh).is_ok(), "a new client after the flood");
        assert!(
            l.check(&blocked).is_err(),
            "the one at its limit is the last to be forgotten"
        );
    }

    #[test]
    fn a_table_full_of_blocked_keys_still_takes_new_ones() {
        let l = Limiter::new(1, Duration::from_secs(900), 50);
        for i in 0..50u32 {
            assert!(l.hit(&i).is_ok());
        }
        assert!(l.hit(&1000).is_ok());
        assert_eq!(l.keys(), 50);
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(client_key(v4), v4);
    }

    #[test]
    fn csrf_binds_purpose_token_and_time() {
        let c = Csrf::from_key(&Csrf::fresh_key().expect("rng")[..]);
        let v = c.issue("reset", b"7", 1000);
        assert!(c.check("reset", b"7", &v, 1000));
        assert!(!c.check("reset", b"8", &v, 1000));
        assert!(!c.check("forgot", b"7", &v, 1000));
        assert!(!c.check("reset", b"7", &v, 1000 + CSRF_MAX_AGE + 1));
        assert!(!c.check("reset", b"7", "", 1000));
        assert!(!c.check("reset", b"7", "1000.AAAA", 1000));
        let other = Csrf::from_key(&Csrf::fresh_key().expect("rng")[..]);
        assert!(!other.check("reset", b"7", &v, 1000));
        // Another process with the same key (read from the database) takes it.
        let same = Csrf::from_key(&[7u8; CSRF_KEY_LEN]);
        let v = same.issue("reset", b"7", 1000);
        assert!(Csrf::from_key(&[7u8; CSRF_KEY_LEN]).check("reset", b"7", &v, 1000));
        // The forgot form's value is the visitor's: another cookie cannot use it.
        let mine = c.issue("forgot", b"visitor-a", 1000);
        assert!(c.check("forgot", b"visitor-a", &mine, 1000));
        assert!(!c.check("forgot", b"visitor-b", &mine, 1000));
        assert!(!c.check("forgot", b"", &mine, 1000));
    }
}
