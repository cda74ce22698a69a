# frozen_string_literal: true

# vmdksync throughput and memory, side by side with the copy limit (cp of the same number of
# bytes) and qemu-img convert of the same chain, all measured in this run.
require "bench_helper"

RUNS = Integer(ENV.fetch("BENCH_RUNS", "3"))
VMDKSYNC = [RbConfig.ruby, File.join(Bench::ROOT, "exe", "vmdksync"), "-q"].freeze

def fixture(dir, capacity:, writes:, grain:, layout:)
  Bench.run!(Bench::TESTKIT, "cowd", "--dir", dir, "--capacity", capacity, "--grain-size", grain,
             "--layout", layout, "--random-writes", writes, "--seed", 42)
  dir
end

def vmdksync_run(dir)
  dest = File.join(dir, "dest.raw")
  reset = -> { Bench.fresh_copy(File.join(dir, "vm-flat.vmdk"), dest) }
  Bench.median_of(RUNS, *VMDKSYNC, File.join(dir, "vm-000001.vmdk"), dest, setup: reset)
end

work = Bench.workdir("vmdksync")
main = fixture(File.join(work, "main"), capacity: "2G", writes: "16384:64K", grain: 1, layout: "write-order")
extent = File.join(main, "vm-000001-delta.vmdk")
changed = 16_384 * 65_536

ours, ours_rss = vmdksync_run(main)
copy = File.join(work, "copy.raw")
cp, = Bench.median_of(RUNS, "cp", extent, copy, setup: -> { FileUtils.rm_f(copy) })
cp_sync, = Bench.median_of(RUNS, "sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", extent, copy,
                           setup: -> { FileUtils.rm_f(copy) })
qemu_out = File.join(work, "qemu.raw")
# qemu-img reads 512-byte COWD grains one at a time (minutes for this delta): measured once.
qemu, qemu_rss = Bench.median_of(1, "qemu-img", "convert", "-O", "raw", File.join(main, "vm-000001.vmdk"),
                                 qemu_out, setup: -> { FileUtils.rm_f(qemu_out) })
FileUtils.rm_f([copy, qemu_out])

# Memory: peak RSS must not grow with the amount of changed data.
small = fixture(File.join(work, "small"), capacity: "2G", writes: "4096:64K", grain: 1, layout: "write-order")
_s, small_rss = vmdksync_run(small)
FileUtils.rm_rf(small)
worst = fixture(File.join(work, "worst"), capacity: "2G", writes: "65536:4K", grain: 1, layout: "shuffled")
_w, worst_rss = vmdksync_run(worst)
FileUtils.rm_rf(work)

rate = ->(secs) { format("%.0f MiB/s", Bench.mib(changed) / secs) }
ruby_rss = Bench.measure(RbConfig.ruby, "-I", File.join(Bench::ROOT, "lib"), "-e", "require %q(vmdksync)").last

puts <<~MD
  ## vmdksync (COWD)

  Machine: #{Bench.machine}.
  Reproduce: `bin/bench vmdksync` (median of #{RUNS} runs each, qemu-img once; page cache warm for
  every tool; other work on the machine adds noise, so compare ratios rather than absolute times).

  Delta: ESX COWD, 512-byte grains (grainSize 1, as ESX writes them), 2 GiB disk, 16384 random
  64 KiB guest writes = 1 GiB changed, grains stored in write order. vmdksync's time is the whole
  command (Ruby start-up, every check, the writes and the final fdatasync).

  #{Bench.table(%w[tool time throughput ratio\ vs\ vmdksync],
                [["vmdksync (apply, fdatasync)", format("%.2f s", ours), rate.call(ours), "1.00"],
                 ["cp of the 1 GiB extent + sync (copy limit, flushed)", format("%.2f s", cp_sync), rate.call(cp_sync),
                  format("%.2f× (vmdksync %s)", cp_sync / ours, ours <= cp_sync / 0.8 ? "meets ≥ 0.8×" : "below 0.8×")],
                 ["cp of the 1 GiB extent (copy limit, page cache only)", format("%.2f s", cp), rate.call(cp),
                  format("%.2f×", cp / ours)],
                 ["qemu-img convert -O raw (rewrites the whole 2 GiB disk)", format("%.2f s", qemu), rate.call(qemu),
                  format("%.2f×", qemu / ours)]])}
  "ratio" is the peer's time divided by vmdksync's: above 1 means vmdksync is faster.

  Peak RSS (whole process, Ruby included; a bare `ruby -e "require 'vmdksync'"` is #{ruby_rss / 1024} MiB):

  #{Bench.table(["delta", "peak RSS"],
                [["256 MiB changed (4096 × 64 KiB)", "#{small_rss / 1024} MiB"],
                 ["1 GiB changed (16384 × 64 KiB)", "#{ours_rss / 1024} MiB"],
                 ["256 MiB changed, worst case: 65536 × 4 KiB writes, every 512-byte grain shuffled", "#{worst_rss / 1024} MiB"],
                 ["qemu-img convert, 1 GiB case", "#{qemu_rss / 1024} MiB"]])}
MD

# --- seSparse chain of three, and a streamOptimized delta -------------------------------------

def chain_fixture(dir, *layers, writes: "6000:64K", mixed: false)
  args = [Bench::TESTKIT, "chain", "--dir", dir, "--capacity", "4G", "--seed", 7]
  args << "--mixed" if mixed
  layers.each { |l| args += ["--layer", l, "--random-writes", writes] }
  JSON.parse(Bench.run!(*args))
end

def dry_run_bytes(desc, dest)
  Bench.run!(RbConfig.ruby, File.join(Bench::ROOT, "exe", "vmdksync"), "--dry-run", "-q", desc, dest)[/(\d+) bytes/, 1].to_i
end

require "json"
cw = Bench.workdir("vmdksync-chain")
ch = chain_fixture(cw, "sesparse,layout=write-order", "sesparse,layout=write-order", "sesparse,layout=write-order")
cdest = File.join(cw, "dest.raw")
FileUtils.cp(ch["flat"], cdest)
union = dry_run_bytes(ch["layers"].last["descriptor"], cdest)
reset_c = -> { Bench.fresh_copy(ch["flat"], cdest) }
chain_t, chain_rss = Bench.median_of(RUNS, *VMDKSYNC, ch["layers"].last["descriptor"], cdest, setup: reset_c)
# The same three deltas applied one after the other (each with --base its parent).
per_layer = ch["layers"].each_with_index.map do |l, i|
  base = i.zero? ? ch["base"] : ch["layers"][i - 1]["descriptor"]
  Bench.measure(*VMDKSYNC, "--base", base, l["descriptor"], cdest, setup: i.zero? ? reset_c : nil).first
end
src = File.join(cw, "same-bytes.bin")
Bench.run!("sh", "-c", "head -c #{union} \"$1\" > \"$2\"", "sh", ch["flat"], src)
copy_c = File.join(cw, "copy.bin")
cp_c, = Bench.median_of(RUNS, "sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", src, copy_c, setup: -> { FileUtils.rm_f(copy_c) })
qemu_c_out = File.join(cw, "qemu.raw")
qemu_c, = Bench.median_of(1, "qemu-img", "convert", "-O", "raw", ch["layers"].last["descriptor"], qemu_c_out,
                          setup: -> { FileUtils.rm_f(qemu_c_out) })
FileUtils.rm_rf(cw)

sw = Bench.workdir("vmdksync-stream")
st = chain_fixture(sw, "stream-footer,layout=write-order", writes: "16384:64K", mixed: true)
sdest = File.join(sw, "dest.raw")
Bench.fresh_copy(st["flat"], sdest)
sbytes = dry_run_bytes(st["layers"].last["descriptor"], sdest)
stream_size = File.size(st["layers"].last["descriptor"])
ssrc = File.join(sw, "same-bytes.bin")
Bench.run!("sh", "-c", "head -c #{sbytes} \"$1\" > \"$2\"", "sh", st["flat"], ssrc)
scopy = File.join(sw, "copy.bin")
st_t = Bench.interleaved(RUNS, { ours: [*VMDKSYNC, st["layers"].last["descriptor"], sdest],
                                 single: [Bench.inflate_limit, st["layers"].last["descriptor"], sdest],
                                 cp: ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", ssrc, scopy] },
                         setup: { cp: -> { FileUtils.rm_f(scopy) } })
stream_t, stream_rss = st_t[:ours]
single_s = st_t[:single][0]
cp_s = st_t[:cp][0]
qemu_s_out = File.join(sw, "qemu.raw")
qemu_s, = Bench.median_of(1, "qemu-img", "convert", "-O", "raw", st["layers"].last["descriptor"], qemu_s_out,
                          setup: -> { FileUtils.rm_f(qemu_s_out) })
Bench.run!(*VMDKSYNC, st["layers"].last["descriptor"], sdest)
Bench.run!("cmp", qemu_s_out, sdest) # vmdksync's result is qemu-img's
stream_load = Bench.load
FileUtils.rm_rf(sw)

mibs = ->(bytes, secs) { format("%.0f MiB/s", Bench.mib(bytes) / secs) }
threads = [Etc.nprocessors, 8].min
puts <<~MD

  ## vmdksync (seSparse chain, streamOptimized)

  Machine and method as above (`bin/bench vmdksync`). 4 GiB disks; each seSparse delta holds
  6000 random 64 KiB guest writes, the streamOptimized delta 16384 (1 GiB).

  **seSparse chain of three deltas** (overlapping writes; the merged chain changes
  #{format('%.2f', Bench.mib(union) / 1024)} GiB):

  #{Bench.table(["tool", "time", "throughput (merged bytes)", "ratio"],
                [["vmdksync on the chain (one pass, newest wins)", format("%.2f s", chain_t), mibs.call(union, chain_t), "1.00"],
                 ["vmdksync on each delta in turn (sum of 3 runs)", format("%.2f s", per_layer.sum),
                  mibs.call(union, per_layer.sum), format("%.2f× (per delta: %s)", per_layer.sum / chain_t,
                                                          per_layer.map { |t| format('%.2f s', t) }.join(' + '))],
                 ["cp + sync of the same number of bytes (copy limit)", format("%.2f s", cp_c), mibs.call(union, cp_c),
                  format("%.2f× (vmdksync %s)", cp_c / chain_t, chain_t <= cp_c / 0.8 ? "meets ≥ 0.8×" : "below 0.8×")],
                 ["qemu-img convert -O raw of the chain (whole 4 GiB disk)", format("%.2f s", qemu_c), mibs.call(union, qemu_c),
                  format("%.2f×", qemu_c / chain_t)]])}
  Peak RSS of vmdksync on the chain: #{chain_rss / 1024} MiB.

  **streamOptimized delta** (mixed data as a disk holds it — zeros, text, literal-heavy and
  random 4 KiB blocks — compressed at zlib's default level: #{format('%.2f', Bench.mib(sbytes) / 1024)} GiB of grains
  stored in #{format('%.2f', Bench.mib(stream_size) / 1024)} GiB; load average #{stream_load} after the runs, which
  are interleaved). vmdksync inflates every grain with libdeflate on #{threads} threads once to validate
  the delta before its first write, and once more to apply it, overlapped with the writes. The
  single-pass reference (`bench/peers/inflate_limit.c`, built by the bench) inflates every
  grain exactly once with libdeflate on #{threads} threads and writes it at once, checking nothing
  before its first write:

  #{Bench.table(["tool", "time", "throughput (disk bytes)", "ratio (its time / vmdksync's)"],
                [["vmdksync", format("%.2f s", stream_t), mibs.call(sbytes, stream_t), "1.00"],
                 ["single-pass reference (each grain inflated once, no validation first)", format("%.2f s", single_s),
                  mibs.call(sbytes, single_s), format("%.2f×", single_s / stream_t)],
                 ["cp + sync of the same number of bytes", format("%.2f s", cp_s), mibs.call(sbytes, cp_s),
                  format("%.2f×", cp_s / stream_t)],
                 ["qemu-img convert -O raw (whole 4 GiB disk, once)", format("%.2f s", qemu_s), mibs.call(sbytes, qemu_s),
                  format("%.2f×", qemu_s / stream_t)]])}
  Peak RSS of vmdksync: #{stream_rss / 1024} MiB (two 8 MiB batches of inflated grains, one being
  written while the next is inflated, and a grain's buffers per thread).
MD
