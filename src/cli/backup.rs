//! `itsmd export` (from a running daemon, over HTTP) and `itsmd import` (into an empty data
//! directory, with the daemon stopped).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::backup::{Verified, Verify};
use crate::cli::client::{Client, ServerArgs};
use crate::config::Config;

/// Saves the daemon's consistent dump to `file` ("-" for standard output). The dump is
/// written beside the target (mode 0600: it holds every ticket and mail), checked (counts,
/// checksum, every record) and only then renamed, so a cut-off export never looks whole.
///
/// With `since` (RFC 3339), an archive: the journal from that time and the tickets updated
/// since (`backup::export_since`), for keeping before the retention sweep prunes it.
pub fn export(file: &Path, since: Option<&str>, server: &ServerArgs) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let path = match since {
        Some(since) => {
            let at = crate::clock::parse_instant("--since", since).map_err(anyhow::Error::msg)?;
            format!("/api/v1/admin/export?since={at}")
        }
        None => "/api/v1/admin/export".to_string(),
    };
    if file.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        client.download(&path, &mut out)?;
        return out.flush().context("cannot write to standard output");
    }
    // FILE.partial (not FILE with its extension replaced), as docs/operations.md says: the
    // name still shows which export it was.
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let f = private_file(&partial)?;
    let mut out = std::io::BufWriter::new(f);
    let bytes = client.download(&path, &mut out)?;
    // On the disk before it takes its name: an archive kept before pruning must survive a
    // power loss right after the command said it was written.
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let verified = verify_file(&partial, Verify::Strict).with_context(|| {
        format!(
            "the export in {} does not check; it is kept there, not renamed",
            partial.display()
        )
    })?;
    std::fs::rename(&partial, file)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), file.display()))?;
    crate::store::sync_parent(file)
        .with_context(|| format!("cannot sync the folder of {}", file.display()))?;
    eprintln!(
        "Exported {} entries ({bytes} bytes, checked) to {}.",
        verified.entries,
        file.display()
    );
    Ok(())
}

/// Creates (or truncates) `path` readable and writable by its owner only.
fn private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // A file that was already there keeps its mode on open: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    Ok(f)
}

/// Checks a dump file without importing it.
fn verify_file(file: &Path, mode: Verify) -> anyhow::Result<Verified> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok(crate::backup::verify(
        &mut std::io::BufReader::new(input),
        mode,
        &mut |_, _, _| {},
    )?)
}

/// Loads a dump into the configured (empty) data directory, once the whole dump checks.
pub fn import(file: &Path, config: &Config, mode: Verify) -> anyhow::Result<()> {
    if file.extension().is_some_and(|e| e == "partial") {
        anyhow::bail!(
            "{} is an export that did not finish (a .partial file is renamed only once it \
             checks); export again",
            file.display()
        );
    }
    // Check the file before creating anything in the data directory.
    verify_file(file, mode).with_context(|| format!("cannot import {}", file.display()))?;
    let store = crate::store::open(&config.store)?;
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let verified = crate::backup::import(&*store, &mut std::io::BufReader::new(input), mode)
        .with_context(|| format!("cannot import {}", file.display()))?;
    if verified.format < 2 {
        eprintln!(
            "Warning: {} has no trailer (format {}); it could not be checked for being whole.",
            file.display(),
            verified.format
        );
    }
    if let Some(since) = verified.since {
        eprintln!(
            "Note: {} is an archive from {since} on (`itsmd export --since`): the journal and the tickets updated since, not a whole store.",
            file.display()
        );
    }
    eprintln!(
        "Imported {} entries into {}.",
        verified.entries,
        crate::store::describe(&config.store)
    );
    Ok(())
}
