//! The agent console in a real browser (headless Chromium through WebDriver) and, for what a
//! browser would not send (a form without its CSRF token), over plain HTTP.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{BIN, Daemon, Setup};

/// `itsmd user add NAME --role ROLE` with `password` on standard input.
fn add_user(d: &Daemon, name: &str, role: &str, password: &str) {
    add_user_as(d, None, name, role, password)
}

/// [`add_user`] with an admin token, for a daemon that has tokens.
fn add_user_as(d: &Daemon, token: Option<&str>, name: &str, role: &str, password: &str) {
    let out = user(d, token, &["add", name, "--role", role], password);
    assert_eq!(out, format!("Added user {name} ({role}).\n"));
}

/// `itsmd user ARGS` with `password` on standard input: its standard output, once it
/// succeeded.
fn user(d: &Daemon, token: Option<&str>, args: &[&str], password: &str) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("user")
        .args(args)
        .arg("--server")
        .arg(d.url(""))
        .env_remove("ITSMD_TOKEN");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of cookie `name` among a response's Set-Cookie headers.
fn set_cookie(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

/// The value of the hidden `csrf` input of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

/// Signs in over HTTP; returns the session cookie (`itsmd_session=…`) and the page's CSRF token.
fn sign_in(
    d: &Daemon,
    http: &reqwest::blocking::Client,
    user: &str,
    pw: &str,
) -> (u16, Option<String>) {
    let page = http.get(d.url("/ui/login")).send().unwrap();
    let login_cookie = set_cookie(&page, "itsmd_login_csrf").expect("login cookie");
    let csrf = csrf_of(&page.text().unwrap());
    let r = http
        .post(d.url("/ui/login"))
        .header("cookie", login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", user),
            ("password", pw),
        ])
        .send()
        .unwrap();
    (r.status().as_u16(), set_cookie(&r, "itsmd_session"))
}

#[test]
fn sign_in_is_checked_limited_and_csrf_protected() {
    let d = Setup::new().start();
    add_user(&d, "alice", "agent", "correct horse battery");
    let http = no_redirects();

    // Not signed in: the console sends you to the sign-in page, with the CSP on it.
    let r = http.get(d.url("/")).send().unwrap();
    assert_eq!(r.headers()["location"], "/ui/");
    let r = http.get(d.url("/ui/")).send().unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    let r = http.get(d.url("/ui/login")).send().unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'; style-src 'self'")
    );
    let login = set_cookie(&r, "itsmd_login_csrf").unwrap();
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Strict")
    );
    let html = r.text().unwrap();
    // htmx and the style sheet: own files under hashed names, cached for good, htmx gzipped.
    let at = html
        .find("/ui/assets/htmx-2.0.11.")
        .expect("the htmx script");
    let js = html[at..].split('"').next().unwrap();
    let r = http
        .get(d.url(js))
        .header("accept-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );

    // A wrong password, then the right one.
    let (status, cookie) = sign_in(&d, &http, "alice", "wrong horse");
    assert_eq!((status, cookie), (401, None));
    let (status, cookie) = sign_in(&d, &http, "alice", "correct horse battery");
    assert_eq!(status, 303);
    let session = cookie.expect("a session cookie");
    let page = http
        .get(d.url("/ui/"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("alice (agent)"), "{html}");
    let csrf = csrf_of(&html);

    // A sign-in form posted without the CSRF cookie's twin is refused.
    let r = http
        .post(d.url("/ui/login"))
        .header("cookie", &login)
        .form(&[("username", "alice"), ("password", "correct horse battery")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(set_cookie(&r, "itsmd_session").is_none());
    // A signed-in form without (or with a wrong) CSRF token is refused, and changes nothing.
    for form in [vec![], vec![("csrf", "0000")]] {
        let r = http
            .post(d.url("/ui/logout"))
            .header("cookie", &session)
            .form(&form)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    }
    let r = http
        .get(d.url("/ui/"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "the session survived the refused posts"
    );
    // With it, signing out ends the session.
    let r = http
        .post(d.url("/ui/logout"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let r = http
        .get(d.url("/ui/"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(r.headers()["location"], "/ui/login");

    // Five failures in a minute lock the name out, even with the right password after.
    for _ in 0..5 {
        assert_eq!(sign_in(&d, &http, "alice", "nope nope nope").0, 401);
    }
    assert_eq!(sign_in(&d, &http, "alice", "correct horse battery").0, 429);

    // A changed password ends the sessions signed in with the old one.
    add_user(&d, "bob", "agent", "bobs old password");
    let (status, cookie) = sign_in(&d, &http, "bob", "bobs old password");
    assert_eq!(status, 303);
    let bobs = cookie.expect("a session cookie");
    let home = |cookie: &str| {
        http.get(d.url("/ui/"))
            .header("cookie", cookie)
            .send()
            .unwrap()
    };
    assert_eq!(home(&bobs).status().as_u16(), 200);
    assert_eq!(
        user(&d, None, &["passwd", "bob"], "bobs password"),
        "Changed the password of bob.\n"
    );
    assert_eq!(home(&bobs).headers()["location"], "/ui/login");
    assert_eq!(sign_in(&d, &http, "bob", "bobs old password").0, 401);
    let (status, cookie) = sign_in(&d, &http, "bob", "bobs password");
    assert_eq!(status, 303);
    assert_eq!(home(&cookie.unwrap()).status().as_u16(), 200);

    // A bad name or password is a 422 naming the field, as docs/api.md says.
    for (body, field) in [
        (
            serde_json::json!({"name": "carol", "role": "agent", "password": "short"}),
            "password",
        ),
        (
            serde_json::json!({"name": "Carol!", "role": "agent", "password": "long enough"}),
            "name",
        ),
    ] {
        let r = d
            .http
            .post(d.url("/api/v1/admin/users"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 422);
        let e: serde_json::Value = r.json().unwrap();
        assert_eq!(e["error"]["code"], "invalid_field", "{e}");
        assert_eq!(e["error"]["details"]["field"], field, "{e}");
    }

    // A disabled account cannot sign in; the CLI says what it did.
    let out = Command::new(BIN)
        .args(["user", "disable", "bob", "--server"])
        .arg(d.url(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sign_in(&d, &http, "bob", "bobs password").0, 401);
    // The password is in no log line and nowhere in the store (journal included): the hash is.
    let dump = d
        .http
        .get(d.url("/api/v1/admin/export"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let has = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"$argon2id$") && !has(b"correct horse battery"));
    assert!(
        d.logs()
            .iter()
            .all(|l| !l.to_string().contains("correct horse"))
    );
    // Adding an existing name is refused with the engine's reason.
    let out = Command::new(BIN)
        .args(["user", "add", "bob", "--role", "agent", "--server"])
        .arg(d.url(""))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

// ---- The browser -------------------------------------------------------------------------

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::support::{alert, free_port};

/// How long any one thing may take to show up in the browser.
const DEADLINE: Duration = Duration::from_secs(30);

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        // Its own process group, so that dropping the driver also ends the browser it
        // started, even when a failed assertion skipped closing the session.
        let child =
            std::os::unix::process::CommandExt::process_group(&mut Command::new("chromedriver"), 0)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (apt-get install chromium chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + DEADLINE;
        // Polled with a deadline: chromedriver answers /status once it listens.
        while !http
            .get(&status)
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is chromedriver's own (process_group(0) above): it and its browser.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,900",
                "--disable-crash-reporter", "--disable-breakpad",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Waits (with [`DEADLINE`]) until the element at `css` exists and its text contains `want`.
async fn wait_text(c: &Client, css: &str, want: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
            && text.contains(want)
        {
            return text;
        }
        if Instant::now() > deadline {
            let html = c.source().await.unwrap_or_default();
            panic!("`{css}` never contained {want:?}; the page:\n{html}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .click()
        .await
        .unwrap();
}

const TAB: char = '\u{E004}';
const ENTER: char = '\u{E007}';

/// Presses and releases one key (a WebDriver key code) wherever the focus is.
async fn key(c: &Client, k: char) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let press = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: k })
        .then(KeyAction::Up { value: k });
    c.perform_actions(press).await.unwrap();
}

/// The focused element as "TAG class text".
async fn focused(c: &Client) -> serde_json::Value {
    c.execute(
        "const e = document.activeElement; \
         return e.tagName + ' ' + e.className + ' ' + (e.tagName === 'MAIN' ? '' : e.innerText.trim());",
        vec![],
    )
    .await
    .unwrap()
}

/// At a phone's width (390 px) the page must not scroll sideways; saves a screenshot, then
/// goes back to 1280 px.
async fn at_phone_width(c: &Client, name: &str) {
    c.set_window_size(390, 844).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let w = c.execute("return window.innerWidth", vec![]).await.unwrap();
        if w.as_u64().is_some_and(|w| w <= 390) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the window never got 390 px wide: {w}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let widths = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "{name}: the page scrolls sideways at phone width (scrollWidth, innerWidth) = {widths}"
    );
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    screenshot(c, name).await;
    c.set_window_size(1280, 900).await.unwrap();
}

/// Saves a screenshot as `name` in `$ITSMD_SCREENSHOTS` (relative to the crate root, where
/// cargo runs the tests; `ITSMD_SCREENSHOTS=docs/console` refreshes the documentation's), or
/// else in the target directory's `tmp/console`.
async fn screenshot(c: &Client, name: &str) {
    let dir = match std::env::var_os("ITSMD_SCREENSHOTS") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// Waits (with [`DEADLINE`]) until `ready` holds.
async fn wait_for<F, Fut>(c: &Client, what: &str, ready: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !ready().await {
        if Instant::now() > deadline {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            panic!("never saw {what} on {url}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many times this page has asked for the queue's live part (the browser's own record
/// of the requests it made).
async fn polls(c: &Client) -> u64 {
    c.execute(
        "return performance.getEntriesByType('resource') \
           .filter(e => e.name.includes('/ui/queue?')).length",
        vec![],
    )
    .await
    .unwrap()
    .as_u64()
    .unwrap()
}

/// Makes the page report `state` as its visibility (what the browser does when its tab goes
/// to the background or comes back), with the event that goes with it.
async fn visibility(c: &Client, state: &str) {
    c.execute(
        "const s = arguments[0]; \
         Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => s }); \
         document.dispatchEvent(new Event('visibilitychange'));",
        vec![json!(state)],
    )
    .await
    .unwrap();
}

/// Every bar of the page's charts: (figure id, series, label, value).
async fn drawn(c: &Client) -> Vec<(String, String, String, f64)> {
    let v = c
        .execute(
            "return [...document.querySelectorAll('figure.panel rect.bar[data-value]')].map(r => \
               [r.closest('figure').id, r.dataset.series, r.dataset.label, Number(r.dataset.value)])",
            vec![],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b[0].as_str().unwrap().to_string(),
                b[1].as_str().unwrap().to_string(),
                b[2].as_str().unwrap().to_string(),
                b[3].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The (label, value) bars of one series of one chart, by label.
fn chart_of(
    bars: &[(String, String, String, f64)],
    figure: &str,
    series: &str,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = bars
        .iter()
        .filter(|b| b.0 == figure && b.1 == series)
        .map(|b| (b.2.clone(), b.3))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn an_agent_works_an_incident_in_a_real_browser() {
    // Alice works for operations, where the default rules route this alert.
    let d = Setup::new()
        .config("[groups.triage]\n[groups.operations]\nmembers = [\"alice\"]\n")
        .start();
    add_user(&d, "alice", "agent", "correct horse battery");
    add_user(&d, "olga", "admin", "olgas passphrase");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    // Multi-threaded, so the blocking HTTP client of `Daemon` may run inside (block_in_place).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver, profile.path()).await;
        c.goto(&d.url("/")).await.unwrap();
        // Signed out: the console sends the browser to the sign-in page.
        fill(&c, "input[name=username]", "alice").await;
        fill(&c, "input[name=password]", "wrong horse").await;
        click(&c, "form.login button").await;
        wait_text(&c, "p.error", "Wrong user name or password.").await;
        screenshot(&c, "login-refused.png").await;
        fill(&c, "input[name=username]", "alice").await;
        fill(&c, "input[name=password]", "correct horse battery").await;
        click(&c, "form.login button").await;
        wait_text(&c, "header.top .who", "alice (agent)").await;
        // htmx loaded under the CSP (script-src 'self', no inline script or style).
        let htmx = c.execute("return typeof htmx", vec![]).await.unwrap();
        assert_eq!(htmx, json!("object"));
        wait_text(&c, "#unassigned", "None.").await;

        // An alert after the page loaded: its incident shows up by itself (htmx polling).
        let (status, _) = tokio::task::block_in_place(|| {
            d.post(
                "/api/v1/events",
                &alert("firing", "Disk full on db1", json!({"host": "db1"})),
            )
        });
        assert_eq!(status, 202);
        let row = wait_text(&c, "#unassigned tbody tr", "Disk full on db1").await;
        assert!(row.contains("new"), "{row}");
        // SLA standing is words, not only a colour.
        let clock = wait_text(&c, "#unassigned tbody tr .clock", ": ").await;
        assert!(
            ["left", "paused", "breached", "stopped", "not started"]
                .iter()
                .any(|w| clock.contains(w)),
            "{clock}"
        );
        screenshot(&c, "queue.png").await;
        // Keyboard: the first Tab reaches the skip link, Enter on it moves focus to the page's
        // content, and the next Tab goes on from there (the top bar is skipped).
        c.goto(&d.url("/ui/")).await.unwrap();
        wait_text(&c, "#unassigned", "Disk full on db1").await;
        key(&c, TAB).await;
        assert_eq!(focused(&c).await, json!("A skip Skip to content"));
        key(&c, ENTER).await;
        let deadline = Instant::now() + DEADLINE;
        while focused(&c).await != json!("MAIN  ") {
            assert!(
                Instant::now() < deadline,
                "focus never moved to main: {}",
                focused(&c).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        key(&c, TAB).await;
        let next = focused(&c).await;
        assert!(
            next.as_str().unwrap().starts_with("SELECT"),
            "the state filter is next: {next}"
        );
        at_phone_width(&c, "queue-phone.png").await;

        // Take it from the queue: assigned to alice, on its page.
        click(&c, "#unassigned tbody tr form.take button").await;
        wait_text(&c, "h1", "Disk full on db1").await;
        wait_text(&c, "#assignee", "alice").await;
        fill(
            &c,
            "#comment textarea",
            "Looking into it; the volume is at 100%.",
        )
        .await;
        click(&c, "#comment button").await;
        wait_text(&c, "#timeline", "Looking into it; the volume is at 100%.").await;

        // Only the legal moves are offered: from new, no hold.
        assert!(c.find(Locator::Css("#transition-on_hold")).await.is_err());
        fill(
            &c,
            "#transition-in_progress input[name=reason]",
            "taking it",
        )
        .await;
        click(&c, "#transition-in_progress button").await;
        wait_text(&c, "#state", "in_progress").await;

        fill(
            &c,
            "#transition-on_hold input[name=reason]",
            "waiting for the storage vendor",
        )
        .await;
        c.find(Locator::Css("#transition-on_hold select[name=hold_reason]"))
            .await
            .unwrap()
            .select_by_value("awaiting_vendor")
            .await
            .unwrap();
        click(&c, "#transition-on_hold button").await;
        wait_text(&c, "#state", "on_hold (awaiting_vendor)").await;
        wait_text(&c, "#timeline", "waiting for the storage vendor").await;

        fill(
            &c,
            "#transition-resolved input[name=reason]",
            "volume grown",
        )
        .await;
        click(&c, "#transition-resolved button").await;
        wait_text(&c, "#state", "resolved").await;
        // The clocks stopped: none is left running.
        let sla = wait_text(&c, "#sla", "stopped by the resolution").await;
        assert!(!sla.contains(" left"), "{sla}");
        // The alert that opened it is in the timeline.
        wait_text(&c, "#timeline", "alert from test").await;
        screenshot(&c, "ticket.png").await;
        at_phone_width(&c, "ticket-phone.png").await;
        c.goto(&d.url("/ui/")).await.unwrap();
        wait_text(&c, "#resolved", "Disk full on db1").await;

        // Two more alerts; selected with the keyboard, assigned in bulk, they are alice's.
        for host in ["web1", "web2"] {
            let body = alert(
                "firing",
                &format!("CPU hot on {host}"),
                json!({"host": host}),
            );
            let (status, _) = tokio::task::block_in_place(|| d.post("/api/v1/events", &body));
            assert_eq!(status, 202);
        }
        wait_text(&c, "#unassigned", "CPU hot on web2").await;
        wait_text(&c, "#unassigned", "CPU hot on web1").await;
        let cpu: Vec<String> = tokio::task::block_in_place(|| crate::support::incidents(&d))
            .iter()
            .filter(|t| t["title"].as_str().unwrap().starts_with("CPU hot"))
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(cpu.len(), 2);
        for id in &cpu {
            let tick = c
                .find(Locator::Css(&format!("#select-{id}")))
                .await
                .unwrap();
            tick.send_keys(" ").await.unwrap();
        }
        // The ticks outlive the queue's refresh (hx-preserve): wait for one, then check.
        let n = polls(&c).await;
        wait_for(&c, "a queue refresh", || async { polls(&c).await > n }).await;
        for id in &cpu {
            let checked = c
                .find(Locator::Css(&format!("#select-{id}")))
                .await
                .unwrap()
                .prop("checked")
                .await
                .unwrap();
            assert_eq!(checked.as_deref(), Some("true"), "{id} stays selected");
        }
        c.find(Locator::Css("#bulk summary"))
            .await
            .unwrap()
            .send_keys(&ENTER.to_string())
            .await
            .unwrap();
        c.find(Locator::Css("#bulk button[type=submit]"))
            .await
            .unwrap()
            .send_keys(&ENTER.to_string())
            .await
            .unwrap();
        wait_text(&c, "main", "2 done, 0 refused.").await;
        c.goto(&d.url("/ui/")).await.unwrap();
        wait_text(&c, "#mine", "CPU hot on web1").await;
        wait_text(&c, "#mine", "CPU hot on web2").await;
        wait_text(&c, "#unassigned", "None.").await;

        // A saved search, then opened again from the list of saved searches.
        click(&c, "#save summary").await;
        fill(&c, "#save-search input[name=name]", "cpu").await;
        fill(&c, "#save-search input[name=query]", "q=cpu").await;
        click(&c, "#save-search button").await;
        wait_text(&c, "#search", "CPU hot on web1").await;
        c.goto(&d.url("/ui/")).await.unwrap();
        click(&c, "#searches a[href='/ui/?search=cpu']").await;
        let found = wait_text(&c, "#search", "Saved search").await;
        assert!(found.contains("cpu") && found.contains("(2)"), "{found}");
        assert!(!found.contains("Disk full"), "{found}");

        // A page in a background tab does not poll; shown again, it refreshes at once.
        c.goto(&d.url("/ui/")).await.unwrap();
        let n = polls(&c).await;
        wait_for(&c, "the first poll", || async { polls(&c).await > n }).await;
        visibility(&c, "hidden").await;
        let hidden_at = polls(&c).await;
        // An observation window (three periods), not a synchronisation: nothing is awaited.
        let window = Instant::now() + Duration::from_secs(9);
        while Instant::now() < window {
            // One request may have been on its way when the page was hidden.
            assert!(polls(&c).await <= hidden_at + 1, "a hidden page polled");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let before = polls(&c).await;
        visibility(&c, "visible").await;
        wait_for(&c, "a poll once visible", || async {
            polls(&c).await > before
        })
        .await;

        // The service owner's view: the reports for the period picked, with bars drawn as
        // SVG that hold the report API's figures.
        click(&c, "header.top a[href='/ui/dashboard']").await;
        wait_text(&c, "#volume table", "incident").await;
        c.find(Locator::Css("#volume svg rect.bar")).await.unwrap();
        wait_text(&c, "#backlog", "Backlog").await;
        c.find(Locator::Css("#period select[name=last]"))
            .await
            .unwrap()
            .select_by_value("7d")
            .await
            .unwrap();
        click(&c, "#period button").await;
        wait_text(&c, "main", "GET /api/v1/reports?last=7d").await;
        let api = tokio::task::block_in_place(|| d.get_ok("/api/v1/reports?last=7d"));
        let chart = drawn(&c).await;
        let times = |section: &str, by: &str| -> Vec<(String, f64)> {
            let mut v: Vec<(String, f64)> = api[section]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["by"] == by)
                .map(|t| {
                    (
                        t["value"].as_str().unwrap().to_string(),
                        t["mean_secs"].as_f64().unwrap(),
                    )
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(times("mttr", "agent").len(), 1, "{api}");
        assert_eq!(
            chart_of(&chart, "agent-times", "MTTA"),
            times("mtta", "agent")
        );
        assert_eq!(
            chart_of(&chart, "agent-times", "MTTR"),
            times("mttr", "agent")
        );
        let days: Vec<&serde_json::Value> = api["trends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["period"] == "day")
            .collect();
        let trend = |field: &str, only: Option<&str>| -> Vec<(String, f64)> {
            let mut v: Vec<(String, f64)> = days
                .iter()
                .filter(|t| only.is_none_or(|o| t[o].as_u64().unwrap() > 0))
                .map(|t| {
                    (
                        t["start"].as_str().unwrap()[..10].to_string(),
                        t[field].as_f64().unwrap(),
                    )
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(trend("opened", None).iter().map(|t| t.1).sum::<f64>(), 3.0);
        assert_eq!(
            chart_of(&chart, "trend-counts", "opened"),
            trend("opened", None)
        );
        assert_eq!(
            chart_of(&chart, "trend-counts", "resolved"),
            trend("resolved", None)
        );
        assert_eq!(
            chart_of(&chart, "trend-times", "MTTR"),
            trend("mttr_mean_secs", Some("resolved"))
        );
        screenshot(&c, "dashboard.png").await;
        at_phone_width(&c, "dashboard-phone.png").await;

        // An agent opening an operations page is refused; an admin sees it.
        c.goto(&d.url("/ui/ops")).await.unwrap();
        wait_text(&c, "#forbidden", "this page needs admin").await;
        click(&c, "form.signout button").await;
        fill(&c, "input[name=username]", "olga").await;
        fill(&c, "input[name=password]", "olgas passphrase").await;
        click(&c, "form.login button").await;
        wait_text(&c, "header.top .who", "olga (admin)").await;
        click(&c, "header.top a[href='/ui/ops']").await;
        wait_text(&c, "#readiness", "ready").await;
        wait_text(&c, "#rules", "00-defaults.rhai").await;
        screenshot(&c, "ops.png").await;
        c.close().await.unwrap();
    });
    // What the browser did is what the API shows.
    let list = crate::support::incidents(&d);
    assert_eq!(list.len(), 3);
    for t in &list {
        assert_eq!(t["assignee"], "alice", "{t}");
        let want = if t["title"] == "Disk full on db1" {
            "resolved"
        } else {
            "new"
        };
        assert_eq!(t["state"], want, "{t}");
    }
    let disk = list
        .iter()
        .find(|t| t["title"] == "Disk full on db1")
        .unwrap();
    let id = disk["id"].as_str().unwrap();
    let comments = d.get_ok(&format!("/api/v1/tickets/{id}/comments"));
    assert_eq!(comments[0]["author"]["name"], "alice");
}

/// The console page of ticket `id`, as the session `cookie` sees it.
fn ticket_page(d: &Daemon, http: &reqwest::blocking::Client, cookie: &str, id: &str) -> String {
    http.get(d.url(&format!("/ui/tickets/{id}")))
        .header("cookie", cookie)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn the_console_shows_the_engines_refusal_and_needs_the_csrf_token() {
    let d = Setup::new()
        .config("[groups.triage]\n[groups.operations]\nmembers = [\"alice\", \"bob\"]\n")
        .start();
    add_user(&d, "alice", "agent", "correct horse battery");
    let (status, _) = d.post(
        "/api/v1/events",
        &alert("firing", "Queue stuck", json!({"q": "1"})),
    );
    assert_eq!(status, 202);
    let id = crate::support::incidents(&d)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let http = no_redirects();
    let (_, session) = sign_in(&d, &http, "alice", "correct horse battery");
    let session = session.unwrap();
    let page = ticket_page(&d, &http, &session, &id);
    let csrf = csrf_of(&page);
    // A ticket that does not exist: a whole page (top bar and all) saying so, as HTML, so the
    // agent can go on from it; for htmx, the message alone.
    for (htmx, whole) in [(false, true), (true, false)] {
        let mut r = http
            .get(d.url("/ui/tickets/INC-999999"))
            .header("cookie", &session);
        if htmx {
            r = r.header("hx-request", "true");
        }
        let r = r.send().unwrap();
        assert_eq!(r.status().as_u16(), 404);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let html = r.text().unwrap();
        assert!(html.contains("id=\"failed\""), "{html}");
        assert!(html.contains("INC-999999"), "{html}");
        assert_eq!(html.contains("<!DOCTYPE html>"), whole, "{html}");
        assert_eq!(html.contains("alice"), whole, "{html}");
    }
    let path = format!("/ui/tickets/{id}/transition");
    let post = |form: &[(&str, &str)], origin: Option<&str>| {
        let mut r = http.post(d.url(&path)).header("cookie", &session);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.form(form).send().unwrap()
    };
    // A move the page does not offer (new → on_hold), forged: the engine's refusal, shown.
    let r = post(
        &[
            ("csrf", csrf.as_str()),
            ("to", "on_hold"),
            ("reason", "x"),
            ("hold_reason", "awaiting_caller"),
        ],
        None,
    );
    assert_eq!(r.status().as_u16(), 409);
    let html = r.text().unwrap();
    assert!(
        html.contains("id=\"refusal\"") && html.contains("in_progress, resolved, canceled"),
        "{html}"
    );
    // A form field the console does not have (a misspelt or forged one) is refused by name,
    // not dropped: the transition does not happen without its resolution.
    let r = post(
        &[
            ("csrf", csrf.as_str()),
            ("to", "in_progress"),
            ("reason", "x"),
            ("resolutoin", "fixed"),
        ],
        None,
    );
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().unwrap().contains("unknown field `resolutoin`"));
    assert_eq!(crate::support::incidents(&d)[0]["state"], "new");
    // The same post without the CSRF token: refused before the engine hears of it.
    let r = post(&[("to", "in_progress"), ("reason", "x")], None);
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(crate::support::incidents(&d)[0]["state"], "new");
    // And a cross-site post is refused by the Origin check, token or not.
    let form = [
        ("csrf", csrf.as_str()),
        ("to", "in_progress"),
        ("reason", "x"),
    ];
    let r = post(&form, Some("http://evil.example"));
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(crate::support::incidents(&d)[0]["state"], "new");

    // A Take drawn while the ticket was unassigned does not take it from whoever took it
    // meanwhile.
    let r = d
        .http
        .patch(d.url(&format!("/api/v1/tickets/{id}")))
        .json(&json!({"assignee": "bob"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
    let r = http
        .post(d.url(&format!("/ui/tickets/{id}/assign")))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("assignee", "alice"), ("was", "")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let html = r.text().unwrap();
    assert!(html.contains("was assigned to bob meanwhile"), "{html}");
    assert_eq!(crate::support::incidents(&d)[0]["assignee"], "bob");

    // A link to another ticket, from the ticket page's form; a bad relation named.
    let (status, other) = d.post(
        "/api/v1/tickets",
        &json!({"kind": "problem", "title": "Queues stick"}).to_string(),
    );
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().unwrap();
    let link = |form: &[(&str, &str)]| {
        http.post(d.url(&format!("/ui/tickets/{id}/link")))
            .header("cookie", &session)
            .form(form)
            .send()
            .unwrap()
    };
    let r = link(&[("csrf", &csrf), ("rel", "sibling_of"), ("ticket", other)]);
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("`rel`: unknown link"));
    let r = link(&[("csrf", &csrf), ("rel", "caused_by"), ("ticket", other)]);
    assert_eq!(r.status().as_u16(), 303);
    let t = d.get_ok(&format!("/api/v1/tickets/{id}"));
    assert_eq!(t["links"][0]["ticket"], other, "{t}");
    let page = ticket_page(&d, &http, &session, &id);
    assert!(
        page.contains(&format!("caused_by <a href=\"/ui/tickets/{other}\">")),
        "{page}"
    );
    // A vendor the configuration does not know: the engine's refusal, shown.
    let r = http
        .post(d.url(&format!("/ui/tickets/{id}/vendor")))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("vendor", "nobody-inc")])
        .send()
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.text().unwrap().contains("id=\"refusal\""));

    // The dashboard's sections download as CSV.
    let r = http
        .get(d.url("/ui/dashboard.csv?section=volume&last=7d"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"itsmd-volume-")
    );
    let api_csv = d
        .http
        .get(d.url("/api/v1/reports/volume?last=7d&format=csv"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csv = r.text().unwrap();
    assert!(csv.contains("volume,test,incident,1"), "{csv}");
    assert_eq!(csv, api_csv, "the report API's CSV for the same period");
    let r = http
        .get(d.url("/ui/dashboard.csv?section=colour&last=7d"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().unwrap().contains("`section`"));
    // A second ticket, so the bars have something to compare; then the charts' figures for
    // the period picked are the report API's for the same period.
    let (status, _) = d.post(
        "/api/v1/tickets",
        &json!({"kind": "request", "title": "New laptop"}).to_string(),
    );
    assert_eq!(status, 201);
    let html = http
        .get(d.url("/ui/dashboard?last=7d"))
        .header("cookie", &session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains(r#"<option value="7d" selected>"#), "{html}");
    // A period the picker does not list is shown as the one chosen, not the picker's first.
    let other = http
        .get(d.url("/ui/dashboard?last=14d"))
        .header("cookie", &session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        other.contains(r#"<option value="14d" selected>"#),
        "{other}"
    );
    assert_eq!(other.matches(" selected>").count(), 1, "{other}");
    let api = d.get_ok("/api/v1/reports?last=7d");
    let mut volume: Vec<(String, f64)> = api["volume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let label = format!(
                "{} {}",
                v["source"].as_str().unwrap(),
                v["kind"].as_str().unwrap()
            );
            (label, v["count"].as_f64().unwrap())
        })
        .collect();
    let mut backlog: Vec<(String, f64)> = api["backlog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["state"].as_str().unwrap().to_string(),
                b["total"].as_f64().unwrap(),
            )
        })
        .collect();
    volume.sort_by(|a, b| a.0.cmp(&b.0));
    backlog.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(volume.len(), 3, "{api}");
    assert_eq!(bars_of(&html, "volume-chart"), volume);
    assert_eq!(bars_of(&html, "backlog-states"), backlog);
}

/// The (label, value) of every bar in the dashboard figure `id`, by label.
fn bars_of(html: &str, id: &str) -> Vec<(String, f64)> {
    let start = html
        .find(&format!(r#"<figure class="panel" id="{id}">"#))
        .unwrap_or_else(|| panic!("no figure {id}"));
    let section = &html[start..];
    let section = &section[..section.find("</figure>").unwrap()];
    let mut bars: Vec<(String, f64)> = section
        .split(" data-label=\"")
        .skip(1)
        .map(|s| {
            let label = s.split('"').next().unwrap().to_string();
            let value = s
                .split("data-value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (label, value.parse().unwrap())
        })
        .collect();
    bars.sort_by(|a, b| a.0.cmp(&b.0));
    bars
}

// ---- Over HTTP: the operations views, saved searches, bulk actions, the dashboard's figures

/// A signed-in console user over plain HTTP: the session cookie and its CSRF token.
struct Web<'a> {
    d: &'a Daemon,
    http: reqwest::blocking::Client,
    cookie: String,
    csrf: String,
}

impl<'a> Web<'a> {
    fn sign_in(d: &'a Daemon, user: &str, password: &str) -> Web<'a> {
        let http = no_redirects();
        let (status, cookie) = sign_in(d, &http, user, password);
        assert_eq!(status, 303, "{user} signs in");
        let cookie = cookie.expect("a session cookie");
        let page = http
            .get(d.url("/ui/"))
            .header("cookie", &cookie)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let csrf = csrf_of(&page);
        Web {
            d,
            http,
            cookie,
            csrf,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(self.d.url(path))
            .header("cookie", &self.cookie)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// Posts `form` (with this session's CSRF token unless `csrf` is false): the status, the
    /// redirect target if any, and the body.
    fn post(&self, path: &str, form: &[(&str, &str)], csrf: bool) -> (u16, String, String) {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        if csrf {
            fields.push(("csrf", &self.csrf));
        }
        let r = self
            .http
            .post(self.d.url(path))
            .header("cookie", &self.cookie)
            .form(&fields)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, location, r.text().unwrap())
    }
}

const ADMIN_TOKEN: &str = "admin-token-for-console-tests";

/// Admin token, groups (alice in operations), and vendor `acme` at `url` giving up after two
/// attempts.
fn ops_config(url: &str) -> String {
    format!(
        r#"
[auth]
tokens = [{{ name = "root", role = "admin", token = "{ADMIN_TOKEN}" }}]
[groups.triage]
members = ["alice"]
[groups.operations]
members = ["alice"]
[groups.dba]
[vendors.acme]
url = "{url}"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
timeout = "2s"
retry = {{ max_attempts = 2, base_ms = 20, cap_ms = 50 }}
"#
    )
}

const ROUTE: &str = r#"fn on_alert(alert, ticket) { if ticket.is_new { ticket.title = alert.summary; } ticket.group = alert.labels.team ?? "operations"; }"#;

/// The `<td class="runs">` figure of a rule file's hook on the operations page.
fn runs_of(html: &str, rule: &str, hook: &str) -> u64 {
    let row = format!(r#"<tr data-rule="{rule}" data-hook="{hook}">"#);
    let at = html
        .find(&row)
        .unwrap_or_else(|| panic!("no row {row} in {html}"));
    let cell = &html[at..];
    let runs = cell.find(r#"<td class="runs">"#).unwrap() + 17;
    cell[runs..].split('<').next().unwrap().parse().unwrap()
}

#[test]
fn the_operations_views_are_admins_only_and_use_the_daemons_own_code() {
    use crate::receiver::{Receiver, Reply};
    let receiver = Receiver::start(vec![Reply::Status(500), Reply::Status(502)]);
    let setup = Setup::new()
        .rules(&[("10-route.rhai", ROUTE)])
        .config(&ops_config(&format!("{}/hook", receiver.url)));
    let d = setup.start();
    add_user_as(&d, Some(ADMIN_TOKEN), "olga", "admin", "olgas passphrase");
    add_user_as(&d, Some(ADMIN_TOKEN), "alice", "agent", "alices passphrase");
    for (n, team) in [(1, "operations"), (2, "dba")] {
        let body = alert(
            "firing",
            &format!("Disk full {n}"),
            json!({"host": format!("db{n}"), "team": team}),
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let (status, said) = d.call_as(
            ADMIN_TOKEN,
            reqwest::Method::POST,
            "/api/v1/events",
            Some(body),
        );
        assert_eq!(status, 202, "{said}");
    }

    // An agent is refused every operations page and action, and is not offered the link.
    let alice = Web::sign_in(&d, "alice", "alices passphrase");
    assert!(!alice.get("/ui/").1.contains("/ui/ops"));
    for path in ["/ui/ops", "/ui/ops/outbox"] {
        let (status, html) = alice.get(path);
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("this page needs admin"), "{html}");
    }
    for path in ["/ui/ops/replay", "/ui/ops/outbox/replay"] {
        assert_eq!(alice.post(path, &[("dir", "/"), ("id", "1")], true).0, 403);
    }

    // The rule set with each hook's runs as the daemon's registry counts them.
    let olga = Web::sign_in(&d, "olga", "olgas passphrase");
    let (status, html) = olga.get("/ui/ops");
    assert_eq!(status, 200, "{html}");
    let metric = d.metric(r#"itsmd_rule_evaluations_total{rule="10-route.rhai",hook="on_alert"}"#);
    assert_eq!(metric, 2.0, "{}", d.metrics());
    assert_eq!(runs_of(&html, "10-route.rhai", "on_alert") as f64, metric);
    let health = d.get_ok("/healthz");
    let version = health["rules_version"].as_str().unwrap();
    assert!(
        html.contains(&format!(r#"<code id="rules-version">{version}</code>"#)),
        "{html}"
    );
    assert!(html.contains(r#"<dd id="readiness">ready</dd>"#), "{html}");

    // A candidate rule directory replayed: the same differences as the replay API's.
    let candidate = tempfile::tempdir().unwrap();
    let next = r#"fn on_alert(alert, ticket) { if ticket.is_new { ticket.title = alert.summary; } ticket.group = "triage"; }"#;
    std::fs::write(candidate.path().join("10-route.rhai"), next).unwrap();
    let dir = candidate.path().to_str().unwrap();
    let (status, _, html) = olga.post("/ui/ops/replay", &[("dir", dir), ("since", "")], true);
    assert_eq!(status, 200, "{html}");
    let (status, report) = d.call_as(
        ADMIN_TOKEN,
        reqwest::Method::POST,
        "/api/v1/admin/replay",
        Some(json!({"rules": {"10-route.rhai": next}})),
    );
    assert_eq!(status, 200, "{report}");
    let diffs = report["ticket_differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 2, "{report}");
    for t in diffs {
        assert_eq!(t["field"], "group");
        let row = format!(
            r#"<td><a href="/ui/tickets/{id}">{id}</a></td><td>group</td><td>{old}</td><td>triage</td>"#,
            id = t["ticket"].as_str().unwrap(),
            old = t["happened"].as_str().unwrap(),
        );
        assert!(html.contains(&row), "no {row} in {html}");
    }
    let said = format!(
        "Replayed {} events, compared {}.",
        report["events"], report["compared"]
    );
    assert!(html.contains(&said), "{html}");
    // A candidate that does not compile, and a folder without rules: refused, saying why.
    std::fs::write(candidate.path().join("20-bad.rhai"), "fn on_alert(a, t) {").unwrap();
    let (status, _, html) = olga.post("/ui/ops/replay", &[("dir", dir)], true);
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("20-bad.rhai"), "{html}");
    let empty = tempfile::tempdir().unwrap();
    let (status, _, html) = olga.post(
        "/ui/ops/replay",
        &[("dir", empty.path().to_str().unwrap())],
        true,
    );
    assert_eq!(status, 400);
    assert!(html.contains("holds no *.rhai file"), "{html}");

    // A dead letter: listed, and replayed with the button (not without the CSRF token).
    let id = incidents_as(&d)[0]["id"].as_str().unwrap().to_string();
    let (status, t) = d.call_as(
        ADMIN_TOKEN,
        reqwest::Method::PATCH,
        &format!("/api/v1/tickets/{id}"),
        Some(json!({"vendor": "acme"})),
    );
    assert_eq!(status, 200, "{t}");
    let mut row_id = 0;
    crate::support::wait_until("a dead letter", || {
        let (_, v) = d.call_as(
            ADMIN_TOKEN,
            reqwest::Method::GET,
            "/api/v1/admin/outbox?dead=true",
            None,
        );
        row_id = v["rows"][0]["id"].as_u64().unwrap_or(0);
        row_id > 0
    });
    let row = row_id.to_string();
    let (status, html) = olga.get("/ui/ops/outbox");
    assert_eq!(status, 200);
    let dead = &html[html.find(r#"<table id="dead">"#).expect("the dead letters")..];
    assert!(
        dead.contains(&format!(r#"<tr data-row="{row}">"#)),
        "{html}"
    );
    assert!(dead.contains("gave up after 2"), "{html}");
    assert_eq!(receiver.received().len(), 2);
    let (status, _, _) = olga.post("/ui/ops/outbox/replay", &[("id", &row)], false);
    assert_eq!(status, 403);
    let (status, location, _) = olga.post("/ui/ops/outbox/replay", &[("id", &row)], true);
    assert_eq!(
        (status, location.as_str()),
        (303, &*format!("/ui/ops/outbox?replayed={row}"))
    );
    let got = receiver.wait_for(3, Duration::from_secs(10));
    assert_eq!(got[2].id, got[0].id, "the same message, sent again");
    crate::support::wait_until("the dead letter gone", || {
        !olga
            .get("/ui/ops/outbox")
            .1
            .contains(r#"<table id="dead">"#)
    });
}

/// Every incident, listed with the admin token.
fn incidents_as(d: &Daemon) -> Vec<serde_json::Value> {
    let (status, v) = d.call_as(
        ADMIN_TOKEN,
        reqwest::Method::GET,
        "/api/v1/tickets?kind=incident&limit=500",
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["tickets"].as_array().cloned().unwrap_or_default()
}

/// The ticket ids of a queue page's rows (`data-ticket`), in order.
fn listed(html: &str) -> Vec<String> {
    html.split(r#"<tr data-ticket=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn saved_searches_and_bulk_actions_go_through_the_apis_checks() {
    let setup = Setup::new()
        .rules(&[("10-route.rhai", ROUTE)])
        .config(&ops_config("http://127.0.0.1:9/hook"));
    let d = setup.start();
    add_user_as(&d, Some(ADMIN_TOKEN), "alice", "agent", "alices passphrase");
    for (n, team) in [(1, "operations"), (2, "operations"), (3, "dba")] {
        let body = alert(
            "firing",
            &format!("Disk full {n}"),
            json!({"host": format!("db{n}"), "team": team}),
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let (status, said) = d.call_as(
            ADMIN_TOKEN,
            reqwest::Method::POST,
            "/api/v1/events",
            Some(body),
        );
        assert_eq!(status, 202, "{said}");
    }
    let alice = Web::sign_in(&d, "alice", "alices passphrase");

    // A search the list API refuses cannot be saved, with the API's words.
    let (status, _, said) = alice.post(
        "/ui/searches",
        &[("name", "bad"), ("query", "state=sleeping&colour=red")],
        true,
    );
    assert_eq!(status, 400, "{said}");
    assert!(said.contains("colour"), "{said}");
    let (status, _, said) = alice.post(
        "/ui/searches",
        &[("name", "bad"), ("query", "priority=9")],
        true,
    );
    assert_eq!(status, 400);
    assert!(said.contains("`priority` must be 1..=5"), "{said}");
    assert_eq!(
        alice
            .post("/ui/searches", &[("name", "x"), ("query", "")], false)
            .0,
        403
    );
    // A good one is kept in the store (it outlives the session) and lists what the API lists.
    let (status, location, _) = alice.post(
        "/ui/searches",
        &[("name", "ops new"), ("query", "group=operations&state=new")],
        true,
    );
    assert_eq!((status, location.as_str()), (303, "/ui/?search=ops%20new"));
    let alice = Web::sign_in(&d, "alice", "alices passphrase");
    let (status, html) = alice.get("/ui/?search=ops%20new");
    assert_eq!(status, 200);
    assert!(html.contains("ops new") && html.contains("group=operations&amp;state=new"));
    let (_, api) = d.call_as(
        ADMIN_TOKEN,
        reqwest::Method::GET,
        "/api/v1/tickets?group=operations&state=new",
        None,
    );
    let mut want: Vec<String> = api["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let section = &html[html.find(r#"<section id="search">"#).unwrap()..];
    let mut got = listed(section);
    got.sort();
    want.sort();
    assert_eq!(got.len(), 2);
    assert_eq!(got, want);
    assert!(!html.contains("more match"), "{html}");
    // A search whose page holds fewer than match says so, rather than looking complete.
    let (status, _, _) = alice.post(
        "/ui/searches",
        &[("name", "one"), ("query", "group=operations&limit=1")],
        true,
    );
    assert_eq!(status, 303);
    let (_, html) = alice.get("/ui/?search=one");
    let section = &html[html.find(r#"<section id="search">"#).unwrap()..];
    assert_eq!(listed(section).len(), 1);
    assert!(
        html.contains("Showing the first 1 tickets of the saved search; more match"),
        "{html}"
    );
    let dump = d
        .http
        .get(d.url("/api/v1/admin/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        dump.contains(r#""searches":{"one":"group=operations&limit=1","ops new":"group=operations&state=new"}"#),
        "{dump}"
    );

    // Bulk assign: alice may take the operations tickets, not the dba one (not her group);
    // the refused one is named, the others done.
    let ids: Vec<String> = incidents_as(&d)
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let mut form = vec![("action", "assign"), ("assignee", "alice")];
    form.extend(ids.iter().map(|id| ("ticket", id.as_str())));
    assert_eq!(alice.post("/ui/bulk", &form, false).0, 403);
    let (status, _, html) = alice.post("/ui/bulk", &form, true);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("2 done, 1 refused."), "{html}");
    let after = incidents_as(&d);
    for t in &after {
        let id = t["id"].as_str().unwrap();
        let item = &html[html.find(&format!(r#"<li data-ticket="{id}">"#)).unwrap()..];
        let item = &item[..item.find("</li>").unwrap()];
        if t["group"] == "dba" {
            assert!(t["assignee"].is_null());
            assert!(item.contains("refused: "), "{item}");
        } else {
            assert_eq!(t["assignee"], "alice");
            assert!(item.contains("done"), "{item}");
        }
    }
    // Bulk transition: new → on_hold is not a legal move, new → in_progress is.
    let ops: Vec<&str> = after
        .iter()
        .filter(|t| t["group"] == "operations")
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let mut form = vec![
        ("action", "transition"),
        ("to", "on_hold"),
        ("hold_reason", "awaiting_caller"),
        ("reason", "asked"),
    ];
    form.extend(ops.iter().map(|id| ("ticket", *id)));
    let (_, _, html) = alice.post("/ui/bulk", &form, true);
    assert!(
        html.contains("0 done, 2 refused.") && html.contains("allowed: in_progress"),
        "{html}"
    );
    form[1] = ("to", "in_progress");
    form[2] = ("hold_reason", "");
    let (_, _, html) = alice.post("/ui/bulk", &form, true);
    assert!(html.contains("2 done, 0 refused."), "{html}");
    for t in incidents_as(&d)
        .iter()
        .filter(|t| t["group"] == "operations")
    {
        assert_eq!(t["state"], "in_progress");
    }
    // The saved search now lists none; deleting it removes it.
    assert!(listed(&alice.get("/ui/?search=ops%20new").1).is_empty());
    assert_eq!(
        alice
            .post("/ui/searches/delete", &[("name", "ops new")], true)
            .0,
        303
    );
    assert_eq!(alice.get("/ui/?search=ops%20new").0, 404);
    assert_eq!(
        alice
            .post("/ui/searches/delete", &[("name", "ops new")], true)
            .0,
        404
    );
}

#[test]
fn the_queue_shows_the_most_urgent_first_and_says_how_many_match() {
    let d = Setup::new().start();
    add_user(&d, "alice", "agent", "alices passphrase");
    let open = |title: &str, priority: u8| {
        let body = json!({"kind": "request", "title": title, "priority": priority});
        let (status, t) = d.post("/api/v1/tickets", &body.to_string());
        assert_eq!(status, 201, "{t}");
        t["id"].as_str().unwrap().to_string()
    };
    // More P4 tickets than the queue shows, then (newer) a P2 and two P1s.
    let p4: Vec<String> = (0..205).map(|n| open(&format!("Printer {n}"), 4)).collect();
    let p2 = open("VPN down for one user", 2);
    let p1 = [open("Payroll run failed", 1), open("Shop offline", 1)];
    let alice = Web::sign_in(&d, "alice", "alices passphrase");
    let (status, html) = alice.get("/ui/");
    assert_eq!(status, 200);
    let rows = listed(&html);
    assert_eq!(rows.len(), 200, "capped at 200");
    // P1 (the older first), P2, then the oldest P4s: the newest five P4s are left out.
    let mut want: Vec<String> = p1.to_vec();
    want.push(p2);
    want.extend(p4[..197].iter().cloned());
    assert_eq!(rows, want);
    assert!(
        html.contains("Showing the 200 most urgent of 208 tickets"),
        "{}",
        &html[html.find("<p id=\"shown\"").unwrap()..][..300]
    );
    // The live part says the same; narrowed down, all that match are shown and counted.
    let (_, live) = alice.get("/ui/queue?q=payroll");
    assert_eq!(listed(&live), vec![p1[0].clone()]);
    assert!(live.contains("1 ticket."), "{live}");
    // An unknown filter is refused, naming it.
    let (status, said) = alice.get("/ui/queue?colour=red");
    assert_eq!(status, 400);
    assert!(said.contains("colour"), "{said}");
}

#[test]
fn a_change_page_shows_its_plan_and_an_approver_implements_outside_the_window() {
    let d = Setup::new()
        .config("[approval.changes.normal]\napprovers = [\"alice\"]\n")
        .start();
    add_user(&d, "alice", "agent", "correct horse battery");
    let (status, change) = d.post(
        "/api/v1/tickets",
        &json!({"kind": "change", "title": "Move the racks", "risk": "high",
                "service": "dc-west", "backout_plan": "move them back",
                "window": {"start": "2030-01-05T22:00:00Z", "end": "2030-01-06T02:00:00Z"}})
        .to_string(),
    );
    assert_eq!(status, 201, "{change}");
    let http = no_redirects();
    let (_, session) = sign_in(&d, &http, "alice", "correct horse battery");
    let session = session.unwrap();
    let page = ticket_page(&d, &http, &session, "CHG-000001");
    for shown in [
        "id=\"change-type\">normal",
        "move them back",
        "dc-west",
        "2030-01-05",
    ] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
    let csrf = csrf_of(&page);
    let step = |form: &[(&str, &str)]| {
        http.post(d.url("/ui/tickets/CHG-000001/transition"))
            .header("cookie", &session)
            .form(form)
            .send()
            .unwrap()
    };
    for to in ["assess", "authorize", "scheduled"] {
        let r = step(&[("csrf", &csrf), ("to", to), ("reason", to)]);
        assert!(
            r.status().is_redirection() || r.status().is_success(),
            "{to}: {}",
            r.text().unwrap()
        );
    }
    let page = ticket_page(&d, &http, &session, "CHG-000001");
    assert!(
        page.contains("id=\"approval\">1 of 1 from alice; approved by alice"),
        "{page}"
    );
    // Outside its window the implement form asks why; without a reason it is refused.
    assert!(page.contains("name=\"window_override\""), "{page}");
    let r = step(&[("csrf", &csrf), ("to", "implement"), ("reason", "go")]);
    assert_eq!(r.status().as_u16(), 409);
    assert!(r.text().unwrap().contains("outside its window"));
    let r = step(&[
        ("csrf", &csrf),
        ("to", "implement"),
        ("reason", "go"),
        ("window_override", "the movers come early"),
    ]);
    assert!(r.status().is_redirection() || r.status().is_success());
    let (_, t) = d.get("/api/v1/tickets/CHG-000001");
    assert_eq!(t["state"], "implement", "{t}");
}
