//! The routes and their statuses. GET and HEAD only read: a mail scanner that opens the link
//! first spends, revokes and counts nothing.

use super::pages::Lang;
use super::pool::{Refused, Worker};
use super::{App, Client};
use crate::error::{Exit, exit_of, render as say};
use crate::mail::{Mailer, locale};
use crate::password::{Refusal, Secret};
use crate::request;
use crate::reset::{self, Outcome, Service};
use crate::store::{AuditOutcome, User};
use crate::token::{Digest, Status, Token};
use crate::ui;
use anyhow::Result;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use minijinja::context;
use std::sync::Arc;
use std::time::Duration;

/// Largest form accepted: two passwords of max_length (at most 4096 characters of up to 4
/// bytes, percent-encoded) fit; anything bigger is refused before it is read.
const MAX_BODY: usize = 128 * 1024;
/// What a 503 tells the client to wait, in seconds.
const RETRY_BUSY: u64 = 5;

pub(super) fn router(app: Arc<App>) -> Router {
    let mut r = Router::new()
        .route(&app.base_path, get(form).post(reset))
        .route(&app.css_path, get(css))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    if let Some(p) = &app.forgot_path {
        r = r.route(p, get(forgot_form).post(forgot));
    }
    r.fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            super::frame,
        ))
        .with_state(app)
}

// ---- responses ----

/// `res`, with what it came to for the log.
fn tag(mut res: Response, outcome: &'static str) -> Response {
    res.extensions_mut().insert(super::Outcome(outcome));
    res
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn with_retry_after(mut res: Response, wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn render(
    app: &App,
    lang: Lang,
    status: StatusCode,
    name: &str,
    vars: minijinja::Value,
) -> Response {
    match app.pages.render(lang, name, vars) {
        Ok(body) => html(status, body),
        Err(e) => internal(app, lang, &e),
    }
}

/// A page that says one thing (`message.<key>` in the catalogue: a title and a text), with a
/// link to ask for a new reset link when that helps.
fn message(app: &App, lang: Lang, status: StatusCode, key: &str, new_link: bool) -> Response {
    let text = app
        .pages
        .text(lang, &format!("message.{key}.text"))
        .to_owned();
    message_with(app, lang, status, key, text, new_link)
}

/// [`message`] with a text made by the caller (one with placeholders filled in).
fn message_with(
    app: &App,
    lang: Lang,
    status: StatusCode,
    key: &str,
    text: String,
    new_link: bool,
) -> Response {
    let link = new_link.then_some(app.forgot_path.as_deref()).flatten();
    render(
        app,
        lang,
        status,
        "message.html",
        context! {
            title => app.pages.text(lang, &format!("message.{key}.title")),
            text => text,
            link => link,
            link_text => app.pages.text(lang, "page.new_link"),
        },
    )
}

/// The page after a reset: done, and a button back to the application's sign-in page when
/// `[serve] login_url` names it.
fn changed_page(app: &App, lang: Lang) -> Response {
    render(
        app,
        lang,
        StatusCode::OK,
        "message.html",
        context! {
            title => app.pages.text(lang, "message.changed.title"),
            text => app.pages.text(lang, "message.changed.text"),
            link => app.config.serve.login_url.as_deref(),
            link_text => app.pages.text(lang, "message.changed.sign_in"),
            button => true,
        },
    )
}

/// 500: logged in full (errors never carry passwords or tokens), said plainly. Not through
/// the templates, which may be what failed.
fn internal(app: &App, lang: Lang, e: &anyhow::Error) -> Response {
    app.log.say("error", &say(e));
    let esc = crate::mail::escape_html;
    let title = esc(app.pages.text(lang, "message.internal.title"));
    let text = esc(app.pages.text(lang, "message.internal.text"));
    let code = esc(app.pages.code(lang));
    tag(
        html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "<!doctype html><html lang=\"{code}\"><title>{title}</title><h1>{title}</h1><p>{text}</p></html>"
            ),
        ),
        "error",
    )
}

/// The page for a token that cannot be used: 400, 404 or 410.
fn unusable(app: &App, lang: Lang, status: Status) -> Response {
    let (code, key) = match status {
        Status::Malformed => (StatusCode::BAD_REQUEST, "malformed"),
        Status::Unknown => (StatusCode::NOT_FOUND, "unknown"),
        Status::Expired => (StatusCode::GONE, "expired"),
        Status::Used => (StatusCode::GONE, "used"),
        Status::Revoked | Status::Valid => (StatusCode::GONE, "revoked"),
    };
    tag(message(app, lang, code, key, true), key)
}

fn busy(app: &App, lang: Lang) -> Response {
    tag(
        with_retry_after(
            message(app, lang, StatusCode::SERVICE_UNAVAILABLE, "busy", false),
            Duration::from_secs(RETRY_BUSY),
        ),
        "busy",
    )
}

fn too_many(app: &App, lang: Lang, wait: Duration) -> Response {
    let span = locale::span(app.pages.code(lang), wait.as_secs().max(1) as i64);
    let text = app
        .pages
        .fill(lang, "message.too_many.text", &[("wait", span)]);
    tag(
        with_retry_after(
            message_with(
                app,
                lang,
                StatusCode::TOO_MANY_REQUESTS,
                "too_many",
                text,
                false,
            ),
            wait,
        ),
        "rate_limited",
    )
}

fn forbidden(app: &App, lang: Lang, new_link: bool) -> Response {
    tag(
        message(app, lang, StatusCode::FORBIDDEN, "forbidden", new_link),
        "csrf_refused",
    )
}

fn bad_form(app: &App, lang: Lang) -> Response {
    tag(
        message(app, lang, StatusCode::BAD_REQUEST, "bad_form", false),
        "bad_form",
    )
}

/// A failed pool job: 503 when the database was busy or the queue full, else 500.
fn failed(app: &App, lang: Lang, e: &anyhow::Error) -> Response {
    app.metrics.db_error();
    if exit_of(e) == Exit::TempFail {
        busy(app, lang)
    } else {
        internal(app, lang, e)
    }
}

fn refused(app: &App, lang: Lang, r: Refused) -> Response {
    match r {
        Refused::Full => busy(app, lang),
        Refused::Gone => internal(app, lang, &anyhow::anyhow!("a worker thread stopped")),
        Refused::TimedOut => {
            timed_out(app);
            busy(app, lang)
        }
    }
}

/// A page gave up waiting for the database: counted as a database error, and said in the log
/// so that a stalled server shows before anyone reports it.
fn timed_out(app: &App) {
    app.metrics.db_error();
    app.log.say(
        "warning",
        &format!(
            "the database did not answer within serve.database_timeout ({}); answered 503",
            humantime::format_duration(app.config.serve.database_timeout)
        ),
    );
}

/// Whether the browser says the form came from another site (defence in depth behind the
/// CSRF token). `Origin: null` (a sandboxed frame, a data: URL, a redirect across sites) is
/// refused too: under the pages' `Referrer-Policy: same-origin` our own forms send their
/// origin.
fn cross_site(headers: &HeaderMap, origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        if site != b"same-origin" && site != b"none" {
            return true;
        }
    }
    headers
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() != origin.as_bytes())
}

/// The Set-Cookie for a new visitor: the forgot form's CSRF value is bound to it, so a value
/// fetched by someone else is worthless here.
fn visitor_cookie(app: &App, value: &str) -> Option<HeaderValue> {
    let secure = if app.origin.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path={}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        super::limits::VISITOR_COOKIE,
        app.forgot_path.as_deref().unwrap_or("/"),
        super::limits::CSRF_MAX_AGE,
    ))
    .ok()
}

/// A response body that runs `then` once the server is done with it: sent, or the client
/// gone. Work that must not change how long the answer takes starts there.
struct Then {
    inner: axum::body::Body,
    then: Option<Box<dyn FnOnce() + Send>>,
}

impl hyper::body::Body for Then {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Then {
    fn drop(&mut self) {
        if let Some(then) = self.then.take() {
            then();
        }
    }
}

fn then(res: Response, then: impl FnOnce() + Send + 'static) -> Response {
    let (parts, inner) = res.into_parts();
    Response::from_parts(
        parts,
        axum::body::Body::new(Then {
            inner,
            then: Some(Box::new(then)),
        }),
    )
}

/// The password rules, stated before the user types.
fn rules(app: &App, lang: Lang) -> Vec<String> {
    let p = &app.config.password;
    let pages = &app.pages;
    let mut rules = vec![pages.fill(
        lang,
        "rule.length",
        &[
            ("min", pages.number(lang, p.min_length as u64)),
            ("max", pages.number(lang, p.max_length as u64)),
        ],
    )];
    let mut keys = Vec::new();
    if p.min_strength > 0 {
        keys.push("rule.min_strength");
    }
    keys.extend(["rule.not_email", "rule.not_current"]);
    if app.bcrypt_rule {
        keys.push("rule.bcrypt_72_bytes");
    }
    rules.extend(keys.into_iter().map(|k| pages.text(lang, k).to_owned()));
    rules
}

/// The form for a valid token, with a fresh CSRF token bound to it.
fn form_page(
    app: &App,
    lang: Lang,
    status: StatusCode,
    token: &Token,
    email: Option<&str>,
    error: Option<(&str, String)>,
) -> Response {
    let now = ui::now();
    let p = &app.config.password;
    let (error_title, error) = match error {
        Some((t, e)) => (Some(t), Some(e)),
        None => (None, None),
    };
    render(
        app,
        lang,
        status,
        "form.html",
        context! {
            title => app.pages.text(lang, "form.title"),
            token => token.text().as_str(),
            csrf => app.csrf.issue("reset", &token.id().to_be_bytes(), now),
            email => email,
            action => app.base_path.as_str(),
            rules => rules(app, lang),
            min_length => p.min_length,
            max_length => p.max_length,
            error_title => error_title,
            error => error,
        },
    )
}

// ---- the reset page ----

/// GET <path>?token=…: the form, or why the link cannot be used. Reads only.
async fn form(
    State(app): State<Arc<App>>,
    Extension(lang): Extension<Lang>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let mut token_text = None;
    let mut changed = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "token" if token_text.is_none() => {
                token_text = Some(zeroize::Zeroizing::new(v.into_owned()))
            }
            "changed" => changed = true,
            _ => {}
        }
    }
    let Some(text) = token_text else {
        if changed {
            return tag(changed_page(&app, lang), "changed_page");
        }
        return unusable(&app, lang, Status::Malformed);
    };
    if Token::parse_input(&text).is_err() {
        return unusable(&app, lang, Status::Malformed);
    }
    let now = ui::now();
    let looked = app
        .db
        .run(move |w| {
            w.retrying(|w| {
                // A GET changes nothing, not even a revocation found on the way.
                // Checked before the job; the job parses its own (it may run twice).
                let token = Token::parse_input(&text)
                    .map_err(|e| anyhow::anyhow!("malformed token: {e}"))?;
                let mut dir = w.take_directory()?;
                let c = reset::peek(&mut dir, w.store()?, token, now)?;
                w.put_directory(dir);
                Ok((c.status, c.record.and_then(|r| r.email), c.token))
            })
        })
        .await;
    match looked {
        Ok(Ok((Status::Valid, email, Some(token)))) => tag(
            form_page(&app, lang, StatusCode::OK, &token, email.as_deref(), None),
            "form",
        ),
        Ok(Ok((status, _, _))) => unusable(&app, lang, status),
        Ok(Err(e)) => failed(&app, lang, &e),
        Err(r) => refused(&app, lang, r),
    }
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ResetForm {
    token: String,
    csrf: String,
    password: String,
    confirm: String,
}

/// What a reset attempt came to, on the hashing thread.
enum Attempt {
    /// Too many failed tries with this link, across every `serve` on the database.
    Limited(Duration),
    NotUsable(Status),
    Mismatch {
        email: String,
    },
    Refused {
        email: String,
        refusal: Refusal,
    },
    Changed {
        user: Box<User>,
        at: i64,
    },
    Busy,
}

/// POST <path>: set the password through the reset service.
async fn reset(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    Extension(lang): Extension<Lang>,
    headers: HeaderMap,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    if let Err(wait) = app.ip_attempts.hit(&client.key()) {
        return too_many(&app, lang, wait);
    }
    let Ok(Form(form)) = form else {
        return bad_form(&app, lang);
    };
    let ResetForm {
        token: token_text,
        csrf,
        password,
        confirm,
    } = form;
    let token_text = zeroize::Zeroizing::new(token_text);
    let (password, confirm) = (Secret::new(password), Secret::new(confirm));
    let Ok(token) = Token::parse_input(&token_text) else {
        return unusable(&app, lang, Status::Malformed);
    };
    let id = token.id();
    drop(token);
    // The job parses its own copy: it may run twice (see `Worker::retrying`).
    let job_text = token_text.clone();
    if cross_site(&headers, &app.origin)
        || !app.csrf.check("reset", &id.to_be_bytes(), &csrf, ui::now())
    {
        return forbidden(&app, lang, true);
    }
    let actor = client.actor();
    // Failed tries per link are counted in the database, so that every `serve` process on it
    // counts together: looked at before the hash, counted once a try has failed.
    let key = crate::store::limit_key(TOKEN_FAILURES, &id.to_be_bytes());
    let limit = Shared::of(&app, app.config.serve.token_attempts);
    let attempt = app
        .hash
        .run(move |w| {
            let a = w.retrying(|w| {
                let token = Token::parse_input(&job_text)
                    .map_err(|e| anyhow::anyhow!("malformed token: {e}"))?;
                let now = ui::now();
                let seen = w.store()?.limit_peek(&key, now)?;
                if seen.hits >= limit.max {
                    return Ok(Attempt::Limited(limit.wait(seen, now)));
                }
                if w.given_up() {
                    return Ok(Attempt::Busy);
                }
                attempt(w, token, &password, &confirm, &actor)
            })?;
            if matches!(a, Attempt::Mismatch { .. } | Attempt::Refused { .. }) {
                // Not retried: the try is over, and counting it twice would be worse than
                // a 503 the visitor can retry.
                let hit = w
                    .store()
                    .and_then(|s| s.limit_hit(&key, limit.window, ui::now()));
                w.settle(hit)?;
            }
            Ok(a)
        })
        .await;
    let again = |email: &str, title: &str, why: String| match Token::parse_input(&token_text) {
        Ok(token) => form_page(
            &app,
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &token,
            Some(email),
            Some((app.pages.text(lang, title), why)),
        ),
        Err(_) => unusable(&app, lang, Status::Malformed),
    };
    match attempt {
        Ok(Ok(Attempt::Changed { user, at })) => {
            if app.config.notify_on_reset {
                let config = Arc::clone(&app.config);
                let log = app.log;
                let queued = app.mail.submit(move |_| {
                    if let Err(e) = reset::send_notice(&config, &user, at) {
                        log.say(
                            "warning",
                            &format!(
                                "a password was changed on the web, but the notice was not sent: {}",
                                say(&e)
                            ),
                        );
                    }
                });
                if queued.is_err() {
                    app.log.say(
                        "warning",
                        "a password was changed on the web, but the mail queue was full: no notice was sent",
                    );
                }
            }
            // POST/redirect/GET: reloading the result page does not post the form again.
            let to = format!("{}?changed=1", app.base_path);
            let mut res = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            tag(res, "changed")
        }
        Ok(Ok(Attempt::Limited(wait))) => too_many(&app, lang, wait),
        Ok(Ok(Attempt::Mismatch { email })) => tag(
            again(
                &email,
                "form.mismatch_title",
                app.pages.text(lang, "form.mismatch").to_owned(),
            ),
            "mismatch",
        ),
        Ok(Ok(Attempt::Refused { email, refusal })) => tag(
            again(
                &email,
                "form.refused_title",
                app.pages.refusal(lang, &refusal),
            ),
            "password_refused",
        ),
        Ok(Ok(Attempt::NotUsable(status))) => unusable(&app, lang, status),
        Ok(Ok(Attempt::Busy)) => busy(&app, lang),
        Ok(Err(e)) => failed(&app, lang, &e),
        Err(r) => refused(&app, lang, r),
    }
}

/// Check the token, compare the two passwords, apply the policy, hash and store: the same
/// service and transaction as `pwreset reset`.
fn attempt(
    w: &mut Worker,
    token: Token,
    password: &Secret,
    confirm: &Secret,
    actor: &str,
) -> Result<Attempt> {
    let config = w.config().clone();
    let now = ui::now();
    // Taken out for this job and given back when it went well: a directory that saw an
    // error is dropped, and the next job connects again.
    let mut dir = w.take_directory()?;
    let watch = w.watch();
    let store = w.store()?;
    let checked = reset::check(&mut dir, store, token, now)?;
    let (Some(record), Some(token)) = (checked.record, checked.token) else {
        w.put_directory(dir);
        return Ok(Attempt::NotUsable(checked.status));
    };
    if checked.status != Status::Valid {
        w.put_directory(dir);
        return Ok(Attempt::NotUsable(checked.status));
    }
    // The last look before the password is hashed and written (see `Worker::given_up`); a
    // server that stalls after this point may still see the reset through.
    if watch.given_up() {
        return Ok(Attempt::Busy);
    }
    let mut service = Service::in_directory(store, dir, &config, actor)?;
    let outcome = attempt_with(&mut service, &record, &token, password, confirm)?;
    let dir = service.into_directory();
    w.put_directory(dir);
    Ok(outcome)
}

fn attempt_with(
    service: &mut Service<'_>,
    record: &crate::store::TokenRecord,
    token: &Token,
    password: &Secret,
    confirm: &Secret,
) -> Result<Attempt> {
    let user = service.user_of(record)?;
    if password.expose() != confirm.expose() {
        return Ok(Attempt::Mismatch { email: user.email });
    }
    let accepted = match service.accept(&user, password.expose()) {
        Ok(a) => a,
        Err(refusal) => {
            service.record_failure(
                &user,
                AuditOutcome::Refused,
                &format!("password refused on the web: {refusal}"),
            )?;
            return Ok(Attempt::Refused {
                email: user.email,
                refusal,
            });
        }
    };
    Ok(match service.set_password(token, &user, accepted)? {
        Outcome::Changed { at } => Attempt::Changed {
            user: Box::new(user),
            at,
        },
        Outcome::NotUsable(status) => Attempt::NotUsable(status),
        Outcome::Busy(_) => Attempt::Busy,
        Outcome::Refused(refusal) => Attempt::Refused {
            email: user.email,
            refusal,
        },
    })
}

// ---- the forgot-password page ----

fn forgot_page(
    app: &App,
    lang: Lang,
    status: StatusCode,
    visitor: &str,
    email: &str,
    error: Option<String>,
) -> Response {
    render(
        app,
        lang,
        status,
        "forgot.html",
        context! {
            title => app.pages.text(lang, "forgot.title"),
            action => app.forgot_path.as_deref(),
            csrf => app.csrf.issue("forgot", visitor.as_bytes(), ui::now()),
            email => email,
            error => error,
            sent => false,
        },
    )
}

/// GET the forgot-password page: the form, with a CSRF value bound to the visitor's cookie
/// (set now if the browser has none).
async fn forgot_form(
    State(app): State<Arc<App>>,
    Extension(lang): Extension<Lang>,
    headers: HeaderMap,
) -> Response {
    if let Some(visitor) = super::limits::visitor_of(&headers) {
        return forgot_page(&app, lang, StatusCode::OK, &visitor, "", None);
    }
    let visitor = match super::limits::new_visitor() {
        Ok(v) => v,
        Err(e) => return internal(&app, lang, &e),
    };
    let mut res = forgot_page(&app, lang, StatusCode::OK, &visitor, "", None);
    if let Some(c) = visitor_cookie(&app, &visitor) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ForgotForm {
    email: String,
    csrf: String,
}

/// POST the forgot-password page: the same neutral answer, at once, whether or not the address
/// has an account; the lookup and the mail happen after the answer, on the mail pool.
async fn forgot(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    Extension(lang): Extension<Lang>,
    headers: HeaderMap,
    form: Result<Form<ForgotForm>, FormRejection>,
) -> Response {
    if let Err(wait) = app.forgot_ip.hit(&client.key()) {
        return too_many(&app, lang, wait);
    }
    let Ok(Form(form)) = form else {
        return bad_form(&app, lang);
    };
    // The value must have been issued to this visitor's cookie: one fetched by someone else
    // (or by a script elsewhere) is refused.
    let Some(visitor) = super::limits::visitor_of(&headers) else {
        return forbidden(&app, lang, false);
    };
    if cross_site(&headers, &app.origin)
        || !app
            .csrf
            .check("forgot", visitor.as_bytes(), &form.csrf, ui::now())
    {
        return forbidden(&app, lang, false);
    }
    let addr = match crate::email::check(&form.email) {
        Ok(a) => a.to_owned(),
        Err(why) => {
            let shown: String = form.email.chars().take(254).collect();
            return tag(
                forgot_page(
                    &app,
                    lang,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &visitor,
                    &shown,
                    Some(app.pages.bad_address(lang, why)),
                ),
                "bad_address",
            );
        }
    };
    // Requests per address are counted in the database, so that every `serve` process on it
    // counts together. Done for every address alike, known or not: the answer's timing tells
    // nothing.
    let key = crate::store::limit_key(FORGOT_ADDRESS, crate::email::key(&addr).as_bytes());
    let limit = Shared::of(&app, app.config.serve.forgot_per_address);
    let counted = app
        .db
        .run(move |w| {
            // Retried on a fresh connection only when the old one was found dead: the upsert
            // is the job's one statement, so a failed one counted nothing.
            w.retrying(|w| w.store()?.limit_hit(&key, limit.window, ui::now()))
        })
        .await;
    match counted {
        Ok(Ok(c)) if c.hits > limit.max => {
            return too_many(&app, lang, limit.wait(c, ui::now()));
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return failed(&app, lang, &e),
        Err(r) => return refused(&app, lang, r),
    }
    let Some(mailer) = app.mailer.clone() else {
        return internal(
            &app,
            lang,
            &anyhow::anyhow!("forgot_password is on but no mailer was set up"),
        );
    };
    let actor = client.actor();
    let base_url = app.config.base_url.clone().unwrap_or_default();
    let (run_id, page_lang) = (app.run_id, app.pages.code(lang).to_owned());
    let ttl = locale::span(app.pages.code(lang), app.config.token_ttl.as_secs() as i64);
    let page = render(
        &app,
        lang,
        StatusCode::OK,
        "forgot.html",
        context! {
            title => app.pages.text(lang, "forgot.sent_title"),
            sent => true,
            ttl => ttl,
        },
    );
    // The job is queued once the page is out: the answer takes the same time whether or not
    // a link is made, and a full queue cannot show in it either.
    let pool = Arc::clone(&app);
    let log = app.log;
    then(tag(page, "accepted"), move || {
        let queued = pool.mail.submit(move |w| {
            // Not retried: a request may have made its link before it failed (a mail relay's
            // 4xx is temporary too).
            let sent = request_link(w, mailer, base_url, &addr, &actor, run_id, page_lang);
            if let Err(e) = w.settle(sent) {
                log.say(
                    "warning",
                    &format!(
                        "a reset link asked for on the web was not sent: {}",
                        say(&e)
                    ),
                );
            }
        });
        if queued.is_err() {
            log.say(
                "warning",
                "a reset link asked for on the web was not sent: the mail queue is full",
            );
        }
    })
}

/// What `pwreset request ADDRESS` does for one address, from the web, through the same
/// request service: the lookup, the throttle, the hand-over (a failed new mail keeps the
/// working link), the audit. The mail is in the page's language unless the users table says
/// otherwise. Unknown addresses end here quietly: the page already gave its neutral answer.
fn request_link(
    w: &mut Worker,
    mailer: Arc<Mailer>,
    base_url: String,
    addr: &str,
    actor: &str,
    run_id: i64,
    page_lang: String,
) -> Result<()> {
    let config = w.config();
    let dir = w.take_directory()?;
    let store = w.store()?;
    let opts = request::Options {
        ttl: config.token_ttl,
        force: false,
        delivery: request::Delivery::Mail(mailer),
        base_url,
        locale: Some(page_lang),
        grace: request::GRACE,
    };
    let mut svc = request::Service::within(store, dir, &config, opts, actor, run_id)?;
    let mut got = Captured(Vec::new());
    let stop = crate::signals::Stop::new();
    svc.addresses(vec![addr.to_owned()], &stop, &mut got)?;
    svc.deferred(&stop, &mut got)?;
    let dir = svc.into_directory();
    w.put_directory(dir);
    for o in got.0 {
        match o.status {
            request::Status::Failed | request::Status::Invalid => {
                // Logged: the log never names an address (docs/serve.md), and a relay's
                // refusal often repeats the one it refused.
                let why = o.error.unwrap_or_else(|| o.status.as_str().to_owned());
                let why = why
                    .replace(&crate::ui::escape(&o.email), "the address asked for")
                    .replace(&o.email, "the address asked for");
                return Err(crate::error::fail(o.exit, why));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The names of the limits kept in the database ([`crate::store::limit_key`]).
const TOKEN_FAILURES: &str = "token_failures";
const FORGOT_ADDRESS: &str = "forgot_address";

/// A limit kept in the database: at most `max` in a window of `window` seconds.
#[derive(Debug, Clone, Copy)]
struct Shared {
    max: i64,
    window: i64,
}

impl Shared {
    fn of(app: &App, max: u32) -> Shared {
        Shared {
            max: i64::from(max),
            window: app.config.serve.attempt_window.as_secs().max(1) as i64,
        }
    }

    /// How long until the window of `c` is over.
    fn wait(&self, c: crate::store::LimitCount, now: i64) -> Duration {
        Duration::from_secs(c.expires_at.saturating_sub(now).clamp(1, self.window) as u64)
    }
}

/// The outcomes of one forgot-page request.
struct Captured(Vec<request::Outcome>);

impl request::Report for Captured {
    fn outcomes(&mut self, outcomes: Vec<request::Outcome>) -> Result<()> {
        self.0.extend(outcomes);
        Ok(())
    }
}

// ---- the rest ----

async fn css(State(app): State<Arc<App>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        app.pages.css.clone(),
    )
        .into_response()
}

/// For load balancers: 200 when the database answers a lookup, else 503.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    let checked = app
        .db
        .run(|w| {
            w.retrying(|w| {
                // With [ldap] the store holds tokens only: no users table to join.
                if w.config().ldap.is_some() {
                    w.store()?.token_alone(0, &Digest([0; 32]))?;
                } else {
                    w.store()?.lookup_token(0, &Digest([0; 32]))?;
                }
                Ok(())
            })
        })
        .await;
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match checked {
        Ok(Ok(())) => (StatusCode::OK, text, "ok\n").into_response(),
        Ok(Err(e)) => {
            app.metrics.db_error();
            app.log.say("warning", &format!("healthz: {}", say(&e)));
            with_retry_after(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    text,
                    "database unavailable\n",
                )
                    .into_response(),
                Duration::from_secs(RETRY_BUSY),
            )
        }
        Err(r) => {
            let body = if r == Refused::TimedOut {
                timed_out(&app);
                "database unavailable\n"
            } else {
                "busy\n"
            };
            with_retry_after(
                (StatusCode::SERVICE_UNAVAILABLE, text, body).into_response(),
                Duration::from_secs(RETRY_BUSY),
            )
        }
    }
}

/// Prometheus's text format. Served on the same listener: the proxy forwards only the pages'
/// paths, so /metrics is reachable where serve listens (a Unix socket, or loopback), not from
/// the internet.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let gauges = super::metrics::Gauges {
        connections_open: app.conns.open(),
        pools: vec![
            ("hash", app.hash.queued(), app.hash.waits()),
            ("db", app.db.queued(), app.db.waits()),
            ("mail", app.mail.queued(), app.mail.waits()),
        ],
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(&gauges),
    )
        .into_response()
}

async fn not_found(State(app): State<Arc<App>>, Extension(lang): Extension<Lang>) -> Response {
    tag(
        message(&app, lang, StatusCode::NOT_FOUND, "not_found", false),
        "not_found",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_forgot_job_waits_for_the_answer_to_be_done_with() {
        let queued = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&queued);
        let res = then(Response::new(axum::body::Body::from("page")), move || {
            flag.store(true, Ordering::SeqCst)
        });
        assert!(
            !queued.load(Ordering::SeqCst),
            "not while the answer is out"
        );
        drop(res);
        assert!(
            queued.load(Ordering::SeqCst),
            "once the server is done with it"
        );
    }

    #[test]
    fn an_opaque_origin_is_cross_site() {
        let origin = "https://accounts.example.com";
        let with = |k: &'static str, v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(k, HeaderValue::from_static(v));
            h
        };
        assert!(cross_site(&with("origin", "null"), origin));
        assert!(cross_site(&with("origin", "https://evil.example"), origin));
        assert!(!cross_site(
            &with("origin", "https://accounts.example.com"),
            origin
        ));
        assert!(cross_site(&with("sec-fetch-site", "cross-site"), origin));
        assert!(!cross_site(&HeaderMap::new(), origin));
    }
}
