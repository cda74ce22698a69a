//! The query logic (nwords handshake, GSET fallback, string-set and statistics re-reads,
//! link-mode naming) against a "kernel" whose every reply comes from the fuzzer: each ioctl
//! takes the next chunk of input as the bytes written back (or an errno). Nothing may panic,
//! loop forever or index outside a reply.
#![no_main]
use ironshed_core::ethtool::{Ethtool, IfName, Transport};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::io;

struct FuzzKernel<'a> {
    data: &'a [u8],
    pos: Cell<usize>,
    calls: Cell<usize>,
}

impl Transport for FuzzKernel<'_> {
    fn ethtool(&self, _ifname: &IfName, buf: &mut [u8]) -> io::Result<()> {
        self.calls.set(self.calls.get() + 1);
        assert!(self.calls.get() < 1000, "query logic does not terminate");
        let p = self.pos.get();
        let Some(&ctl) = self.data.get(p) else {
            return Err(io::Error::from_raw_os_error(95));
        };
        let len = *self.data.get(p + 1).unwrap_or(&0) as usize * 4;
        let body = &self.data[(p + 2).min(self.data.len())..];
        let take = len.min(body.len()).min(buf.len());
        self.pos.set(p + 2 + take);
        match ctl % 8 {
            0 => Err(io::Error::from_raw_os_error(95)),
            1 => Err(io::Error::from_raw_os_error(1)),
            _ => {
                // Keep the command number (the kernel echoes it) and overwrite after it.
                let start = 4.min(buf.len());
                let n = take.min(buf.len() - start);
                buf[start..start + n].copy_from_slice(&body[..n]);
                Ok(())
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let k = FuzzKernel {
        data,
        pos: Cell::new(0),
        calls: Cell::new(0),
    };
    let et = Ethtool::new(k);
    let ifn = IfName::new(b"fz0").unwrap();
    if let Ok(s) = et.link_settings(&ifn) {
        let _ = et.describe_modes(&ifn, &[&s.supported, &s.advertising, &s.lp_advertising]);
    }
    let _ = et.stats(&ifn);
    let _ = et.strings(&ifn, 9);
    let _ = et.drvinfo(&ifn);
    let _ = et.perm_addr(&ifn);
    let _ = et.link_up(&ifn);
});
