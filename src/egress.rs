//! The egress policy: where the daemon may connect on its own (vendor webhooks, the SMTP
//! relay). Loopback, private, link-local (cloud metadata at 169.254.169.254 included),
//! shared (100.64.0.0/10) and unspecified addresses are refused unless a range in
//! `[egress] allow` holds them. A destination is judged by the addresses its name resolves
//! to, every one of them, at send time (and by `itsmd check`), so a public name that
//! resolves to 169.254.169.254 is refused as that address is. Proxies are never taken from
//! the environment: a vendor's webhooks go through the proxy its `proxy` names, and then it
//! is the proxy's address that is judged.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// `[egress]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// Ranges (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`) the daemon may connect to although
    /// they are not public.
    pub allow: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EgressError {
    #[error(
        "`{host}` resolves to {addr}, a {kind} address the egress policy refuses; add it to [egress] allow if it is meant"
    )]
    Refused {
        host: String,
        addr: IpAddr,
        kind: &'static str,
    },
    #[error("cannot resolve `{host}`: {reason}")]
    Resolve { host: String, reason: String },
}

/// The parsed policy; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Arc<Vec<Range>>,
}

/// An address range: the network address and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    net: IpAddr,
    prefix: u8,
}

impl Range {
    fn parse(text: &str) -> Option<Range> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Range { net: addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Problems in `[egress]`: each `allow` entry an address or a range.
pub fn problems(c: &EgressConfig) -> Vec<String> {
    c.allow
        .iter()
        .filter(|a| Range::parse(a).is_none())
        .map(|a| {
            format!(
                "egress.allow: `{}` is not an address or range (give e.g. `10.0.0.0/8`, \
                 `127.0.0.1`, `fd00::/8`)",
                a.escape_default()
            )
        })
        .collect()
}

/// What kind of non-public address `ip` is; `None` for a public one.
fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("broadcast or multicast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if v6.is_multicast() {
                Some("broadcast or multicast")
            } else {
                None
            }
        }
    }
}

impl Policy {
    /// From a validated `[egress]` (entries that do not parse were reported by [`problems`]).
    pub fn new(c: &EgressConfig) -> Policy {
        Policy {
            allow: Arc::new(c.allow.iter().filter_map(|a| Range::parse(a)).collect()),
        }
    }

    /// Whether the daemon may connect to `addr`; `host` names it in the refusal.
    pub fn judge(&self, host: &str, addr: IpAddr) -> Result<(), EgressError> {
        let Some(kind) = restricted(addr) else {
            return Ok(());
        };
        if self.allow.iter().any(|r| r.contains(addr)) {
            return Ok(());
        }
        Err(EgressError::Refused {
            host: host.to_string(),
            addr,
            kind,
        })
    }

    /// Resolves `host:port` (on a blocking thread) and judges every address it resolves to:
    /// the addresses, or the first refused one.
    pub async fn check(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let (this, owned) = (self.clone(), host.to_string());
        tokio::task::spawn_blocking(move || this.check_blocking(&owned, port))
            .await
            .unwrap_or_else(|e| {
                Err(EgressError::Resolve {
                    host: host.to_string(),
                    reason: e.to_string(),
                })
            })
    }

    /// [`Policy::check`] on the calling thread (`itsmd check`).
    pub fn check_blocking(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (bare, port)
                .to_socket_addrs()
                .map_err(|e| EgressError::Resolve {
                    host: host.to_string(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        for a in &addrs {
            self.judge(host, a.ip())?;
        }
        Ok(addrs)
    }

    /// The host and port a URL connects to.
    pub fn url_target(url: &reqwest::Url) -> Option<(String, u16)> {
        Some((url.host_str()?.to_string(), url.port_or_known_default()?))
    }

    /// A resolver for an HTTP client that hands out only addresses the policy allows, so the
    /// connection goes where the check said (no second lookup to rebind).
    pub fn resolver(&self) -> Arc<Resolver> {
        Arc::new(Resolver(self.clone()))
    }
}

/// `itsmd check`: every configured destination (vendor URLs or their proxies, the SMTP
/// relay) resolved now and judged: the refusals, and the names that do not resolve here
/// (worth a look, not an error: DNS may differ where the daemon runs).
pub fn check_destinations(c: &crate::config::Config) -> (Vec<String>, Vec<String>) {
    let policy = Policy::new(&c.egress);
    let mut targets = Vec::new();
    for (name, v) in &c.vendors {
        let (what, url) = match &v.proxy {
            Some(p) => (format!("vendors.{name}.proxy"), p),
            None => (format!("vendors.{name}.url"), &v.url),
        };
        if let Some(t) = reqwest::Url::parse(url)
            .ok()
            .as_ref()
            .and_then(Policy::url_target)
        {
            targets.push((what, t));
        }
    }
    if let Some(smtp) = &c.smtp {
        targets.push((
            "smtp.host".into(),
            (smtp.host.trim().to_string(), smtp.port()),
        ));
    }
    let (mut refused, mut unresolved) = (Vec::new(), Vec::new());
    for (what, (host, port)) in targets {
        match policy.check_blocking(&host, port) {
            Ok(_) => {}
            Err(e @ EgressError::Refused { .. }) => refused.push(format!("{what}: {e}")),
            Err(e @ EgressError::Resolve { .. }) => unresolved.push(format!("{what}: {e}")),
        }
    }
    (refused, unresolved)
}

/// [`Policy`] as reqwest's name resolver.
pub struct Resolver(Policy);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = policy.check(name.as_str(), 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Policy {
        Policy::new(&EgressConfig {
            allow: allow.iter().map(|a| a.to_string()).collect(),
        })
    }

    #[test]
    fn non_public_ranges_are_refused_unless_allowed() {
        let p = policy(&[]);
        for (ip, kind) in [
            ("169.254.169.254", "link-local"),
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private (unique local)"),
            ("::ffff:169.254.169.254", "link-local"),
        ] {
            match p.judge("h", ip.parse().unwrap()) {
                Err(EgressError::Refused { kind: k, .. }) => assert_eq!(k, kind, "{ip}"),
                other => panic!("{ip}: {other:?}"),
            }
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert_eq!(p.judge("h", ip.parse().unwrap()), Ok(()), "{ip}");
        }
        let p = policy(&["127.0.0.0/8", "10.0.0.5", "fd00::/8"]);
        assert!(p.judge("h", "127.9.9.9".parse().unwrap()).is_ok());
        assert!(p.judge("h", "10.0.0.5".parse().unwrap()).is_ok());
        assert!(p.judge("h", "10.0.0.6".parse().unwrap()).is_err());
        assert!(p.judge("h", "fd12::1".parse().unwrap()).is_ok());
        assert!(p.judge("h", "::1".parse().unwrap()).is_err());
    }

    #[test]
    fn names_are_judged_by_what_they_resolve_to() {
        let p = policy(&[]);
        let e = p.check_blocking("localhost", 80).unwrap_err().to_string();
        assert!(
            e.contains("`localhost` resolves to") && e.contains("loopback"),
            "{e}"
        );
        assert!(e.contains("[egress] allow"), "{e}");
        let e = p.check_blocking("[::1]", 80).unwrap_err();
        assert!(matches!(
            e,
            EgressError::Refused {
                kind: "loopback",
                ..
            }
        ));
        assert!(
            policy(&["127.0.0.0/8", "::1"])
                .check_blocking("localhost", 80)
                .is_ok()
        );
    }

    #[test]
    fn bad_ranges_are_named() {
        let c = EgressConfig {
            allow: vec!["10.0.0.0/8".into(), "10.0.0.0/33".into(), "intranet".into()],
        };
        let p = problems(&c);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("`10.0.0.0/33`") && p[1].contains("`intranet`"));
    }
}
