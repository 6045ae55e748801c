//! What makes the embedded store's flush durable on power loss, not only on a crash.
//!
//! sled 0.34.7 ends its flush on Linux with `sync_file_range` (spacejam/sled#1452): that
//! writes the log's pages to the device and waits, but sends no cache flush to a disk with a
//! volatile write cache (most disks, and virtual disks in "write back" mode) and does not
//! commit the file's size when the write grew it. A process crash loses nothing either way;
//! a power loss or a host crash could lose acknowledged writes. Values too big for a log
//! segment go to files of their own under `blobs/`, which sled writes without any sync.
//!
//! So after sled's flush the store calls [`DiskSync::sync`]: `fdatasync` on the log file,
//! and `fsync` on every blob file not synced before and on the `blobs/` directory when it
//! changed. Only then is a batch acknowledged.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A directory modified this recently may change again within its timestamp's granularity
/// (the kernel's clock tick) without its modification time moving: listed every time.
const SETTLED: Duration = Duration::from_secs(1);

pub struct DiskSync {
    /// sled's log (`DIR/db`), opened read-only: `fdatasync` flushes the file's pages and
    /// size whichever descriptor wrote them.
    log: File,
    blobs: Mutex<Blobs>,
    /// TEST ONLY (`None` in production): syncs fail while this file exists
    /// ([`super::failpoint::sync_fails_while`]).
    fail_while: Option<PathBuf>,
}

/// The blob files already synced, and when the directory was last seen to change.
struct Blobs {
    dir: PathBuf,
    /// The directory's modification time when it was last listed, once it is
    /// [`SETTLED`]: while it stays the same no new blob was written.
    listed: Option<SystemTime>,
    synced: HashSet<OsString>,
}

impl DiskSync {
    /// For the sled database just opened in `dir` (so its files exist). Syncs the
    /// directory and its parent once, so the names of the files and of a directory sled has
    /// just made are durable too.
    pub fn open(dir: &Path) -> io::Result<DiskSync> {
        let log = File::open(dir.join("db"))?;
        sync_path(dir)?;
        sync_parent(dir)?;
        Ok(DiskSync {
            log,
            blobs: Mutex::new(Blobs {
                dir: dir.join("blobs"),
                listed: None,
                synced: HashSet::new(),
            }),
            fail_while: super::failpoint::sync_fails_while(),
        })
    }

    /// Makes everything sled has flushed durable: the blobs first, then the log that points
    /// to them.
    pub fn sync(&self) -> io::Result<()> {
        if self.fail_while.as_ref().is_some_and(|p| p.exists()) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sync()?;
        self.log.sync_data()
    }
}

impl Blobs {
    fn sync(&mut self) -> io::Result<()> {
        let modified = match std::fs::metadata(&self.dir) {
            Ok(meta) => meta.modified()?,
            // sled makes the directory when it opens; none means no blob to sync.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.listed == Some(modified) {
            return Ok(());
        }
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced.contains(&name) {
                match sync_path(&entry.path()) {
                    Ok(()) => {}
                    // Removed by sled's collection meanwhile: nothing left to sync.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            }
            present.insert(name);
        }
        // A blob added or removed: the folder's names change too.
        if present != self.synced {
            sync_path(&self.dir)?;
        }
        self.synced = present;
        let settled = SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|age| age >= SETTLED);
        self.listed = settled.then_some(modified);
        Ok(())
    }
}

/// `fsync` of one file, or of a folder (the names in it).
pub fn sync_path(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// `fsync` of the folder holding `path` (the current folder for a bare name), so that a
/// name just made or moved there survives a power loss.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => sync_path(Path::new(".")),
        Some(p) => sync_path(p),
        // The root folder: no parent to record its name.
        None => Ok(()),
    }
}

/// The memory-backed file system `dir` is on ("tmpfs", "ramfs"), whose files a reboot
/// loses whatever is synced: the daemon warns of it at start. `None` for a disk, or when
/// `dir` cannot be examined (the store's own open reports that).
pub fn memory_file_system(dir: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs(2) writes only into the zeroed struct it is given; `path` is a valid C
    // string that outlives the call.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    match stat.f_type as i64 {
        TMPFS_MAGIC => Some("tmpfs"),
        RAMFS_MAGIC => Some("ramfs"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_written_after_a_sync_is_synced_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"log").unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        let sync = DiskSync::open(dir.path()).unwrap();
        sync.sync().unwrap();
        assert!(sync.blobs.lock().unwrap().synced.is_empty());
        // Within the directory's timestamp granularity: listed again, not skipped.
        std::fs::write(dir.path().join("blobs/7"), b"blob").unwrap();
        sync.sync().unwrap();
        let names: Vec<_> = sync.blobs.lock().unwrap().synced.iter().cloned().collect();
        assert_eq!(names, vec![OsString::from("7")]);
        std::fs::remove_file(dir.path().join("blobs/7")).unwrap();
        sync.sync().unwrap();
        assert!(sync.blobs.lock().unwrap().synced.is_empty());
    }

    #[test]
    fn a_memory_file_system_is_told_from_a_disk() {
        // /dev/shm is a tmpfs on Linux; /proc is neither tmpfs nor ramfs.
        assert_eq!(memory_file_system(Path::new("/dev/shm")), Some("tmpfs"));
        assert_eq!(memory_file_system(Path::new("/proc")), None);
        assert_eq!(memory_file_system(Path::new("/no/such/folder")), None);
    }

    #[test]
    fn a_store_without_a_log_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DiskSync::open(dir.path()).is_err());
    }
}
