//! Thin snapshots: what changed between two thin devices of one pool, from `thin_delta`.
//!
//! `thin_delta -m --snap1 LEFT --snap2 RIGHT META_DEV` compares the block mappings of two
//! thin devices in the pool's reserved metadata snapshot and prints XML (format and meaning:
//! `snapshot-formats.md` §2.5). With LEFT the older device (a snapshot) and RIGHT the newer
//! one (the origin, or a newer snapshot of it):
//!
//! * `different` (mapped on both sides, to different data blocks) and `right_only` (mapped
//!   only on the right: newly written) are blocks whose data must be sent;
//! * `left_only` (mapped only on the left) are blocks the right side no longer maps: they read
//!   as zeros there (discarded, or written only into the snapshot);
//! * `same` (shared) blocks and blocks unmapped on both sides are unchanged.
//!
//! The XML is read as a stream ([`parse`]): only the changed runs are kept, coalesced, so
//! memory follows the number of changed runs, not the pool's mappings. Both the short form
//! (`<different begin=.. length=../>`) and the `--verbose` form (`<different><range
//! begin=.. length=.. .../></different>`) are read. [`run_thin_delta`] runs the tool and
//! parses its output as it arrives, and can be cancelled.

use super::xml::{self, name_of, Element};
use super::{ByteRange, Changes, Error, Result};
use crate::io::WaitingFile;
use crate::progress::Progress;
use quick_xml::events::BytesStart;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What `thin_delta` reported, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThinDelta {
    /// The pool's data block size in bytes.
    pub block_size: u64,
    /// The left (older) device id, as the `<diff>` element names it.
    pub left: u64,
    /// The right (newer) device id.
    pub right: u64,
    /// Blocks mapped on the right and different from (or absent on) the left: data to send.
    pub changed: Changes,
    /// Blocks mapped on the left only: they read as zeros on the right.
    pub unmapped: Changes,
    /// Counts of blocks by kind: same, different, right_only, left_only.
    pub same_blocks: u64,
    /// See [`ThinDelta::same_blocks`].
    pub different_blocks: u64,
    /// See [`ThinDelta::same_blocks`].
    pub right_only_blocks: u64,
    /// See [`ThinDelta::same_blocks`].
    pub left_only_blocks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Same,
    Different,
    RightOnly,
    LeftOnly,
}

impl Kind {
    fn from_name(n: &str) -> Option<Kind> {
        Some(match n {
            "same" => Kind::Same,
            "different" => Kind::Different,
            "right_only" => Kind::RightOnly,
            "left_only" => Kind::LeftOnly,
            _ => return None,
        })
    }
}

/// Where the parser is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Top,
    Superblock,
    Diff,
    /// Inside a `--verbose` container of this kind.
    Container(Kind),
    Done,
}

/// Appends `[off, off+len)` to `v`, merging with the last range when adjacent or overlapping
/// (thin_delta prints runs in ascending order; anything else is sorted at the end).
fn push(v: &mut Vec<ByteRange>, sorted: &mut bool, off: u64, len: u64) {
    if let Some(last) = v.last_mut() {
        if off >= last.offset && off <= last.end() {
            let end = last.end().max(off + len);
            last.len = end - last.offset;
            return;
        }
        if off < last.offset {
            *sorted = false;
        }
    }
    v.push(ByteRange { offset: off, len });
}

struct Parser<'n> {
    name: &'n str,
    at: At,
    delta: ThinDelta,
    changed: Vec<ByteRange>,
    unmapped: Vec<ByteRange>,
    sorted: bool,
}

fn thin_delta_error(name: &str, at: u64, msg: String) -> Error {
    Error::ThinDelta {
        name: name.to_string(),
        at,
        msg,
    }
}

impl Parser<'_> {
    fn err(&self, pos: u64, msg: impl Into<String>) -> Error {
        thin_delta_error(self.name, pos, msg.into())
    }

    fn attr(&self, e: &BytesStart<'_>, key: &str, pos: u64) -> Result<Option<u64>> {
        xml::attr_u64(e, key, pos, self.name, thin_delta_error)
    }

    fn need(&self, e: &BytesStart<'_>, key: &str, pos: u64) -> Result<u64> {
        xml::need_u64(e, key, pos, self.name, thin_delta_error)
    }

    /// A run of `kind` blocks from a `<kind .../>` or `<range .../>` element.
    fn run(&mut self, kind: Kind, e: &BytesStart<'_>, pos: u64) -> Result<()> {
        let begin = self.need(e, "begin", pos)?;
        let length = self.need(e, "length", pos)?;
        let bs = self.delta.block_size;
        let (off, len) = match (begin.checked_mul(bs), length.checked_mul(bs)) {
            (Some(o), Some(l)) if o.checked_add(l).is_some() => (o, l),
            _ => {
                return Err(self.err(
                    pos,
                    format!(
                    "run begin={begin} length={length} (blocks of {bs} bytes) lies past 2^64 bytes"
                ),
                ))
            }
        };
        if length == 0 {
            return Ok(());
        }
        match kind {
            Kind::Same => self.delta.same_blocks += length,
            Kind::Different => {
                self.delta.different_blocks += length;
                push(&mut self.changed, &mut self.sorted, off, len);
            }
            Kind::RightOnly => {
                self.delta.right_only_blocks += length;
                push(&mut self.changed, &mut self.sorted, off, len);
            }
            Kind::LeftOnly => {
                self.delta.left_only_blocks += length;
                push(&mut self.unmapped, &mut self.sorted, off, len);
            }
        }
        Ok(())
    }

    fn open(&mut self, e: &BytesStart<'_>, empty: bool, pos: u64) -> Result<()> {
        let n = name_of(e);
        match (self.at, n.as_str(), Kind::from_name(&n)) {
            (At::Top, "superblock", _) => {
                let bs = self.need(e, "data_block_size", pos)?;
                if bs == 0 {
                    return Err(self.err(pos, "<superblock> data_block_size is 0"));
                }
                self.delta.block_size = bs.checked_mul(512).ok_or_else(|| {
                    self.err(
                        pos,
                        format!("<superblock> data_block_size {bs} is too large"),
                    )
                })?;
                self.at = if empty { At::Done } else { At::Superblock };
            }
            (At::Superblock, "diff", _) => {
                self.delta.left = self.attr(e, "left", pos)?.unwrap_or(0);
                self.delta.right = self.attr(e, "right", pos)?.unwrap_or(0);
                if !empty {
                    self.at = At::Diff;
                }
            }
            (At::Diff, _, Some(k)) => {
                if empty {
                    self.run(k, e, pos)?;
                } else {
                    self.at = At::Container(k);
                }
            }
            (At::Container(k), "range", _) if empty => self.run(k, e, pos)?,
            (At::Top, _, _) => {
                return Err(self.err(
                    pos,
                    format!("expected <superblock> first, found <{n}>: not thin_delta output"),
                ))
            }
            (where_, _, _) => {
                return Err(self.err(
                    pos,
                    format!(
                        "unexpected <{n}> {}: not thin_delta output this version understands",
                        describe(where_)
                    ),
                ))
            }
        }
        Ok(())
    }

    fn close(&mut self, n: &str, pos: u64) -> Result<()> {
        self.at = match (self.at, n) {
            (At::Superblock, "superblock") => At::Done,
            (At::Diff, "diff") => At::Superblock,
            (At::Container(k), x) if Kind::from_name(x) == Some(k) => At::Diff,
            (where_, _) => {
                return Err(self.err(pos, format!("unexpected </{n}> {}", describe(where_))))
            }
        };
        Ok(())
    }
}

fn describe(at: At) -> &'static str {
    match at {
        At::Top => "before <superblock>",
        At::Superblock => "inside <superblock>",
        At::Diff => "inside <diff>",
        At::Container(_) => "inside a run container",
        At::Done => "after </superblock>",
    }
}

/// Parses `thin_delta` XML from `r` (named `name` in messages) as it arrives.
pub fn parse<R: BufRead>(r: R, name: &str) -> Result<ThinDelta> {
    let mut p = Parser {
        name,
        at: At::Top,
        delta: ThinDelta::default(),
        changed: Vec::new(),
        unmapped: Vec::new(),
        sorted: true,
    };
    let end = xml::read_elements(
        r,
        name,
        "thin_delta",
        thin_delta_error,
        |el, pos| match el {
            Element::Open(e, empty) => p.open(e, empty, pos),
            Element::Close(n) => p.close(n, pos),
        },
    )?;
    let inside = (p.at != At::Done).then(|| describe(p.at));
    xml::unfinished(
        inside,
        p.at != At::Top,
        end,
        name,
        "thin_delta",
        thin_delta_error,
    )?;
    let (c, u) = (
        std::mem::take(&mut p.changed),
        std::mem::take(&mut p.unmapped),
    );
    let (changed, unmapped) = if p.sorted {
        (
            Changes::from_sorted_ranges(c),
            Changes::from_sorted_ranges(u),
        )
    } else {
        (Changes::from_ranges(c), Changes::from_ranges(u))
    };
    if let Some(r) = overlap(&changed, &unmapped) {
        return Err(p.err(
            end,
            format!(
                "byte {} is listed both as mapped on the right and as mapped on the left only",
                r
            ),
        ));
    }
    p.delta.changed = changed;
    p.delta.unmapped = unmapped;
    Ok(p.delta)
}

/// First byte covered by both lists, if any.
fn overlap(a: &Changes, b: &Changes) -> Option<u64> {
    let (mut i, mut j) = (0, 0);
    let (a, b) = (a.ranges(), b.ranges());
    while i < a.len() && j < b.len() {
        let lo = a[i].offset.max(b[j].offset);
        if lo < a[i].end().min(b[j].end()) {
            return Some(lo);
        }
        if a[i].end() <= b[j].end() {
            i += 1;
        } else {
            j += 1;
        }
    }
    None
}

/// How to run `thin_delta`.
#[derive(Debug, Clone)]
pub struct ThinDeltaCommand {
    /// The program (`thin_delta`, or a path).
    pub program: String,
    /// The pool's metadata device (`/dev/mapper/VG-POOL_tmeta`) or a metadata file.
    pub metadata: PathBuf,
    /// Left (older) thin device id.
    pub left: u64,
    /// Right (newer) thin device id.
    pub right: u64,
    /// Read the reserved metadata snapshot (`-m`): required on a live pool.
    pub metadata_snap: bool,
}

impl ThinDeltaCommand {
    /// `thin_delta -m --snap1 LEFT --snap2 RIGHT METADATA`: the program found on `PATH`,
    /// reading the pool's reserved metadata snapshot (what a live pool needs).
    pub fn new(metadata: PathBuf, left: u64, right: u64) -> Self {
        ThinDeltaCommand {
            program: "thin_delta".to_string(),
            metadata,
            left,
            right,
            metadata_snap: true,
        }
    }

    /// The argument vector after the program.
    pub fn args(&self) -> Vec<String> {
        let ids = [
            "--snap1".to_string(),
            self.left.to_string(),
            "--snap2".to_string(),
            self.right.to_string(),
        ];
        tool_args(self.metadata_snap, ids, &self.metadata)
    }

    /// The command as a shell would show it (for messages).
    pub fn display(&self) -> String {
        shown(&self.program, self.args())
    }
}

/// `[-m] OPTIONS... METADATA`: the arguments of a thin-provisioning tool reading `metadata`
/// (`-m`: its reserved metadata snapshot).
pub(crate) fn tool_args(
    metadata_snap: bool,
    options: impl IntoIterator<Item = String>,
    metadata: &std::path::Path,
) -> Vec<String> {
    let mut a: Vec<String> = metadata_snap
        .then(|| "-m".to_string())
        .into_iter()
        .collect();
    a.extend(options);
    a.push(metadata.display().to_string());
    a
}

/// A command line as a shell would show it (for messages).
pub(crate) fn shown(program: &str, args: Vec<String>) -> String {
    std::iter::once(program.to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Most of thin_delta's standard error kept for a message.
const STDERR_KEEP: usize = 4096;

/// Runs `thin_delta` and parses its output as it arrives. Cancelling `progress` kills it.
/// A failure names the command and carries the tool's own message.
pub fn run_thin_delta(cmd: &ThinDeltaCommand, progress: &Progress) -> Result<ThinDelta> {
    run_tool(&cmd.program, cmd.args(), cmd.display(), progress, |r, n| {
        parse(r, n)
    })
}

/// Runs a thin-provisioning tool (`program` with `args`, shown as `shown`) and hands its
/// standard output to `parse` as it arrives. Cancelling `progress` kills the tool. A failure
/// names the command and carries the tool's own message.
pub(crate) fn run_tool<T>(
    program: &str,
    args: Vec<String>,
    shown: String,
    progress: &Progress,
    parse: impl FnOnce(BufReader<WaitingFile>, &str) -> Result<T>,
) -> Result<T> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::ThinTool {
                    command: shown.clone(),
                    msg: format!("{program} not found: install thin-provisioning-tools"),
                }
            } else {
                Error::ThinTool {
                    command: shown.clone(),
                    msg: format!("cannot run it: {e}"),
                }
            }
        })?;
    let stderr = child.stderr.take().expect("piped");
    let (err_tx, err_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut keep: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        let mut r = stderr;
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            keep.extend_from_slice(&buf[..n]);
            if keep.len() > 2 * STDERR_KEEP {
                keep.drain(..keep.len() - STDERR_KEEP);
            }
        }
        let _ = err_tx.send(keep);
    });
    let stdout: OwnedFd = child.stdout.take().expect("piped").into();
    // Non-blocking, so that the wait for output can watch the cancel flag.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(stdout.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(stdout.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let file = std::fs::File::from(stdout);
    let reader = BufReader::with_capacity(256 << 10, WaitingFile::new(file).cancelled_by(progress));
    let parsed = parse(reader, &format!("output of {shown}"));
    if parsed.is_err() {
        // Stop the tool (it may still be writing, or be stuck): its status no longer matters.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| Error::ThinTool {
        command: shown.clone(),
        msg: format!("cannot wait for it: {e}"),
    })?;
    if progress.is_cancelled() {
        return Err(crate::Cancelled.into());
    }
    // The tool's standard error ends when it does (a process it started could keep it open:
    // then what arrived within a moment is all there is).
    let err_text = err_rx
        .recv_timeout(std::time::Duration::from_secs(2))
        .unwrap_or_default();
    let tool_msg = String::from_utf8_lossy(&err_text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if !status.success() {
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "failed".to_string(),
        };
        return Err(Error::ThinTool {
            command: shown,
            msg: if tool_msg.is_empty() {
                format!("{how}, no message")
            } else {
                format!("{how}: {tool_msg}")
            },
        });
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(offset: u64, len: u64) -> ByteRange {
        ByteRange { offset, len }
    }

    // The run of snapshot-formats.md §2.5 (pool block 64 KiB): left = snapshot (2), right =
    // origin (1).
    const SHORT: &str = r#"<superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="0">
  <diff left="2" right="1">
    <same begin="0" length="2"/>
    <different begin="2" length="1"/>
    <same begin="3" length="13"/>
    <right_only begin="20" length="2"/>
    <left_only begin="30" length="1"/>
    <left_only begin="100" length="2"/>
    <same begin="102" length="2"/>
  </diff>
</superblock>
"#;

    const VERBOSE: &str = r#"<superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="0">
  <diff left="2" right="1">
    <same>
      <range begin="0" data_begin="0" length="2"/>
    </same>
    <different>
      <range begin="2" left_data_begin="2" right_data_begin="20" length="1"/>
    </different>
    <same>
      <range begin="3" data_begin="3" length="13"/>
    </same>
    <right_only>
      <range begin="20" data_begin="21" length="2"/>
    </right_only>
    <left_only>
      <range begin="30" data_begin="23" length="1"/>
      <range begin="100" data_begin="16" length="2"/>
    </left_only>
    <same>
      <range begin="102" data_begin="18" length="2"/>
    </same>
  </diff>
</superblock>
"#;

    const K: u64 = 65536;

    #[test]
    fn short_and_verbose_forms_agree_with_the_recorded_run() {
        for xml in [SHORT, VERBOSE] {
            let d = parse(xml.as_bytes(), "t").unwrap();
            assert_eq!(d.block_size, K);
            assert_eq!((d.left, d.right), (2, 1));
            assert_eq!(d.changed.ranges(), [br(2 * K, K), br(20 * K, 2 * K)]);
            assert_eq!(d.unmapped.ranges(), [br(30 * K, K), br(100 * K, 2 * K)]);
            assert_eq!(
                (
                    d.same_blocks,
                    d.different_blocks,
                    d.right_only_blocks,
                    d.left_only_blocks
                ),
                (17, 1, 2, 3)
            );
        }
    }

    #[test]
    fn adjacent_runs_of_data_kinds_coalesce() {
        let xml = r#"<superblock data_block_size="8"><diff left="1" right="2">
            <different begin="4" length="2"/><right_only begin="6" length="1"/>
            <right_only begin="9" length="1"/></diff></superblock>"#;
        let d = parse(xml.as_bytes(), "t").unwrap();
        assert_eq!(
            d.changed.ranges(),
            [br(4 * 4096, 3 * 4096), br(9 * 4096, 4096)]
        );
        assert!(d.unmapped.is_empty());
    }

    #[test]
    fn an_empty_diff_means_nothing_changed() {
        let d = parse(
            &b"<superblock data_block_size=\"128\"><diff left=\"1\" right=\"2\"></diff></superblock>"[..],
            "t",
        )
        .unwrap();
        assert!(d.changed.is_empty() && d.unmapped.is_empty());
    }

    fn refuse(xml: &str) -> String {
        parse(xml.as_bytes(), "x").unwrap_err().to_string()
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert!(refuse("").contains("no <superblock>"));
        assert!(refuse("<device/>").contains("expected <superblock> first"));
        assert!(refuse(r#"<superblock data_block_size="0"></superblock>"#)
            .contains("data_block_size is 0"));
        assert!(refuse(r#"<superblock></superblock>"#).contains("no data_block_size"));
        let cut = &SHORT[..SHORT.find("<left_only").unwrap()];
        assert!(
            refuse(cut).contains("thin_delta stopped early"),
            "{}",
            refuse(cut)
        );
        assert!(refuse(&SHORT.replace("right_only", "maybe")).contains("unexpected <maybe>"));
        assert!(refuse(&SHORT.replace("begin=\"20\"", "begin=\"-3\""))
            .contains("not a non-negative integer"));
        assert!(
            refuse(&SHORT.replace("begin=\"20\"", "begin=\"99999999999999999\""))
                .contains("past 2^64")
        );
        assert!(refuse(&SHORT.replace(
            "length=\"2\"/>\n    <left_only begin=\"30\"",
            "/>\n    <left_only begin=\"30\""
        ))
        .contains("no length"));
        assert!(
            refuse(&SHORT.replace("<same begin=\"0\"", "junk<same begin=\"0\""))
                .contains("unexpected text")
        );
        let both = r#"<superblock data_block_size="8"><diff><right_only begin="1" length="2"/><left_only begin="2" length="1"/></diff></superblock>"#;
        assert!(refuse(both).contains("both as mapped"));
    }

    #[test]
    fn runs_out_of_order_are_sorted() {
        let xml = r#"<superblock data_block_size="8"><diff>
            <right_only begin="9" length="1"/><different begin="1" length="1"/><right_only begin="2" length="1"/></diff></superblock>"#;
        let d = parse(xml.as_bytes(), "t").unwrap();
        assert_eq!(d.changed.ranges(), [br(4096, 8192), br(9 * 4096, 4096)]);
    }

    fn command(program: &str, metadata: &str, metadata_snap: bool) -> ThinDeltaCommand {
        ThinDeltaCommand {
            program: program.into(),
            metadata: metadata.into(),
            left: 1,
            right: 2,
            metadata_snap,
        }
    }

    #[test]
    fn a_missing_tool_is_named() {
        let cmd = command("/nonexistent/thin_delta", "/dev/null", true);
        let e = run_thin_delta(&cmd, &Progress::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("install thin-provisioning-tools"), "{e}");
        assert!(e.contains("-m --snap1 1 --snap2 2 /dev/null"), "{e}");
    }

    #[test]
    fn a_failing_tool_reports_its_own_message() {
        let cmd = command("sh", "x", false);
        // `sh --snap1 ...` fails with sh's own complaint on stderr.
        let e = run_thin_delta(&cmd, &Progress::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("exit status"), "{e}");
    }
}
