//! What `lvs --noheadings -o vg_name,lv_name PATH` says about a path: the volume group and LV
//! it names ("  vg0 web-snap\n"), or why LVM does not know it.

/// LVM does not know the path (or `lvs` failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Failed to interrogate LVM about '{path}'{}. Perhaps you misspelt it?",
    why.as_ref().map_or(String::new(), |w| format!(" ({w})"))
)]
pub struct LvsError {
    /// The path asked about.
    pub path: String,
    /// The last line `lvs` wrote to standard error, if any.
    pub why: Option<String>,
}

impl crate::Report for LvsError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Lvm
    }
    fn message(&self) -> String {
        self.to_string()
    }
}

/// Whitespace as Ruby's `String#strip` and `\s` see it (NUL only at the ends).
fn space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn trim(s: &[u8]) -> &[u8] {
    let edge = |b: &u8| space(*b) || *b == 0;
    let start = s.iter().position(|b| !edge(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !edge(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// The (volume group, LV) `lvs` printed for `path`: the first word of its output and the
/// rest after the spaces that follow it. `success` is whether `lvs` exited with status 0;
/// when it did not, or printed fewer than two words, the error gives the last line of its
/// standard error `stderr`.
pub fn vg_lv(
    path: &str,
    stdout: &[u8],
    stderr: &[u8],
    success: bool,
) -> Result<(String, String), LvsError> {
    let out = trim(stdout);
    if success {
        if let Some(gap) = out.iter().position(|b| space(*b)) {
            let rest = &out[gap..];
            let lv = &rest[rest.iter().position(|b| !space(*b)).unwrap_or(rest.len())..];
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            return Ok((text(&out[..gap]), text(lv)));
        }
    }
    let why = trim(stderr)
        .split(|b| *b == b'\n')
        .next_back()
        .map(trim)
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned());
    Err(LvsError {
        path: path.to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_lvs_prints_them() {
        // lvs pads its columns with two leading spaces and ends the line.
        assert_eq!(
            vg_lv("/dev/vg-sync/src-snap", b"  vg-sync src-snap\n", b"", true),
            Ok(("vg-sync".into(), "src-snap".into()))
        );
        assert_eq!(
            vg_lv("x", b"\tvg0 \t lv0  \r\n", b"", true).unwrap(),
            ("vg0".into(), "lv0".into())
        );
    }

    #[test]
    fn a_path_lvs_does_not_know() {
        let e = vg_lv(
            "/dev/vg-src/nope",
            b"",
            b"  Failed to find logical volume \"/dev/vg-src/nope\"\n",
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Failed to interrogate LVM about '/dev/vg-src/nope' (Failed to find logical volume \
             \"/dev/vg-src/nope\"). Perhaps you misspelt it?"
        );
        assert_eq!(crate::Report::kind(&e), crate::error::Kind::Lvm);
        // The last line of several; none at all.
        let e = vg_lv(
            "p",
            b"",
            b"  WARNING: x\n  Volume group \"v\" not found\n\n",
            false,
        );
        assert_eq!(
            e.unwrap_err().why.as_deref(),
            Some("Volume group \"v\" not found")
        );
        let e = vg_lv("p", b"", b" \n ", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Failed to interrogate LVM about 'p'. Perhaps you misspelt it?"
        );
    }

    #[test]
    fn output_that_names_no_lv() {
        for out in [&b""[..], b"  vg0\n", b"\n\n"] {
            assert!(vg_lv("p", out, b"", true).is_err(), "{out:?}");
        }
        // A failed run is refused whatever it printed.
        assert!(vg_lv("p", b"vg0 lv0", b"", false).is_err());
        // Bytes that are not UTF-8 do not stop the parse.
        assert_eq!(
            vg_lv("p", b"v\xff lv", b"", true).unwrap(),
            ("v\u{fffd}".into(), "lv".into())
        );
    }
}
