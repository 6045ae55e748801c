//! `itsmd user add NAME --role ROLE`, `itsmd user passwd NAME`, `itsmd user disable NAME`,
//! `itsmd user list`: console accounts on a running daemon (admin token). Passwords are read
//! from standard input (one line), never from the command line.

use std::io::BufRead;

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use crate::cli::client::table;
use crate::cli::{Client, ServerArgs};

#[derive(clap::Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Adds an account; its password is the first line of standard input.
    Add {
        name: String,
        /// ingest, agent or admin: the same roles as API tokens.
        #[arg(long)]
        role: String,
    },
    /// Sets an account's password (first line of standard input) and enables it.
    Passwd { name: String },
    /// Disables an account; its sessions end at their next request.
    Disable { name: String },
    /// Lists the accounts.
    List,
}

fn password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!p.is_empty(), "no password on standard input");
    Ok(p)
}

/// Percent-encodes a path segment (user names are plain, but be safe).
fn segment(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    match args.command {
        UserCommand::Add { name, role } => {
            let body = json!({ "name": name, "role": role, "password": password()? });
            client.call(Method::POST, "/api/v1/admin/users", Some(&body))?;
            println!("Added user {name} ({role}).");
        }
        UserCommand::Passwd { name } => {
            let body = json!({ "password": password()? });
            let path = format!("/api/v1/admin/users/{}/password", segment(&name));
            client.call(Method::POST, &path, Some(&body))?;
            println!("Changed the password of {name}.");
        }
        UserCommand::Disable { name } => {
            let path = format!("/api/v1/admin/users/{}/disable", segment(&name));
            client.call(Method::POST, &path, None)?;
            println!("Disabled {name}.");
        }
        UserCommand::List => {
            let value = client.call(Method::GET, "/api/v1/admin/users", None)?;
            if args.server.json {
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            let mut rows = vec![["NAME".to_string(), "ROLE".into(), "STATE".into()]];
            for u in value.as_array().into_iter().flatten() {
                rows.push([
                    u["name"].as_str().unwrap_or("?").to_string(),
                    u["role"].as_str().unwrap_or("?").to_string(),
                    if u["disabled"].as_bool() == Some(true) {
                        "disabled"
                    } else {
                        "enabled"
                    }
                    .to_string(),
                ]);
            }
            print!("{}", table(&rows));
        }
    }
    Ok(())
}
