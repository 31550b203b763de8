//! Limits shared by several `serve` processes on one database (a load balancer in front):
//! failed tries per link and forgot-page requests per address are counted in the database,
//! so two instances allow exactly what one would. Runs on every backend
//! (PWRESET_TEST_BACKEND); the issue asks for PostgreSQL.

use crate::serve::{GOOD, Server, reset_fields, verify_status};

/// With token_attempts = 3, three failed tries spread over two instances use the link's
/// allowance: the fourth try gets 429 on either, and a 429 changes nothing.
#[test]
fn serve_shared_failed_tries_per_link_count_across_instances() {
    let a = Server::start("[serve]\ntoken_attempts = 3\nip_attempts = 100\n");
    let b = a.another();
    let (path, token) = a.link();
    // The CSRF key is each process's own: each instance's form carries its value.
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
    // The same visitor on B: B binds its own CSRF value to the visitor's cookie.
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
