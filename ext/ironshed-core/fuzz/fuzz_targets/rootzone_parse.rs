//! Zone files (text, or gzip of it) and trust anchors: any input gives a zone or a clean
//! error, never a panic; a zone converts to tinydns lines and CDB records whose wire names
//! are well-formed, and the CDB written from them can be looked up again.
#![no_main]
use ironshed_core::dns::{cdb, parse_zone, tinydns, TrustAnchor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TrustAnchor::parse("fuzz", data);
    let Ok(zone) = parse_zone("fuzz", data.to_vec()) else { return };
    assert!(zone.records().windows(2).all(|w| w[0] != w[1]), "duplicates removed");
    let _ = zone.delegations();
    let conv = tinydns::convert(&zone);
    let recs: Vec<(Vec<u8>, Vec<u8>)> = conv.lines.iter().map(|l| l.cdb_record()).collect();
    for l in &conv.lines {
        assert!(!l.text().contains('\n'));
    }
    if recs.len() < 2000 {
        let f = tempfile_in_memory();
        cdb::write(&f, &recs).expect("CDB written");
        let db = std::fs::read(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f))).unwrap();
        let (k, v) = &recs[0];
        assert!(cdb::lookup(&db, k).unwrap().contains(&&v[..]));
    }
});

/// An anonymous in-memory file (memfd), so that fuzzing writes nothing to disk.
fn tempfile_in_memory() -> std::fs::File {
    use std::os::fd::FromRawFd;
    let fd = unsafe { libc::memfd_create(c"rootzone-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    unsafe { std::fs::File::from_raw_fd(fd) }
}
