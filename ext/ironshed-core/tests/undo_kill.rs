//! An apply with an undo journal, killed with SIGKILL at dozens of points and run again (as a
//! user reruns the same command), any number of times: the last run finishes the apply, a run
//! after it writes nothing, and restoring the journal gives back the destination as it was
//! before the FIRST run, byte for byte. On files and on loop devices, for vmdksync's undo
//! files (a chain of deltas) and lvmsync's snapback files (a stream from a file and from a
//! pipe).
//!
//! The kill points are made with `strace -e inject=SYSCALL:signal=KILL:when=N`: the child
//! (this test binary) is killed when it enters the Nth call of SYSCALL (write, pwrite64,
//! pwritev, copy_file_range, fdatasync, fsync, rename, ftruncate), before the call runs; every
//! fdatasync, rename and fsync of a run is one, and the writes are spread over the run,
//! so every step of the journal's protocol (created, record appended, synced, commit
//! appended, synced, destination overwritten, cut back at a resume, END written) is a kill
//! point. The child is this test binary, running the same test with the child's arguments in
//! an environment variable.

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

const SYSCALLS: [&str; 8] = [
    "write",
    "pwrite64",
    "pwritev",
    "copy_file_range",
    "fdatasync",
    "fsync",
    "rename",
    "ftruncate",
];
const MIB: u64 = 1 << 20;
/// The test, and the variable that makes it the child (its arguments, one a line).
const TEST: &str = "sigkill_at_dozens_of_points_then_rerun_restores_the_first_state";
const CHILD: &str = "IRONSHED_UNDO_KILL_CHILD";

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
    println!("undo: {}", state.unwrap_or("none"));
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
    /// Runs the child, killed at the `n`th call of `sys` if it gets that far; with `log`,
    /// writes strace's trace of [`SYSCALLS`] there instead.
    fn run(&self, kill: Option<(&str, u64)>, log: Option<&Path>) -> End {
        let me = std::env::current_exe().unwrap();
        let mut cmd = match (kill, log) {
            (Some((sys, n)), _) => {
                let mut c = Command::new("strace");
                c.args(["-f", "-qq", "-o", "/dev/null", "-e"])
                    .arg(format!("trace={sys}"))
                    .arg("-e")
                    .arg(format!("inject={sys}:signal=KILL:when={n}"))
                    .arg(&me);
                c
            }
            (None, Some(log)) => {
                let mut c = Command::new("strace");
                c.args(["-f", "-qq", "-o"])
                    .arg(log)
                    .arg("-e")
                    .arg(format!("trace={}", SYSCALLS.join(",")))
                    .arg(&me);
                c
            }
            (None, None) => Command::new(&me),
        };
        cmd.args([
            "--exact",
            TEST,
            "--nocapture",
            "--quiet",
            "--test-threads=1",
        ])
        .env(CHILD, self.args.join("\n"));
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
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            let state = ["created", "resumed", "complete"]
                .into_iter()
                .find(|s| text.lines().any(|l| l == format!("undo: {s}")))
                .unwrap_or_else(|| panic!("{}: child said {text:?}", self.name));
            return End::Done(state);
        }
        // strace dies of the signal its tracee died of (or exits 128 + 9).
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

    /// How many times a whole run calls each of [`SYSCALLS`].
    fn calls(&self, dir: &Path) -> Vec<(&'static str, u64)> {
        self.reset();
        let log = dir.join("trace");
        assert_eq!(
            self.run(None, Some(&log)),
            End::Done("created"),
            "{}",
            self.name
        );
        let trace = fs::read_to_string(&log).unwrap();
        self.reset();
        SYSCALLS
            .iter()
            .map(|&sys| {
                let call = format!(" {sys}(");
                let n = trace
                    .lines()
                    .filter(|l| l.contains(&call) && !l.contains("resumed>"))
                    .count() as u64;
                (sys, n)
            })
            .collect()
    }

    /// Kills the first run at `first`, reruns killed at each of `then` (counted from the
    /// rerun's own start), then runs to the end: checks the result, the no-op rerun, and the
    /// restore.
    /// Returns the runs killed (the first run outlives a point past its last call: the test
    /// harness of the child writes a line or two of its own).
    fn check(&self, first: (&str, u64), then: &[(&str, u64)]) -> usize {
        let what = format!("{}: killed at {first:?} then {then:?}", self.name);
        self.reset();
        let mut ends = vec![self.run(Some(first), None)];
        for &k in then {
            ends.push(self.run(Some(k), None));
        }
        let last = self.run(None, None);
        assert!(
            matches!(last, End::Done(_)),
            "{what}: the last run ended {last:?}"
        );
        assert!(
            self.dest_bytes() == self.after,
            "{what}: the apply's result"
        );
        assert_eq!(
            self.run(None, None),
            End::Done("complete"),
            "{what}: the rerun"
        );
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
        ends.iter().filter(|e| **e == End::Killed).count()
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
    use ironshed_core::wire::{proto3, RecordHeader, HANDSHAKE};
    let recs: Vec<_> = recs
        .iter()
        .map(|(o, d)| {
            let h = RecordHeader {
                offset: *o,
                len: d.len() as u32,
            };
            (h.encode(), d.as_slice())
        })
        .collect();
    proto3::marked_stream(HANDSHAKE, &recs)
}

/// Kill points of a run that makes `calls`: every call of the syscalls it makes few of (the
/// syncs, the rename), and `spread` points over the writes and positioned writes.
fn points(calls: &[(&'static str, u64)], spread: u64) -> Vec<(&'static str, u64)> {
    let mut p = Vec::new();
    for &(sys, n) in calls {
        if n <= 8 {
            p.extend((1..=n).map(|k| (sys, k)));
        } else {
            let mut ks: Vec<u64> = [1, 2, n - 1, n].into();
            ks.extend((1..spread).map(|i| i * n / spread));
            ks.retain(|&k| k >= 1 && k <= n);
            ks.sort_unstable();
            ks.dedup();
            p.extend(ks.into_iter().map(|k| (sys, k)));
        }
    }
    p
}

#[test]
fn sigkill_at_dozens_of_points_then_rerun_restores_the_first_state() {
    if let Ok(args) = std::env::var(CHILD) {
        let args: Vec<String> = args.split('\n').map(String::from).collect();
        std::process::exit(child(&args));
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
        let calls = sc.calls(dir.path());
        let pts = points(&calls, if on_loop { 4 } else { 8 });
        assert!(
            pts.len() > 12,
            "{}: only {} kill points",
            sc.name,
            pts.len()
        );
        for (i, &k) in pts.iter().enumerate() {
            // Once alone; then followed by interruptions of the reruns too (each rerun counts
            // its calls afresh, and may finish first: it has less to do).
            let (s1, n1) = pts[(i * 7 + 3) % pts.len()];
            let (s2, n2) = pts[(i * 5 + 1) % pts.len()];
            let then: Vec<(&str, u64)> = match i % 3 {
                0 => vec![],
                // Killed again while cutting the journal back to its last commit.
                1 => vec![("ftruncate", 1), (s1, n1 / 2 + 1)],
                _ => vec![(s1, n1), ("fdatasync", 2), (s2, n2 / 3 + 1)],
            };
            total += sc.check(k, &then);
        }
        println!("{}: calls {calls:?}, {} kill points", sc.name, pts.len());
    }
    assert!(total > 150, "only {total} runs were killed");
    println!("undo_kill: {total} runs killed, every restore gave the state before the first run");
}
