//! The agent console in a real browser (headless Chromium through WebDriver) and, for what a
//! browser would not send (a form without its CSRF token), over plain HTTP.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{BIN, Daemon, Setup};

/// `itsmd user add NAME --role ROLE` with `password` on standard input.
fn add_user(d: &Daemon, name: &str, role: &str, password: &str) {
    let mut child = Command::new(BIN)
        .args(["user", "add", name, "--role", role, "--server"])
        .arg(d.url(""))
        .env_remove("ITSMD_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Added user {name} ({role}).\n")
    );
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

    // A disabled account cannot sign in; the CLI says what it did.
    add_user(&d, "bob", "agent", "bobs password");
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

async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[test]
fn an_agent_works_an_incident_in_a_real_browser() {
    // Alice works for operations, where the default rules route this alert.
    let d = Setup::new()
        .config("[groups.triage]\n[groups.operations]\nmembers = [\"alice\"]\n")
        .start();
    add_user(&d, "alice", "agent", "correct horse battery");
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
        screenshot(&c, "queue.png").await;

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
        screenshot(&c, "ticket.png").await;

        // The service owner's view: the reports, with bars drawn as SVG.
        click(&c, "header.top a[href='/ui/dashboard']").await;
        wait_text(&c, "#volume table", "incident").await;
        c.find(Locator::Css("#volume svg rect.bar")).await.unwrap();
        wait_text(&c, "#backlog", "Backlog").await;
        screenshot(&c, "dashboard.png").await;
        c.close().await.unwrap();
    });
    // What the browser did is what the API shows.
    let list = crate::support::incidents(&d);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "resolved");
    assert_eq!(list[0]["assignee"], "alice");
    let id = list[0]["id"].as_str().unwrap();
    let comments = d.get_ok(&format!("/api/v1/tickets/{id}/comments"));
    assert_eq!(comments[0]["author"]["name"], "alice");
}

#[test]
fn the_console_shows_the_engines_refusal_and_needs_the_csrf_token() {
    let d = Setup::new().start();
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
    let page = http
        .get(d.url(&format!("/ui/tickets/{id}")))
        .header("cookie", &session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = csrf_of(&page);
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
    assert_eq!(
        r.text().unwrap(),
        "source,kind,count\r\ntest,incident,1\r\n"
    );
}
