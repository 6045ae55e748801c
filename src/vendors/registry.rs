//! The configured vendors as the daemon uses them: secrets loaded (once, at startup), URL
//! parsed, durations converted. Shared by the dispatcher (signing) and the callback route
//! (verifying). It must not print a secret: problems name where a secret comes from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::vendors::{RetrySchedule, Secret, VendorConfig};

/// One vendor, ready to sign for and verify.
#[derive(Debug)]
pub struct Vendor {
    pub name: String,
    /// Where its webhooks go.
    pub url: reqwest::Url,
    /// The current secret first, then the one rotating out, if any: messages carry a
    /// signature by each, callbacks may be signed by either.
    pub secrets: Vec<Secret>,
    /// Longest one attempt may take.
    pub timeout: Duration,
    /// Deliveries at once.
    pub max_in_flight: usize,
    pub retry: RetrySchedule,
    /// The proxy its webhooks go through; none: straight to it (environment proxies unused).
    pub proxy: Option<reqwest::Url>,
}

/// Every configured vendor, by name.
#[derive(Debug, Default, Clone)]
pub struct Vendors(BTreeMap<String, Arc<Vendor>>);

impl Vendors {
    /// Loads every vendor's secrets; all problems at once, none showing a secret.
    pub fn load(config: &BTreeMap<String, VendorConfig>) -> Result<Vendors, Vec<String>> {
        let mut vendors = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, v) in config {
            let at = format!("vendors.{name}");
            let mut secrets = Vec::new();
            let sources = std::iter::once(v.secret_source()).chain(v.previous_source());
            for source in sources {
                match source
                    .map_err(|e| e.to_string())
                    .and_then(|s| s.load().map_err(|e| e.to_string()))
                {
                    Ok(secret) => secrets.push(secret),
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            let url = match reqwest::Url::parse(&v.url) {
                Ok(url) => url,
                Err(e) => {
                    problems.push(format!("{at}.url: {e}"));
                    continue;
                }
            };
            let proxy = match v.proxy.as_deref().map(reqwest::Url::parse).transpose() {
                Ok(proxy) => proxy,
                Err(e) => {
                    problems.push(format!("{at}.proxy: {e}"));
                    continue;
                }
            };
            vendors.insert(
                name.clone(),
                Arc::new(Vendor {
                    name: name.clone(),
                    url,
                    secrets,
                    timeout: v.timeout.to_std(),
                    max_in_flight: v.max_in_flight,
                    retry: v.retry.clone(),
                    proxy,
                }),
            );
        }
        if problems.is_empty() {
            Ok(Vendors(vendors))
        } else {
            Err(problems)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Vendor>> {
        self.0.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every vendor, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Vendor>> {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_load_from_every_source_and_problems_name_the_source_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acme.key");
        std::fs::write(&file, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").unwrap();
        let text = format!(
            r#"
            [vendors.acme]
            url = "http://127.0.0.1:9/hook"
            secret_file = "{}"
            previous_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            [vendors.other]
            url = "http://127.0.0.1:9/hook"
            secret_env = "ITSMD_TEST_SURELY_UNSET_VARIABLE"
            "#,
            file.display()
        );
        let config = crate::config::parse(&text, "t").unwrap();
        let problems = Vendors::load(&config.vendors).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("secret_env ITSMD_TEST_SURELY_UNSET_VARIABLE"),
            "{problems:?}"
        );
        let mut only_acme = config.vendors.clone();
        only_acme.remove("other");
        let vendors = Vendors::load(&only_acme).unwrap();
        let acme = vendors.get("acme").unwrap();
        assert_eq!(acme.secrets.len(), 2);
        assert!(!format!("{acme:?}").contains("C2FV"));
    }
}
