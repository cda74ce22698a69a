//! The detached OpenPGP signature check of the original recipe, by the real `gpgv`.

use super::error::Error;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::Command;

/// Runs `gpgv --keyring KEYRING SIG DATA` on the bytes as downloaded (before gunzip).
/// Returns gpgv's `GOODSIG` line (key id and user id) for the report.
pub fn check(
    gpgv: &Path,
    keyring: &Path,
    data: &[u8],
    sig_name: &str,
    sig: &[u8],
) -> Result<String, Error> {
    let keyring = fs::canonicalize(keyring)
        .map_err(|e| Error::OpenPgp(format!("{}: keyring: {e}", keyring.display())))?;
    // A fresh private directory (mkdir fails if the name exists: no planted files).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("rootzone-gpgv-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            Error::OpenPgp(format!(
                "{}: cannot create a temporary directory: {e}",
                dir.display()
            ))
        })?;
    let result = (|| {
        let sig_path = dir.join("zone.sig");
        let data_path = dir.join("zone");
        fs::write(&sig_path, sig)
            .and_then(|_| fs::write(&data_path, data))
            .map_err(|e| Error::OpenPgp(format!("{}: {e}", dir.display())))?;
        let out = Command::new(gpgv)
            .arg("--keyring")
            .arg(&keyring)
            .args(["--status-fd", "1"])
            .arg(&sig_path)
            .arg(&data_path)
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| {
                Error::OpenPgp(format!(
                    "{}: cannot run it ({e}); install gpgv or leave out --signature",
                    gpgv.display()
                ))
            })?;
        let status = String::from_utf8_lossy(&out.stdout);
        let good = status
            .lines()
            .find_map(|l| l.strip_prefix("[GNUPG:] GOODSIG "))
            .map(str::to_string);
        match good {
            Some(g) if out.status.success() => Ok(g),
            _ => {
                let err = String::from_utf8_lossy(&out.stderr);
                let why = err
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.trim_start_matches("gpgv: "))
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(Error::OpenPgp(format!(
                    "{sig_name}: gpgv refused the signature with keyring {}: {why}",
                    keyring.display()
                )))
            }
        }
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}
