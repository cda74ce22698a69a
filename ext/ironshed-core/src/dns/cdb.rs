//! data.cdb: written with the `cdb2` crate (djb's cdb_make layout, which tinydns reads), and
//! read back here by a small bounded lookup that never trusts a length in the file.

use std::fs::File;
use std::io;

/// Writes `records` (key, value), in order, as a CDB into `file` (positioned at its start)
/// and flushes it. The caller fsyncs.
pub fn write(file: &File, records: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
    let mut make = cdb2::CDBMake::new(file.try_clone()?)?;
    for (k, v) in records {
        make.add(k, v)?;
    }
    make.finish()
}

/// djb's CDB hash.
fn hash(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &c| {
        (h.wrapping_shl(5).wrapping_add(h)) ^ c as u32
    })
}

fn u32_at(b: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(pos..pos.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Every value stored under `key` in the CDB image `db`, in the order a CDB reader finds
/// them. `None` if the image is malformed where the lookup went.
pub fn lookup<'a>(db: &'a [u8], key: &[u8]) -> Option<Vec<&'a [u8]>> {
    let h = hash(key);
    let slot = (h & 0xff) as usize * 8;
    let tpos = u32_at(db, slot)? as usize;
    let tlen = u32_at(db, slot + 4)? as usize;
    let mut out = Vec::new();
    if tlen == 0 {
        return Some(out);
    }
    if tlen > db.len() / 8 {
        return None;
    }
    let start = (h >> 8) as usize % tlen;
    for i in 0..tlen {
        let e = tpos.checked_add(((start + i) % tlen) * 8)?;
        let (eh, epos) = (u32_at(db, e)?, u32_at(db, e + 4)? as usize);
        if epos == 0 {
            break;
        }
        if eh != h {
            continue;
        }
        let klen = u32_at(db, epos)? as usize;
        let dlen = u32_at(db, epos + 4)? as usize;
        let kstart = epos.checked_add(8)?;
        let dstart = kstart.checked_add(klen)?;
        let k = db.get(kstart..dstart)?;
        if k == key {
            out.push(db.get(dstart..dstart.checked_add(dlen)?)?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    #[test]
    fn write_then_lookup() {
        let mut f = tempfile::tempfile().unwrap();
        let recs: Vec<(Vec<u8>, Vec<u8>)> = (0..2000u32)
            .map(|i| {
                (
                    format!("k{}", i % 700).into_bytes(),
                    i.to_be_bytes().to_vec(),
                )
            })
            .collect();
        write(&f, &recs).unwrap();
        let mut db = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut db).unwrap();
        let vals = lookup(&db, b"k5").unwrap();
        let want: Vec<Vec<u8>> = [5u32, 705, 1405]
            .iter()
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(vals, want);
        assert!(lookup(&db, b"absent").unwrap().is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut db = vec![0xffu8; 4096];
        assert!(lookup(&db, b"\0").is_none() || lookup(&db, b"\0").is_some());
        db.truncate(10);
        assert!(lookup(&db, b"\0").is_none());
        assert!(lookup(&[], b"x").is_none());
    }
}
