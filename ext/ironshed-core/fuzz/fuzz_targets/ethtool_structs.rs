//! ethtool reply decoders (link settings, legacy settings, driver info, string sets,
//! statistics, permanent address, fixed structures): any bytes give Ok or a clean error, and
//! what is accepted lies inside the buffer. Byte 0 picks the decoder, byte 1 the count that
//! was "asked for"; the rest is the kernel's reply.
#![no_main]
use ironshed_core::ethtool::codec::{self, cmd};
use ironshed_core::ethtool::{Channels, Coalesce, PauseParam, RingParam};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (sel, n, buf) = (data[0], data[1], &data[2..]);
    match sel % 10 {
        0 => {
            if let Ok(codec::LinkSettingsReply::Settings(s)) = codec::decode_link_settings(buf, n) {
                assert_eq!(s.supported.0.len(), n as usize);
                assert!(codec::LINK_SETTINGS_HEADER + 12 * n as usize <= buf.len());
                for mask in [&s.supported, &s.advertising, &s.lp_advertising] {
                    let names: Vec<String> = (0..200).map(|i| format!("{i}baseX/Full")).collect();
                    for m in mask.describe(Some(&names)) {
                        assert!(mask.contains(m.bit));
                    }
                }
            }
        }
        1 => {
            let _ = codec::decode_legacy(buf);
        }
        2 => {
            let _ = codec::decode_drvinfo(buf);
        }
        3 => {
            if let Ok(Some(v)) = codec::decode_gstrings(buf, 1, n as u32) {
                assert_eq!(v.len(), n as usize);
                assert!(v.iter().all(|s| s.len() <= 3 * codec::GSTRING_LEN));
            }
        }
        4 => {
            if let Ok(Some(v)) = codec::decode_stats(buf, n as u32) {
                assert_eq!(v.len(), n as usize);
            }
        }
        5 => {
            let asked = if buf.len() >= 8 {
                u64::from_ne_bytes(buf[..8].try_into().unwrap())
            } else {
                0
            };
            if let Ok(v) = codec::decode_sset_info(buf.get(8..).unwrap_or(&[]), asked) {
                assert!(v.iter().all(|(set, _)| asked & (1 << set) != 0));
            }
        }
        6 => {
            if let Ok(a) = codec::decode_perm_addr(buf) {
                assert!(a.len() <= codec::MAX_ADDR_LEN && 8 + a.len() <= buf.len());
            }
        }
        7 => {
            let _ = RingParam::decode(buf, cmd::GRINGPARAM);
            let _ = Channels::decode(buf, cmd::GCHANNELS);
        }
        8 => {
            let _ = PauseParam::decode(buf, cmd::GPAUSEPARAM);
            let _ = Coalesce::decode(buf, cmd::GCOALESCE);
        }
        _ => {
            // The transport's bound must hold for whatever header a caller builds.
            if let Some(need) = codec::required_len(buf) {
                assert!(need <= 12 + 32 * (codec::MAX_SET_COUNT as usize));
            }
        }
    }
});
