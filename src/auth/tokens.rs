//! Who is calling: bearer tokens (or basic-auth passwords) matched in constant time to the
//! configured tokens, and their role checked against what a route needs. Token values never
//! reach a log line or an error message.

use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use crate::api::ApiError;
use crate::auth::{AuthConfig, MIN_TOKEN_LEN, Role};

/// A loaded token: its name, role and secret bytes.
struct Key {
    /// Shown in logs and as the actor; the only thing about a token that is ever printed.
    name: String,
    role: Role,
    /// The secret, trimmed.
    secret: Vec<u8>,
}

/// The tokens in force. Empty means the API is open (loopback only, checked by config).
/// Clones share the set, so a reload ([`Keys::replace_with`]) reaches every route.
#[derive(Clone, Default)]
pub struct Keys(Arc<RwLock<Arc<Vec<Key>>>>);

/// The caller, as resolved by [`require`]; handlers find it in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name, or "anonymous" when the API is open.
    pub name: String,
    pub role: Role,
}

impl Keys {
    /// Reads every token (from the config or its file); every problem is listed, none of
    /// them shows a token.
    pub fn load(auth: &AuthConfig) -> Result<Keys, Vec<String>> {
        let mut keys = Vec::new();
        let mut problems = Vec::new();
        for t in &auth.tokens {
            let secret = match (&t.token, &t.token_file) {
                (Some(v), _) => v.trim().to_string(),
                (None, Some(path)) => match std::fs::read_to_string(path) {
                    Ok(v) => v.trim().to_string(),
                    Err(e) => {
                        problems.push(format!(
                            "token `{}`: cannot read {}: {e}",
                            t.name,
                            path.display()
                        ));
                        continue;
                    }
                },
                (None, None) => continue,
            };
            if secret.len() < MIN_TOKEN_LEN {
                problems.push(format!(
                    "token `{}` is shorter than {MIN_TOKEN_LEN} characters",
                    t.name
                ));
                continue;
            }
            // The same secret under two names: whichever matched first would be the caller,
            // so the other's role and name in history would be a lie.
            if let Some(other) = keys
                .iter()
                .find(|k: &&Key| bool::from(k.secret.as_slice().ct_eq(secret.as_bytes())))
            {
                problems.push(format!(
                    "tokens `{}` and `{}` have the same secret; give each its own",
                    other.name, t.name
                ));
                continue;
            }
            keys.push(Key {
                name: t.name.clone(),
                role: t.role,
                secret: secret.into_bytes(),
            });
        }
        if problems.is_empty() {
            Ok(Keys(Arc::new(RwLock::new(Arc::new(keys)))))
        } else {
            Err(problems)
        }
    }

    fn current(&self) -> Arc<Vec<Key>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `other`'s tokens in force for every clone of `self`.
    pub fn replace_with(&self, other: &Keys) {
        let new = other.current();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = new;
    }

    pub fn is_open(&self) -> bool {
        self.current().is_empty()
    }

    /// The caller whose secret equals `candidate`, compared in constant time against every key.
    fn find(&self, candidate: &[u8]) -> Option<Principal> {
        let mut found = None;
        for key in self.current().iter() {
            if bool::from(key.secret.ct_eq(candidate)) {
                found = Some(Principal {
                    name: key.name.clone(),
                    role: key.role,
                });
            }
        }
        found
    }

    /// The caller of a request with these headers, or the reason it is refused.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        if self.is_open() {
            return Ok(Principal {
                name: "anonymous".into(),
                role: Role::Admin,
            });
        }
        let candidate = credential(headers).ok_or_else(|| unauthorized("missing bearer token"))?;
        self.find(&candidate)
            .ok_or_else(|| unauthorized("unknown token"))
    }

    /// The name of the ingest-or-better token equal to `secret` (PagerDuty routing keys).
    pub fn ingest_key_name(&self, secret: &str) -> Option<String> {
        self.find(secret.as_bytes()).map(|p| p.name)
    }
}

/// The secret from `Authorization: Bearer X` or the password of `Authorization: Basic`.
fn credential(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest.trim()).ok()?;
        let (_, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        return Some(password.trim().as_bytes().to_vec());
    }
    None
}

fn unauthorized(why: &str) -> ApiError {
    ApiError {
        www_authenticate: true,
        ..ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("authentication required: {why}"),
        )
    }
}

/// Middleware: refuses callers without a token of at least `role`, and records the caller
/// as a [`Principal`] extension for the handlers.
pub async fn require(
    State((keys, role)): State<(Keys, Role)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let who = keys.identify(req.headers())?;
    if who.role < role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` has role {}; this endpoint needs {}",
                who.name,
                who.role.as_str(),
                role.as_str()
            ),
        ));
    }
    req.extensions_mut().insert(who);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenConfig;

    fn keys() -> Keys {
        let token = |name: &str, role, secret: &str| TokenConfig {
            name: name.into(),
            role,
            token: Some(secret.into()),
            token_file: None,
        };
        Keys::load(&AuthConfig {
            tokens: vec![
                token("am", Role::Ingest, "ingest-secret-0123456789"),
                token("alice", Role::Agent, "agent-secret-0123456789"),
            ],
        })
        .unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_credentials_identify_the_token() {
        let k = keys();
        assert_eq!(
            k.identify(&headers("Bearer agent-secret-0123456789"))
                .unwrap()
                .name,
            "alice"
        );
        // "x:ingest-secret-0123456789" in base64
        let basic = "Basic eDppbmdlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";
        assert_eq!(k.identify(&headers(basic)).unwrap().name, "am");
        let err = k
            .identify(&headers("Bearer nope-nope-nope-nope"))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(
            !err.message.contains("nope"),
            "the candidate leaked: {}",
            err.message
        );
        assert_eq!(
            k.identify(&HeaderMap::new()).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn open_mode_is_anonymous_admin() {
        let who = Keys::default().identify(&HeaderMap::new()).unwrap();
        assert_eq!(
            who,
            Principal {
                name: "anonymous".into(),
                role: Role::Admin
            }
        );
    }

    #[test]
    fn short_tokens_and_unreadable_files_are_reported_without_the_secret() {
        let cfg = AuthConfig {
            tokens: vec![
                TokenConfig {
                    name: "a".into(),
                    role: Role::Admin,
                    token: Some("short".into()),
                    token_file: None,
                },
                TokenConfig {
                    name: "b".into(),
                    role: Role::Admin,
                    token: None,
                    token_file: Some("/nonexistent/token".into()),
                },
            ],
        };
        let problems = Keys::load(&cfg).err().unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains("short\"")));
    }

    #[test]
    fn two_tokens_with_the_same_secret_are_refused_without_showing_it() {
        let token = |name: &str, role| TokenConfig {
            name: name.into(),
            role,
            token: Some("same-secret-0123456789".into()),
            token_file: None,
        };
        let cfg = AuthConfig {
            tokens: vec![token("ingest", Role::Ingest), token("root", Role::Admin)],
        };
        let problems = Keys::load(&cfg).err().unwrap();
        assert_eq!(
            problems,
            ["tokens `ingest` and `root` have the same secret; give each its own"]
        );
    }
}
