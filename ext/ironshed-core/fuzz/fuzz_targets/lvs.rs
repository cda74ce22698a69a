//! `lvs --noheadings -o vg_name,lv_name` output: any bytes give the two names or a clean
//! error, never a panic. The input is split into standard output and standard error at the
//! first NUL.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (out, err) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    for success in [true, false] {
        match ironshed_core::lvm::lvs::vg_lv("/dev/vg/lv", out, err, success) {
            Ok((vg, lv)) => {
                assert!(success);
                assert!(!vg.is_empty() && !lv.is_empty());
                assert!(!vg.contains([' ', '\t', '\n']));
            }
            Err(e) => assert!(e.to_string().starts_with("Failed to interrogate LVM about")),
        }
    }
});
