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

use super::Error;
use std::io::{BufRead, BufReader, Read};

/// The handshake line without its newline.
pub const HANDSHAKE_LINE: &str = "lvmsync PROTO[3]";
/// The handshake as sent: the line and a newline.
pub const HANDSHAKE: &[u8] = b"lvmsync PROTO[3]\n";
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
    /// Data length in bytes.
    pub len: u32,
}

impl RecordHeader {
    /// The 12 header bytes: big-endian u64 offset, big-endian u32 length.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&self.offset.to_be_bytes());
        b[8..].copy_from_slice(&self.len.to_be_bytes());
        b
    }
    /// Decodes 12 header bytes.
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
    /// True for the zero-length record at offset 0 (a commit marker in snapback files).
    pub fn is_commit(&self) -> bool {
        self.offset == 0 && self.len == 0
    }
}

/// A record as the decoder met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Its header.
    pub header: RecordHeader,
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

impl<R: Read> Decoder<R> {
    /// Reads and checks the handshake. `name` names the stream in messages ("-" or a path).
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
        if body != Some(HANDSHAKE_LINE.as_bytes()) {
            let shown = body.unwrap_or(&line);
            return Err(Error::Handshake {
                name: name.to_string(),
                saw: printable(shown),
            });
        }
        Ok(Decoder {
            r,
            name: name.to_string(),
            pos,
            next_index: 0,
            remaining: 0,
            current: None,
        })
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
        let rec = Record {
            header: RecordHeader::decode(&b),
            index: self.next_index,
            at,
        };
        self.next_index += 1;
        self.remaining = u64::from(rec.header.len);
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
