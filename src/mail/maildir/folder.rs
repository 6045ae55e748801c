//! The Maildir on disk: creating it, listing new/, reading a message, moving one to cur/ and
//! quarantining one with its reason. Blocking file-system calls only; what to do with a
//! message is decided by the intake loop. tmp/ is never read: it belongs to delivery agents
//! still writing.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Why the Maildir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The folders of one Maildir and its quarantine.
#[derive(Debug, Clone)]
pub struct Maildir {
    /// Where delivery agents put finished messages; the only folder read.
    pub new: PathBuf,
    /// Where committed messages go, marked seen.
    pub cur: PathBuf,
    /// Where messages that cannot be taken go, each with a `.reason` file.
    pub quarantine: PathBuf,
}

/// A message waiting in new/.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// When it was last written: a message written straight into new/ may still be growing.
    pub modified: SystemTime,
}

/// What new/ holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Regular files, oldest name first.
    pub waiting: Vec<Waiting>,
    /// Entries that are not regular files, by name, with what they are.
    pub not_files: Vec<(String, &'static str)>,
}

impl Waiting {
    /// True once it has not changed for `settle` (or has a modification time in the future,
    /// which waiting would not fix).
    pub fn settled(&self, now: SystemTime, settle: Duration) -> bool {
        now.duration_since(self.modified)
            .map_or(true, |age| age >= settle)
    }
}

impl Maildir {
    /// Creates new/, cur/, tmp/ and the quarantine folder where missing.
    pub fn create(root: &Path, quarantine: PathBuf) -> Result<Maildir, FolderError> {
        let tmp = root.join("tmp");
        let dirs = Maildir {
            new: root.join("new"),
            cur: root.join("cur"),
            quarantine,
        };
        for dir in [&dirs.new, &dirs.cur, &tmp, &dirs.quarantine] {
            std::fs::create_dir_all(dir).map_err(|source| FolderError::Create {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Ok(dirs)
    }

    /// The messages in new/, oldest name first (delivery agents name by time). Dot files
    /// and folders are skipped; a file that vanished while listing is simply not there.
    pub fn waiting(&self) -> io::Result<Vec<Waiting>> {
        self.listing().map(|l| l.waiting)
    }

    /// The messages in new/ as [`Maildir::waiting`] lists them, and besides them the entries
    /// that are not regular files (a folder, a link, a pipe), which cannot be read as mail.
    pub fn listing(&self) -> io::Result<Listing> {
        let mut out = Listing::default();
        for entry in std::fs::read_dir(&self.new)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !meta.is_file() {
                let what = if meta.is_dir() {
                    "a folder"
                } else if meta.is_symlink() {
                    "a symbolic link"
                } else {
                    "a special file"
                };
                out.not_files.push((name, what));
                continue;
            }
            out.waiting.push(Waiting {
                name,
                path: entry.path(),
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        out.waiting.sort_by(|a, b| a.name.cmp(&b.name));
        out.not_files.sort();
        Ok(out)
    }

    /// Moves a committed message to cur/, marked seen (`:2,S`).
    pub fn to_cur(&self, m: &Waiting) -> io::Result<PathBuf> {
        let target = self.cur.join(cur_name(&m.name));
        std::fs::rename(&m.path, &target)?;
        Ok(target)
    }

    /// Writes `NAME.reason` into the quarantine folder, then moves the message there (a
    /// crash in between leaves it in new/, to be quarantined again).
    pub fn quarantine(&self, m: &Waiting, reason: &str) -> io::Result<PathBuf> {
        let target = self.quarantine.join(&m.name);
        std::fs::write(self.quarantine.join(format!("{}.reason", m.name)), reason)?;
        match std::fs::rename(&m.path, &target) {
            Ok(()) => {}
            // Quarantine configured on another file system: copy, then remove.
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                std::fs::copy(&m.path, &target)?;
                std::fs::remove_file(&m.path)?;
            }
            Err(e) => return Err(e),
        }
        Ok(target)
    }
}

/// The name a message gets in cur/: its unique part and the info `2,S` (seen).
pub fn cur_name(name: &str) -> String {
    let unique = name.split(':').next().unwrap_or(name);
    format!("{unique}:2,S")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cur_names_mark_the_message_seen() {
        assert_eq!(cur_name("1700000000.M1P2.host"), "1700000000.M1P2.host:2,S");
        assert_eq!(
            cur_name("1700000000.M1P2.host:2,"),
            "1700000000.M1P2.host:2,S"
        );
    }

    #[test]
    fn a_maildir_is_created_listed_moved_and_quarantined() {
        let root = tempfile::tempdir().unwrap();
        let dir = Maildir::create(root.path(), root.path().join("quarantine")).unwrap();
        assert!(root.path().join("tmp").is_dir());
        std::fs::write(dir.new.join("2.b"), "two").unwrap();
        std::fs::write(dir.new.join("1.a"), "one").unwrap();
        std::fs::write(dir.new.join(".hidden"), "x").unwrap();
        std::fs::create_dir(dir.new.join("sub")).unwrap();
        std::fs::write(root.path().join("tmp/0.c"), "still writing").unwrap();
        let waiting = dir.waiting().unwrap();
        let names: Vec<&str> = waiting.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["1.a", "2.b"]);
        assert_eq!(waiting[0].size, 3);
        let listing = dir.listing().unwrap();
        assert_eq!(listing.not_files, [("sub".to_string(), "a folder")]);

        let moved = dir.to_cur(&waiting[0]).unwrap();
        assert_eq!(moved, dir.cur.join("1.a:2,S"));
        assert_eq!(std::fs::read_to_string(moved).unwrap(), "one");
        let q = dir.quarantine(&waiting[1], "reason: test\n").unwrap();
        assert_eq!(std::fs::read_to_string(q).unwrap(), "two");
        assert_eq!(
            std::fs::read_to_string(dir.quarantine.join("2.b.reason")).unwrap(),
            "reason: test\n"
        );
        assert!(dir.waiting().unwrap().is_empty());
    }

    #[test]
    fn a_message_is_settled_once_unchanged_long_enough() {
        let now = SystemTime::now();
        let w = |age: Duration| Waiting {
            name: "x".into(),
            path: "x".into(),
            size: 0,
            modified: now - age,
        };
        let settle = Duration::from_secs(1);
        assert!(!w(Duration::from_millis(200)).settled(now, settle));
        assert!(w(Duration::from_secs(2)).settled(now, settle));
        let future = Waiting {
            modified: now + Duration::from_secs(60),
            ..w(Duration::ZERO)
        };
        assert!(future.settled(now, settle));
    }
}
