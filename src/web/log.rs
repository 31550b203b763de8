//! serve's log on stderr: one line per request, per connection it cut off, per warning; as
//! text, or as one JSON object a line (`--log-format json`, `[serve] log_format`). Never a
//! token or a password: the path is logged without its query, and a path segment that reads
//! as a token is replaced.

use super::Peer;
use crate::config::LogFormat;
use crate::token::Token;
use crate::ui;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub format: LogFormat,
    pub verbosity: ui::Verbosity,
}

/// One request, as logged.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub client: IpAddr,
    pub outcome: &'a str,
}

impl Log {
    fn shown(&self, at: ui::Verbosity) -> bool {
        self.verbosity >= at
    }

    fn json(&self, mut v: serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "time".into(),
                serde_json::Value::String(ui::rfc3339(ui::now())),
            );
        }
        eprintln!("{v}");
    }

    pub fn request(&self, r: &Request<'_>) {
        if !self.shown(ui::Verbosity::Normal) {
            return;
        }
        let path = loggable_path(r.path);
        let ms = r.duration.as_secs_f64() * 1000.0;
        match self.format {
            LogFormat::Text => eprintln!(
                "{} {} {} {} {} {}ms {}",
                ui::rfc3339(ui::now()),
                r.client,
                ui::escape(r.method),
                ui::escape(&path),
                r.status,
                r.duration.as_millis(),
                r.outcome
            ),
            LogFormat::Json => self.json(serde_json::json!({
                "method": r.method,
                "path": path,
                "status": r.status,
                "duration_ms": (ms * 1000.0).round() / 1000.0,
                "client": r.client.to_string(),
                "outcome": r.outcome,
            })),
        }
    }

    /// A connection the server closed. Idle keep-alive ends and room made at the cap are
    /// routine: logged only with -v.
    pub fn closed(&self, peer: Peer, why: super::conn::Closed) {
        use super::conn::Closed;
        // A reader closed at the cap is not routine: the cap is full of slow clients.
        let routine = matches!(why, Closed::Idle | Closed::Evicted);
        let at = if routine {
            ui::Verbosity::Verbose
        } else {
            ui::Verbosity::Normal
        };
        if !self.shown(at) {
            return;
        }
        match self.format {
            LogFormat::Text => {
                eprintln!("{} {peer} closed: {}", ui::rfc3339(ui::now()), why.as_str())
            }
            LogFormat::Json => self.json(serde_json::json!({
                "event": "closed",
                "client": peer.to_string(),
                "outcome": why.as_str(),
            })),
        }
    }

    /// A message about the server itself (`level`: "info", "warning", "error"). In text it
    /// reads as before: `warning: ...`, `error: ...`, `pwreset serve: ...`.
    pub fn say(&self, level: &str, message: &str) {
        let at = if level == "info" {
            ui::Verbosity::Normal
        } else {
            ui::Verbosity::Quiet
        };
        if !self.shown(at) {
            return;
        }
        match self.format {
            LogFormat::Text => match level {
                "info" => eprintln!("pwreset serve: {message}"),
                _ => eprintln!("{level}: {message}"),
            },
            LogFormat::Json => self.json(serde_json::json!({
                "level": level,
                "message": message,
            })),
        }
    }
}

/// The path as logged: at most 200 characters, and no segment that is a token (a link
/// mangled into a path must not put its token in the log).
pub fn loggable_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        if seg.len() >= 16 && Token::parse_input(seg).is_ok() {
            out.push("(token)");
        } else {
            out.push(seg);
        }
    }
    let joined = out.join("/");
    match joined.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &joined[..i]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_in_a_path_is_not_logged() {
        let token = Token::generate().expect("a token");
        let text = token.text();
        let path = format!("/reset_password/{}", text.as_str());
        let logged = loggable_path(&path);
        assert_eq!(logged, "/reset_password/(token)");
        assert_eq!(loggable_path("/healthz"), "/healthz");
        assert!(loggable_path(&"a".repeat(500)).len() < 210);
    }
}
