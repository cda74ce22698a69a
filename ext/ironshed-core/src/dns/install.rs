//! The tinydns instance root: what is installed there, and the atomic replacement of `data`
//! and `data.cdb`.
//!
//! Each file is written to a temporary file in the same directory, fsynced, renamed over the
//! old one, and the directory fsynced: tinydns (which opens data.cdb for every query) sees
//! the old file or the new one, never a partial one, whatever happens to this process.
//! `data.cdb` is renamed first: it is what is served, and `data` (whose header comments say
//! what was installed) never claims more than data.cdb holds. An exclusive lock on the
//! directory keeps two updates from interleaving.

use super::cdb;
use super::error::Error;
use super::record::{rtype, Soa};
use crate::error::Cancelled;
use crate::error::IoContext;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Prefix of this tool's temporary files in the instance root.
const TMP_PREFIX: &str = ".rootzone-tmp-";
/// The largest data.cdb read back (the root's is about 1 MB).
const MAX_CDB_BYTES: u64 = 256 << 20;

/// What the instance root holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// Serial of the SOA for `.` in data.cdb (`None`: no data.cdb, or no SOA in it).
    pub serial: Option<u32>,
    /// data.cdb's modification time (seconds since 1970).
    pub cdb_mtime: Option<i64>,
    /// From `data`'s header, when it describes the same serial as data.cdb: when the first
    /// RRset of the installed copy loses its last valid signature.
    pub valid_until: Option<i64>,
    /// The RRset that expires first (`com. DS`).
    pub valid_until_rrset: Option<String>,
    /// Why something could not be read (data.cdb damaged, data not written by rootzone...).
    pub notes: Vec<String>,
}

/// Header keys in `data` (each line `# key value`).
pub const HEADER_SERIAL: &str = "serial";
/// Header key: `valid-until SECONDS (DATE, RRSET)`.
pub const HEADER_VALID_UNTIL: &str = "valid-until";

/// Reads the installed serial from data.cdb and the signature expiry from data's header.
pub fn installed(dir: &Path) -> Result<Installed, Error> {
    let mut out = Installed::default();
    match fs::metadata(dir) {
        Ok(md) if !md.is_dir() => return Err(not_a_directory(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.notes
                .push(format!("{}: no such directory yet", dir.display()));
            return Ok(out);
        }
        _ => {}
    }
    let cdb_path = dir.join("data.cdb");
    let mut db = Vec::new();
    match File::open(&cdb_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.notes
                .push(format!("{}: not there yet", cdb_path.display()));
            return Ok(out);
        }
        Err(e) => return Err(IoContext::new(&cdb_path, "open", e).into()),
        Ok(f) => {
            let md = f
                .metadata()
                .map_err(|e| IoContext::new(&cdb_path, "stat", e))?;
            out.cdb_mtime = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            f.take(MAX_CDB_BYTES)
                .read_to_end(&mut db)
                .map_err(|e| IoContext::new(&cdb_path, "read", e))?;
        }
    }
    out.serial = cdb_serial(&db);
    if out.serial.is_none() {
        out.notes.push(format!(
            "{}: no SOA record for . (not a root zone data.cdb, or damaged)",
            cdb_path.display()
        ));
    }
    let data_path = dir.join("data");
    let header = read_header(&data_path);
    match (header.get(HEADER_SERIAL), out.serial) {
        (Some(s), Some(serial)) if s.parse::<u32>().ok() == Some(serial) => {
            if let Some(v) = header.get(HEADER_VALID_UNTIL) {
                let mut parts = v.splitn(2, ' ');
                out.valid_until = parts.next().and_then(|n| n.parse().ok());
                out.valid_until_rrset = parts
                    .next()
                    .and_then(|r| r.rsplit_once(", "))
                    .map(|(_, r)| r.trim_end_matches(')').to_string());
            }
        }
        (Some(s), _) => out.notes.push(format!(
            "{}: describes serial {s}, data.cdb holds {} (an update was interrupted between \
             the two files; the next update repairs it)",
            data_path.display(),
            out.serial.map_or("no serial".into(), |s| s.to_string())
        )),
        (None, _) => out.notes.push(format!(
            "{}: no rootzone header (not written by rootzone update)",
            data_path.display()
        )),
    }
    Ok(out)
}

fn not_a_directory(dir: &Path) -> Error {
    Error::Install(format!(
        "{}: not a directory (give the tinydns instance's root directory)",
        dir.display()
    ))
}

/// The SOA serial for `.` in a tinydns data.cdb image.
pub fn cdb_serial(db: &[u8]) -> Option<u32> {
    let values = cdb::lookup(db, &[0])?;
    values.iter().find_map(|v| {
        // type(2) '=' ttl(4) ttd(8) rdata, or type(2) '>' loc(2) ttl ttd rdata.
        if v.get(..2)? != rtype::SOA.to_be_bytes() {
            return None;
        }
        let skip = match v.get(2)? {
            b'=' | b'*' => 15,
            b'>' | b'+' => 17,
            _ => return None,
        };
        Soa::parse(v.get(skip..)?).map(|s| s.serial)
    })
}

/// The `# key value` lines at the top of a data file (at most the first 64 lines).
fn read_header(path: &Path) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    let Ok(f) = File::open(path) else { return map };
    let mut text = String::new();
    let _ = f.take(16 << 10).read_to_string(&mut text);
    for line in text.lines().take(64) {
        let Some(rest) = line.strip_prefix("# ") else {
            break;
        };
        if let Some((k, v)) = rest.split_once(' ') {
            map.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    map
}

/// An instance root held for an update.
pub struct Instance {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Instance {
    /// Opens and locks `dir` (which must exist: `rootzone setup` or `tinydns-conf` makes
    /// it), and removes temporary files a killed update left behind.
    pub fn open(dir: &Path) -> Result<Instance, Error> {
        let md = fs::metadata(dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Install(format!(
                    "{}: no such directory: create the tinydns instance first \
                     (rootzone setup --apply, or tinydns-conf)",
                    dir.display()
                ))
            } else {
                IoContext::new(dir, "stat", e).into()
            }
        })?;
        if !md.is_dir() {
            return Err(not_a_directory(dir));
        }
        let f = File::open(dir).map_err(|e| IoContext::new(dir, "open", e))?;
        let lock = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                Error::Install(format!(
                    "{}: another rootzone update is running on this directory",
                    dir.display()
                ))
            } else {
                IoContext::new(dir, "lock", e.into()).into()
            }
        })?;
        let inst = Instance {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        inst.remove_stale();
        Ok(inst)
    }

    fn remove_stale(&self) {
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Writes `data` and `data.cdb` (from `records`) and puts them in place, data.cdb
    /// first. `cancelled` is polled before the first rename: after it, the job finishes.
    pub fn install(
        &self,
        data: &[u8],
        records: &[(Vec<u8>, Vec<u8>)],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), Error> {
        let data_tmp = self.temp("data", |mut f| f.write_all(data))?;
        let cdb_tmp = match self.temp("data.cdb", |f| cdb::write(f, records)) {
            Ok(p) => p,
            Err(e) => {
                let _ = fs::remove_file(&data_tmp);
                return Err(e);
            }
        };
        if cancelled() {
            let _ = fs::remove_file(&data_tmp);
            let _ = fs::remove_file(&cdb_tmp);
            return Err(Cancelled.into());
        }
        self.put(&cdb_tmp, "data.cdb")?;
        self.put(&data_tmp, "data")
    }

    /// Creates a temporary file next to `name`, fills it with `fill`, fsyncs it.
    fn temp(
        &self,
        name: &str,
        fill: impl FnOnce(&File) -> std::io::Result<()>,
    ) -> Result<PathBuf, Error> {
        let path = self
            .dir
            .join(format!("{TMP_PREFIX}{name}.{}", std::process::id()));
        let f = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| IoContext::new(&path, "create", e))?;
        let res = f
            .set_permissions(fs::Permissions::from_mode(0o644))
            .and_then(|_| fill(&f))
            .and_then(|_| f.sync_all());
        if let Err(e) = res {
            let _ = fs::remove_file(&path);
            return Err(IoContext::new(&path, "write", e).into());
        }
        Ok(path)
    }

    /// Renames `tmp` over `name` and fsyncs the directory.
    fn put(&self, tmp: &Path, name: &str) -> Result<(), Error> {
        let dest = self.dir.join(name);
        fs::rename(tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(tmp);
            IoContext::new(&dest, "rename into place", e)
        })?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| IoContext::new(&self.dir, "fsync", e).into())
    }

    /// Sets data.cdb's modification time to now: the installed copy was just found current
    /// (its age is the time since the last successful check).
    pub fn touch(&self) -> Result<(), Error> {
        use nix::sys::stat::{utimensat, UtimensatFlags};
        use nix::sys::time::TimeSpec;
        let p = self.dir.join("data.cdb");
        utimensat(
            nix::fcntl::AT_FDCWD,
            &p,
            &TimeSpec::UTIME_OMIT,
            &TimeSpec::UTIME_NOW,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| IoContext::new(&p, "set modification time", e.into()).into())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
