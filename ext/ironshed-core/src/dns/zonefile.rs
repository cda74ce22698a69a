//! Reading a zone: the bytes of a file, a FIFO or stdin (gunzipped when they are gzip), and
//! the master-file text scanned into canonical records.
//!
//! The scanning itself is NLnet Labs' `domain` crate (RFC 1035 master files: `$ORIGIN`,
//! `$TTL`, parentheses, escapes, RFC 3597 generic records). `$INCLUDE` is refused: a
//! downloaded zone must not make this tool read other local files.

use super::error::Error;
use super::name::Name;
use super::record::{Record, CLASS_IN};
use crate::error::IoContext;
use domain::base::iana::Class;
use domain::base::rdata::ComposeRecordData;
use domain::base::ToName;
use domain::zonefile::inplace::{Entry, Zonefile};
use std::io::Read;
use std::path::Path;

/// The largest zone (after gunzip) this tool reads: the root zone is about 2 MB; this bound
/// keeps a gzip bomb or a wrong file from exhausting memory.
pub const MAX_ZONE_BYTES: u64 = 64 << 20;

/// Reads a whole input: `path`, or stdin for `-`. FIFOs and character devices are read to
/// their end. Refuses more than [`MAX_ZONE_BYTES`].
pub fn read_input(path: &Path) -> Result<Vec<u8>, Error> {
    let name = path.display().to_string();
    let mut out = Vec::new();
    let res = if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_ZONE_BYTES + 1)
            .read_to_end(&mut out)
    } else {
        let f = std::fs::File::open(path).map_err(|e| IoContext::new(path, "open", e))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Error::source(&name, "is a directory, not a zone file"));
        }
        f.take(MAX_ZONE_BYTES + 1).read_to_end(&mut out)
    };
    res.map_err(|e| IoContext::new(path, "read", e))?;
    if out.len() as u64 > MAX_ZONE_BYTES {
        return Err(too_big(&name));
    }
    Ok(out)
}

fn too_big(name: &str) -> Error {
    Error::source(
        name,
        format!("larger than {} MiB: not a root zone", MAX_ZONE_BYTES >> 20),
    )
}

/// True if `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Gunzips `bytes` when they are gzip (every member of a multi-member file), else returns
/// them unchanged. A truncated or corrupt stream is an error naming `name`.
pub fn gunzip_if_needed(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let dec = flate2::read::MultiGzDecoder::new(&bytes[..]);
    match dec.take(MAX_ZONE_BYTES + 1).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > MAX_ZONE_BYTES => Err(too_big(name)),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::source(
            name,
            format!(
                "truncated gzip stream (ends after {} bytes of zone text)",
                out.len()
            ),
        )),
        Err(e) => Err(Error::source(name, format!("corrupt gzip stream: {e}"))),
    }
}

/// Scans master-file text into records in canonical form (class IN only). `name` is used
/// in messages: `root.zone:1234:17: bad symbol`.
pub fn parse(name: &str, text: &[u8]) -> Result<Vec<Record>, Error> {
    if text.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::source(name, "empty: no records"));
    }
    if text.contains(&0) {
        let at = text.iter().position(|&b| b == 0).unwrap_or(0);
        return Err(Error::source(
            name,
            format!("NUL byte at offset {at}: not a zone file (binary data?)"),
        ));
    }
    let mut zf = Zonefile::with_capacity(text.len());
    zf.extend_from_slice(text);
    zf.set_origin(domain::base::Name::root_bytes());
    zf.set_default_class(Class::IN);
    let mut out = Vec::new();
    let mut owner = Vec::with_capacity(256);
    let mut rdata = Vec::with_capacity(512);
    loop {
        let entry = zf
            .next_entry()
            .map_err(|e| Error::source(name, where_text(&e.to_string())))?;
        let rec = match entry {
            None => break,
            Some(Entry::Record(r)) => r,
            Some(Entry::Include { path, .. }) => {
                return Err(Error::source(
                    name,
                    format!("$INCLUDE {path} is not allowed in a zone read by this tool"),
                ))
            }
        };
        if rec.class().to_int() != CLASS_IN {
            return Err(Error::source(
                name,
                format!(
                    "{}: class {} (only IN is supported)",
                    rec.owner(),
                    rec.class()
                ),
            ));
        }
        owner.clear();
        rdata.clear();
        // Both writes go to a Vec and cannot fail; an error would mean a bug in the scanner.
        let composed = rec
            .owner()
            .compose_canonical(&mut owner)
            .and_then(|_| rec.data().compose_canonical_rdata(&mut rdata));
        if composed.is_err() || rdata.len() > 65_535 {
            return Err(Error::source(
                name,
                format!(
                    "{} {}: record does not fit the wire format",
                    rec.owner(),
                    rec.rtype()
                ),
            ));
        }
        let owner = Name::from_wire(&owner)
            .map(|(n, _)| n)
            .ok_or_else(|| Error::source(name, format!("{}: bad owner name", rec.owner())))?;
        out.push(Record {
            owner,
            rtype: rec.rtype().to_int(),
            ttl: rec.ttl().as_secs(),
            rdata: rdata.as_slice().into(),
        });
    }
    if out.is_empty() {
        return Err(Error::source(name, "no records"));
    }
    Ok(out)
}

/// The scanner says `12:5: bad symbol`; make it `line 12, column 5: bad symbol`.
fn where_text(msg: &str) -> String {
    let mut parts = msg.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(l), Some(c), Some(rest)) if l.parse::<u64>().is_ok() && c.parse::<u64>().is_ok() => {
            format!("line {l}, column {c}:{rest}")
        }
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::record::rtype;

    #[test]
    fn parses_relative_names_ttl_and_parentheses() {
        let text = b"$TTL 3600\n$ORIGIN example.\n@ IN SOA ns1 hostmaster (\n 1 2 3 4 5 )\n\
                     www A 192.0.2.1\nWWW.Example. 60 IN AAAA 2001:db8::1 ; comment\n";
        let r = parse("t", text).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].owner.to_string(), "example.");
        assert_eq!(r[0].rtype, rtype::SOA);
        assert_eq!(r[0].ttl, 3600);
        assert_eq!(r[1].owner.to_string(), "www.example.");
        assert_eq!(&r[1].rdata[..], &[192, 0, 2, 1]);
        assert_eq!(r[2].owner.to_string(), "www.example.");
        assert_eq!(r[2].ttl, 60);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse(
            "root.zone",
            b". 86400 IN SOA a. b. 1 2 3 4 5\ncom. 172800 IN NS\n",
        )
        .unwrap_err()
        .to_string();
        // The scanner notices the missing RDATA where the next line starts.
        assert_eq!(e, "root.zone: line 3, column 1: unexpected end of entry");
        let e = parse("z", b"$INCLUDE /etc/shadow\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("$INCLUDE"), "{e}");
        let e = parse("z", b". 1 CH TXT \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("different class: CH != IN"), "{e}");
        assert!(parse("z", b"\n \n")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(parse("z", b"\x1f\x8b\x08\0")
            .unwrap_err()
            .to_string()
            .contains("NUL"));
    }

    #[test]
    fn gzip_round_trip_and_truncation() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let text = b". 86400 IN SOA a. b. 1 2 3 4 5\n".repeat(100);
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&text).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip_if_needed("z.gz", gz.clone()).unwrap(), text);
        let cut = gz[..gz.len() - 10].to_vec();
        let e = gunzip_if_needed("z.gz", cut).unwrap_err().to_string();
        assert!(e.contains("truncated gzip"), "{e}");
        assert_eq!(gunzip_if_needed("z", text.clone()).unwrap(), text);
    }

    #[test]
    fn more_than_64_mib_is_refused_plain_or_gzip() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let big = vec![b' '; (MAX_ZONE_BYTES + 1) as usize];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.zone");
        std::fs::write(&p, &big).unwrap();
        let e = read_input(&p).unwrap_err().to_string();
        assert!(e.ends_with("larger than 64 MiB: not a root zone"), "{e}");
        // A gzip bomb: 64 MiB + 1 of spaces in about 64 KiB.
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&big).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 1 << 20);
        let e = gunzip_if_needed("bomb.gz", gz).unwrap_err().to_string();
        assert!(e.ends_with("larger than 64 MiB: not a root zone"), "{e}");
    }
}
