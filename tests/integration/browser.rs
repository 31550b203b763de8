//! End to end in a real headless browser: Debian's `chromium`, driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`: JSON messages ending in NUL on fds 3 and 4),
//! so no WebDriver and no websocket client are needed. The test opens the link from the
//! outbox email, types the password twice, submits with a mouse click, sees the result page,
//! checks the database, then opens the same link again and sees the 410 page.
//!
//! Without chromium it prints one line saying it was skipped (`.ci/run` installs it). With
//! `PWRESET_SCREENSHOTS=DIR` it also writes the screenshots docs/serve.md shows.

use crate::harness::Env;
use crate::serve::{EMAIL, GOOD, Server};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

fn chromium() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("PWRESET_CHROMIUM") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// A headless chromium and one page in it.
struct Browser {
    child: Child,
    to: ChildStdin,
    from: Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(exe: &std::path::Path) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log");
        // The shell hands our pipes to chromium as fds 3 (commands in) and 4 (answers out).
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>/dev/null")
            .arg(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--disable-extensions",
                "--password-store=basic",
                "--window-size=800,800",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start chromium");
        let to = child.stdin.take().expect("stdin");
        let out = child.stdout.take().expect("stdout");
        let (tx, from) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            loop {
                let mut buf = Vec::new();
                match r.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let mut b = Browser {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = b.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        b.page("Page.enable", json!({}));
        b
    }

    /// Send a command and wait for its answer, skipping events.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        self.to.flush().expect("flush");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) if v["id"] == json!(id) => {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => panic!("chromium did not answer {method}"),
                Err(RecvTimeoutError::Disconnected) => panic!("chromium went away during {method}"),
            }
        }
    }

    fn page(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.call(Some(&s), method, params)
    }

    fn eval(&mut self, js: &str) -> Value {
        let r = self.page(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Wait until `js` is true on the page.
    fn wait_for(&mut self, js: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.eval(js) != json!(true) {
            if Instant::now() > deadline {
                let html = self.eval("document.documentElement.outerHTML");
                panic!("page never got to {js}: {html}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn open(&mut self, url: &str) {
        self.page("Page.navigate", json!({"url": url}));
        let want = serde_json::to_string(url).expect("json");
        self.wait_for(&format!(
            "document.readyState === 'complete' && location.href === {want}"
        ));
    }

    /// The HTTP status of the page's document.
    fn status(&mut self) -> u64 {
        self.eval("performance.getEntriesByType('navigation')[0].responseStatus")
            .as_u64()
            .expect("a status")
    }

    fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!("document.getElementById('{id}').focus()"));
        self.page("Input.insertText", json!({"text": text}));
    }

    /// Click the middle of the first element matching `selector`, as a mouse would.
    fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).expect("json");
        let rect = self.eval(&format!(
            "(() => {{ const r = document.querySelector({sel}).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = (rect[0].as_f64().expect("x"), rect[1].as_f64().expect("y"));
        for kind in ["mousePressed", "mouseReleased"] {
            self.page(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine;
        let shot = self.page("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("png data"))
            .expect("base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reset link in the newest mail of the outbox (quoted-printable decoded).
fn link_from_outbox(env: &Env) -> String {
    let mail = env.messages().pop().expect("a mail in the outbox");
    let text = crate::harness::decode(&mail);
    let start = text.find("http://").expect("a link in the mail");
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .next()
        .expect("link")
        .replace("&amp;", "&")
}

#[test]
fn browser_resets_a_password_end_to_end() {
    let Some(exe) = chromium() else {
        println!("browser test skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let started = Instant::now();
    let s = Server::start("");
    s.env.cmd().args(["request", EMAIL]).assert().success();
    let link = link_from_outbox(&s.env);
    assert!(
        link.starts_with(&s.url("/reset_password?token=pwr_")),
        "{link}"
    );
    let shots = std::env::var_os("PWRESET_SCREENSHOTS").map(std::path::PathBuf::from);

    let mut b = Browser::start(&exe);
    b.open(&link);
    assert_eq!(b.status(), 200);
    assert_eq!(
        b.eval("document.querySelector('label[for=password]') !== null && document.styleSheets.length === 1"),
        json!(true),
        "labelled fields and the stylesheet (allowed by the CSP)"
    );
    if let Some(dir) = &shots {
        b.screenshot(&dir.join("serve-form.png"));
    }
    b.type_into("password", GOOD);
    b.type_into("confirm", GOOD);
    b.click("button[type=submit]");
    b.wait_for("document.readyState === 'complete' && document.title.startsWith('Your password was changed')");
    assert_eq!(b.status(), 200);
    assert!(
        !b.eval("location.href")
            .as_str()
            .expect("href")
            .contains("token="),
        "the token has left the address bar"
    );
    let hash = s
        .env
        .text("SELECT password_hash FROM users WHERE email = 'alice@example.com'")
        .expect("a password is set");
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    b.open(&link);
    assert_eq!(b.status(), 410);
    assert_eq!(
        b.eval("document.querySelector('h1').textContent"),
        json!("This link was already used")
    );
    if let Some(dir) = &shots {
        b.screenshot(&dir.join("serve-used.png"));
    }
    println!("browser test took {:.1}s", started.elapsed().as_secs_f64());
}
