//! The lvmsync "PROTO[3]" byte stream (also the format of snapback files):
//!
//! ```text
//! "lvmsync PROTO[3]\n"                       17-byte handshake line
//! then records until end of stream:
//!   u64 big-endian   byte offset in the destination
//!   u32 big-endian   length in bytes
//!   <length> bytes   data
//! ```
//! There is no record count, end marker or checksum: the stream ends at EOF. A reader detects
//! a stream cut inside a header or inside a record's data ([`Error::TruncatedHeader`],
//! [`Error::TruncatedData`]) but cannot detect one cut exactly between records.
//!
//! A zero-length record is a no-op for every receiver (it seeks, then writes nothing). The
//! snapback writer ([`super::undo`]) uses zero-length records at offset 0 as commit markers.
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

use super::Error;
use std::io::{BufRead, BufReader, Read};

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
    fn encode_raw(offset: u64, len: u32) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&offset.to_be_bytes());
        b[8..].copy_from_slice(&len.to_be_bytes());
        b
    }
    /// Decodes 12 header bytes as they are (the length field whole, as in a plain stream).
    pub fn decode(b: &[u8; HEADER_LEN]) -> Self {
        let mut o = [0u8; 8];
        o.copy_from_slice(&b[..8]);
        let mut l = [0u8; 4];
        l.copy_from_slice(&b[8..]);
        RecordHeader {
            offset: u64::from_be_bytes(o),
            len: u32::from_be_bytes(l),
        }
    }
    /// Decodes 12 header bytes of a stream that may carry discard records (`discards`):
    /// returns the header with the flag taken out of the length, and whether it was set.
    pub fn decode_in(b: &[u8; HEADER_LEN], discards: bool) -> (Self, RecordKind) {
        let h = Self::decode(b);
        if discards && h.len & DISCARD_FLAG != 0 {
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
    /// True for the zero-length record at offset 0 (a commit marker in snapback files).
    pub fn is_commit(&self) -> bool {
        self.offset == 0 && self.len == 0
    }
}

/// What a record asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Write the data that follows the header.
    Data,
    /// Make the range read as zeros; no data follows (extended streams only).
    Discard,
}

/// A record as the decoder met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Its header (for a discard record, the length without the flag).
    pub header: RecordHeader,
    /// Data or discard.
    pub kind: RecordKind,
    /// 0-based number of the record in the stream.
    pub index: u64,
    /// Stream byte where its header starts.
    pub at: u64,
}

/// Reads a PROTO[3] stream: the handshake on creation, then headers and data.
#[derive(Debug)]
pub struct Decoder<R: Read> {
    r: BufReader<R>,
    name: String,
    pos: u64,
    next_index: u64,
    /// Data bytes of the current record not yet read.
    remaining: u64,
    current: Option<Record>,
    discards: bool,
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
    /// Data bytes that follow the header in the stream.
    pub fn data_len(&self) -> u64 {
        match self.kind {
            RecordKind::Data => u64::from(self.header.len),
            RecordKind::Discard => 0,
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
        Ok(Decoder {
            r,
            name: name.to_string(),
            pos,
            next_index: 0,
            remaining: 0,
            current: None,
            discards,
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

    /// The next record's header, or `None` at a clean end of stream (EOF right after a
    /// record). Any data of the previous record not read yet is skipped first.
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        if self.remaining > 0 {
            self.skip_data(self.remaining)?;
        }
        let at = self.pos;
        let mut b = [0u8; HEADER_LEN];
        let got = read_full(&mut self.r, &mut b)
            .map_err(|e| Error::input(&self.name, format!("read at stream byte {at}"), e))?;
        self.pos += got as u64;
        if got == 0 {
            self.current = None;
            return Ok(None);
        }
        if got < HEADER_LEN {
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
        if rec.is_discard() && header.len == 0 {
            return Err(Error::ZeroDiscard {
                name: self.name.clone(),
                index: rec.index,
                at,
            });
        }
        self.next_index += 1;
        self.remaining = rec.data_len();
        self.current = Some(rec);
        Ok(Some(rec))
    }

    /// Record headers read so far (the index the next record will have).
    pub fn records_read(&self) -> u64 {
        self.next_index
    }

    /// Data bytes of the current record already read ahead into the decoder's buffer (they
    /// must be taken with [`Decoder::read_data`] before the rest is taken from the underlying
    /// reader directly).
    pub fn buffered_data(&self) -> usize {
        (self.r.buffer().len() as u64).min(self.remaining) as usize
    }

    /// Records that `n` data bytes of the current record were taken from the underlying
    /// reader directly (by `splice`), with `eof` when it ended first: then the stream is
    /// truncated and the error is returned.
    pub fn took_directly(&mut self, n: u64, eof: bool) -> Result<(), Error> {
        let rec = self
            .current
            .ok_or_else(|| Error::Internal("took_directly without a record".into()))?;
        if self.buffered_data() > 0 || n > self.remaining {
            return Err(Error::Internal("direct read out of order".into()));
        }
        self.pos += n;
        self.remaining -= n;
        if eof && self.remaining > 0 {
            let done = u64::from(rec.header.len) - self.remaining;
            return Err(self.truncated(rec, done));
        }
        Ok(())
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
        let got = read_full(&mut self.r, buf).map_err(|e| {
            Error::input(&self.name, format!("read at stream byte {}", self.pos), e)
        })?;
        self.pos += got as u64;
        if got < buf.len() {
            let done = u64::from(rec.header.len) - self.remaining + got as u64;
            return Err(self.truncated(rec, done));
        }
        self.remaining -= got as u64;
        Ok(())
    }

    /// Skips `n` data bytes of the current record.
    pub fn skip_data(&mut self, n: u64) -> Result<(), Error> {
        let rec = self
            .current
            .ok_or_else(|| Error::Internal("skip_data without a record".into()))?;
        let n = n.min(self.remaining);
        let got = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink()).map_err(|e| {
            Error::input(&self.name, format!("read at stream byte {}", self.pos), e)
        })?;
        self.pos += got;
        if got < n {
            let done = u64::from(rec.header.len) - self.remaining + got;
            return Err(self.truncated(rec, done));
        }
        self.remaining -= n;
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
        assert!(r.header.is_commit());
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
}
