//! The connection to the server, and what the logs may say about it (never a password).

use postgres::{Client, NoTls};

use crate::store::StoreError;

pub(super) fn connect(url: &str) -> Result<Client, StoreError> {
    Client::connect(url, NoTls).map_err(|e| StoreError::Open {
        // The URL may carry a password: name the server only.
        path: describe(url),
        error: e.into(),
    })
}

/// `host:port/dbname` of a connection string, without user or password.
pub(crate) fn describe(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(name) => name.clone(),
                    postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres {host}:{port}/{}",
                c.get_dbname().unwrap_or_default()
            )
        }
        Err(_) => "postgres (an unreadable connection string)".to_string(),
    }
}
