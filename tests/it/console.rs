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
    // Adding an existing name is refused with the engine's reason.
    let out = Command::new(BIN)
        .args(["user", "add", "bob", "--role", "agent", "--server"])
        .arg(d.url(""))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
}
