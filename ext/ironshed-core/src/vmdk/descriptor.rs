//! The VMDK text descriptor: `key=value` lines, extent lines and the disk database.
//!
//! The parser is strict about what it needs (CIDs, createType, extent lines) and ignores keys
//! it does not use; it tolerates CRLF line ends and the NUL padding QEMU and VMware leave
//! after the text. Its input is bounded by [`MAX_DESCRIPTOR`].

use super::error::{Error, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Largest descriptor read, as in QEMU.
pub const MAX_DESCRIPTOR: usize = 1 << 20;

/// The `CID`/`parentCID` value meaning "no parent".
pub const CID_NONE: u32 = 0xffff_ffff;

/// Access mode on an extent line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `RW`
    ReadWrite,
    /// `RDONLY`
    ReadOnly,
    /// `NOACCESS`
    NoAccess,
}

/// Extent type on an extent line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtentType {
    /// `FLAT`: raw bytes at an offset.
    Flat,
    /// `VMFS`: raw bytes (ESX base disk).
    Vmfs,
    /// `SPARSE`: hosted sparse (KDMV) or, in old descriptors, COWD.
    Sparse,
    /// `VMFSSPARSE`: ESX COWD delta.
    VmfsSparse,
    /// `SESPARSE`: ESX space-efficient sparse delta.
    SeSparse,
    /// `ZERO`: no file, reads as zeros.
    Zero,
    /// `VMFSRDM` / `VMFSRAW` and anything else, kept by name.
    Other(String),
}

impl ExtentType {
    fn parse(word: &str) -> ExtentType {
        match word {
            "FLAT" => ExtentType::Flat,
            "VMFS" => ExtentType::Vmfs,
            "SPARSE" => ExtentType::Sparse,
            "VMFSSPARSE" => ExtentType::VmfsSparse,
            "SESPARSE" => ExtentType::SeSparse,
            "ZERO" => ExtentType::Zero,
            other => ExtentType::Other(other.to_string()),
        }
    }
    /// The keyword as written in a descriptor.
    pub fn name(&self) -> &str {
        match self {
            ExtentType::Flat => "FLAT",
            ExtentType::Vmfs => "VMFS",
            ExtentType::Sparse => "SPARSE",
            ExtentType::VmfsSparse => "VMFSSPARSE",
            ExtentType::SeSparse => "SESPARSE",
            ExtentType::Zero => "ZERO",
            ExtentType::Other(s) => s,
        }
    }
}

/// One extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Access mode.
    pub access: Access,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// Extent type.
    pub kind: ExtentType,
    /// File name as written (raw bytes; relative to the descriptor's directory).
    pub file: Option<Vec<u8>>,
    /// Offset in sectors inside the file (FLAT extents).
    pub offset: Option<u64>,
    /// 1-based line number, for messages.
    pub line: usize,
}

impl Extent {
    /// The extent file resolved against the directory of the descriptor at `descriptor`.
    pub fn resolve(&self, descriptor: &Path) -> Option<PathBuf> {
        self.file.as_ref().map(|f| resolve_relative(descriptor, f))
    }
    /// The file name for messages.
    pub fn file_display(&self) -> String {
        self.file
            .as_ref()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default()
    }
}

/// Resolves a name found inside `descriptor` relative to the descriptor's directory.
pub fn resolve_relative(descriptor: &Path, name: &[u8]) -> PathBuf {
    let p = Path::new(OsStr::from_bytes(name));
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        descriptor.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// A parsed descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `version=` (1, 2 or 3).
    pub version: Option<u32>,
    /// `encoding=`.
    pub encoding: Option<String>,
    /// `CID=`: this disk's content id.
    pub cid: Option<u32>,
    /// `parentCID=`: the parent's CID when the snapshot was taken (ffffffff = no parent).
    pub parent_cid: Option<u32>,
    /// `createType=`.
    pub create_type: Option<String>,
    /// `parentFileNameHint=` (raw bytes).
    pub parent_hint: Option<Vec<u8>>,
    /// Extent lines in order.
    pub extents: Vec<Extent>,
    /// `ddb.*` entries in order.
    pub ddb: Vec<(String, String)>,
}

impl Descriptor {
    /// Total sectors of all extents.
    pub fn total_sectors(&self) -> Option<u64> {
        self.extents
            .iter()
            .try_fold(0u64, |acc, e| acc.checked_add(e.sectors))
    }
    /// The parent hint for messages.
    pub fn parent_hint_display(&self) -> Option<String> {
        self.parent_hint
            .as_ref()
            .map(|h| String::from_utf8_lossy(h).into_owned())
    }
    /// True when the descriptor names a parent (parentCID is set and not ffffffff).
    pub fn has_parent(&self) -> bool {
        matches!(self.parent_cid, Some(c) if c != CID_NONE)
    }
}

/// True if `head` (the first bytes of a file) looks like a text descriptor rather than a
/// binary extent.
pub fn looks_like_descriptor(head: &[u8]) -> bool {
    let text = trim_nuls(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let rest = &text[start..];
    (rest.starts_with(b"#") || rest.starts_with(b"version") || rest.starts_with(b"CID"))
        && !rest.iter().take(512).any(|&b| b == 0)
}

fn trim_nuls(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &data[..end]
}

/// Parses descriptor text. `file` names the source in error messages.
pub fn parse(data: &[u8], file: &str) -> Result<Descriptor> {
    if data.len() > MAX_DESCRIPTOR {
        return Err(Error::format(
            file,
            format!(
                "descriptor is {} bytes, larger than the {MAX_DESCRIPTOR}-byte limit",
                data.len()
            ),
        ));
    }
    let text = trim_nuls(data);
    if text.contains(&0) {
        return Err(Error::format(
            file,
            "descriptor contains NUL bytes inside its text: not a text descriptor",
        ));
    }
    let mut d = Descriptor::default();
    let mut seen_first = false;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = i + 1;
        let line = trim(strip_cr(raw));
        if line.is_empty() {
            continue;
        }
        if !seen_first {
            seen_first = true;
            let is_header = line.starts_with(b"#")
                && trim(&line[1..]).eq_ignore_ascii_case(b"Disk DescriptorFile");
            if !is_header && !line.starts_with(b"version") {
                return Err(Error::format(
                    file,
                    format!(
                        "line {lineno}: a descriptor must start with '# Disk DescriptorFile' or 'version=', found '{}'",
                        show(line)
                    ),
                ));
            }
            if is_header {
                continue;
            }
        }
        if line.starts_with(b"#") {
            continue;
        }
        if let Some(access) = access_word(line) {
            d.extents.push(parse_extent(line, access, lineno, file)?);
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(Error::format(
                file,
                format!(
                    "line {lineno}: neither 'key=value' nor an extent line: '{}'",
                    show(line)
                ),
            ));
        };
        let key = std::str::from_utf8(trim(&line[..eq]))
            .map_err(|_| Error::format(file, format!("line {lineno}: key is not valid text")))?;
        let value = unquote(trim(&line[eq + 1..]));
        apply_key(&mut d, key, value, lineno, file)?;
    }
    if !seen_first {
        return Err(Error::format(file, "descriptor is empty"));
    }
    Ok(d)
}

fn apply_key(d: &mut Descriptor, key: &str, value: &[u8], lineno: usize, file: &str) -> Result<()> {
    let text = || {
        std::str::from_utf8(value).map(str::to_string).map_err(|_| {
            Error::format(
                file,
                format!("line {lineno}: value of {key} is not valid text"),
            )
        })
    };
    fn set<T>(slot: &mut Option<T>, v: T, key: &str, lineno: usize, file: &str) -> Result<()> {
        if slot.is_some() {
            return Err(Error::format(
                file,
                format!("line {lineno}: {key} is given twice"),
            ));
        }
        *slot = Some(v);
        Ok(())
    }
    match key {
        "version" => {
            let t = text()?;
            let v = t.parse::<u32>().map_err(|_| {
                Error::format(
                    file,
                    format!("line {lineno}: version '{t}' is not a number"),
                )
            })?;
            if !(1..=3).contains(&v) {
                return Err(Error::unsupported(
                    file,
                    format!("line {lineno}: descriptor version {v} (known: 1, 2, 3)"),
                ));
            }
            set(&mut d.version, v, key, lineno, file)
        }
        "encoding" => set(&mut d.encoding, text()?, key, lineno, file),
        "CID" => {
            let v = parse_cid(value, key, lineno, file)?;
            set(&mut d.cid, v, key, lineno, file)
        }
        "parentCID" => {
            let v = parse_cid(value, key, lineno, file)?;
            set(&mut d.parent_cid, v, key, lineno, file)
        }
        "createType" => set(&mut d.create_type, text()?, key, lineno, file),
        "parentFileNameHint" => set(&mut d.parent_hint, value.to_vec(), key, lineno, file),
        k if k.starts_with("ddb.") => {
            d.ddb
                .push((k.to_string(), String::from_utf8_lossy(value).into_owned()));
            Ok(())
        }
        _ => Ok(()),
    }
}

fn parse_cid(value: &[u8], key: &str, lineno: usize, file: &str) -> Result<u32> {
    let bad = || {
        Error::format(
            file,
            format!(
                "line {lineno}: {key} '{}' is not 1 to 8 hex digits",
                show(value)
            ),
        )
    };
    if value.is_empty() || value.len() > 8 {
        return Err(bad());
    }
    let s = std::str::from_utf8(value).map_err(|_| bad())?;
    u32::from_str_radix(s, 16).map_err(|_| bad())
}

fn access_word(line: &[u8]) -> Option<Access> {
    let word_end = line
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(line.len());
    match &line[..word_end] {
        b"RW" => Some(Access::ReadWrite),
        b"RDONLY" => Some(Access::ReadOnly),
        b"NOACCESS" => Some(Access::NoAccess),
        _ => None,
    }
}

fn parse_extent(line: &[u8], access: Access, lineno: usize, file: &str) -> Result<Extent> {
    let bad = |what: &str| {
        Error::format(
            file,
            format!("line {lineno}: bad extent line ({what}): '{}'", show(line)),
        )
    };
    let mut rest = line;
    let _access = next_word(&mut rest);
    let sectors_word = next_word(&mut rest).ok_or_else(|| bad("no sector count"))?;
    let sectors = std::str::from_utf8(sectors_word)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("sector count is not a number"))?;
    let kind_word = next_word(&mut rest).ok_or_else(|| bad("no extent type"))?;
    let kind = ExtentType::parse(&String::from_utf8_lossy(kind_word));
    rest = trim(rest);
    let mut file_name = None;
    let mut offset = None;
    if !rest.is_empty() {
        if rest[0] != b'"' {
            return Err(bad("file name is not in double quotes"));
        }
        let close = rest[1..]
            .iter()
            .position(|&b| b == b'"')
            .ok_or_else(|| bad("unterminated file name"))?;
        let name = &rest[1..1 + close];
        if name.is_empty() {
            return Err(bad("empty file name"));
        }
        file_name = Some(name.to_vec());
        rest = trim(&rest[close + 2..]);
        if !rest.is_empty() {
            let word = next_word(&mut rest).ok_or_else(|| bad("bad offset"))?;
            let off = std::str::from_utf8(word)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| bad("offset is not a number"))?;
            offset = Some(off);
            if !trim(rest).is_empty() {
                return Err(bad("unexpected text after the offset"));
            }
        }
    }
    Ok(Extent {
        access,
        sectors,
        kind,
        file: file_name,
        offset,
        line: lineno,
    })
}

fn next_word<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let s = trim(rest);
    if s.is_empty() {
        *rest = s;
        return None;
    }
    let end = s
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &s[start..end.max(start)]
}

fn unquote(v: &[u8]) -> &[u8] {
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn show(s: &[u8]) -> String {
    let t = String::from_utf8_lossy(s);
    let mut out: String = t.chars().take(80).collect();
    if t.chars().count() > 80 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESX: &str = "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=5a17b9ae\nparentCID=fffffffe\nisNativeSnapshot=\"no\"\ncreateType=\"vmfsSparse\"\nparentFileNameHint=\"vm.vmdk\"\n# Extent description\nRW 8192 VMFSSPARSE \"vm-000001-delta.vmdk\"\n\n# The Disk Data Base\n#DDB\n\nddb.longContentID = \"abc\"\n";

    #[test]
    fn parses_an_esx_delta_descriptor() {
        let d = parse(ESX.as_bytes(), "t").unwrap();
        assert_eq!(d.version, Some(1));
        assert_eq!(d.cid, Some(0x5a17b9ae));
        assert_eq!(d.parent_cid, Some(0xfffffffe));
        assert_eq!(d.create_type.as_deref(), Some("vmfsSparse"));
        assert_eq!(d.parent_hint.as_deref(), Some(&b"vm.vmdk"[..]));
        assert_eq!(d.extents.len(), 1);
        let e = &d.extents[0];
        assert_eq!(
            (e.access, e.sectors, e.kind.clone()),
            (Access::ReadWrite, 8192, ExtentType::VmfsSparse)
        );
        assert_eq!(e.file.as_deref(), Some(&b"vm-000001-delta.vmdk"[..]));
        assert_eq!(
            d.ddb,
            vec![("ddb.longContentID".to_string(), "abc".to_string())]
        );
    }

    #[test]
    fn tolerates_crlf_and_trailing_nuls() {
        let mut data = ESX.replace('\n', "\r\n").into_bytes();
        data.extend_from_slice(&[0u8; 300]);
        let d = parse(&data, "t").unwrap();
        assert_eq!(d.cid, Some(0x5a17b9ae));
        assert_eq!(d.extents[0].sectors, 8192);
    }

    #[test]
    fn flat_extent_with_offset_and_spaces_in_name() {
        let d = parse(
            b"# Disk DescriptorFile\nRW 100 FLAT \"my disk-flat.vmdk\" 0\nRDONLY 5 ZERO\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            d.extents[0].file.as_deref(),
            Some(&b"my disk-flat.vmdk"[..])
        );
        assert_eq!(d.extents[0].offset, Some(0));
        assert_eq!(d.extents[1].kind, ExtentType::Zero);
        assert_eq!(d.extents[1].access, Access::ReadOnly);
        assert_eq!(d.total_sectors(), Some(105));
    }

    /// Every refusal: the text, whether it is a kind this build does not handle (rather than
    /// a malformed descriptor), and what the message must say after the file name.
    #[test]
    fn refusals_name_the_line() {
        let h = "# Disk DescriptorFile\n";
        let cases: Vec<(String, bool, &str)> = vec![
            ("hello\n".into(), false, "line 1: a descriptor must start with '# Disk DescriptorFile' or 'version=', found 'hello'"),
            (format!("{h}junk line\n"), false, "line 2: neither 'key=value' nor an extent line: 'junk line'"),
            (format!("{h}CID=xyz\n"), false, "line 2: CID 'xyz' is not 1 to 8 hex digits"),
            (format!("{h}parentCID=123456789\n"), false, "line 2: parentCID '123456789' is not 1 to 8 hex digits"),
            (format!("{h}CID=\n"), false, "line 2: CID '' is not 1 to 8 hex digits"),
            (format!("{h}CID=1\nCID=2\n"), false, "line 3: CID is given twice"),
            (format!("{h}createType=\"a\"\ncreateType=\"b\"\n"), false, "line 3: createType is given twice"),
            (format!("{h}version=x\n"), false, "line 2: version 'x' is not a number"),
            (format!("{h}version=9\n"), true, "line 2: descriptor version 9 (known: 1, 2, 3)"),
            (format!("{h}RW\n"), false, "line 2: bad extent line (no sector count): 'RW'"),
            (format!("{h}RW abc VMFS \"x\"\n"), false, "line 2: bad extent line (sector count is not a number): 'RW abc VMFS \"x\"'"),
            (format!("{h}\nRDONLY 100\n"), false, "line 3: bad extent line (no extent type): 'RDONLY 100'"),
            (format!("{h}RW 1 VMFS x.vmdk\n"), false, "line 2: bad extent line (file name is not in double quotes): 'RW 1 VMFS x.vmdk'"),
            (format!("{h}RW 1 VMFS \"x\n"), false, "line 2: bad extent line (unterminated file name): 'RW 1 VMFS \"x'"),
            (format!("{h}RW 1 VMFS \"\"\n"), false, "line 2: bad extent line (empty file name): 'RW 1 VMFS \"\"'"),
            (format!("{h}RW 1 FLAT \"x\" zero\n"), false, "line 2: bad extent line (offset is not a number): 'RW 1 FLAT \"x\" zero'"),
            (format!("{h}RW 1 FLAT \"x\" 0 more\n"), false, "line 2: bad extent line (unexpected text after the offset): 'RW 1 FLAT \"x\" 0 more'"),
            ("".into(), false, "descriptor is empty"),
            ("\n  \r\n\0\0".into(), false, "descriptor is empty"),
        ];
        for (text, unsupported, want) in &cases {
            match parse(text.as_bytes(), "d.vmdk") {
                Err(Error::Format { file, msg }) if !unsupported => {
                    assert_eq!((file.as_str(), msg.as_str()), ("d.vmdk", *want), "{text:?}")
                }
                Err(Error::Unsupported { file, msg }) if *unsupported => {
                    assert_eq!((file.as_str(), msg.as_str()), ("d.vmdk", *want), "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_binary_text_and_oversized_input() {
        let e = |data: &[u8]| match parse(data, "d.vmdk") {
            Err(Error::Format { file, msg }) if file == "d.vmdk" => msg,
            other => panic!("{other:?}"),
        };
        let mut nul = ESX.as_bytes().to_vec();
        nul[40] = 0;
        assert_eq!(
            e(&nul),
            "descriptor contains NUL bytes inside its text: not a text descriptor"
        );
        let big = vec![b'#'; MAX_DESCRIPTOR + 1];
        assert_eq!(
            e(&big),
            format!(
                "descriptor is {} bytes, larger than the 1048576-byte limit",
                MAX_DESCRIPTOR + 1
            )
        );
        assert_eq!(
            e(b"# Disk DescriptorFile\n\xff=1\n"),
            "line 2: key is not valid text"
        );
        assert_eq!(
            e(b"# Disk DescriptorFile\ncreateType=\"\xff\"\n"),
            "line 2: value of createType is not valid text"
        );
    }

    #[test]
    fn detection() {
        assert!(looks_like_descriptor(ESX.as_bytes()));
        assert!(!looks_like_descriptor(b"COWD\x01\x00\x00\x00"));
        assert!(!looks_like_descriptor(b"KDMV"));
    }
}
