//! Range digests for `lvmsync --verify`: after a live sync, the sender proves that the
//! destination holds what it sent, record by record.
//!
//! * A [`Digest`] is `(offset, len, hash)` with `hash` = XXH3-64 (seed 0) of the `len` bytes at
//!   `offset`. The sender computes one per record from the data as it passes through its
//!   arena (a discard record's is the hash of `len` zero bytes, computed, not read); the
//!   receiver re-reads every range it wrote, after `fdatasync` and dropping the cached pages,
//!   and computes the same list.
//! * [`compare_digests`] pairs the two lists by position.
//! * [`pack`] / [`unpack`]: the binary form the Ruby API passes around, 24 bytes per digest
//!   (big-endian u64 offset, u64 len, u64 hash).
//! * [`Digest::to_line`] / [`parse_lines`]: the text form a remote receiver prints, one line
//!   per digest ("lvmsync-verify OFFSET LEN HASH").

use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

/// Bytes of one packed digest.
pub const DIGEST_BYTES: usize = 24;
/// Prefix of the text form of a digest ([`Digest::to_line`]).
pub const LINE_PREFIX: &str = "lvmsync-verify";
/// Mismatches [`compare_digests`] lists as examples (the rest are only counted).
pub const MAX_EXAMPLES: usize = 20;
/// Mismatches a [`DigestReport`]'s message names (the rest are "...").
pub const SHOWN_EXAMPLES: usize = 5;

/// The hash of one record's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    /// First byte of the range.
    pub offset: u64,
    /// Length of the range in bytes.
    pub len: u64,
    /// XXH3-64, seed 0, of the range's bytes.
    pub hash: u64,
}

impl Digest {
    /// The digest of `data` found at `offset`.
    pub fn of(offset: u64, data: &[u8]) -> Self {
        Digest {
            offset,
            len: data.len() as u64,
            hash: xxh3_64(data),
        }
    }

    /// The digest of `len` zero bytes at `offset` (a discard record), computed.
    pub fn of_zeros(offset: u64, len: u64) -> Self {
        Digest {
            offset,
            len,
            hash: zeros_hash(len),
        }
    }

    /// Packed form: big-endian offset, length, hash.
    pub fn to_bytes(&self) -> [u8; DIGEST_BYTES] {
        let mut b = [0u8; DIGEST_BYTES];
        b[..8].copy_from_slice(&self.offset.to_be_bytes());
        b[8..16].copy_from_slice(&self.len.to_be_bytes());
        b[16..].copy_from_slice(&self.hash.to_be_bytes());
        b
    }

    /// From the packed form.
    pub fn from_bytes(b: &[u8; DIGEST_BYTES]) -> Self {
        let u = |r: std::ops::Range<usize>| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[r]);
            u64::from_be_bytes(x)
        };
        Digest {
            offset: u(0..8),
            len: u(8..16),
            hash: u(16..24),
        }
    }
}

impl Digest {
    /// The text form: "lvmsync-verify OFFSET LEN HASH", decimal offset and length and 16
    /// lowercase hex digits of hash.
    pub fn to_line(&self) -> String {
        format!(
            "{LINE_PREFIX} {} {} {:016x}",
            self.offset, self.len, self.hash
        )
    }

    /// Reads [`Digest::to_line`]'s form exactly (single spaces, decimal numbers without sign
    /// or leading zeros, 16 hex digits of either case); `None` for anything else.
    pub fn from_line(line: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(line).ok()?;
        let mut f = text.split(' ');
        let (prefix, off, len, hash) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let decimal = |s: &str| {
            let canonical = s == "0" || (!s.starts_with('0') && !s.is_empty());
            (canonical && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let hex = (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(hash, 16).ok())
            .flatten();
        match (
            prefix == LINE_PREFIX && f.next().is_none(),
            decimal(off),
            decimal(len),
            hex,
        ) {
            (true, Some(offset), Some(len), Some(hash)) => Some(Digest { offset, len, hash }),
            _ => None,
        }
    }
}

/// Parses lines of [`Digest::to_line`]'s form (line ends ignored); the error names the first
/// line that is not one.
pub fn parse_lines<L: AsRef<[u8]>>(
    lines: impl IntoIterator<Item = L>,
) -> Result<Vec<Digest>, super::Error> {
    let mut out = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        let line = line.as_ref();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match Digest::from_line(line) {
            Some(d) => out.push(d),
            None => {
                let text: String = String::from_utf8_lossy(line).chars().take(80).collect();
                return Err(super::Error::Digests(format!(
                    "digest line {} is malformed: {text:?} (expected \"{LINE_PREFIX} OFFSET LEN HASH16HEX\")",
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

/// Packs digests, 24 bytes each, in order.
pub fn pack(digests: &[Digest]) -> Vec<u8> {
    let mut v = Vec::with_capacity(digests.len() * DIGEST_BYTES);
    for d in digests {
        v.extend_from_slice(&d.to_bytes());
    }
    v
}

/// Unpacks [`pack`]'s form; the error names `what` ("sent digests") when the length is not a
/// multiple of 24.
pub fn unpack_named(b: &[u8], what: &str) -> Result<Vec<Digest>, super::Error> {
    unpack(b).ok_or_else(|| {
        super::Error::Digests(format!(
            "{what}: {} bytes is not a whole number of {DIGEST_BYTES}-byte digests",
            b.len()
        ))
    })
}

/// Unpacks [`pack`]'s form; `None` when the length is not a multiple of 24.
pub fn unpack(b: &[u8]) -> Option<Vec<Digest>> {
    if !b.len().is_multiple_of(DIGEST_BYTES) {
        return None;
    }
    Some(
        b.chunks_exact(DIGEST_BYTES)
            .map(|c| {
                let mut a = [0u8; DIGEST_BYTES];
                a.copy_from_slice(c);
                Digest::from_bytes(&a)
            })
            .collect(),
    )
}

const ZERO_BLOCK: usize = 64 << 10;
static ZEROS: [u8; ZERO_BLOCK] = [0u8; ZERO_BLOCK];

/// XXH3-64 of `len` zero bytes (streamed from a static zero block: no allocation).
pub fn zeros_hash(len: u64) -> u64 {
    if len <= ZERO_BLOCK as u64 {
        return xxh3_64(&ZEROS[..len as usize]);
    }
    let mut h = Xxh3Default::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(ZERO_BLOCK as u64) as usize;
        h.update(&ZEROS[..n]);
        left -= n as u64;
    }
    h.digest()
}

/// Remembers the zero hashes already computed: discard records of a thin snapshot mostly
/// share a few lengths (whole pool blocks), and a long one costs a pass over its length.
#[derive(Debug, Default)]
pub struct ZeroHashes(std::collections::HashMap<u64, u64>);

impl ZeroHashes {
    /// The digest of `len` zero bytes at `offset` (computed once per length).
    pub fn digest(&mut self, offset: u64, len: u64) -> Digest {
        let hash = *self.0.entry(len).or_insert_with(|| zeros_hash(len));
        Digest { offset, len, hash }
    }
}

/// Hashes one range fed in pieces (a record whose data is split over several buffers).
#[derive(Clone)]
pub struct RangeHasher {
    offset: u64,
    len: u64,
    fed: u64,
    h: Xxh3Default,
}

impl RangeHasher {
    /// A hasher for the `len` bytes at `offset`.
    pub fn new(offset: u64, len: u64) -> Self {
        RangeHasher {
            offset,
            len,
            fed: 0,
            h: Xxh3Default::new(),
        }
    }
    /// Feeds the next bytes of the range.
    pub fn update(&mut self, data: &[u8]) {
        self.h.update(data);
        self.fed += data.len() as u64;
    }
    /// True once `len` bytes were fed.
    pub fn complete(&self) -> bool {
        self.fed >= self.len
    }
    /// The digest of what was fed.
    pub fn finish(&self) -> Digest {
        Digest {
            offset: self.offset,
            len: self.len,
            hash: self.h.digest(),
        }
    }
}

/// How a record's digests disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MismatchKind {
    /// Both sides have the record, but the hash (or its offset or length) differs.
    Differs,
    /// The sender sent it; the receiver reported nothing for it (fewer digests).
    Missing,
    /// The receiver reported it; the sender sent nothing there (more digests).
    Unexpected,
}

impl MismatchKind {
    /// "differs", "missing" or "unexpected".
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::Differs => "differs",
            MismatchKind::Missing => "missing",
            MismatchKind::Unexpected => "unexpected",
        }
    }
}

/// One disagreeing record: the sender's range (the receiver's for [`MismatchKind::Unexpected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// First byte of the range.
    pub offset: u64,
    /// Length of the range.
    pub len: u64,
    /// How it disagrees.
    pub kind: MismatchKind,
}

/// The result of [`compare_digests`]; its `Display` is the one-line report `--verify` prints
/// ("verify: all 1200 ranges read back from new:/dev/vg1/web01 match the source (XXH3)", or
/// "verify FAILED: 3 of 1200 ranges of ... do not match the source: bytes 0..4095
/// (differs), ...", naming the first [`SHOWN_EXAMPLES`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestReport {
    /// Records whose offset, length and hash agree.
    pub matched: u64,
    /// Records that disagree (all of them).
    pub mismatches: u64,
    /// The first [`MAX_EXAMPLES`] of them, in stream order.
    pub examples: Vec<Mismatch>,
    /// Records the sender sent.
    pub sent: u64,
    /// Where the receiver read them back, for the message ("/dev/vg1/web01",
    /// "new:/dev/vg1/web01").
    pub destination: String,
}

impl DigestReport {
    /// True when every record matched and both lists have the same length.
    pub fn ok(&self) -> bool {
        self.mismatches == 0
    }
}

impl std::fmt::Display for DigestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ok() {
            return write!(
                f,
                "verify: all {} ranges read back from {} match the source (XXH3)",
                self.matched, self.destination
            );
        }
        write!(
            f,
            "verify FAILED: {} of {} ranges of {} do not match the source: ",
            self.mismatches, self.sent, self.destination
        )?;
        let shown = &self.examples[..self.examples.len().min(SHOWN_EXAMPLES)];
        for (i, m) in shown.iter().enumerate() {
            // The last byte of an empty range is the one before it, as the sender says it.
            let last = i128::from(m.offset) + i128::from(m.len) - 1;
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}bytes {}..{last} ({})", m.offset, m.kind.as_str())?;
        }
        if self.mismatches > shown.len() as u64 {
            f.write_str(", ...")?;
        }
        Ok(())
    }
}

/// Compares the sender's digests with the receiver's, pairing them by position (both are in
/// stream order): a pair matches when offset, length and hash agree; a pair that does not is
/// [`MismatchKind::Differs`]; digests past the end of the shorter list are
/// [`MismatchKind::Missing`] (only sent) or [`MismatchKind::Unexpected`] (only received).
/// `destination` names where the receiver read them back, for the report's message.
pub fn compare_digests(sent: &[Digest], received: &[Digest], destination: &str) -> DigestReport {
    let mut r = DigestReport {
        sent: sent.len() as u64,
        destination: destination.to_string(),
        ..DigestReport::default()
    };
    let note = |r: &mut DigestReport, d: &Digest, kind| {
        r.mismatches += 1;
        if r.examples.len() < MAX_EXAMPLES {
            r.examples.push(Mismatch {
                offset: d.offset,
                len: d.len,
                kind,
            });
        }
    };
    for (s, g) in sent.iter().zip(received) {
        if s == g {
            r.matched += 1;
        } else {
            note(&mut r, s, MismatchKind::Differs);
        }
    }
    for s in sent.iter().skip(received.len()) {
        note(&mut r, s, MismatchKind::Missing);
    }
    for g in received.iter().skip(sent.len()) {
        note(&mut r, g, MismatchKind::Unexpected);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh3_is_the_reference_function() {
        // XXH3_64bits("") with seed 0, from the xxHash reference implementation.
        assert_eq!(Digest::of(0, b"").hash, 0x2D06_8005_38D3_94C2);
        // Streaming and one-shot agree, across the zero block size.
        for len in [0u64, 1, 240, 241, 65535, 65536, 65537, 300_000] {
            let z = vec![0u8; len as usize];
            assert_eq!(zeros_hash(len), xxh3_64(&z), "len {len}");
            let mut h = RangeHasher::new(5, len);
            for c in z.chunks(7777) {
                h.update(c);
            }
            assert!(h.complete());
            assert_eq!(h.finish(), Digest::of(5, &z));
        }
        let mut cache = ZeroHashes::default();
        assert_eq!(cache.digest(9, 4096), Digest::of_zeros(9, 4096));
        assert_eq!(cache.digest(1 << 20, 4096).offset, 1 << 20);
    }

    #[test]
    fn packed_form_is_big_endian_and_round_trips() {
        let d = Digest {
            offset: 0x0102_0304_0506_0708,
            len: 0x1112_1314_1516_1718,
            hash: 0x2122_2324_2526_2728,
        };
        let b = pack(&[d, d]);
        assert_eq!(b.len(), 48);
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            &b[16..24],
            &[0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28]
        );
        assert_eq!(unpack(&b).unwrap(), vec![d, d]);
        assert!(unpack(&b[..47]).is_none());
        assert_eq!(unpack(&[]).unwrap(), vec![]);
    }

    #[test]
    fn compare_pairs_by_position() {
        let d = |o: u64, h: u64| Digest {
            offset: o,
            len: 10,
            hash: h,
        };
        let sent = [d(0, 1), d(10, 2), d(20, 3), d(30, 4)];
        let r = compare_digests(&sent, &sent, "d");
        assert_eq!((r.matched, r.mismatches, r.examples.len()), (4, 0, 0));
        assert!(r.ok());
        // A changed hash, a shifted offset, one missing.
        let got = [d(0, 1), d(10, 9), d(21, 3)];
        let r = compare_digests(&sent, &got, "d");
        assert_eq!((r.matched, r.mismatches), (1, 3));
        let kinds: Vec<_> = r.examples.iter().map(|m| (m.offset, m.kind)).collect();
        assert_eq!(
            kinds,
            [
                (10, MismatchKind::Differs),
                (20, MismatchKind::Differs),
                (30, MismatchKind::Missing)
            ]
        );
        let r = compare_digests(&sent[..1], &sent[..2], "d");
        assert_eq!(r.examples[0].kind, MismatchKind::Unexpected);
        assert_eq!(r.examples[0].offset, 10);
        // Only the first 20 are listed, all are counted.
        let many: Vec<Digest> = (0..50).map(|i| d(i * 10, i)).collect();
        let r = compare_digests(&many, &[], "d");
        assert_eq!((r.mismatches, r.examples.len()), (50, MAX_EXAMPLES));
        assert_eq!(r.examples[19].offset, 190);
    }

    #[test]
    fn the_report_says_what_matched_or_names_the_first_five_mismatches() {
        let d = |o: u64, len: u64, h: u64| Digest {
            offset: o,
            len,
            hash: h,
        };
        let sent: Vec<Digest> = (0..8).map(|i| d(i * 4096, 4096, i)).collect();
        let r = compare_digests(&sent, &sent, "new:/dev/vg1/web01");
        assert_eq!(
            r.to_string(),
            "verify: all 8 ranges read back from new:/dev/vg1/web01 match the source (XXH3)"
        );
        // One differing: no "...".
        let mut got = sent.clone();
        got[2].hash = 99;
        assert_eq!(
            compare_digests(&sent, &got, "/dev/x").to_string(),
            "verify FAILED: 1 of 8 ranges of /dev/x do not match the source: bytes 8192..12287 \
             (differs)"
        );
        // Four differ and one is missing: all five named.
        let mut got: Vec<Digest> = sent[..7].to_vec();
        for g in got.iter_mut().take(4) {
            g.hash ^= 1;
        }
        let r = compare_digests(&sent, &got, "/dev/x");
        assert_eq!((r.sent, r.mismatches), (8, 5));
        assert_eq!(
            r.to_string(),
            "verify FAILED: 5 of 8 ranges of /dev/x do not match the source: bytes 0..4095 \
             (differs), bytes 4096..8191 (differs), bytes 8192..12287 (differs), bytes \
             12288..16383 (differs), bytes 28672..32767 (missing)"
        );
        // Six (two unexpected): five named, then "...".
        let mut more = got.clone();
        more.extend([d(1 << 20, 512, 0), d(0, 0, 0)]);
        let r = compare_digests(&sent[..7], &more, "/dev/x");
        assert!(
            r.to_string().ends_with(
                "bytes 12288..16383 (differs), bytes 1048576..1049087 (unexpected), ..."
            ),
            "{r}"
        );
        // An empty range ends before it starts, as it always printed.
        let r = compare_digests(&[d(0, 0, 1)], &[d(0, 0, 2)], "/dev/x");
        assert!(r.to_string().ends_with(": bytes 0..-1 (differs)"), "{r}");
    }

    #[test]
    fn text_form_round_trips_and_refuses_anything_else() {
        let top = Digest {
            offset: u64::MAX,
            len: u64::MAX,
            hash: u64::MAX,
        };
        let d = Digest {
            offset: 4096,
            len: 512,
            hash: 0xab,
        };
        assert_eq!(d.to_line(), "lvmsync-verify 4096 512 00000000000000ab");
        let lines = [
            d.to_line() + "\n",
            top.to_line() + "\r\n",
            "lvmsync-verify 0 0 00000000000000AB".into(),
        ];
        assert_eq!(
            parse_lines(&lines).unwrap(),
            [
                d,
                top,
                Digest {
                    offset: 0,
                    len: 0,
                    hash: 0xab
                }
            ]
        );
        assert_eq!(parse_lines(Vec::<&str>::new()).unwrap(), []);
        for bad in [
            "lvmsync-verify 1 2 abc",
            "lvmsync-verify 1 2 0123456789abcdef extra",
            "lvmsync-verify -1 2 0123456789abcdef",
            "lvmsync-verify 01 2 0123456789abcdef",
            "lvmsync-verify 1  2 0123456789abcdef",
            "lvmsync-verify 18446744073709551616 2 0123456789abcdef",
            "lvmsync-verify 1 2 +123456789abcdef",
            "FATAL ERROR: APPLY FAILED",
            "",
        ] {
            let e = parse_lines([d.to_line().as_str(), bad]).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("digest line 2 is malformed: {bad:?}")),
                "{e}"
            );
        }
        let long = "x".repeat(200);
        let e = parse_lines([long.as_str()]).unwrap_err().to_string();
        assert!(e.contains(&format!("{:?}", "x".repeat(80))), "{e}");
        let e = unpack_named(&[0u8; 25], "sent digests")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "sent digests: 25 bytes is not a whole number of 24-byte digests"
        );
    }
}
