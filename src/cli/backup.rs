//! `itsmd export` (from a running daemon, over HTTP) and `itsmd import` (into an empty data
//! directory, with the daemon stopped).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::client::Client;

use crate::cli::client::ServerArgs;
use crate::config::Config;

/// Saves the daemon's consistent dump to `file` ("-" for standard output). The dump is
/// written beside the target and renamed at the end, so a cut-off export never looks whole.
pub fn export(file: &Path, server: &ServerArgs) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    if file.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        client.download("/api/v1/admin/export", &mut out)?;
        return out.flush().context("cannot write to standard output");
    }
    let partial = file.with_extension("partial");
    let f = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut out = std::io::BufWriter::new(f);
    let bytes = client.download("/api/v1/admin/export", &mut out)?;
    out.flush()
        .with_context(|| format!("cannot write {}", partial.display()))?;
    drop(out);
    std::fs::rename(&partial, file)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), file.display()))?;
    eprintln!("Exported {bytes} bytes to {}.", file.display());
    Ok(())
}

/// Loads a dump into the configured (empty) data directory.
pub fn import(file: &Path, config: &Config) -> anyhow::Result<()> {
    let dir = &config.store.data_dir;
    let store = crate::store::open(&config.store)?;
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let entries = crate::backup::import(&*store, &mut std::io::BufReader::new(input))
        .with_context(|| format!("cannot import {}", file.display()))?;
    eprintln!("Imported {entries} entries into {}.", dir.display());
    Ok(())
}
