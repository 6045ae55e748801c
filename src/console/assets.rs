//! The console's static files, embedded in the binary: htmx (vendored from the npm package
//! `htmx.org`, with its LICENSE next to it, and the gzip the package ships), the style
//! sheet and `console.js` (the few lines that poll live parts while the page is visible). Each is served under a path carrying its content hash, so it can be cached forever.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The vendored htmx version (`src/console/assets/htmx.min.js`).
pub const HTMX_VERSION: &str = "2.0.11";

const HTMX: &[u8] = include_bytes!("assets/htmx.min.js");
const HTMX_GZ: &[u8] = include_bytes!("assets/htmx.min.js.gz");
const CSS: &[u8] = include_bytes!("assets/console.css");
const JS: &[u8] = include_bytes!("assets/console.js");

struct Asset {
    /// The file name under `/ui/assets/`, with the content hash.
    name: String,
    content_type: &'static str,
    plain: &'static [u8],
    gzip: Option<&'static [u8]>,
}

fn hashed(stem: &str, ext: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{stem}.{short}.{ext}")
}

fn all() -> &'static [Asset; 3] {
    static ASSETS: OnceLock<[Asset; 3]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            Asset {
                name: hashed(&format!("htmx-{HTMX_VERSION}"), "min.js", HTMX),
                content_type: "text/javascript; charset=utf-8",
                plain: HTMX,
                gzip: Some(HTMX_GZ),
            },
            Asset {
                name: hashed("console", "css", CSS),
                content_type: "text/css; charset=utf-8",
                plain: CSS,
                gzip: None,
            },
            Asset {
                name: hashed("console", "js", JS),
                content_type: "text/javascript; charset=utf-8",
                plain: JS,
                gzip: None,
            },
        ]
    })
}

/// The path of htmx, for `<script src>`.
pub fn htmx_path() -> String {
    format!("/ui/assets/{}", all()[0].name)
}

/// The path of the style sheet, for `<link href>`.
pub fn css_path() -> String {
    format!("/ui/assets/{}", all()[1].name)
}

/// The path of the console's own script (the polling of live parts), for `<script src>`.
pub fn js_path() -> String {
    format!("/ui/assets/{}", all()[2].name)
}

/// `GET /ui/assets/{file}`: the file, gzip when the client takes it, cached for a year.
pub async fn serve(Path(file): Path<String>, req: HeaderMap) -> Response {
    let Some(asset) = all().iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let gzip_ok = req
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    match asset.gzip {
        Some(gz) if gzip_ok => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (headers, gz).into_response()
        }
        _ => (headers, asset.plain).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_gzip_is_the_vendored_htmx() {
        use std::io::Read;
        // The .gz comes from the same npm package; a mismatch means one was updated alone.
        let mut out = Vec::new();
        let mut gz = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            gz.stdin.take().unwrap().write_all(HTMX_GZ).unwrap();
        }
        gz.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        assert!(gz.wait().unwrap().success());
        assert_eq!(out, HTMX);
        assert!(htmx_path().starts_with("/ui/assets/htmx-2.0.11."));
    }
}
