//! Flat extents: the raw bytes of a base disk (`vm-flat.vmdk`, named by `VMFS` or `FLAT`
//! extent lines of a `vmfs`, `monolithicFlat`, `twoGbMaxExtentFlat`... descriptor), read as
//! the oldest layer of a whole-disk chain ([`super::OpenOptions::full`]). Every byte is data:
//! one run per requested range.

use super::error::{Error, Result};
use super::run::{ExtentReader, Run, Src};
use crate::io::ReadAt;

/// `len` bytes of the disk stored from byte `offset` of the extent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flat {
    /// Byte offset of the extent's first byte in its file.
    pub offset: u64,
    /// Bytes of the disk the extent covers.
    pub len: u64,
}

impl Flat {
    /// The extent of `sectors` sectors at sector `offset` of a file of `file_size` bytes,
    /// refused when the file is too short to hold it (`name`, `line` for the message).
    pub fn new(
        sectors: u64,
        offset: u64,
        file_size: u64,
        name: &str,
        line: usize,
        descriptor: &str,
    ) -> Result<Flat> {
        let span = sectors
            .checked_mul(512)
            .and_then(|len| Some((offset.checked_mul(512)?, len)))
            .and_then(|(o, len)| Some((o, len, o.checked_add(len)?)));
        match span {
            Some((offset, len, end)) if end <= file_size => Ok(Flat { offset, len }),
            Some((offset, _, end)) => Err(Error::format(
                name,
                format!("line {line} of {descriptor} needs bytes {offset}..{end} of this flat extent, but it is only {file_size} bytes long"),
            )),
            None => Err(Error::format(
                descriptor,
                format!("line {line}: the extent's sectors and offset overflow"),
            )),
        }
    }
}

impl ExtentReader for Flat {
    fn next_data(&self, from: u64) -> Option<u64> {
        (from < self.len).then_some(from)
    }

    fn for_each_run(
        &self,
        _src: &dyn ReadAt,
        _name: &str,
        file: u32,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(Run) -> Result<()>,
    ) -> Result<()> {
        let end = end.min(self.len);
        if start >= end {
            return Ok(());
        }
        f(Run {
            virt: start,
            len: end - start,
            src: Src::Data {
                file,
                offset: self.offset + start,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_data_at_its_offset() {
        let x = Flat::new(8, 2, 5120, "f", 9, "d").unwrap();
        assert_eq!(
            x,
            Flat {
                offset: 1024,
                len: 4096
            }
        );
        assert_eq!(
            (x.next_data(0), x.next_data(4095), x.next_data(4096)),
            (Some(0), Some(4095), None)
        );
        let mut runs = Vec::new();
        x.for_each_run(&Vec::<u8>::new(), "f", 3, 100, 9000, &mut |r| {
            runs.push(r);
            Ok(())
        })
        .unwrap();
        let data = Src::Data {
            file: 3,
            offset: 1124,
        };
        assert_eq!(
            runs,
            [Run {
                virt: 100,
                len: 3996,
                src: data
            }]
        );
    }

    #[test]
    fn a_file_too_short_for_its_line_is_refused() {
        match Flat::new(8, 2, 5119, "vm-flat.vmdk", 9, "vm.vmdk") {
            Err(Error::Format { file, msg }) => {
                assert_eq!(file, "vm-flat.vmdk");
                assert_eq!(msg, "line 9 of vm.vmdk needs bytes 1024..5120 of this flat extent, but it is only 5119 bytes long");
            }
            other => panic!("{other:?}"),
        }
        match Flat::new(u64::MAX / 2, 0, 0, "f", 3, "d") {
            Err(Error::Format { file, msg }) => {
                assert_eq!(
                    (file.as_str(), msg.as_str()),
                    ("d", "line 3: the extent's sectors and offset overflow")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
