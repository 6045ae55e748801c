//! Client subcommands (`ticket`, `outbox`, `export`): talk to a running daemon over its HTTP API (`--server`, `--token`),
//! print readable tables or, with `--json`, the API's own JSON. They never open the store:
//! every write goes through the daemon's engine like any other API call. The one exception is
//! `itsmd import`, which fills an empty data directory while no daemon runs, and `itsmd
//! migrate`, which copies a stopped store to another backend.

pub mod backup;
pub mod client;
pub mod migrate;
pub mod replay;

pub use client::{Client, ServerArgs};
