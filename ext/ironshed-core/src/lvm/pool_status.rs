//! A thin pool's status line, as `dmsetup status VG-POOL-tpool` prints it:
//!
//! ```text
//! 0 131072 thin-pool 2 113/1024 24/1024 - rw discard_passdown queue_if_no_space - 256
//! ```
//!
//! start and length, the target type, then the transaction id, used/total metadata blocks,
//! used/total data blocks, the held metadata root (`-`, or the block of a reserved metadata
//! snapshot), the mode (`rw`, `ro`, `out_of_data_space`), two policy words, `needs_check` or
//! `-`, and (newer kernels) the metadata low-water mark. A failed pool prints `Fail` (or
//! `Error`) after the type and nothing more.

/// The status of a thin pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    /// `rw`, `ro`, `out_of_data_space`, or `Fail`/`Error` for a pool that has failed.
    pub mode: String,
    /// The counters, absent for a failed pool.
    pub usage: Option<PoolUsage>,
}

/// The counters of a working pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// The pool's transaction id.
    pub transaction_id: u64,
    /// Metadata blocks in use.
    pub metadata_used: u64,
    /// Metadata blocks.
    pub metadata_total: u64,
    /// Data blocks in use.
    pub data_used: u64,
    /// Data blocks.
    pub data_total: u64,
    /// The root of a reserved metadata snapshot; `None` when none is held.
    pub held_root: Option<u64>,
    /// The metadata needs `thin_check`.
    pub needs_check: bool,
}

/// A status line that is not a thin pool's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pool}: unexpected status from dmsetup: {status}{}", field.as_ref().map_or(String::new(), |f| format!(" ({f})")))]
pub struct PoolStatusError {
    /// The pool, for the message ("thin pool vg0/pool").
    pub pool: String,
    /// The line, trimmed.
    pub status: String,
    /// The field that is malformed, when the line is a thin pool's.
    pub field: Option<String>,
}

impl crate::Report for PoolStatusError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::MetadataSnapshot
    }
    fn message(&self) -> String {
        self.to_string()
    }
}

/// Parses `text` (`dmsetup status` of the pool's `-tpool` target); `pool` names the pool in
/// the error.
pub fn parse(text: &[u8], pool: &str) -> Result<PoolStatus, PoolStatusError> {
    let text = String::from_utf8_lossy(text);
    let line = text.trim();
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    let err = |field: Option<String>| PoolStatusError {
        pool: pool.to_string(),
        status: line.to_string(),
        field,
    };
    if f.get(2) != Some(&"thin-pool") || f.len() < 4 {
        return Err(err(None));
    }
    if f[3] == "Fail" || f.len() < 10 {
        return Ok(PoolStatus {
            mode: f[3].to_string(),
            usage: None,
        });
    }
    let number = |i: usize, what: &str| {
        decimal(f[i]).ok_or_else(|| err(Some(format!("{what} is {:?}, not a number", f[i]))))
    };
    let pair =
        |i: usize, what: &str| match f[i].split_once('/').map(|(a, b)| (decimal(a), decimal(b))) {
            Some((Some(a), Some(b))) => Ok((a, b)),
            _ => Err(err(Some(format!("{what} is {:?}, not USED/TOTAL", f[i])))),
        };
    let transaction_id = number(3, "the transaction id")?;
    let (metadata_used, metadata_total) = pair(4, "the metadata usage")?;
    let (data_used, data_total) = pair(5, "the data usage")?;
    let held_root = match f[6] {
        "-" => None,
        _ => Some(number(6, "the held metadata root")?),
    };
    Ok(PoolStatus {
        mode: f[7].to_string(),
        usage: Some(PoolUsage {
            transaction_id,
            metadata_used,
            metadata_total,
            data_used,
            data_total,
            held_root,
            needs_check: f.get(10) == Some(&"needs_check"),
        }),
    })
}

/// A decimal number of digits only.
fn decimal(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "thin pool vgthin/pool";

    #[test]
    fn a_working_pool() {
        // Printed by dmsetup for a pool in the test guest (docs: snapshot-formats.md 2.2).
        let s = parse(
            b"0 131072 thin-pool 2 113/1024 24/1024 - rw discard_passdown queue_if_no_space - 256\n",
            POOL,
        )
        .unwrap();
        assert_eq!(
            s,
            PoolStatus {
                mode: "rw".into(),
                usage: Some(PoolUsage {
                    transaction_id: 2,
                    metadata_used: 113,
                    metadata_total: 1024,
                    data_used: 24,
                    data_total: 1024,
                    held_root: None,
                    needs_check: false,
                }),
            }
        );
        // A held metadata snapshot, a pool needing a check, an older kernel without the
        // low-water mark.
        let s = parse(
            b"0 65536 thin-pool 4 20/1024 30/256 17 out_of_data_space no_discard_passdown error_if_no_space needs_check",
            POOL,
        )
        .unwrap();
        let u = s.usage.unwrap();
        assert_eq!(
            (s.mode.as_str(), u.held_root, u.needs_check),
            ("out_of_data_space", Some(17), true)
        );
        let s = parse(
            b"0 65536 thin-pool 4 20/1024 30/256 - ro discard_passdown queue_if_no_space",
            POOL,
        );
        assert!(!s.unwrap().usage.unwrap().needs_check);
    }

    #[test]
    fn a_failed_pool_has_only_its_mode() {
        for (line, mode) in [
            ("0 65536 thin-pool Fail", "Fail"),
            ("0 65536 thin-pool Error\n", "Error"),
        ] {
            assert_eq!(
                parse(line.as_bytes(), POOL).unwrap(),
                PoolStatus {
                    mode: mode.into(),
                    usage: None
                }
            );
        }
    }

    #[test]
    fn a_line_that_is_not_a_pools() {
        let e = parse(b"0 65536 thin 2560 13311\n", POOL).unwrap_err();
        assert_eq!(
            e.to_string(),
            "thin pool vgthin/pool: unexpected status from dmsetup: 0 65536 thin 2560 13311"
        );
        assert_eq!(
            crate::Report::kind(&e),
            crate::error::Kind::MetadataSnapshot
        );
        for bad in ["", "0 65536 thin-pool", "thin-pool"] {
            assert!(parse(bad.as_bytes(), POOL).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_fields_are_named() {
        let line =
            |f: &str| format!("0 65536 thin-pool {f} rw discard_passdown queue_if_no_space - 256");
        for (fields, why) in [
            (
                "x 20/1024 30/256 -",
                "the transaction id is \"x\", not a number",
            ),
            (
                "-1 20/1024 30/256 -",
                "the transaction id is \"-1\", not a number",
            ),
            (
                "4 20 30/256 -",
                "the metadata usage is \"20\", not USED/TOTAL",
            ),
            (
                "4 20/1024 30/ -",
                "the data usage is \"30/\", not USED/TOTAL",
            ),
            (
                "4 20/1024 30/256 +5",
                "the held metadata root is \"+5\", not a number",
            ),
            (
                "99999999999999999999 20/1024 30/256 -",
                "the transaction id is \"99999999999999999999\", not a number",
            ),
        ] {
            let e = parse(line(fields).as_bytes(), POOL).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(why), "{fields}");
            assert!(e
                .to_string()
                .ends_with(&format!("{} ({why})", line(fields))));
        }
    }
}
