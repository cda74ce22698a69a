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
  reset = -> { FileUtils.cp(File.join(dir, "vm-flat.vmdk"), dest) }
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
