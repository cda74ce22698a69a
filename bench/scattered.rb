# frozen_string_literal: true

# Scattered changes, measured against the limit of their write pattern: a guest's random 4 KiB
# writes as a VMware delta (COWD with 512-byte grains, seSparse), and as the 4 KiB chunks of an
# LVM snapshot sent with lvmsync. The reference is bench/peers/pattern_limit.c: it pwrite()s
# exactly the ranges the tool writes (from `vmdksync --dry-run`, or from the lvmsync stream)
# and then fdatasync()s, reading nothing and checking nothing — the kernel's cost of that
# write pattern, which no tool writing the same bytes can beat. dd/cp of the same byte count
# (one sequential run) and qemu-img are shown next to it. Every row of a table is measured in
# the same run, interleaved run by run.
require "bench_helper"
require "json"
require "shellwords"
require_relative "../spec/support/lvm_env"

RUNS = Integer(ENV.fetch("BENCH_RUNS", "5"))
VMDKSYNC = [RbConfig.ruby, File.join(Bench::ROOT, "exe", "vmdksync"), "-q"].freeze
LVMSYNC = [RbConfig.ruby, File.join(Bench::ROOT, "exe", "lvmsync")].freeze
ORIGINAL = [RbConfig.ruby, File.join(Bench::ROOT, "bench", "peers", "original_vmdksync.rb")].freeze
LIMIT = Bench.pattern_limit
loads = [Bench.load]

def sh(*words) = words.map { |w| Shellwords.escape(w.to_s) }.join(" ")
def secs(t) = format("%.2f s", t)
def ratio(limit, t) = format("%.2f×", limit / t)

# The ranges `vmdksync --dry-run` lists, in a file for the pattern limit.
def dry_run_ranges(desc, dest, out)
  Bench.run!(*VMDKSYNC[0..1], "--dry-run", desc, dest).then { |txt| File.write(out, txt) }
  File.readlines(out).grep(/\A\d/).sum { |l| l.split[1].to_i }
end

# One VMware delta: vmdksync, the pattern limit, cp + sync of the same byte count, qemu-img
# (once: it rewrites the whole disk) and, for COWD, the original tool's approach.
def vmdk_case(dir, desc, extent, flat, original: false)
  dest = File.join(dir, "dest.raw")
  Bench.fresh_copy(flat, dest)
  ranges = File.join(dir, "ranges.txt")
  bytes = dry_run_ranges(desc, dest, ranges)
  count = File.readlines(ranges).grep(/\A\d/).size
  same = File.join(dir, "same-bytes.bin")
  Bench.run!("sh", "-c", "head -c #{bytes} \"$1\" > \"$2\"", "sh", extent, same)
  copy = File.join(dir, "copy.bin")
  cmds = { ours: [*VMDKSYNC, desc, dest], limit: [LIMIT, "write", ranges, dest],
           cp: ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", same, copy] }
  cmds[:original] = [*ORIGINAL, extent, dest] if original
  # Every run leaves the destination as vmdksync writes it (the limit writes other bytes
  # into the same ranges, the original the same bytes): its pages stay cached and clean.
  t = Bench.interleaved(RUNS, cmds, setup: { cp: -> { FileUtils.rm_f(copy) } })
  Bench.run!(*VMDKSYNC, desc, dest)
  qemu_out = File.join(dir, "qemu.raw")
  qemu, = Bench.measure("qemu-img", "convert", "-O", "raw", desc, qemu_out)
  Bench.run!("cmp", qemu_out, dest) # vmdksync's result is qemu-img's
  if original
    Bench.run!(*ORIGINAL, extent, dest)
    Bench.run!("cmp", qemu_out, dest) # and so is the original approach's
  end
  FileUtils.rm_f([qemu_out, copy, same])
  { bytes: bytes, ranges: count, t: t, qemu: qemu }
end

def vmdk_rows(r, what)
  lim = r[:t][:limit][0]
  ours = r[:t][:ours][0]
  rows = [["vmdksync #{what}", secs(ours), ratio(lim, ours), "#{r[:t][:ours][1] / 1024} MiB"],
          ["pattern limit: pwrite of the #{r[:ranges]} ranges + fdatasync", secs(lim), "1.00×", "—"]]
  if (o = r[:t][:original])
    rows << ["the original vmdksync's approach (Ruby loop, one read and one write per grain)", secs(o[0]),
             format("%s (vmdksync is %.1f× faster)", ratio(lim, o[0]), o[0] / ours), "#{o[1] / 1024} MiB"]
  end
  rows << ["cp + sync of #{format('%.0f', Bench.mib(r[:bytes]))} MiB (one sequential run)", secs(r[:t][:cp][0]),
           ratio(lim, r[:t][:cp][0]), "—"]
  rows << ["qemu-img convert -O raw (whole disk, once)", secs(r[:qemu]), ratio(lim, r[:qemu]), "—"]
  rows
end

work = Bench.workdir("scattered")

# --- COWD: 65536 random 4 KiB guest writes, every 512-byte grain stored shuffled ------------
cdir = File.join(work, "cowd")
Bench.run!(Bench::TESTKIT, "cowd", "--dir", cdir, "--capacity", "1G", "--grain-size", 1, "--layout", "shuffled",
           "--random-writes", "65536:4K", "--seed", 42)
cowd = vmdk_case(cdir, File.join(cdir, "vm-000001.vmdk"), File.join(cdir, "vm-000001-delta.vmdk"),
                 File.join(cdir, "vm-flat.vmdk"), original: true)
FileUtils.rm_rf(cdir)
loads << Bench.load

# --- seSparse: the same writes, 4 KiB grains stored shuffled -----------------------------------
sdir = File.join(work, "sesparse")
ch = JSON.parse(Bench.run!(Bench::TESTKIT, "chain", "--dir", sdir, "--capacity", "1G", "--seed", 42,
                           "--layer", "sesparse,layout=shuffled", "--random-writes", "65536:4K"))
ses = vmdk_case(sdir, ch["layers"][0]["descriptor"], ch["layers"][0]["extents"][0], ch["flat"])
FileUtils.rm_rf(sdir)
loads << Bench.load

# --- lvmsync: random 4 KiB chunks of a 2 GiB origin --------------------------------------------
ldir = File.join(work, "lvmsync")
FileUtils.mkdir_p(ldir)
origin = File.join(ldir, "origin.img")
dest = File.join(ldir, "dest.img")
Bench.run!("dd", "if=/dev/urandom", "of=#{origin}", "bs=1M", "count=2048", "status=none")
Bench.fresh_copy(origin, dest)
plain = ["env", "-u", "RUBYOPT", "-u", "BUNDLE_GEMFILE", "-u", "BUNDLE_BIN_PATH", "-u", "RUBYLIB"]
lvm_rows = []
[32_768, 65_536].each do |writes|
  sdir = File.join(ldir, "snap#{writes}")
  FileUtils.mkdir_p(sdir)
  layout = JSON.parse(Bench.run!(Bench::TESTKIT, "cow", "--dir", sdir, "--origin-size", "2G", "--chunk-size", "4K",
                                 "--cow-size", "300M", "--no-data", "--no-images", "--seed", writes,
                                 "--random-writes", "#{writes}:4K"))
  env = LvmEnv.build(sdir, vgs: { "vg-sync" => LvmEnv.classic_metadata },
                           lvs: { "/dev/vg-sync/src-snap" => %w[vg-sync src-snap] },
                           nodes: { "vg--sync-src--lv" => origin, "vg--sync-src--snap-cow" => File.join(sdir, "cow.img") })
  run_env = [*plain, "PATH=#{env['PATH']}", "DM_DEV_DIR=#{env['DM_DEV_DIR']}"]
  stream = File.join(sdir, "changes.lvmsync")
  Bench.run!(*run_env, "sh", "-c", "#{sh(*LVMSYNC, '-q', '--stdout', '/dev/vg-sync/src-snap')} > #{sh(stream)}")
  ranges = File.join(sdir, "ranges.txt")
  Bench.run!("sh", "-c", "#{sh(LIMIT, 'list', stream)} > #{sh(ranges)}")
  records = File.readlines(ranges).size
  bytes = File.readlines(ranges).sum { |l| l.split[1].to_i }
  mib = (bytes + (1 << 20) - 1) >> 20
  pipe = "#{sh(*LVMSYNC, '-q', '--stdout', '/dev/vg-sync/src-snap')} | #{sh(*LVMSYNC, '-q', '--apply', '-', dest)}"
  t = Bench.interleaved(RUNS, {
                          apply: [*run_env, *LVMSYNC, "-q", "--apply", stream, dest],
                          pipe: [*run_env, "sh", "-c", pipe],
                          limit: [LIMIT, "write", ranges, dest],
                          dd: ["dd", "if=#{stream}", "of=#{dest}", "bs=1M", "count=#{mib}", "conv=notrunc,fdatasync",
                               "status=none"],
                          dd_pipe: ["sh", "-c", "dd if=#{sh(origin)} bs=1M count=#{mib} status=none | " \
                                                "dd of=#{sh(dest)} bs=1M conv=notrunc,fdatasync status=none"]
                        })
  # The destination holds the origin's chunks again (the limit and dd wrote other bytes).
  Bench.run!(*run_env, *LVMSYNC, "-q", "--apply", stream, dest)
  File.open(origin, "rb") do |o|
    File.open(dest, "rb") do |d|
      layout["records"].first(20_000).each do |old, _|
        raise "chunk #{old} differs after the run" unless o.pread(4096, old * 4096) == d.pread(4096, old * 4096)
      end
    end
  end
  lim = t[:limit][0]
  what = "#{writes} random 4 KiB writes → #{records} records, #{format('%.0f', Bench.mib(bytes))} MiB"
  lvm_rows << [what, "`lvmsync --apply FILE DEST`", secs(t[:apply][0]), ratio(lim, t[:apply][0]), "#{t[:apply][1] / 1024} MiB"]
  lvm_rows << ["", "`lvmsync --stdout SNAP \\| lvmsync --apply - DEST`", secs(t[:pipe][0]), ratio(lim, t[:pipe][0]),
               "#{t[:pipe][1] / 1024} MiB"]
  lvm_rows << ["", "pattern limit: pwrite of the records' ranges + fdatasync", secs(lim), "1.00×", "—"]
  lvm_rows << ["", "dd of the stream file (#{mib} MiB, sequential)", secs(t[:dd][0]), ratio(lim, t[:dd][0]), "—"]
  lvm_rows << ["", "dd \\| dd of #{mib} MiB (sequential)", secs(t[:dd_pipe][0]), ratio(lim, t[:dd_pipe][0]), "—"]
  FileUtils.rm_rf(sdir)
  loads << Bench.load
end
FileUtils.rm_rf(work)

# The fixed start-up of every command above: the executable as shipped (without RubyGems), and
# with RubyGems loaded first, as the wrapper of an installed gem does.
quiet = ["env", "-u", "RUBYOPT", "-u", "BUNDLE_GEMFILE", "-u", "BUNDLE_BIN_PATH", "-u", "RUBYLIB"]
start = Bench.interleaved(9, { shipped: [*quiet, *VMDKSYNC[0..1], "--version"],
                               gems: [*quiet, VMDKSYNC[0], "-rrubygems", VMDKSYNC[1], "--version"] })
  .transform_values { |(wall, _)| format("%.3f s", wall) }

header = ["tool", "time", "ratio (limit time / its time)", "peak RSS"]
puts <<~MD
  ## Scattered changes against the limit of their write pattern

  Machine: #{Bench.machine}; load average #{loads.join(', then ')} during the run (a
  shared machine: compare the ratios, measured side by side, rather than absolute times).
  Reproduce: `bin/bench scattered` (median of #{RUNS} interleaved runs each; qemu-img once).

  The reference is the **pattern limit** (`bench/peers/pattern_limit.c`, built by the bench):
  a minimal C program that pwrite()s exactly the ranges the tool writes — the list
  `vmdksync --dry-run` prints, or the records of the lvmsync stream — in ascending order,
  adjacent ones merged, and then fdatasync()s: the kernel's cost of that write pattern, with
  no reading and no checking. "ratio" is the limit's time divided by the tool's (1.00× would
  be as fast as the limit). Every time is a whole command, Ruby start-up and all checks
  included; the page cache is warm for every tool. The executables start without RubyGems
  (`vmdksync --version`: #{start[:shipped]}); installed as a gem, they are run by RubyGems'
  wrapper, which loads it first (#{start[:gems]}, measured with `ruby -rrubygems`).

  ### vmdksync: a guest's random 4 KiB writes

  A 1 GiB disk after 65536 random 4 KiB guest writes (#{format('%.0f', Bench.mib(cowd[:bytes]))} MiB changed in
  #{cowd[:ranges]} ranges). **ESX COWD**, 512-byte grains (as ESX writes them), every grain stored in
  shuffled order, so each 4 KiB range gathers 8 grains from anywhere in the delta:

  #{Bench.table(header, vmdk_rows(cowd, '(apply + fdatasync)'))}
  **seSparse**, the same writes (#{ses[:ranges]} ranges), 4 KiB grains stored in shuffled order:

  #{Bench.table(header, vmdk_rows(ses, '(apply + fdatasync)'))}
  The destination is compared with qemu-img's conversion after the runs (and the original
  approach's result with it too).

  Where the time goes (COWD case, profiled by hand with perf, strace -c and perf trace on a
  2 × AMD EPYC virtual machine, 2026-12-07, where every figure of this paragraph comes from;
  `perf record` of vmdksync on a 2 × Intel Xeon virtual machine, 2026-12-08, shows the same
  shape, the page-cache reads of the grains taking about half of the samples): the limit's 49,159 pwrites take
  0.10–0.13 s, then it waits 0.3–0.4 s in fdatasync while the device writes the scattered
  pages. vmdksync makes the same writes plus one read
  per grain — 524,288 reads from the page cache at about 1.1 µs of CPU each (page-cache lookup
  and copy: 40 % of the profile), 0.6 s in all — sorted by their place in the delta (13 % less
  CPU for them), spread over both cores and overlapped with the writes of the batch before,
  while a third thread hands each written batch to the kernel's writeback
  (`sync_file_range`). That thread's calls run back to back from the first batch to the end,
  and the final fdatasync then takes under a millisecond: the apply ends when the device does.
  On that virtual machine the device is slower while both cores are busy (measured by hand, as
  are the next numbers; this script does not repeat them): the limit's writes,
  handed to writeback in 8 MiB steps from a second thread, take 0.48–0.54 s on an idle machine
  and 0.65–0.68 s next to two CPU-bound processes, and vmdksync's reads keep both cores about
  90 % busy. Cheaper reads do not close the gap within the memory bound: mapping the whole
  delta instead of reading it (measured: 0.64 s of CPU per run instead of 0.92 s, 0.77× the
  limit instead of 0.70×) makes the delta's pages count in the process's memory (300 MiB peak
  RSS here); mapping it batch by batch costs a page fault of about 10 µs per 64 KiB touched
  (0.78 s of CPU for the same grains); io_uring batches cost the same as the reads (0.65 s
  against 0.64 s); reading the delta sequentially takes a whole pass per 8 MiB batch. The
  original approach makes a read and a 512-byte write per grain.

  ### lvmsync: random 4 KiB chunks

  A 2 GiB origin of random data; a classic snapshot (4 KiB chunks) recording random 4 KiB
  writes, so its changes are scattered 4 KiB records (adjacent chunks merged). The stream file
  is made once with `lvmsync --stdout`; the send → apply pipeline reads the chunks from the
  origin (the specs' stand-in answers `lvs` and `vgcfgbackup`). After the runs, the changed
  chunks of the destination are compared with the origin.

  #{Bench.table(['change set', *header], lvm_rows)}

  Where the time goes: `lvmsync --apply FILE` checks the whole file before its first write
  (every header, and every byte hashed for the end-of-stream mark), then reads it again in
  64 KiB steps, hashing it once more, while a second thread writes the batch before (one
  pwrite per record, adjacent ones together) and a third asks the kernel to start writing
  out each written batch; the limit only writes, and pays for queueing its device requests
  inside its final fdatasync. The fixed costs come before the first write: Ruby start-up
  (#{start[:shipped]}, above) and the check pass (about 0.06 s for 256 MiB). Through a pipe, the
  sender's start-up (Ruby, the snapshot lookup, reading the exception store: about 0.12 s
  before the first record, measured with `| head -c 1` on the AMD EPYC machine above, when
  the executables still loaded RubyGems) comes before the first record, and the receiver
  copies every byte from the pipe once more, hashing it as it goes. That fixed start-up
  weighs most on the smaller change set, whose limit is about 0.3 s.
MD
