//! Chain resolution: up to four files cut from the input (the newest descriptor, its parent,
//! the base descriptor and an extent) are written to a scratch directory and opened as a
//! chain, as a delta or (for a third of the inputs) whole with `full`; any input gives Ok or
//! a clean error, and an accepted chain lists its runs in order (a whole one without gaps,
//! from 0 to its capacity).
//! Every file an accepted chain was read from (and a hard link to one) is refused as its
//! destination, and left as it was.
#![no_main]
use ironshed_core::error::{Kind, Report};
use ironshed_core::vmdk::{ApplyOptions, Delta, OpenOptions};
use ironshed_core::Progress;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

static DIR: OnceLock<PathBuf> = OnceLock::new();
const NAMES: [&str; 4] = [
    "vm-000002.vmdk",
    "vm-000001.vmdk",
    "vm.vmdk",
    "vm-000002-delta.vmdk",
];

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        // tmpfs when there is one: the target rewrites its files on every run.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("ironshed-fuzz-chain-{}", std::process::id()));

        let _ = std::fs::create_dir_all(&d);
        d
    });
    let mut parts = data.split(|&b| b == 0xff);
    for name in NAMES {
        let part = parts.next().unwrap_or(&[]);
        if std::fs::write(dir.join(name), part).is_err() {
            return;
        }
    }
    let opts = OpenOptions {
        no_parent_check: data.len() % 2 == 0,
        full: data.len() % 3 == 0,
        ..Default::default()
    };
    if let Ok(d) = Delta::open(&dir.join(NAMES[0]), &opts) {
        let mut end = 0u64;
        let listed = d.for_each_run(|r| {
            assert!(r.virt >= end && r.end() <= d.capacity);
            assert!(!d.full || r.virt == end, "gap before {r:?}");
            end = r.end();
            Ok(())
        });
        if d.full && listed.is_ok() {
            assert_eq!(end, d.capacity, "the runs of a whole disk end early");
        }
        let _ = d.extents();
        let mut read: Vec<PathBuf> = d
            .layers()
            .into_iter()
            .flat_map(|l| std::iter::once(l.path).chain(l.extents))
            .collect();
        if let Some(b) = d.base.verified() {
            read.push(b.to_path_buf());
        }
        let link = dir.join("hard-link");
        let _ = std::fs::remove_file(&link);
        if read.first().is_some_and(|f| std::fs::hard_link(f, &link).is_ok()) {
            read.push(link);
        }
        let opts = ApplyOptions {
            allow_larger_destination: true,
            ..Default::default()
        };
        for p in &read {
            let before = std::fs::read(p).ok();
            let progress = Progress::new();
            let r = d.apply(p, &opts, &progress);
            assert!(
                r.as_ref().is_err_and(|e| e.kind() == Kind::Destination),
                "{p:?} accepted as the destination: {r:?}"
            );
            assert!(!progress.written());
            assert_eq!(std::fs::read(p).ok(), before, "{p:?} was written");
        }
    }
});
