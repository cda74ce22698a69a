//! An apply with an undo journal, killed with SIGKILL at dozens of points and run again (as a
//! user reruns the same command), any number of times: the last run finishes the apply, a run
//! after it writes nothing, and restoring the journal gives back the destination as it was
//! before the FIRST run, byte for byte. On files and on loop devices, for vmdksync's undo
//! files (a chain of deltas) and lvmsync's snapback files (a stream from a file and from a
//! pipe).
//!
//! The kill points are made with `strace -e inject=...:signal=KILL:when=N`: the child (this
//! binary with `--child`) is killed when it enters the Nth write, positioned write,
//! fdatasync, ftruncate or rename, before the call runs, so every step of the journal's
//! protocol (record appended, synced, commit appended, synced, destination overwritten,
//! journal cut back at a resume, END written) is a kill point. A run is not a harness test
//! (`harness = false`): the child is this same binary.

use ironshed_core::vmdk::{self, Delta, OpenOptions};
use ironshed_core::wire::{self, ApplyOptions, Input};
use ironshed_core::Progress;
use ironshed_testkit::chain::{write_chain, LayerFormat, LayerSpec};
use ironshed_testkit::cowd::Layout;
use ironshed_testkit::model::Model;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SYSCALLS: &str = "write,pwrite64,pwritev,pwritev2,fdatasync,fsync,ftruncate,rename";
const MIB: u64 = 1 << 20;

/// What one child run does, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Killed,
    /// Exit 0; the undo journal's state ("created", "resumed", "complete").
    Done(&'static str),
}

/// The child: applies, prints the journal's state, exits 0 (1 with the error on stderr).
fn child(args: &[String]) -> i32 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let state = match a[..] {
        ["vmdk", delta, dest, undo] => {
            let d = match Delta::open(Path::new(delta), &OpenOptions::default()) {
                Ok(d) => d,
                Err(e) => return fail(&e.to_string()),
            };
            let opts = vmdk::ApplyOptions {
                undo: Some(undo.into()),
                ..Default::default()
            };
            match d.apply(Path::new(dest), &opts, &Progress::new()) {
                Ok(st) => st.undo_state.map(|s| s.as_str()),
                Err(e) => return fail(&e.to_string()),
            }
        }
        ["stream", from, stream, dest, undo] => {
            let input = if from == "file" {
                Input::File(stream.into())
            } else {
                use std::os::fd::AsFd;
                let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
                Input::Fd(fs::File::from(fd), "-".into())
            };
            let opts = ApplyOptions {
                undo: Some(undo.into()),
                ..Default::default()
            };
            match wire::apply(input, Path::new(dest), &opts, &Progress::new()) {
                Ok(st) => st.undo.map(|u| u.state.as_str()),
                Err(e) => return fail(&e.to_string()),
            }
        }
        _ => return fail(&format!("bad child arguments {a:?}")),
    };
    println!("{}", state.unwrap_or("none"));
    0
}

fn fail(msg: &str) -> i32 {
    eprintln!("{msg}");
    1
}

/// A scenario: how to run the child, and what the destination holds before and after.
struct Scenario {
    name: String,
    args: Vec<String>,
    /// The stream to feed on standard input (the pipe case).
    stdin: Option<PathBuf>,
    dest: PathBuf,
    undo: PathBuf,
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Scenario {
    /// Runs the child, killed at the `kill`th syscall of [`SYSCALLS`] if it gets that far.
    fn run(&self, kill: Option<u64>) -> End {
        let me = std::env::current_exe().unwrap();
        let mut cmd = match kill {
            Some(n) => {
                let mut c = Command::new("strace");
                c.args(["-f", "-qq", "-o", "/dev/null", "-e"])
                    .arg(format!("trace={SYSCALLS}"))
                    .arg("-e")
                    .arg(format!("inject={SYSCALLS}:signal=KILL:when={n}"))
                    .arg(&me);
                c
            }
            None => Command::new(&me),
        };
        cmd.arg("--child").args(&self.args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut ch = cmd.spawn().expect("strace (bin/setup test installs it)");
        if let Some(p) = &self.stdin {
            let bytes = fs::read(p).unwrap();
            let mut w = ch.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = w.write_all(&bytes);
            });
        }
        let out = ch.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            let state = ["created", "resumed", "complete"]
                .into_iter()
                .find(|s| *s == text)
                .unwrap_or_else(|| panic!("{}: child said {text:?}", self.name));
            return End::Done(state);
        }
        // strace reports the tracee's death by SIGKILL as its own (status 137).
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(137)
                || std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9),
            "{}: the child failed instead of being killed ({:?}): {err}",
            self.name,
            out.status
        );
        End::Killed
    }

    fn dest_bytes(&self) -> Vec<u8> {
        let mut f = fs::File::open(&self.dest).unwrap();
        let mut v = vec![0u8; self.before.len()];
        std::io::Read::read_exact(&mut f, &mut v).unwrap();
        v
    }

    fn reset(&self) {
        fs::OpenOptions::new()
            .write(true)
            .open(&self.dest)
            .unwrap()
            .write_all(&self.before)
            .unwrap();
        let _ = fs::remove_file(&self.undo);
    }

    /// The syscalls of [`SYSCALLS`] a whole run makes (counted by killing ever later: the
    /// first point it outlives is past its end).
    fn calls(&self) -> u64 {
        self.reset();
        let (mut lo, mut hi) = (1u64, 4096u64);
        // Find an upper bound, then bisect for the first point the run completes before.
        while self.run(Some(hi)) == End::Killed {
            self.reset();
            hi *= 4;
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            self.reset();
            if self.run(Some(mid)) == End::Killed {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.reset();
        lo - 1
    }

    /// Kills the first run at `first`, reruns killed at each of `then` (counted from the
    /// rerun's own start), then runs to the end: checks the result, the no-op rerun, and the
    /// restore.
    fn check(&self, first: u64, then: &[u64]) {
        let what = format!("{}: killed at {first} then {then:?}", self.name);
        self.reset();
        let mut ends = vec![self.run(Some(first))];
        for &k in then {
            ends.push(self.run(Some(k)));
        }
        let last = self.run(None);
        assert!(
            matches!(last, End::Done(_)),
            "{what}: the last run ended {last:?}"
        );
        assert!(
            self.dest_bytes() == self.after,
            "{what}: the apply's result"
        );
        assert_eq!(self.run(None), End::Done("complete"), "{what}: the rerun");
        assert!(
            self.dest_bytes() == self.after,
            "{what}: the no-op rerun wrote"
        );
        // The journal restores the state before the first run.
        wire::apply(
            Input::File(self.undo.clone()),
            &self.dest,
            &ApplyOptions::default(),
            &Progress::new(),
        )
        .unwrap_or_else(|e| panic!("{what}: restore: {e}"));
        assert!(
            self.dest_bytes() == self.before,
            "{what}: restored (runs ended {ends:?} then {last:?})"
        );
    }
}

/// Where the files go: tmpfs when there is one (fdatasync costs nothing there; SIGKILL does
/// not lose what the kernel holds anyway).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

struct Loop(String);

impl Loop {
    fn new(file: &Path) -> Loop {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "loop device tests need root (bin/test runs as root)"
        );
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A chain of two deltas changing about 36 MiB of a 40 MiB disk: two undo batches.
fn vmdk_scenario(dir: &Path, on_loop: bool) -> (Scenario, Option<Loop>) {
    let mut m = Model::new(40 * MIB, 7);
    m.write(0, 20 * MIB).write(30 * MIB, 4 * MIB);
    m.next_layer();
    m.random_writes(60, 64 << 10, 3).write(10 * MIB, 16 * MIB);
    let layers = [
        LayerSpec {
            format: LayerFormat::Cowd { grain_size: 128 },
            layout: Layout::WriteOrder,
        },
        LayerSpec {
            format: LayerFormat::SeSparse,
            layout: Layout::Shuffled(5),
        },
    ];
    let files = write_chain(dir, "vm", &m, &layers).unwrap();
    let before = fs::read(&files.flat).unwrap();
    let mut after = vec![0u8; before.len()];
    m.disk_at(0, &mut after);
    let img = dir.join("dest.raw");
    fs::write(&img, &before).unwrap();
    let lp = on_loop.then(|| Loop::new(&img));
    let dest = lp.as_ref().map_or(img.clone(), |l| PathBuf::from(&l.0));
    let undo = dir.join("vm.undo");
    let args = vec![
        "vmdk".to_string(),
        files.newest().display().to_string(),
        dest.display().to_string(),
        undo.display().to_string(),
    ];
    let name = format!(
        "vmdksync onto a {}",
        if on_loop { "loop device" } else { "file" }
    );
    (
        Scenario {
            name,
            args,
            stdin: None,
            dest,
            undo,
            before,
            after,
        },
        lp,
    )
}

/// A marked stream of about 20 MiB in records of up to 1 MiB, some overlapping: three
/// snapback batches.
fn stream_scenario(dir: &Path, from: &str, on_loop: bool) -> (Scenario, Option<Loop>) {
    let size = 24 * MIB;
    let before: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let mut after = before.clone();
    let mut recs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut x = 12345u64;
    for i in 0..40u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (x >> 40) % MIB + 1;
        let off = (x >> 8) % (size - len);
        let data: Vec<u8> = (0..len).map(|j| (j as u8) ^ (i as u8) ^ 0x5a).collect();
        after[off as usize..(off + len) as usize].copy_from_slice(&data);
        recs.push((off, data));
    }
    // The stream as this project's sender writes it: BEGIN, records, END.
    let stream = dir.join("stream");
    fs::write(&stream, marked_stream(&recs)).unwrap();
    let img = dir.join("dest.img");
    fs::write(&img, &before).unwrap();
    let lp = on_loop.then(|| Loop::new(&img));
    let dest = lp.as_ref().map_or(img.clone(), |l| PathBuf::from(&l.0));
    let undo = dir.join("snapback");
    let args = vec![
        "stream".to_string(),
        from.to_string(),
        stream.display().to_string(),
        dest.display().to_string(),
        undo.display().to_string(),
    ];
    let name = format!(
        "lvmsync --apply {} onto a {}",
        if from == "file" { "FILE" } else { "- (a pipe)" },
        if on_loop { "loop device" } else { "file" }
    );
    (
        Scenario {
            name,
            args,
            stdin: (from != "file").then_some(stream),
            dest,
            undo,
            before,
            after,
        },
        lp,
    )
}

/// A marked stream of `recs`, in their order (records may overlap: later ones win).
fn marked_stream(recs: &[(u64, Vec<u8>)]) -> Vec<u8> {
    use ironshed_core::wire::{proto3::layout_digest, Control, RecordHeader, Summary, HANDSHAKE};
    let headers: Vec<[u8; 12]> = recs
        .iter()
        .map(|(o, d)| {
            RecordHeader {
                offset: *o,
                len: d.len() as u32,
            }
            .encode()
        })
        .collect();
    let bytes: u64 = recs.iter().map(|(_, d)| d.len() as u64).sum();
    let mut s = HANDSHAKE.to_vec();
    s.extend(
        Control::Begin(Summary {
            items: recs.len() as u64,
            data_bytes: bytes,
            digest: layout_digest(HANDSHAKE, headers.iter().copied()),
        })
        .encode(),
    );
    for ((_, d), h) in recs.iter().zip(&headers) {
        s.extend_from_slice(h);
        s.extend_from_slice(d);
    }
    let digest = xxhash_rust::xxh3::xxh3_64(&s);
    s.extend(
        Control::End(Summary {
            items: recs.len() as u64 + 1,
            data_bytes: bytes,
            digest,
        })
        .encode(),
    );
    s
}

/// Kill points spread over a run of `n` calls: the first few, then evenly, then the last.
fn points(n: u64, count: u64) -> Vec<u64> {
    let mut p: Vec<u64> = (1..=4).collect();
    p.extend((1..count).map(|i| i * n / count));
    p.extend([n - 1, n]);
    p.retain(|&k| k >= 1 && k <= n);
    p.sort_unstable();
    p.dedup();
    p
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        std::process::exit(child(&args[2..]));
    }
    // `cargo test NAME` runs this binary with NAME: run only when selected (or unfiltered).
    if let Some(filter) = args[1..].iter().find(|a| !a.starts_with('-')) {
        if !"undo_kill".contains(filter.as_str()) {
            return;
        }
    }
    let mut total = 0;
    for (kind, on_loop) in [
        ("vmdk", false),
        ("file", false),
        ("pipe", false),
        ("vmdk", true),
        ("file", true),
    ] {
        let dir = scratch();
        let (sc, _lp) = match kind {
            "vmdk" => vmdk_scenario(dir.path(), on_loop),
            from => stream_scenario(dir.path(), from, on_loop),
        };
        let n = sc.calls();
        assert!(n > 20, "{}: only {n} kill points", sc.name);
        let pts = points(n, if on_loop { 6 } else { 12 });
        for (i, &k) in pts.iter().enumerate() {
            // Once alone; then followed by more interruptions of the reruns, at points that
            // depend on the first (each rerun starts counting afresh).
            let then: Vec<u64> = match i % 3 {
                0 => vec![],
                1 => vec![k / 2 + 1],
                _ => vec![(k * 7) % n + 1, 3, n / 2],
            };
            sc.check(k, &then);
            total += 1 + then.len();
        }
        println!("{}: {} syscalls, {} kill points", sc.name, n, pts.len());
    }
    println!("undo_kill: {total} interruptions, every restore gave the state before the first run");
}
