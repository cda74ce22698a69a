//! The lvmsync "PROTO[3]" byte stream (also the format of snapback and undo files):
//!
//! ```text
//! "lvmsync PROTO[3]\n"                       17-byte handshake line
//! then items until end of stream, each framed by a 12-byte header:
//!   u64 big-endian   byte offset in the destination
//!   u32 big-endian   length in bytes
//!   <length> bytes   data
//! ```
//! That is all the original lvmsync knows: records of data, until EOF. A stream made of
//! nothing else (the original's, or this lvmsync's `--plain`) is a **plain stream**: its
//! reader detects a cut inside a header or inside a record's data ([`Error::TruncatedHeader`],
//! [`Error::TruncatedData`]) but cannot detect one exactly between records.
//!
//! # Control items: BEGIN and END marks, journals
//! A header whose offset has the top bit set (2^63 or more) can be no record: no file or
//! device has such an offset (`off_t` is signed), so no receiver can write it. This project
//! uses such headers for **control items**: the offset's eight bytes are `0xff` and a name
//! (ASCII, padded with zero bytes), the length is that of a payload that follows like data.
//!
//! | name | payload (big-endian) | meaning |
//! |---|---|---|
//! | `BEGIN` | u64 items, u64 data bytes, u64 layout digest | first item of a **marked stream**: an `END` mark follows its records |
//! | `END` | u64 items, u64 data bytes, u64 stream digest | the end-of-stream mark: the last item |
//! | `JOURNAL` | text lines (at most [`MAX_JOURNAL_TEXT`] bytes) | first item of an undo (snapback) journal, saying what it belongs to ([`super::undo`]) |
//! | `COMMIT` | u64 sequence number, u64 stream digest | in a journal: the records before it are durable |
//! | `EXPECT` | per range: u64 offset, u64 length, u64 OLDER hash, u64 NEWER hash | right after `BEGIN`: what the destination must hold before the first write ([`super::destcheck`]) |
//!
//! In `BEGIN`, *items* counts the items between it and `END` (an `EXPECT` item included),
//! *data bytes* the data of those records, and the
//! layout digest is the XXH3-64 of the handshake line and those records' 12-byte headers, in
//! order: it identifies the stream by what it changes before any data has arrived. In `END`,
//! *items* counts every item before it (`BEGIN`, journal items included), *data bytes* the
//! data of its data records, and the stream digest is the XXH3-64 of every stream byte before
//! its header (handshake, headers, data, payloads). `COMMIT`'s digest is the same running
//! digest, taken before its own header. Names and payload sizes are exact: any other header
//! with the top bit set is refused ([`Error::BadControl`]).
//!
//! A stream whose first item is `BEGIN` must end with a matching `END`, immediately before
//! EOF; a stream that ends before it is cut ([`Error::Cut`]), wherever the cut falls. The first
//! item alone says which kind a stream is (plain, marked, journal), so no content of a plain
//! stream can make it pass for another kind. The original receiver seeks to each item's
//! offset before writing: Ruby cannot seek to 2^63, so it stops at `BEGIN` with an error,
//! before writing anything; it must be sent a plain stream (`--plain`, or negotiated over
//! SSH: [`super::negotiate`]).
//!
//! A zero-length record is a no-op for every receiver (it seeks, then writes nothing).
//!
//! # The `discards` extension
//! A stream that starts with the handshake line `lvmsync PROTO[3] discards` ([`HANDSHAKE_DISCARDS`])
//! may carry **discard records**: a header whose length has the top bit set (`0x8000_0000`)
//! says that `len & 0x7fff_ffff` bytes at `offset` must read as zeros, and no data follows it.
//! Data records of such a stream are shorter than 2^31 bytes; a zero-length discard record is
//! invalid ([`Error::ZeroDiscard`]). The original lvmsync compares the first line with
//! `lvmsync PROTO[3]` exactly and exits before writing anything when it differs, so an old
//! receiver refuses an extended stream instead of misreading it. In a plain stream the top bit
//! means nothing special: it is part of a data length, as it always was.
//!
//! An undo journal ([`super::undo`]) has either handshake: the journals this version writes
//! have the extended one and keep all-zero old data as discard records; older ones are plain.

use super::Error;
use std::io::{BufRead, BufReader, Read};
use xxhash_rust::xxh3::Xxh3Default;

/// The handshake line without its newline.
pub const HANDSHAKE_LINE: &str = "lvmsync PROTO[3]";
/// The handshake as sent: the line and a newline.
pub const HANDSHAKE: &[u8] = b"lvmsync PROTO[3]\n";
/// The handshake line of a stream with discard records, without its newline.
pub const HANDSHAKE_DISCARDS_LINE: &str = "lvmsync PROTO[3] discards";
/// The extended handshake as sent: the line and a newline.
pub const HANDSHAKE_DISCARDS: &[u8] = b"lvmsync PROTO[3] discards\n";
/// In a stream with the extended handshake, the length bit that marks a discard record.
pub const DISCARD_FLAG: u32 = 0x8000_0000;
/// Longest discard record (and bound on data records) of a stream with the extended
/// handshake: the length field's low 31 bits.
pub const MAX_EXTENDED_LEN: u32 = 0x7fff_ffff;
/// Bytes in a record header.
pub const HEADER_LEN: usize = 12;
/// Largest record the sender emits. Coalesced ranges are cut at this size: the original
/// receiver reads a record's whole data into one Ruby string before writing it, so records
/// stay small even though the length field could say 4 GiB.
pub const MAX_SEND_RECORD: u32 = 1 << 20;
/// The offset bit of control items: offsets of 2^63 and more are no record.
pub const CONTROL_BIT: u64 = 1 << 63;
/// Largest `JOURNAL` payload.
pub const MAX_JOURNAL_TEXT: u32 = 4096;
/// Payload bytes of `BEGIN` and `END`.
pub const SUMMARY_LEN: u32 = 24;
/// Payload bytes of `COMMIT`.
pub const COMMIT_LEN: u32 = 16;
/// Bytes of one `EXPECT` entry.
pub const EXPECT_ENTRY: usize = 32;
/// Largest `EXPECT` payload (8 Mi ranges); read as it arrives, never allocated up front.
pub const MAX_EXPECT_LEN: u32 = 256 << 20;

/// The kinds of control items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// First item of a marked stream.
    Begin,
    /// The end-of-stream mark.
    End,
    /// First item of an undo journal.
    Journal,
    /// A journal's commit marker.
    Commit,
    /// What the destination must hold before the first write (second item of a marked
    /// stream, when the sender asks for the destination check).
    Expect,
}

const fn tag(name: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[0] = 0xff;
    let mut i = 0;
    while i < name.len() {
        b[i + 1] = name[i];
        i += 1;
    }
    u64::from_be_bytes(b)
}

impl ControlKind {
    /// Every kind.
    pub const ALL: [ControlKind; 5] = [
        ControlKind::Begin,
        ControlKind::End,
        ControlKind::Journal,
        ControlKind::Commit,
        ControlKind::Expect,
    ];
    /// The name in its header.
    pub fn name(self) -> &'static str {
        match self {
            ControlKind::Begin => "BEGIN",
            ControlKind::End => "END",
            ControlKind::Journal => "JOURNAL",
            ControlKind::Commit => "COMMIT",
            ControlKind::Expect => "EXPECT",
        }
    }
    /// The header's offset field: `0xff`, the name, zero bytes.
    pub const fn tag(self) -> u64 {
        match self {
            ControlKind::Begin => tag(b"BEGIN"),
            ControlKind::End => tag(b"END"),
            ControlKind::Journal => tag(b"JOURNAL"),
            ControlKind::Commit => tag(b"COMMIT"),
            ControlKind::Expect => tag(b"EXPECT"),
        }
    }
    /// The kind whose tag `offset` is.
    pub fn from_tag(offset: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == offset)
    }
}

/// What `BEGIN` announces and `END` confirms: item and data byte counts, and a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Items counted (see the module documentation for which).
    pub items: u64,
    /// Data bytes of the data records counted.
    pub data_bytes: u64,
    /// `BEGIN`: the layout digest; `END`: the stream digest.
    pub digest: u64,
}

impl Summary {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(SUMMARY_LEN as usize);
        v.extend_from_slice(&self.items.to_be_bytes());
        v.extend_from_slice(&self.data_bytes.to_be_bytes());
        v.extend_from_slice(&self.digest.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Self {
        Summary {
            items: be64(&b[0..8]),
            data_bytes: be64(&b[8..16]),
            digest: be64(&b[16..24]),
        }
    }
}

fn be64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    u64::from_be_bytes(x)
}

/// One range of an `EXPECT` item: the destination's `len` bytes at `offset` must hash
/// (XXH3-64) to `older` (what the round starts from) or `newer` (what it writes there: an
/// earlier run of the same round got that far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// First byte of the range.
    pub offset: u64,
    /// Its length (> 0).
    pub len: u64,
    /// XXH3-64 of OLDER's bytes there.
    pub older: u64,
    /// XXH3-64 of NEWER's bytes there (of zeros for a discarded range).
    pub newer: u64,
}

impl Expected {
    /// The payload of an `EXPECT` item listing `entries`.
    pub fn encode_all(entries: &[Expected]) -> Vec<u8> {
        let mut v = Vec::with_capacity(entries.len() * EXPECT_ENTRY);
        for e in entries {
            for x in [e.offset, e.len, e.older, e.newer] {
                v.extend_from_slice(&x.to_be_bytes());
            }
        }
        v
    }
    /// The entries of an `EXPECT` payload, or what is wrong with it: not whole entries, an
    /// empty range, a range reaching 2^63, ranges out of order or overlapping.
    pub fn decode_all(b: &[u8]) -> Result<Vec<Expected>, String> {
        if b.is_empty() || !b.len().is_multiple_of(EXPECT_ENTRY) {
            return Err(format!(
                "has {} payload bytes, which is not a whole number of {EXPECT_ENTRY}-byte ranges",
                b.len()
            ));
        }
        let mut out: Vec<Expected> = Vec::with_capacity(b.len() / EXPECT_ENTRY);
        for (i, c) in b.chunks_exact(EXPECT_ENTRY).enumerate() {
            let e = Expected {
                offset: be64(&c[0..8]),
                len: be64(&c[8..16]),
                older: be64(&c[16..24]),
                newer: be64(&c[24..32]),
            };
            let end = e.offset.checked_add(e.len).filter(|&x| x < CONTROL_BIT);
            if e.len == 0 || end.is_none() {
                return Err(format!(
                    "lists as range {i} {} bytes at byte {}, which no destination has",
                    e.len, e.offset
                ));
            }
            if let Some(p) = out.last() {
                if e.offset < p.offset + p.len {
                    return Err(format!(
                        "lists range {i} (byte {}) before the end of the range before it (byte {}): ranges must ascend without overlapping",
                        e.offset,
                        p.offset + p.len
                    ));
                }
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// A control item's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `BEGIN`: what follows until `END`.
    Begin(Summary),
    /// `END`: what came before it.
    End(Summary),
    /// `JOURNAL`: the journal's identity text.
    Journal(Vec<u8>),
    /// `EXPECT`: what the destination must hold, range by range, before the first write.
    Expect(Vec<Expected>),
    /// `COMMIT`: its sequence number and the stream digest before it.
    Commit {
        /// 1 for the first commit of a journal, then 2, 3...
        seq: u64,
        /// The digest of every journal byte before this item's header.
        digest: u64,
    },
}

impl Control {
    /// Its kind.
    pub fn kind(&self) -> ControlKind {
        match self {
            Control::Begin(_) => ControlKind::Begin,
            Control::End(_) => ControlKind::End,
            Control::Journal(_) => ControlKind::Journal,
            Control::Commit { .. } => ControlKind::Commit,
            Control::Expect(_) => ControlKind::Expect,
        }
    }
    /// Header and payload as written.
    pub fn encode(&self) -> Vec<u8> {
        let payload = match self {
            Control::Begin(s) | Control::End(s) => s.encode(),
            Control::Journal(t) => t.clone(),
            Control::Expect(e) => Expected::encode_all(e),
            Control::Commit { seq, digest } => {
                let mut v = seq.to_be_bytes().to_vec();
                v.extend_from_slice(&digest.to_be_bytes());
                v
            }
        };
        let mut out = RecordHeader::encode_raw(self.kind().tag(), payload.len() as u32).to_vec();
        out.extend_from_slice(&payload);
        out
    }
}

/// A control item as the decoder met it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlItem {
    /// What it says.
    pub control: Control,
    /// The stream digest of every byte before its header.
    pub digest_before: u64,
}

/// What the first item made of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No item read yet.
    Unknown,
    /// Records only (the original format, `--plain`).
    Plain,
    /// `BEGIN` first: an `END` mark must close it.
    Marked(Summary),
    /// `JOURNAL` first: an undo journal.
    Journal,
}

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Destination byte offset.
    pub offset: u64,
    /// Length in bytes of the range (for a data record, of the data that follows).
    pub len: u32,
}

impl RecordHeader {
    /// The 12 header bytes of a data record: big-endian u64 offset, big-endian u32 length.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        Self::encode_raw(self.offset, self.len)
    }
    /// The 12 header bytes of a discard record of an extended stream: the length with
    /// [`DISCARD_FLAG`] set. `len` must be 1..=[`MAX_EXTENDED_LEN`].
    pub fn encode_discard(&self) -> [u8; HEADER_LEN] {
        debug_assert!(self.len > 0 && self.len <= MAX_EXTENDED_LEN);
        Self::encode_raw(self.offset, self.len | DISCARD_FLAG)
    }
    /// The 12 header bytes of `offset` and `len` as they are.
    pub(crate) fn encode_raw(offset: u64, len: u32) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&offset.to_be_bytes());
        b[8..].copy_from_slice(&len.to_be_bytes());
        b
    }
    /// Decodes 12 header bytes as they are (the length field whole, as in a plain stream).
    pub fn decode(b: &[u8; HEADER_LEN]) -> Self {
        let mut l = [0u8; 4];
        l.copy_from_slice(&b[8..]);
        RecordHeader {
            offset: be64(&b[..8]),
            len: u32::from_be_bytes(l),
        }
    }
    /// Decodes 12 header bytes of a stream that may carry discard records (`discards`):
    /// returns the header with the flag taken out of the length, and whether it was set.
    /// A header with [`CONTROL_BIT`] set is a control item, whatever the stream.
    pub fn decode_in(b: &[u8; HEADER_LEN], discards: bool) -> (Self, RecordKind) {
        let h = Self::decode(b);
        if h.offset & CONTROL_BIT != 0 {
            (h, RecordKind::Control)
        } else if discards && h.len & DISCARD_FLAG != 0 {
            (
                RecordHeader {
                    offset: h.offset,
                    len: h.len & MAX_EXTENDED_LEN,
                },
                RecordKind::Discard,
            )
        } else {
            (h, RecordKind::Data)
        }
    }
}

/// What a record asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Write the data that follows the header.
    Data,
    /// Make the range read as zeros; no data follows (extended streams only).
    Discard,
    /// A control item ([`Decoder::control`] says which); its payload is read by the decoder.
    Control,
}

/// A record as the decoder met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Its header (for a discard record, the length without the flag).
    pub header: RecordHeader,
    /// Data, discard or control.
    pub kind: RecordKind,
    /// 0-based number of the item in the stream.
    pub index: u64,
    /// Stream byte where its header starts.
    pub at: u64,
}

/// The running XXH3-64 of a stream's bytes.
#[derive(Clone, Default)]
pub struct StreamHash(Xxh3Default);

impl StreamHash {
    /// Adds bytes.
    pub fn update(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    /// The digest of every byte added so far.
    pub fn digest(&self) -> u64 {
        self.0.digest()
    }
}

impl std::fmt::Debug for StreamHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamHash({:016x})", self.digest())
    }
}

/// Reads a PROTO[3] stream: the handshake on creation, then headers and data, keeping the
/// running stream digest and the rules of control items (see the module documentation).
#[derive(Debug)]
pub struct Decoder<R: Read> {
    r: BufReader<R>,
    name: String,
    pos: u64,
    next_index: u64,
    /// Data bytes of the current record not yet read.
    remaining: u64,
    current: Option<Record>,
    control: Option<ControlItem>,
    discards: bool,
    shape: Shape,
    /// Every byte consumed.
    hash: StreamHash,
    /// Of a marked stream: the handshake and the headers of the records after `BEGIN`.
    layout: StreamHash,
    /// Data bytes of the data records read.
    data_bytes: u64,
    /// The `END` mark was read: only EOF may follow.
    ended: bool,
}

/// Buffer of the decoder's reader.
const READ_BUF: usize = 64 << 10;

fn printable(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(40) {
        if (0x20..0x7f).contains(&b) && b != b'\'' && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > 40 {
        s.push('…');
    }
    s
}

impl Record {
    /// True for a discard record.
    pub fn is_discard(&self) -> bool {
        self.kind == RecordKind::Discard
    }
    /// True for a control item.
    pub fn is_control(&self) -> bool {
        self.kind == RecordKind::Control
    }
    /// Data bytes that follow the header in the stream and are the caller's to read (none
    /// for discard records and control items).
    pub fn data_len(&self) -> u64 {
        match self.kind {
            RecordKind::Data => u64::from(self.header.len),
            RecordKind::Discard | RecordKind::Control => 0,
        }
    }
}

/// Checks a handshake line (without its line end): `Some(discards)` when it is one of ours.
fn handshake_kind(body: &[u8]) -> Option<bool> {
    if body == HANDSHAKE_LINE.as_bytes() {
        Some(false)
    } else if body == HANDSHAKE_DISCARDS_LINE.as_bytes() {
        Some(true)
    } else {
        None
    }
}

/// A whole marked stream built in memory: `handshake`, `BEGIN`, each record's 12 header
/// bytes and data as given (a discard record's data is empty), `END`, with the counts and
/// digests described above. For small streams (tests, fuzzing); the sender writes streams of
/// any size as it reads their data.
pub fn marked_stream(handshake: &[u8], records: &[([u8; HEADER_LEN], &[u8])]) -> Vec<u8> {
    marked_stream_expecting(handshake, None, records)
}

/// [`marked_stream`] with an `EXPECT` item listing `expect` after `BEGIN`, when given.
pub fn marked_stream_expecting(
    handshake: &[u8],
    expect: Option<&[Expected]>,
    records: &[([u8; HEADER_LEN], &[u8])],
) -> Vec<u8> {
    let data_bytes = records.iter().map(|(_, d)| d.len() as u64).sum();
    let extra = u64::from(expect.is_some());
    let mut v = handshake.to_vec();
    v.extend(
        Control::Begin(Summary {
            items: records.len() as u64 + extra,
            data_bytes,
            digest: layout_digest(handshake, records.iter().map(|(h, _)| *h)),
        })
        .encode(),
    );
    if let Some(e) = expect {
        v.extend(Control::Expect(e.to_vec()).encode());
    }
    for (h, d) in records {
        v.extend_from_slice(h);
        v.extend_from_slice(d);
    }
    let mut hash = StreamHash::default();
    hash.update(&v);
    v.extend(
        Control::End(Summary {
            items: records.len() as u64 + 1 + extra,
            data_bytes,
            digest: hash.digest(),
        })
        .encode(),
    );
    v
}

/// The layout digest of a marked stream: XXH3-64 of the handshake and record headers.
pub fn layout_digest(handshake: &[u8], headers: impl IntoIterator<Item = [u8; HEADER_LEN]>) -> u64 {
    let mut h = StreamHash::default();
    h.update(handshake);
    for b in headers {
        h.update(&b);
    }
    h.digest()
}

impl<R: Read> Decoder<R> {
    /// Reads and checks the handshake (plain, or extended with discard records). `name` names
    /// the stream in messages ("-" or a path).
    pub fn new(r: R, name: &str) -> Result<Self, Error> {
        let mut r = BufReader::with_capacity(READ_BUF, r);
        let mut line = Vec::new();
        (&mut r)
            .take(64)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::input(name, "read the handshake", e))?;
        if line.is_empty() {
            return Err(Error::Empty {
                name: name.to_string(),
            });
        }
        let pos = line.len() as u64;
        let body = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let Some(discards) = body.and_then(handshake_kind) else {
            let shown = body.unwrap_or(&line);
            return Err(Error::Handshake {
                name: name.to_string(),
                saw: printable(shown),
            });
        };
        let mut hash = StreamHash::default();
        hash.update(&line);
        Ok(Decoder {
            r,
            name: name.to_string(),
            pos,
            next_index: 0,
            remaining: 0,
            current: None,
            control: None,
            discards,
            shape: Shape::Unknown,
            layout: hash.clone(),
            hash,
            data_bytes: 0,
            ended: false,
        })
    }

    /// True when the stream has the extended handshake (`lvmsync PROTO[3] discards`), so its
    /// records may be discard records.
    pub fn discards(&self) -> bool {
        self.discards
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Stream bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }
    /// What the first item made of the stream.
    pub fn shape(&self) -> Shape {
        self.shape
    }
    /// The digest of every byte consumed so far.
    pub fn digest(&self) -> u64 {
        self.hash.digest()
    }
    /// The running digest itself (to continue it, as a journal writer resuming does).
    pub fn stream_hash(&self) -> StreamHash {
        self.hash.clone()
    }
    /// Data bytes of the data records read so far.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }
    /// True once a valid `END` mark was read.
    pub fn ended(&self) -> bool {
        self.ended
    }
    /// The current item's control content, when it is a control item.
    pub fn control(&self) -> Option<&ControlItem> {
        self.control.as_ref()
    }

    /// Reads into `buf` until it is full or EOF, hashing what arrived.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<usize, Error> {
        let at = self.pos;
        let got = read_full(&mut self.r, buf)
            .map_err(|e| Error::input(&self.name, format!("read {what} at stream byte {at}"), e))?;
        self.pos += got as u64;
        Ok(got)
    }

    /// The next item's header, or `None` at a clean end of stream (EOF right after a record
    /// of a plain stream or a journal, or after a marked stream's `END`). Any data of the
    /// previous record not read yet is skipped first. A control item's payload is read and
    /// checked here ([`Decoder::control`]).
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        if self.remaining > 0 {
            self.skip_data(self.remaining)?;
        }
        self.current = None;
        self.control = None;
        let at = self.pos;
        if self.ended {
            let mut one = [0u8; 1];
            if self.fill(&mut one, "past the end mark")? == 0 {
                return Ok(None);
            }
            return Err(self.bad_control(
                self.next_index,
                at,
                "data follows the end-of-stream mark (two streams joined together?)".into(),
            ));
        }
        let mut b = [0u8; HEADER_LEN];
        let got = self.fill(&mut b, "a header")?;
        if got == 0 {
            return match self.shape {
                Shape::Marked(begin) => Err(Error::Cut {
                    name: self.name.clone(),
                    at,
                    items: self.next_index.saturating_sub(1),
                    total: begin.items,
                    data_bytes: self.data_bytes,
                    total_bytes: begin.data_bytes,
                }),
                _ => Ok(None),
            };
        }
        if got < HEADER_LEN {
            self.hash.update(&b[..got]);
            return Err(Error::TruncatedHeader {
                name: self.name.clone(),
                index: self.next_index,
                at,
                got,
            });
        }
        let (header, kind) = RecordHeader::decode_in(&b, self.discards);
        let rec = Record {
            header,
            kind,
            index: self.next_index,
            at,
        };
        if kind == RecordKind::Control {
            let before = self.hash.digest();
            self.hash.update(&b);
            let control = self.read_control(&rec)?;
            self.next_index += 1;
            self.check_control(&rec, &control, before)?;
            self.control = Some(ControlItem {
                control,
                digest_before: before,
            });
            self.current = Some(rec);
            return Ok(Some(rec));
        }
        self.hash.update(&b);
        if rec.is_discard() && header.len == 0 {
            return Err(Error::ZeroDiscard {
                name: self.name.clone(),
                index: rec.index,
                at,
            });
        }
        match self.shape {
            Shape::Unknown => self.shape = Shape::Plain,
            Shape::Marked(_) => self.layout.update(&b),
            Shape::Plain | Shape::Journal => {}
        }
        if kind == RecordKind::Data {
            self.data_bytes += u64::from(header.len);
        }
        self.next_index += 1;
        self.remaining = rec.data_len();
        self.current = Some(rec);
        Ok(Some(rec))
    }

    fn bad_control(&self, index: u64, at: u64, what: String) -> Error {
        Error::BadControl {
            name: self.name.clone(),
            index,
            at,
            what,
        }
    }

    /// Reads a control item's payload, checking its name and size.
    fn read_control(&mut self, rec: &Record) -> Result<Control, Error> {
        let (index, at) = (rec.index, rec.at);
        let h = rec.header;
        let Some(kind) = ControlKind::from_tag(h.offset) else {
            let what = format!(
                "has offset 0x{:016x} (2^63 or more), which no device has, and is no control item this lvmsync knows ('{}'): the stream is corrupt, or was made by a newer lvmsync",
                h.offset,
                printable(&h.offset.to_be_bytes())
            );
            return Err(self.bad_control(index, at, what));
        };
        let want = match kind {
            ControlKind::Begin | ControlKind::End => Some(SUMMARY_LEN),
            ControlKind::Commit => Some(COMMIT_LEN),
            ControlKind::Journal | ControlKind::Expect => None,
        };
        let fits = match (want, kind) {
            (Some(n), _) => h.len == n,
            (None, ControlKind::Expect) => h.len > 0 && h.len <= MAX_EXPECT_LEN,
            (None, _) => h.len > 0 && h.len <= MAX_JOURNAL_TEXT,
        };
        if !fits {
            let what = format!(
                "is a control item {} with a payload of {} bytes, which is not its size: the stream is corrupt",
                kind.name(),
                h.len
            );
            return Err(self.bad_control(index, at, what));
        }
        // Read as it arrives: a header announcing a large payload allocates nothing until
        // its bytes are there.
        let mut payload = Vec::new();
        let pos = self.pos;
        let got = (&mut self.r)
            .take(u64::from(h.len))
            .read_to_end(&mut payload)
            .map_err(|e| {
                Error::input(
                    &self.name,
                    format!("read a control item at stream byte {pos}"),
                    e,
                )
            })?;
        self.pos += got as u64;
        self.hash.update(&payload[..got]);
        if got < h.len as usize {
            let what = format!(
                "is a control item {} cut short: only {got} of its {} bytes arrived; the sender stopped or the file is truncated",
                kind.name(),
                h.len
            );
            return Err(self.bad_control(index, at, what));
        }
        Ok(match kind {
            ControlKind::Begin => Control::Begin(Summary::decode(&payload)),
            ControlKind::End => Control::End(Summary::decode(&payload)),
            ControlKind::Journal => Control::Journal(payload),
            ControlKind::Expect => {
                Control::Expect(Expected::decode_all(&payload).map_err(|w| {
                    self.bad_control(
                        index,
                        at,
                        format!("is a control item EXPECT that {w}: the stream is corrupt"),
                    )
                })?)
            }
            ControlKind::Commit => Control::Commit {
                seq: be64(&payload[..8]),
                digest: be64(&payload[8..]),
            },
        })
    }

    /// Where a control item may stand, and what an `END` mark must say.
    fn check_control(&mut self, rec: &Record, c: &Control, before: u64) -> Result<(), Error> {
        let (index, at) = (rec.index, rec.at);
        let first = index == 0;
        match (c, self.shape) {
            (Control::Begin(s), Shape::Unknown) => self.shape = Shape::Marked(*s),
            (Control::Journal(_), Shape::Unknown) => self.shape = Shape::Journal,
            (Control::Commit { .. }, Shape::Journal) => {}
            (Control::Expect(_), Shape::Marked(_)) if index == 1 => {}
            (Control::End(s), Shape::Marked(_) | Shape::Journal) => {
                self.check_end(rec, s, before)?;
                self.ended = true;
            }
            (c, shape) => {
                let kind = c.kind().name();
                let what = match (c, shape) {
                    (Control::Begin(_) | Control::Journal(_), _) if !first => format!(
                        "is a control item {kind}, which may only be the first item: the stream is corrupt"
                    ),
                    (Control::End(_), _) => "is an end-of-stream mark in a stream that did not start with BEGIN: the stream is corrupt".to_string(),
                    (Control::Expect(_), _) => "is a control item EXPECT, which may only come right after BEGIN, before any record: the stream is corrupt".to_string(),
                    _ => format!(
                        "is a control item {kind}, which belongs in an undo journal, not in this stream: the stream is corrupt"
                    ),
                };
                return Err(self.bad_control(index, at, what));
            }
        }
        Ok(())
    }

    fn check_end(&self, rec: &Record, end: &Summary, before: u64) -> Result<(), Error> {
        let got = Summary {
            items: rec.index,
            data_bytes: self.data_bytes,
            digest: before,
        };
        let mut wrong = Vec::new();
        if let Shape::Marked(begin) = self.shape {
            if begin.items + 1 != rec.index || begin.data_bytes != self.data_bytes {
                wrong.push(format!(
                    "its BEGIN announced {} records with {} data bytes, {} records with {} arrived",
                    begin.items,
                    begin.data_bytes,
                    rec.index.saturating_sub(1),
                    self.data_bytes
                ));
            } else if begin.digest != self.layout.digest() {
                wrong.push(format!(
                    "the records' offsets and lengths do not match its BEGIN (layout digest {:016x}, announced {:016x})",
                    self.layout.digest(),
                    begin.digest
                ));
            }
        }
        if end.items != got.items || end.data_bytes != got.data_bytes {
            wrong.push(format!(
                "it counts {} items with {} data bytes before it, {} with {} arrived",
                end.items, end.data_bytes, got.items, got.data_bytes
            ));
        } else if end.digest != got.digest {
            wrong.push(format!(
                "the stream's digest is {:016x}, the mark says {:016x}",
                got.digest, end.digest
            ));
        }
        if wrong.is_empty() {
            return Ok(());
        }
        let what = format!(
            "is the end-of-stream mark, and the stream does not match it: {}; the stream was altered or assembled from pieces",
            wrong.join("; ")
        );
        Err(self.bad_control(rec.index, rec.at, what))
    }

    /// Item headers read so far (the index the next item will have).
    pub fn records_read(&self) -> u64 {
        self.next_index
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        self.r.get_ref()
    }

    /// Data bytes of the current record not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Reads the next `buf.len()` data bytes of the current record.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let rec = self
            .current
            .ok_or_else(|| Error::Internal("read_data without a record".into()))?;
        if buf.len() as u64 > self.remaining {
            return Err(Error::Internal("read past the record's data".into()));
        }
        let got = self.fill(buf, "data")?;
        self.hash.update(&buf[..got]);
        if got < buf.len() {
            let done = u64::from(rec.header.len) - self.remaining + got as u64;
            return Err(self.truncated(rec, done));
        }
        self.remaining -= got as u64;
        Ok(())
    }

    /// Skips `n` data bytes of the current record (they are still read, for the digest).
    pub fn skip_data(&mut self, n: u64) -> Result<(), Error> {
        let rec = self
            .current
            .ok_or_else(|| Error::Internal("skip_data without a record".into()))?;
        let mut left = n.min(self.remaining);
        // Hashed where the reader buffered it: skipped data is never copied.
        while left > 0 {
            let at = self.pos;
            let avail = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::input(
                        &self.name,
                        format!("read data at stream byte {at}"),
                        e,
                    ))
                }
            };
            if avail.is_empty() {
                let done = u64::from(rec.header.len) - self.remaining;
                return Err(self.truncated(rec, done));
            }
            let got = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            self.hash.update(&avail[..got]);
            self.r.consume(got);
            self.pos += got as u64;
            self.remaining -= got as u64;
            left -= got as u64;
        }
        Ok(())
    }

    fn truncated(&self, rec: Record, got: u64) -> Error {
        Error::TruncatedData {
            name: self.name.clone(),
            index: rec.index,
            at: rec.at,
            offset: rec.header.offset,
            len: rec.header.len,
            got,
        }
    }

    /// Gives back the underlying reader (its buffered data is lost).
    pub fn into_inner(self) -> R {
        self.r.into_inner()
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read. Retries EINTR.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_are_big_endian() {
        // The original's [htonq(0x0102030405060708), 0x11223344].pack("QN").
        let h = RecordHeader {
            offset: 0x0102_0304_0506_0708,
            len: 0x1122_3344,
        };
        assert_eq!(h.encode(), [1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x22, 0x33, 0x44]);
        assert_eq!(RecordHeader::decode(&h.encode()), h);
    }

    fn stream(recs: &[(u64, &[u8])]) -> Vec<u8> {
        let mut v = HANDSHAKE.to_vec();
        for (off, data) in recs {
            v.extend_from_slice(&off.to_be_bytes());
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            v.extend_from_slice(data);
        }
        v
    }

    #[test]
    fn decodes_records_and_skips_unread_data() {
        let s = stream(&[(4096, b"abcd"), (0, b""), (1 << 40, b"xyz")]);
        let mut d = Decoder::new(&s[..], "s").unwrap();
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.header.offset, r.header.len, r.index, r.at),
            (4096, 4, 0, 17)
        );
        let mut b = [0u8; 2];
        d.read_data(&mut b).unwrap();
        assert_eq!(&b, b"ab");
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.header.offset, r.header.len, r.kind),
            (0, 0, RecordKind::Data)
        );
        assert_eq!(r.at, 17 + 16);
        let r = d.next_record().unwrap().unwrap();
        assert_eq!((r.header.offset, r.index), (1 << 40, 2));
        let mut b = [0u8; 3];
        d.read_data(&mut b).unwrap();
        assert_eq!(&b, b"xyz");
        assert!(d.next_record().unwrap().is_none());
        assert_eq!(d.position(), s.len() as u64);
    }

    #[test]
    fn refuses_bad_handshakes() {
        let e = |s: &[u8]| Decoder::new(s, "in").unwrap_err().to_string();
        assert_eq!(
            e(b""),
            "in: the stream is empty: no handshake (did the sender fail before sending anything?)"
        );
        assert_eq!(
            e(b"lvmsync PROTO[2]\n"),
            "in: handshake failed: saw 'lvmsync PROTO[2]', expected 'lvmsync PROTO[3]' (protocol mismatch, or not an lvmsync stream)"
        );
        assert!(e(b"\x00\x01binary garbage without newline")
            .contains("saw '\\x00\\x01binary garbage without newl"));
        assert!(Decoder::new(&b"lvmsync PROTO[3]\r\n"[..], "in").is_ok());
    }

    /// An extended stream: `(offset, Some(data))` data records, `(offset, None)` with a
    /// length for discard records.
    fn ext_stream(recs: &[(u64, Result<&[u8], u32>)]) -> Vec<u8> {
        let mut v = HANDSHAKE_DISCARDS.to_vec();
        for (off, r) in recs {
            match r {
                Ok(data) => {
                    v.extend_from_slice(&off.to_be_bytes());
                    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
                    v.extend_from_slice(data);
                }
                Err(len) => {
                    v.extend_from_slice(&off.to_be_bytes());
                    v.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
                }
            }
        }
        v
    }

    #[test]
    fn extended_handshake_is_a_different_first_line() {
        // The original receiver compares the chomped first line with "lvmsync PROTO[3]".
        let first = HANDSHAKE_DISCARDS.split(|&b| b == b'\n').next().unwrap();
        assert_ne!(first, HANDSHAKE_LINE.as_bytes());
        assert_eq!(first, HANDSHAKE_DISCARDS_LINE.as_bytes());
        assert_eq!(HANDSHAKE_DISCARDS, b"lvmsync PROTO[3] discards\n");
        assert!(!Decoder::new(&b"lvmsync PROTO[3]\n"[..], "s")
            .unwrap()
            .discards());
        let d = Decoder::new(&b"lvmsync PROTO[3] discards\r\n"[..], "s").unwrap();
        assert!(d.discards());
        assert_eq!(d.position(), 27);
        for bad in [
            &b"lvmsync PROTO[3] discard\n"[..],
            b"lvmsync PROTO[3]  discards\n",
            b"lvmsync PROTO[3] discards",
        ] {
            assert!(matches!(
                Decoder::new(bad, "s"),
                Err(Error::Handshake { .. })
            ));
        }
    }

    #[test]
    fn extended_stream_round_trip() {
        // Built with our encoder, checked against ext_stream's independent bytes.
        let mut ours = HANDSHAKE_DISCARDS.to_vec();
        ours.extend_from_slice(
            &RecordHeader {
                offset: 4096,
                len: 4,
            }
            .encode(),
        );
        ours.extend_from_slice(b"abcd");
        ours.extend_from_slice(
            &RecordHeader {
                offset: 1 << 33,
                len: MAX_EXTENDED_LEN,
            }
            .encode_discard(),
        );
        ours.extend_from_slice(&RecordHeader { offset: 0, len: 1 }.encode_discard());
        ours.extend_from_slice(&RecordHeader { offset: 9, len: 2 }.encode());
        ours.extend_from_slice(b"xy");
        let s = ext_stream(&[
            (4096, Ok(b"abcd")),
            (1 << 33, Err(0x7fff_ffff)),
            (0, Err(1)),
            (9, Ok(b"xy")),
        ]);
        assert_eq!(ours, s);
        let mut d = Decoder::new(&s[..], "s").unwrap();
        assert!(d.discards());
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.kind, r.header.offset, r.header.len, r.at),
            (RecordKind::Data, 4096, 4, 26)
        );
        // Data left unread is skipped; a discard record has none.
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.kind, r.header.offset, r.header.len, r.at),
            (RecordKind::Discard, 1 << 33, 0x7fff_ffff, 42)
        );
        assert!(r.is_discard());
        assert_eq!((r.data_len(), d.remaining()), (0, 0));
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.kind, r.header.len, r.at, r.index),
            (RecordKind::Discard, 1, 54, 2)
        );
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.kind, r.header.offset, r.header.len),
            (RecordKind::Data, 9, 2)
        );
        let mut b = [0u8; 2];
        d.read_data(&mut b).unwrap();
        assert_eq!(&b, b"xy");
        assert!(d.next_record().unwrap().is_none());
        assert_eq!(d.position(), s.len() as u64);
    }

    #[test]
    fn top_bit_is_a_plain_length_in_a_plain_stream() {
        // Header claims 2^31 + 16 data bytes; only 20 follow.
        let mut s = HANDSHAKE.to_vec();
        s.extend_from_slice(&7u64.to_be_bytes());
        s.extend_from_slice(&0x8000_0010u32.to_be_bytes());
        s.extend_from_slice(&[1u8; 20]);
        let mut d = Decoder::new(&s[..], "p").unwrap();
        assert!(!d.discards());
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.kind, r.header.len, r.data_len()),
            (RecordKind::Data, 0x8000_0010, 0x8000_0010)
        );
        let e = d.next_record().unwrap_err().to_string();
        assert_eq!(e, "p: stream ends inside record 0 (stream byte 17: 2147483664 bytes for offset 7): only 20 data bytes arrived; the sender stopped or the file is truncated");
        // The same header in an extended stream is a discard of 16 bytes, and the 20 bytes
        // that follow are the next record's header and data.
        let mut x = HANDSHAKE_DISCARDS.to_vec();
        x.extend_from_slice(&s[17..]);
        let mut d = Decoder::new(&x[..], "x").unwrap();
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.kind, r.header.offset, r.header.len),
            (RecordKind::Discard, 7, 16)
        );
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(
            (r.kind, r.header.offset, r.header.len),
            (RecordKind::Data, 0x0101_0101_0101_0101, 0x0101_0101)
        );
    }

    #[test]
    fn zero_length_discard_is_refused() {
        let s = ext_stream(&[(0, Ok(b"ab")), (4096, Err(0))]);
        let mut d = Decoder::new(&s[..], "z").unwrap();
        d.next_record().unwrap();
        let e = d.next_record().unwrap_err();
        assert!(
            matches!(
                e,
                Error::ZeroDiscard {
                    index: 1,
                    at: 40,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "z: record 1 (stream byte 40) is a discard record of length 0, which is invalid: the stream is corrupt");
        // In a plain stream the same bytes are a data record of 2^31 bytes.
        let mut p = HANDSHAKE.to_vec();
        p.extend_from_slice(&s[26..]);
        let mut d = Decoder::new(&p[..], "p").unwrap();
        d.next_record().unwrap();
        let r = d.next_record().unwrap().unwrap();
        assert_eq!((r.kind, r.header.len), (RecordKind::Data, 0x8000_0000));
    }

    #[test]
    fn detects_truncation_inside_header_and_data() {
        let s = stream(&[(0, b"abcd"), (8, b"efgh")]);
        let mut d = Decoder::new(&s[..s.len() - 10], "in").unwrap();
        d.next_record().unwrap();
        let e = d.next_record().unwrap_err().to_string();
        assert_eq!(e, "in: stream ends inside the header of record 1 at stream byte 33 (6 of 12 bytes): the sender stopped or the file is truncated");
        let mut d = Decoder::new(&s[..s.len() - 1], "in").unwrap();
        d.next_record().unwrap();
        d.next_record().unwrap();
        let mut b = [0u8; 4];
        let e = d.read_data(&mut b).unwrap_err().to_string();
        assert_eq!(e, "in: stream ends inside record 1 (stream byte 33: 4 bytes for offset 8): only 3 data bytes arrived; the sender stopped or the file is truncated");
    }

    #[test]
    fn control_items_are_0xff_and_a_name() {
        assert_eq!(&ControlKind::Begin.tag().to_be_bytes(), b"\xffBEGIN\0\0");
        assert_eq!(&ControlKind::End.tag().to_be_bytes(), b"\xffEND\0\0\0\0");
        assert_eq!(&ControlKind::Journal.tag().to_be_bytes(), b"\xffJOURNAL");
        assert_eq!(&ControlKind::Commit.tag().to_be_bytes(), b"\xffCOMMIT\0");
        for k in ControlKind::ALL {
            assert!(k.tag() >= CONTROL_BIT);
            assert_eq!(ControlKind::from_tag(k.tag()), Some(k));
        }
        assert_eq!(ControlKind::from_tag(CONTROL_BIT), None);
        let e = Control::End(Summary {
            items: 1,
            data_bytes: 2,
            digest: 3,
        })
        .encode();
        assert_eq!(&e[..12], b"\xffEND\0\0\0\0\0\0\0\x18");
        assert_eq!(
            &e[12..],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]
        );
        let c = Control::Commit { seq: 5, digest: 6 }.encode();
        assert_eq!(c.len(), 12 + 16);
        // A control header is a control item in any stream, even where the length's top bit
        // marks discards.
        let (h, k) = RecordHeader::decode_in(&c[..12].try_into().unwrap(), true);
        assert_eq!((h.len, k), (16, RecordKind::Control));
    }

    /// A marked stream of data records.
    fn marked(recs: &[(u64, &[u8])]) -> Vec<u8> {
        let headers: Vec<_> = recs
            .iter()
            .map(|(o, d)| {
                let h = RecordHeader {
                    offset: *o,
                    len: d.len() as u32,
                };
                (h.encode(), *d)
            })
            .collect();
        marked_stream(HANDSHAKE, &headers)
    }

    #[test]
    fn a_marked_stream_ends_with_its_mark_and_nothing_after() {
        let s = marked(&[(4096, b"abcd"), (0, b"xy")]);
        let mut d = Decoder::new(&s[..], "m").unwrap();
        assert_eq!(d.shape(), Shape::Unknown);
        let r = d.next_record().unwrap().unwrap();
        assert!(r.is_control() && r.data_len() == 0);
        assert!(matches!(
            d.control().unwrap().control,
            Control::Begin(Summary {
                items: 2,
                data_bytes: 6,
                ..
            })
        ));
        assert!(matches!(d.shape(), Shape::Marked(_)));
        let r = d.next_record().unwrap().unwrap();
        assert_eq!((r.index, r.header.offset), (1, 4096));
        assert!(d.control().is_none());
        d.next_record().unwrap().unwrap();
        let r = d.next_record().unwrap().unwrap();
        assert!(matches!(d.control().unwrap().control, Control::End(_)));
        assert_eq!(
            d.control().unwrap().digest_before,
            xxhash_rust::xxh3::xxh3_64(&s[..r.at as usize])
        );
        assert!(d.ended());
        assert!(d.next_record().unwrap().is_none());
        assert_eq!(d.digest(), xxhash_rust::xxh3::xxh3_64(&s));
        // Cut between two records: detected, with what arrived.
        let cut = &s[..17 + 36 + 16];
        let mut d = Decoder::new(cut, "m").unwrap();
        d.next_record().unwrap();
        d.next_record().unwrap();
        let e = d.next_record().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Cut {
                    at: 69,
                    items: 1,
                    total: 2,
                    data_bytes: 4,
                    total_bytes: 6,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn the_first_item_alone_decides_the_kind_of_stream() {
        // A plain stream whose first record is (0, 0), then (1, 0): records, nothing more.
        let s = stream(&[(0, b""), (1, b""), (8, b"ab")]);
        let mut d = Decoder::new(&s[..], "p").unwrap();
        while let Some(r) = d.next_record().unwrap() {
            assert_eq!(r.kind, RecordKind::Data);
        }
        assert_eq!(d.shape(), Shape::Plain);
        // A JOURNAL first: a journal, after either handshake (a journal with the extended
        // one holds all-zero old data as discard records).
        let j = Control::Journal(b"t".to_vec()).encode();
        for (hs, discards) in [(HANDSHAKE, false), (HANDSHAKE_DISCARDS, true)] {
            let mut s = hs.to_vec();
            s.extend_from_slice(&j);
            s.extend_from_slice(
                &RecordHeader {
                    offset: 4096,
                    len: 8192,
                }
                .encode_discard(),
            );
            let mut d = Decoder::new(&s[..], "j").unwrap();
            d.next_record().unwrap();
            assert_eq!(d.shape(), Shape::Journal);
            let r = d.next_record().unwrap().unwrap();
            if discards {
                assert_eq!(r.kind, RecordKind::Discard);
                assert_eq!(
                    r.header,
                    RecordHeader {
                        offset: 4096,
                        len: 8192
                    }
                );
                assert!(
                    d.next_record().unwrap().is_none(),
                    "a journal may end anywhere"
                );
                assert_eq!(d.data_bytes(), 0, "a discard record carries no data");
            } else {
                // In a plain journal the flag is part of a data length: 2^31 + 8192 bytes,
                // which are not there.
                assert_eq!(r.kind, RecordKind::Data);
                assert_eq!(r.header.len, 0x8000_2000);
            }
        }
        // An empty JOURNAL, an oversized one, a payload of the wrong size.
        for (name, len) in [
            (ControlKind::Journal, 0),
            (ControlKind::Journal, MAX_JOURNAL_TEXT + 1),
            (ControlKind::Begin, 23),
            (ControlKind::Commit, 24),
        ] {
            let mut s = HANDSHAKE.to_vec();
            s.extend_from_slice(&RecordHeader::encode_raw(name.tag(), len));
            s.extend(std::iter::repeat_n(0u8, len as usize));
            let e = Decoder::new(&s[..], "b")
                .unwrap()
                .next_record()
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::BadControl {
                        index: 0,
                        at: 17,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(e.to_string().contains("which is not its size"), "{e}");
        }
    }
}
