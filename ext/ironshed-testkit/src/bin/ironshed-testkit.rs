//! `ironshed-testkit`: writes fixture disks for ironshed's specs, benchmarks and demo.
//!
//! ```text
//! ironshed-testkit cowd --dir DIR [--name vm] --capacity SIZE [--grain-size SECTORS]
//!     [--layout sequential|reverse|shuffled|interleaved] [--seed N]
//!     [--write OFFSET:LENGTH]... [--random-writes COUNT:LENGTH] [--unclean N]
//!     [--cid HEX] [--parent-cid HEX]
//! ```
//! writes DIR/NAME-flat.vmdk (raw base), DIR/NAME.vmdk (its vmfs descriptor),
//! DIR/NAME-000001.vmdk (vmfsSparse descriptor) and DIR/NAME-000001-delta.vmdk (COWD), and
//! prints the delta's layout as JSON on stdout.
//!
//! ```text
//! ironshed-testkit chain --dir DIR [--name vm] --capacity SIZE [--seed N]
//!     [--compressible | --mixed]
//!     (--layer FORMAT[,grain=SECTORS][,layout=L][,extent=SIZE]
//!      [--write O:L]... [--zero O:L]... [--unmap O:L]... [--random-writes COUNT:LEN])...
//! ```
//! writes a base and one delta per --layer (oldest first) in any format (cowd, sparse,
//! sparse-zeroed, stream, stream-footer, twogb, sesparse), and prints the files as JSON.
//!
//! ```text
//! ironshed-testkit frames [--netns NAME|PATH] --dev IF [--count N] [--size BYTES]
//!     [--ethertype HEX] [--dst MAC]
//! ```
//! sends raw Ethernet frames on IF (inside the namespace) and prints
//! `{"frames":N,"bytes":B}`.

//!
//! ```text
//! ironshed-testkit cow --dir DIR --origin-size SIZE --chunk-size SIZE --cow-size SIZE
//!     [--seed N] [--write OFFSET:LENGTH]... [--random-writes COUNT:LENGTH]
//!     [--stride-writes COUNT:LENGTH:STEP] [--order first-write|reverse|shuffled] [--magic HEX] [--version N] [--valid N]
//!     [--duplicates N] [--no-data] [--no-images]
//! ```
//! writes DIR/cow.img (a dm-snapshot exception store recording the writes), DIR/before.img
//! (the origin when the snapshot was taken) and DIR/origin.img (the origin now), and prints
//! the store's layout as JSON on stdout.
//!
//! ```text
//! ironshed-testkit rootzone [--tlds N] [--serial N] [--seed N]
//! ```
//! prints an unsigned root-like zone (N TLDs besides com and net, default 1500) on stdout. `--no-data` leaves the store's data chunks sparse,
//! `--no-images` writes only the store.

use ironshed_testkit::{cow, cowd, descriptor, frames, model::Model, rootzone};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::exit;

fn die(msg: &str) -> ! {
    eprintln!("ironshed-testkit: {msg}");
    exit(2)
}

fn size(s: &str) -> u64 {
    let (num, mult) = match s.chars().last() {
        Some('K') | Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = if let Some(h) = num.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else {
        num.parse::<u64>().ok()
    };
    n.map(|n| n * mult)
        .unwrap_or_else(|| die(&format!("bad size '{s}'")))
}

fn pair(s: &str) -> (u64, u64) {
    let (a, b) = s
        .split_once(':')
        .unwrap_or_else(|| die(&format!("expected A:B, got '{s}'")));
    (size(a), size(b))
}

fn write_raw(path: &PathBuf, model: &Model, written: bool) {
    let f = File::create(path).unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0;
    while off < model.capacity {
        let n = (model.capacity - off).min(buf.len() as u64) as usize;
        if written {
            model.disk_at(off, &mut buf[..n]);
        } else {
            model.base_at(off, &mut buf[..n]);
        }
        f.write_all_at(&buf[..n], off)
            .unwrap_or_else(|e| die(&e.to_string()));
        off += n as u64;
    }
}

fn cowd_cmd(args: &[String]) {
    let mut dir: Option<PathBuf> = None;
    let mut name = "vm".to_string();
    let mut capacity = 0u64;
    let mut grain = 1u32;
    let mut layout = "sequential".to_string();
    let mut seed = 1u64;
    let mut writes: Vec<(u64, u64)> = Vec::new();
    let mut random: Option<(u64, u64)> = None;
    let mut unclean = 0u32;
    let mut cid = 0x5a17b9aeu32;
    let mut parent_cid: Option<u32> = None;
    let mut expected: Option<PathBuf> = None;
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i)
            .cloned()
            .unwrap_or_else(|| die("option needs a value"))
    };
    let hex = |s: String| u32::from_str_radix(&s, 16).unwrap_or_else(|_| die("bad hex"));
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => dir = Some(PathBuf::from(val(&mut i))),
            "--name" => name = val(&mut i),
            "--capacity" => capacity = size(&val(&mut i)),
            "--grain-size" => grain = size(&val(&mut i)) as u32,
            "--layout" => layout = val(&mut i),
            "--seed" => seed = size(&val(&mut i)),
            "--write" => writes.push(pair(&val(&mut i))),
            "--random-writes" => random = Some(pair(&val(&mut i))),
            "--unclean" => unclean = size(&val(&mut i)) as u32,
            "--cid" => cid = hex(val(&mut i)),
            "--parent-cid" => parent_cid = Some(hex(val(&mut i))),
            "--expected" => expected = Some(PathBuf::from(val(&mut i))),
            other => die(&format!("unknown option {other}")),
        }
        i += 1;
    }
    let dir = dir.unwrap_or_else(|| die("--dir is required"));
    if capacity == 0 || !capacity.is_multiple_of(512) {
        die("--capacity must be a non-zero multiple of 512");
    }
    let layout = cowd::Layout::parse(&layout, seed).unwrap_or_else(|| die("bad --layout"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&e.to_string()));
    let mut model = Model::new(capacity, seed);
    for (o, l) in writes {
        model.write(o, l);
    }
    if let Some((count, len)) = random {
        model.random_writes(count, len, seed ^ 0xabcdef);
    }
    let sectors = capacity / 512;
    let flat = dir.join(format!("{name}-flat.vmdk"));
    write_raw(&flat, &model, false);
    if let Some(e) = &expected {
        write_raw(e, &model, true);
    }
    let base_desc = descriptor::vmfs_base(cid, sectors, &format!("{name}-flat.vmdk"));
    std::fs::write(dir.join(format!("{name}.vmdk")), base_desc)
        .unwrap_or_else(|e| die(&e.to_string()));
    let delta_name = format!("{name}-000001-delta.vmdk");
    let child = descriptor::vmfs_sparse(
        0x1234abcd,
        parent_cid.unwrap_or(cid),
        sectors,
        &delta_name,
        &format!("{name}.vmdk"),
    );
    std::fs::write(dir.join(format!("{name}-000001.vmdk")), child)
        .unwrap_or_else(|e| die(&e.to_string()));
    let spec = cowd::CowdSpec {
        capacity_sectors: sectors as u32,
        grain_size: grain,
        layout,
        unclean,
    };
    let lay =
        cowd::write(&dir.join(&delta_name), &spec, &model).unwrap_or_else(|e| die(&e.to_string()));
    let mut out = String::new();
    out.push_str(&format!(
        "{{\"capacity\":{capacity},\"grain_size\":{grain},\"gd_sector\":{},\"gd_entries\":{},\"end_sector\":{},\"grain_count\":{},\"tables\":{{",
        lay.gd_sector,
        lay.gd_entries,
        lay.end_sector,
        lay.grains.len()
    ));
    out.push_str(
        &lay.tables
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("},\"grains\":{");
    if lay.grains.len() <= 100_000 {
        out.push_str(
            &lay.grains
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    out.push_str("}}\n");
    std::io::stdout()
        .write_all(out.as_bytes())
        .unwrap_or_else(|e| die(&e.to_string()));
}

/// `chain --dir DIR [--name vm] --capacity SIZE [--seed N]
///        (--layer FORMAT[,grain=SECTORS][,layout=L][,extent=SIZE] [--write O:L] [--zero O:L]
///         [--unmap O:L] [--random-writes COUNT:LEN])...`
/// FORMAT: cowd, sparse, sparse-zeroed, stream, stream-footer, twogb, sesparse.
fn chain_cmd(args: &[String]) {
    use ironshed_testkit::chain::{write_chain, LayerFormat, LayerSpec};
    let mut dir: Option<PathBuf> = None;
    let mut name = "vm".to_string();
    let mut capacity = 0u64;
    let mut seed = 1u64;
    let mut layers: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut compressible = false;
    let mut mixed = false;
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i)
            .cloned()
            .unwrap_or_else(|| die("option needs a value"))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => dir = Some(PathBuf::from(val(&mut i))),
            "--name" => name = val(&mut i),
            "--capacity" => capacity = size(&val(&mut i)),
            "--seed" => seed = size(&val(&mut i)),
            "--compressible" => compressible = true,
            "--mixed" => mixed = true,
            "--layer" => layers.push((val(&mut i), Vec::new())),
            op @ ("--write" | "--zero" | "--unmap" | "--random-writes") => {
                let v = val(&mut i);
                layers
                    .last_mut()
                    .unwrap_or_else(|| die("--write etc. come after a --layer"))
                    .1
                    .push((op.to_string(), v));
            }
            other => die(&format!("unknown option {other}")),
        }
        i += 1;
    }
    let dir = dir.unwrap_or_else(|| die("--dir is required"));
    if capacity == 0 || !capacity.is_multiple_of(512) || layers.is_empty() {
        die("need --capacity (multiple of 512) and at least one --layer");
    }
    let mut model = Model::new(capacity, seed);
    model.compressible = compressible;
    model.mixed = mixed;
    let mut specs = Vec::new();

    for (k, (fmt, ops)) in layers.iter().enumerate() {
        if k > 0 {
            model.next_layer();
        }
        let mut parts = fmt.split(',');
        let kind = parts.next().unwrap_or("");
        let (mut grain, mut layout, mut extent) = (None, "sequential".to_string(), 2u64 << 30);
        for p in parts {
            match p.split_once('=') {
                Some(("grain", g)) => grain = Some(size(g)),
                Some(("layout", l)) => layout = l.to_string(),
                Some(("extent", e)) => extent = size(e),
                _ => die(&format!("bad layer option '{p}'")),
            }
        }
        let format = match kind {
            "cowd" => LayerFormat::Cowd {
                grain_size: grain.unwrap_or(1) as u32,
            },
            "sparse" => LayerFormat::Sparse {
                grain_size: grain.unwrap_or(128),
                zeroed: false,
                redundant: true,
            },
            "sparse-zeroed" => LayerFormat::Sparse {
                grain_size: grain.unwrap_or(128),
                zeroed: true,
                redundant: true,
            },
            "stream" => LayerFormat::Stream {
                grain_size: grain.unwrap_or(128),
                footer: false,
                zeroed: false,
            },
            "stream-footer" => LayerFormat::Stream {
                grain_size: grain.unwrap_or(128),
                footer: true,
                zeroed: true,
            },
            "twogb" => LayerFormat::TwoGb {
                grain_size: grain.unwrap_or(128),
                extent_bytes: extent,
            },
            "sesparse" => LayerFormat::SeSparse,
            other => die(&format!("unknown layer format '{other}'")),
        };
        let layout =
            cowd::Layout::parse(&layout, seed + k as u64).unwrap_or_else(|| die("bad layout"));
        specs.push(LayerSpec { format, layout });
        for (op, v) in ops {
            let (a, b) = pair(v);
            match op.as_str() {
                "--write" => {
                    model.write(a, b);
                }
                "--zero" => {
                    model.zero(a, b);
                }
                "--unmap" => {
                    model.unmap(a, b);
                }
                _ => {
                    model.random_writes(a, b, seed ^ ((k as u64 + 1) * 0x9e37));
                }
            }
        }
    }
    let files = write_chain(&dir, &name, &model, &specs).unwrap_or_else(|e| die(&e.to_string()));
    let layers_json: Vec<String> = files
        .layers
        .iter()
        .zip(&files.extents)
        .zip(&files.cids)
        .map(|((l, x), cid)| {
            let xs: Vec<String> = x.iter().map(|p| format!("\"{}\"", p.display())).collect();
            format!(
                "{{\"descriptor\":\"{}\",\"extents\":[{}],\"cid\":{cid}}}",
                l.display(),
                xs.join(",")
            )
        })
        .collect();
    println!(
        "{{\"flat\":\"{}\",\"base\":\"{}\",\"layers\":[{}]}}",
        files.flat.display(),
        files.base.display(),
        layers_json.join(",")
    );
}

fn frames_cmd(args: &[String]) {
    let mut netns: Option<PathBuf> = None;
    let mut spec = frames::FrameSpec {
        dev: String::new(),
        count: 1,
        size: 100,
        ethertype: 0x0800,
        dst: [0xff; 6],
    };
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i)
            .cloned()
            .unwrap_or_else(|| die("option needs a value"))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--netns" => {
                let v = val(&mut i);
                netns = Some(if v.contains('/') {
                    PathBuf::from(v)
                } else {
                    PathBuf::from("/var/run/netns").join(v)
                });
            }
            "--dev" => spec.dev = val(&mut i),
            "--count" => spec.count = size(&val(&mut i)),
            "--size" => spec.size = size(&val(&mut i)) as usize,
            "--ethertype" => {
                let v = val(&mut i);
                spec.ethertype = u16::from_str_radix(v.trim_start_matches("0x"), 16)
                    .unwrap_or_else(|_| die("bad --ethertype"))
            }
            "--dst" => {
                let v = val(&mut i);
                let b: Vec<u8> = v
                    .split(':')
                    .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| die("bad --dst")))
                    .collect();
                spec.dst = b.try_into().unwrap_or_else(|_| die("bad --dst"));
            }
            other => die(&format!("unknown option {other}")),
        }
        i += 1;
    }
    if spec.dev.is_empty() {
        die("--dev is required");
    }
    if let Some(ns) = &netns {
        frames::enter_netns(ns).unwrap_or_else(|e| die(&format!("{}: {e}", ns.display())));
    }
    let bytes = frames::send(&spec).unwrap_or_else(|e| die(&format!("{}: {e}", spec.dev)));
    println!("{{\"frames\":{},\"bytes\":{bytes}}}", spec.count);
}

fn cow_cmd(args: &[String]) {
    let mut dir: Option<PathBuf> = None;
    let mut origin_size = 0u64;
    let mut chunk = 4096u64;
    let mut cow_size = 0u64;
    let mut seed = 1u64;
    let mut writes: Vec<(u64, u64)> = Vec::new();
    let mut random: Option<(u64, u64)> = None;
    let mut stride: Option<(u64, u64, u64)> = None;
    let mut order = "first-write".to_string();
    let mut magic = cow::MAGIC;
    let mut version = 1u32;
    let mut valid: Option<u32> = None;
    let mut duplicates = 0u64;
    let mut write_data = true;
    let mut images = true;
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i)
            .cloned()
            .unwrap_or_else(|| die("option needs a value"))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => dir = Some(PathBuf::from(val(&mut i))),
            "--origin-size" => origin_size = size(&val(&mut i)),
            "--chunk-size" => chunk = size(&val(&mut i)),
            "--cow-size" => cow_size = size(&val(&mut i)),
            "--seed" => seed = size(&val(&mut i)),
            "--write" => writes.push(pair(&val(&mut i))),
            "--random-writes" => random = Some(pair(&val(&mut i))),
            "--stride-writes" => {
                let v = val(&mut i);
                let p: Vec<u64> = v.split(':').map(size).collect();
                if p.len() != 3 || p[2] == 0 {
                    die("--stride-writes takes COUNT:LENGTH:STEP");
                }
                stride = Some((p[0], p[1], p[2]));
            }
            "--order" => order = val(&mut i),
            "--magic" => {
                magic = u32::from_str_radix(&val(&mut i), 16).unwrap_or_else(|_| die("bad hex"))
            }
            "--version" => version = size(&val(&mut i)) as u32,
            "--valid" => valid = Some(size(&val(&mut i)) as u32),
            "--duplicates" => duplicates = size(&val(&mut i)),
            "--no-data" => write_data = false,
            "--no-images" => images = false,
            other => die(&format!("unknown option {other}")),
        }
        i += 1;
    }
    let dir = dir.unwrap_or_else(|| die("--dir is required"));
    if origin_size == 0 || !origin_size.is_multiple_of(512) {
        die("--origin-size must be a non-zero multiple of 512");
    }
    if chunk < 512 || !chunk.is_power_of_two() {
        die("--chunk-size must be a power of two of at least 512");
    }
    if cow_size < 2 * chunk {
        die("--cow-size must hold at least 2 chunks");
    }
    let order = cow::Order::parse(&order, seed).unwrap_or_else(|| die("bad --order"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&e.to_string()));
    let mut model = Model::new(origin_size, seed);
    for (o, l) in writes {
        model.write(o, l);
    }
    if let Some((count, len)) = random {
        model.random_writes(count, len, seed ^ 0xc0ffee);
    }
    if let Some((count, len, step)) = stride {
        for k in 0..count {
            model.write(k * step, len);
        }
    }
    if images {
        write_raw(&dir.join("before.img"), &model, false);
        write_raw(&dir.join("origin.img"), &model, true);
    }
    let spec = cow::CowSpec {
        chunk_size: chunk,
        cow_size,
        order,
        magic,
        version,
        valid,
        write_data,
        duplicates,
    };
    let lay =
        cow::write(&dir.join("cow.img"), &spec, &model).unwrap_or_else(|e| die(&e.to_string()));
    let mut out = format!(
        "{{\"chunk_size\":{chunk},\"per_area\":{},\"valid\":{},\"overflowed\":{},\"exceptions\":{},\"areas\":[{}],\"records\":[",
        lay.per_area,
        lay.valid,
        lay.overflowed,
        lay.records.len(),
        lay.areas
            .iter()
            .map(|(a, u)| format!("[{a},{u}]"))
            .collect::<Vec<_>>()
            .join(",")
    );
    if lay.records.len() <= 100_000 {
        out.push_str(
            &lay.records
                .iter()
                .map(|(o, n)| format!("[{o},{n}]"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    out.push_str("]}\n");
    std::io::stdout()
        .write_all(out.as_bytes())
        .unwrap_or_else(|e| die(&e.to_string()));
}

fn rootzone_cmd(args: &[String]) {
    let mut spec = rootzone::RootZoneSpec {
        tlds: 1500,
        serial: 2024120600,
        seed: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        let num = |s: &String| {
            s.parse::<u64>()
                .unwrap_or_else(|_| die(&format!("bad number '{s}'")))
        };
        match a.as_str() {
            "--tlds" => spec.tlds = num(val()) as usize,
            "--serial" => spec.serial = num(val()) as u32,
            "--seed" => spec.seed = num(val()),
            other => die(&format!("rootzone: unknown option {other}")),
        }
    }
    std::io::stdout()
        .write_all(rootzone::unsigned_root_zone(&spec).as_bytes())
        .unwrap_or_else(|e| die(&format!("stdout: {e}")));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("cowd") => cowd_cmd(&args[1..]),
        Some("chain") => chain_cmd(&args[1..]),
        Some("frames") => frames_cmd(&args[1..]),
        Some("cow") => cow_cmd(&args[1..]),
        Some("rootzone") => rootzone_cmd(&args[1..]),
        _ => die("usage: ironshed-testkit cowd|chain|frames|cow|rootzone [options] (see the source header)"),
    }
}
