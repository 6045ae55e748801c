//! `itsmd templates render NAME TICKET`: what template NAME of the set in force on a running
//! daemon makes of a ticket (subject, text part, HTML part), over the admin API.

use reqwest::Method;

use crate::cli::{Client, ServerArgs};

#[derive(clap::Args)]
pub struct TemplatesArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: TemplatesCommand,
}

#[derive(clap::Subcommand)]
pub enum TemplatesCommand {
    /// Render notification template NAME (`NAME.subject`…) against ticket TICKET.
    Render { name: String, ticket: String },
}

pub fn run(args: TemplatesArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let TemplatesCommand::Render { name, ticket } = args.command;
    let path = format!("/api/v1/admin/templates/{name}/render?ticket={ticket}");
    let v = client.call(Method::GET, &path, None)?;
    if args.server.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let part = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        println!("Subject: {}\n\n{}", part("subject"), part("text"));
        // A caller mail has no HTML part.
        if let Some(html) = v["html"].as_str() {
            println!("--- HTML ---\n{html}");
        }
    }
    Ok(())
}
