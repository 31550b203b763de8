//! What several `serve` processes on one database (a load balancer in front) share: failed
//! tries per link and forgot-page requests per address are counted in the database, so two
//! instances allow exactly what one would; and the CSRF key is the database's, so a form
//! fetched from one instance may be posted to another. Runs on every backend
//! (PWRESET_TEST_BACKEND); the issue asks for PostgreSQL.

use crate::serve::{GOOD, Server, reset_fields, verify_status};

/// Without sticky sessions: the forgot form and the reset form fetched from instance A are
/// taken by instance B, both signed with the one key the database holds. Deleting that key
/// and starting an instance rotates it: forms signed with the old one are refused there.
#[test]
fn serve_shared_a_form_from_one_instance_is_taken_by_another() {
    let a = Server::start("[serve]\nforgot_per_address = 100\n");
    let b = a.another();
    let keys = |env: &crate::harness::Env| {
        env.rows("SELECT name, length(value) FROM pwreset_secrets")
            .into_iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r[0].as_deref().unwrap_or(""),
                    r[1].as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
    };

    // The forgot form: GET on A, POST on B, with A's cookie and value.
    let page = a.get("/forgot_password");
    let cookie = page.cookie();
    let csrf = page.field("csrf");
    let c = [("Cookie", cookie.as_str())];
    let r = b.post(
        "/forgot_password",
        &c,
        &[("email", "nobody@example.com"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 200, "B refused A's forgot form: {}", r.body);
    assert_eq!(
        keys(&a.env),
        ["csrf:32"],
        "one key, made by the first instance"
    );
    // The value is still the visitor's own: another visitor's cookie is refused on B too.
    let other = a.get("/forgot_password").cookie();
    let r = b.post(
        "/forgot_password",
        &[("Cookie", other.as_str())],
        &[("email", "nobody@example.com"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // The reset form: GET on A, POST on B, which sets the password.
    let (path, token) = a.link();
    let csrf = a.get(&path).field("csrf");
    let r = b.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 303, "B refused A's reset form: {}", r.body);
    assert_eq!(verify_status(&a.env, &token), "used");

    // purge-expired leaves the key alone.
    a.env.cmd().arg("purge-expired").assert().success();
    assert_eq!(keys(&a.env), ["csrf:32"]);

    // Rotation: the row deleted, the instances that start next (two at once) make one new
    // key between them, and a form signed with the old one is refused there once.
    let (path, token) = a.link();
    let old = a.get(&path).field("csrf");
    a.env
        .exec("DELETE FROM pwreset_secrets WHERE name = 'csrf'");
    let mut next = a.others(2);
    let (c2, c3) = (next.remove(0), next.remove(0));
    assert_eq!(keys(&a.env), ["csrf:32"]);
    let page = c3.get("/forgot_password", &[]);
    let r = c2.post(
        "/forgot_password",
        &[("Cookie", page.cookie().as_str())],
        &[
            ("email", "nobody@example.com"),
            ("csrf", &page.field("csrf")),
        ],
    );
    assert_eq!(r.status, 200, "the two new instances disagree: {}", r.body);
    let r = c2.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &old, GOOD, GOOD),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let fresh = c2.get(&path, &[]).field("csrf");
    let next = "another horse battery staple";
    let r = c2.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &fresh, next, next),
    );
    assert_eq!(r.status, 303, "{}", r.body);
}

/// With token_attempts = 3, three failed tries spread over two instances use the link's
/// allowance: the fourth try gets 429 on either, and a 429 changes nothing.
#[test]
fn serve_shared_failed_tries_per_link_count_across_instances() {
    let a = Server::start("[serve]\ntoken_attempts = 3\nip_attempts = 100\n");
    let b = a.another();
    let (path, token) = a.link();
    // Each instance's own form, as a visitor sticking to one would have (either value is
    // good on both).
    let csrf_a = a.get(&path).field("csrf");
    let csrf_b = b.get(&path, &[]).field("csrf");
    let try_a =
        |csrf: &str, pw: &str| a.post("/reset_password", &[], &reset_fields(&token, csrf, pw, pw));
    let try_b =
        |csrf: &str, pw: &str| b.post("/reset_password", &[], &reset_fields(&token, csrf, pw, pw));
    // Three failed tries: A, B, A.
    assert_eq!(try_a(&csrf_a, "short").status, 422);
    assert_eq!(try_b(&csrf_b, "short").status, 422);
    assert_eq!(try_a(&csrf_a, "short").status, 422);
    // The fourth, on B (which saw only one of them), is over the link's limit.
    let r = try_b(&csrf_b, GOOD);
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
    assert_eq!(try_a(&csrf_a, GOOD).status, 429);
    assert_eq!(
        verify_status(&a.env, &token),
        "valid",
        "429 changes nothing"
    );
    // Another link of the same user has an allowance of its own.
    let (path2, token2) = a.link();
    let csrf2 = b.get(&path2, &[]).field("csrf");
    let r = b.post(
        "/reset_password",
        &[],
        &reset_fields(&token2, &csrf2, GOOD, GOOD),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    // The database holds hashes, not token ids or addresses.
    let rows = a.env.rows("SELECT hits FROM pwreset_limits");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0].as_deref(), Some("3"));
}

/// With forgot_per_address = 3, three requests for one address spread over two instances use
/// its allowance: the fourth gets 429 on either; another address is not held back.
#[test]
fn serve_shared_forgot_requests_per_address_count_across_instances() {
    let a = Server::start("[serve]\nforgot_per_address = 3\nforgot_per_ip = 100\n");
    let b = a.another();
    let page = a.get("/forgot_password");
    let cookie = page.cookie();
    let csrf_a = page.field("csrf");
    let c = [("Cookie", cookie.as_str())];
    // The same visitor's form from B, bound to the same cookie.
    let csrf_b = b.get("/forgot_password", &c).field("csrf");
    let who = "nobody@example.com";
    let hits = |env: &crate::harness::Env| {
        env.rows("SELECT hits FROM pwreset_limits ORDER BY hits")
            .into_iter()
            .map(|r| r[0].clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let ask_a = |email: &str| {
        a.post(
            "/forgot_password",
            &c,
            &[("email", email), ("csrf", &csrf_a)],
        )
    };
    let ask_b = |email: &str| {
        b.post(
            "/forgot_password",
            &c,
            &[("email", email), ("csrf", &csrf_b)],
        )
    };
    assert_eq!(ask_a(who).status, 200);
    assert_eq!(ask_b(who).status, 200);
    // The same address in another case and with spaces around it is the same address.
    assert_eq!(ask_a(" Nobody@Example.com ").status, 200);
    let r = ask_b(who);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(ask_a(who).status, 429);
    assert_eq!(ask_b("somebody@example.com").status, 200);
    assert_eq!(hits(&a.env), ["1", "5"]);
    // Once the window is over the address may ask again, counted from one; purge-expired
    // deletes the windows that are over and keeps the live one.
    a.env
        .exec("UPDATE pwreset_limits SET expires_at = expires_at - 86400");
    assert_eq!(ask_b(who).status, 200);
    assert_eq!(hits(&a.env), ["1", "1"]);
    a.env.cmd().arg("purge-expired").assert().success();
    assert_eq!(hits(&a.env), ["1"]);
    assert_eq!(ask_a(who).status, 200);
    assert_eq!(hits(&a.env), ["2"]);
}

/// A stored key too short to be the HMAC's full strength (put there by hand) stops serve at
/// start, saying how to replace it and without showing it.
#[test]
fn serve_shared_a_short_stored_key_stops_serve() {
    let env = crate::harness::Env::new();
    env.init();
    env.exec(&format!(
        "INSERT INTO pwreset_secrets (name, value, created_at) VALUES ('csrf', {}, 0)",
        env.blob(b"0123456789abcdef")
    ));
    let a = env
        .cmd()
        .arg("serve")
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(78);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("16 bytes") && err.contains("DELETE FROM pwreset_secrets WHERE name = 'csrf'"),
        "{err}"
    );
    assert!(!err.contains("0123456789abcdef"), "{err}");
}
