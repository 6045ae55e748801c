//! Client subcommands: talk to a running daemon over its HTTP API (`--server`, `--token`),
//! print readable tables or, with `--json`, the API's own JSON. They never open the store:
//! every write goes through the daemon's engine like any other API call.

mod client;
pub mod ticket;

pub use client::{Client, ServerArgs};
