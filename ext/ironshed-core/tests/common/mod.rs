//! Shared helpers for the core's integration tests: fixture sets written by ironshed-testkit
//! and the qemu-img oracle.
#![allow(dead_code)]

use ironshed_testkit::{cowd, descriptor, model::Model};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BASE_CID: u32 = 0x5a17_b9ae;

/// An ESX-style file set: vm-flat.vmdk, vm.vmdk, vm-000001.vmdk, vm-000001-delta.vmdk.
pub struct EsxSet {
    pub dir: tempfile::TempDir,
    pub model: Model,
    pub layout: cowd::CowdLayout,
    pub grain_size: u32,
}

impl EsxSet {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn flat(&self) -> PathBuf {
        self.path("vm-flat.vmdk")
    }
    pub fn base(&self) -> PathBuf {
        self.path("vm.vmdk")
    }
    pub fn child(&self) -> PathBuf {
        self.path("vm-000001.vmdk")
    }
    pub fn extent(&self) -> PathBuf {
        self.path("vm-000001-delta.vmdk")
    }
    /// A fresh copy of the raw base under `name`.
    pub fn dest(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        fs::copy(self.flat(), &p).unwrap();
        p
    }
    /// The oracle: qemu-img's raw view of the child (base + delta).
    pub fn qemu_raw(&self) -> Vec<u8> {
        let out = self.path("qemu-expected.raw");
        qemu_convert(&self.child(), &out);
        fs::read(out).unwrap()
    }
}

pub fn write_raw(path: &Path, model: &Model) {
    let mut buf = vec![0u8; model.capacity as usize];
    model.base_at(0, &mut buf);
    fs::write(path, buf).unwrap();
}

/// Writes a complete ESX file set for `model` with the given grain size and layout.
pub fn esx_set(model: Model, grain_size: u32, layout: cowd::Layout) -> EsxSet {
    let dir = tempfile::tempdir().unwrap();
    let sectors = model.capacity / 512;
    write_raw(&dir.path().join("vm-flat.vmdk"), &model);
    fs::write(
        dir.path().join("vm.vmdk"),
        descriptor::vmfs_base(BASE_CID, sectors, "vm-flat.vmdk"),
    )
    .unwrap();
    fs::write(
        dir.path().join("vm-000001.vmdk"),
        descriptor::vmfs_sparse(
            0x1234_abcd,
            BASE_CID,
            sectors,
            "vm-000001-delta.vmdk",
            "vm.vmdk",
        ),
    )
    .unwrap();
    let spec = cowd::CowdSpec {
        capacity_sectors: sectors as u32,
        grain_size,
        layout,
        unclean: 0,
    };
    let layout = cowd::write(&dir.path().join("vm-000001-delta.vmdk"), &spec, &model).unwrap();
    EsxSet {
        dir,
        model,
        layout,
        grain_size,
    }
}

pub fn qemu_convert(src: &Path, out: &Path) {
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(src)
        .arg(out)
        .status()
        .expect("qemu-img is required (bin/setup installs qemu-utils)");
    assert!(st.success(), "qemu-img convert {} failed", src.display());
}

/// First differing byte, for readable assertion failures.
pub fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    if a.len() != b.len() {
        return Some(a.len().min(b.len()));
    }
    a.iter().zip(b).position(|(x, y)| x != y)
}

pub fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    if let Some(at) = first_diff(actual, expected) {
        panic!(
            "{what}: differs at byte {at} (lengths {} vs {})",
            actual.len(),
            expected.len()
        );
    }
}
