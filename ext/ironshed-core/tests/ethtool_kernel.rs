//! The ethtool protocol against the running kernel, on a veth pair in a namespace of the
//! test's own (needs root, `ip` and `ethtool`): the nwords handshake, and the "count changed"
//! replies the statistics reader relies on, provoked by changing the channel count between
//! the calls. `ethtool` run in the same namespace is the oracle.

use ironshed_core::ethtool::codec::{self, sset, LinkSettingsReply};
use ironshed_core::ethtool::{IfName, Netns, Session, SettingsSource, Transport};
use std::process::Command;

struct Bed {
    ns: String,
}

impl Bed {
    fn new(tag: &str) -> Bed {
        let ns = format!("ishk-{}-{tag}", std::process::id());
        let bed = Bed { ns };
        bed.sh(&["ip", "netns", "add", &bed.ns]);
        bed.sh(&[
            "ip", "-n", &bed.ns, "link", "add", "kA", "type", "veth", "peer", "name", "kB",
        ]);
        bed.sh(&["ip", "-n", &bed.ns, "link", "set", "kA", "up"]);
        bed.sh(&["ip", "-n", &bed.ns, "link", "set", "kB", "up"]);
        bed
    }
    fn sh(&self, args: &[&str]) -> String {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("run command");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn ethtool(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.ns, "ethtool"];
        v.extend_from_slice(args);
        self.sh(&v)
    }
    fn session(&self) -> Session {
        Session::open(Some(Netns::name(&self.ns).unwrap())).unwrap()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn ka() -> IfName {
    IfName::new(b"kA").unwrap()
}

#[test]
fn nwords_handshake_on_the_real_kernel() {
    let bed = Bed::new("hs");
    let s = bed.session();
    let names = s.ethtool().link_mode_names(&ka()).unwrap();
    let want = names.len().div_ceil(32) as u32;

    // Step 1 by hand: 0 words in, rc 0, -N out.
    let mut b = codec::encode_link_settings_request(0);
    s.ethtool().transport().ethtool(&ka(), &mut b).unwrap();
    assert_eq!(
        codec::decode_link_settings(&b, 0).unwrap(),
        LinkSettingsReply::NeedWords(want)
    );
    // A wrong positive count gets the same answer, not an error.
    let mut b = codec::encode_link_settings_request(want as u8 + 1);
    s.ethtool().transport().ethtool(&ka(), &mut b).unwrap();
    assert_eq!(
        codec::decode_link_settings(&b, want as u8 + 1).unwrap(),
        LinkSettingsReply::NeedWords(want)
    );

    let ls = s.ethtool().link_settings(&ka()).unwrap();
    assert_eq!(
        ls.source,
        SettingsSource::LinkSettings { nwords: want as u8 }
    );
    let e = bed.ethtool(&["kA"]);
    assert!(e.contains(&format!("Speed: {}Mb/s", ls.speed)), "{e}");
    assert!(e.contains("Duplex: Full") && ls.duplex == 1, "{e}");
}

#[test]
fn stale_counts_get_an_empty_reply_and_stats_read_again() {
    let bed = Bed::new("cnt");
    let s = bed.session();
    let et = s.ethtool();
    let n = et.sset_count(&ka(), sset::STATS).unwrap().unwrap();

    bed.ethtool(&["-L", "kA", "rx", "2", "tx", "2"]);
    let now = et.sset_count(&ka(), sset::STATS).unwrap().unwrap();
    assert!(now > n, "more queues, more statistics ({n} -> {now})");

    // The old count: rc 0, count set to 0, nothing written.
    let mut b = codec::encode_gstrings_request(sset::STATS, n);
    et.transport().ethtool(&ka(), &mut b).unwrap();
    assert_eq!(codec::decode_gstrings(&b, sset::STATS, n).unwrap(), None);
    assert!(b[12..].iter().all(|&x| x == 0));
    let mut b = codec::encode_stats_request(n);
    et.transport().ethtool(&ka(), &mut b).unwrap();
    assert_eq!(codec::decode_stats(&b, n).unwrap(), None);

    // The reader gets the new set, as ethtool -S prints it.
    let stats = et.stats(&ka()).unwrap();
    let cli: Vec<String> = bed
        .ethtool(&["-S", "kA"])
        .lines()
        .skip(1)
        .map(|l| l.trim().split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        stats.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        cli
    );
    assert_eq!(stats.len() as u32, now);
}

#[test]
fn interface_names_are_looked_up_in_the_sockets_namespace() {
    let bed = Bed::new("ns");
    let e = Session::open(None)
        .unwrap()
        .ethtool()
        .link_up(&ka())
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
    assert!(bed.session().ethtool().link_up(&ka()).unwrap());
    // The namespace a caller names: its own shares one session per thread, another gets
    // a session of its own there.
    let mine = Session::in_netns(None).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &mine,
        &Session::in_netns(None).unwrap()
    ));
    let there = Session::in_netns(Netns::select(Some(&bed.ns), None, None).unwrap()).unwrap();
    assert!(there.ethtool().link_up(&ka()).unwrap());
    // The calling thread never left its namespace.
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap()
    );
}
