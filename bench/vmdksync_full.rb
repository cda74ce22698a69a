# frozen_string_literal: true

# vmdksync --full: a whole streamOptimized disk (an OVA export, no parent) written onto a raw
# destination, side by side with qemu-img convert of the same image and cp + sync of the raw
# disk it holds, interleaved in the same run.
require "bench_helper"
require "json"

RUNS = Integer(ENV.fetch("BENCH_RUNS", "3"))
VMDKSYNC = [RbConfig.ruby, File.join(Bench::ROOT, "exe", "vmdksync"), "-q"].freeze

work = Bench.workdir("vmdksync-full")
# The raw disk: 1 GiB of mixed data (zeros, text, literal-heavy and random 4 KiB blocks, as a
# disk holds them), every 64 KiB of it written by a testkit delta and read back by qemu-img.
model = JSON.parse(Bench.run!(Bench::TESTKIT, "chain", "--dir", File.join(work, "model"), "--capacity", "1G",
                              "--seed", 8, "--mixed", "--layer", "sparse", "--random-writes", "16384:64K"))
disk = File.join(work, "disk.raw")
Bench.run!("qemu-img", "convert", "-O", "raw", model["layers"].last["descriptor"], disk)
FileUtils.rm_rf(File.join(work, "model"))
image = File.join(work, "export.vmdk")
Bench.run!("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", disk, image)
size = File.size(disk)
dest = File.join(work, "dest.raw")
File.binwrite(dest, "") # a destination of the disk's size, its old content to be replaced
File.truncate(dest, size)
qemu_out = File.join(work, "qemu.raw")
copy = File.join(work, "copy.raw")
load_before = Bench.load
t = Bench.interleaved(RUNS, { ours: [*VMDKSYNC, "--full", image, dest],
                              once: [*VMDKSYNC, "--full", "--inflate-once", image, dest],
                              single: [Bench.inflate_limit, image, dest],
                              checks: [*VMDKSYNC, "--full", "--dry-run", image, dest],
                              qemu: ["qemu-img", "convert", "-O", "raw", image, qemu_out],
                              qemu_sync: ["sh", "-c", 'qemu-img convert -O raw "$1" "$2" && sync "$2"', "sh", image,
                                          qemu_out],
                              cp: ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", disk, copy] },
                      setup: { qemu: -> { FileUtils.rm_f(qemu_out) }, qemu_sync: -> { FileUtils.rm_f(qemu_out) }, cp: -> { FileUtils.rm_f(copy) } })
load_after = Bench.load
Bench.run!("cmp", qemu_out, dest) # vmdksync's result is qemu-img's
File.truncate(dest, 0) # --inflate-once's result is qemu-img's too
File.truncate(dest, size)
Bench.run!(*VMDKSYNC, "--full", "--inflate-once", image, dest)
Bench.run!("cmp", qemu_out, dest)
image_size = File.size(image)
FileUtils.rm_rf(work)

ours, ours_rss = t[:ours]
qemu, qemu_rss = t[:qemu]
cp, = t[:cp]
qemu_sync, = t[:qemu_sync]
checks, = t[:checks]
once, once_rss = t[:once]
single, = t[:single]
mibs = ->(secs) { format("%.0f MiB/s", Bench.mib(size) / secs) }
threads = [Etc.nprocessors, 8].min
puts <<~MD
  ## vmdksync --full (a whole streamOptimized disk)

  Machine: #{Bench.machine}; load average #{load_before} before the runs, #{load_after} after.
  Reproduce: `bin/bench vmdksync_full` (median of #{RUNS} interleaved runs of each tool; page cache
  warm).

  Image: a 1 GiB disk of mixed data (zeros, text, literal-heavy and random 4 KiB blocks, as a disk
  holds them) made into a streamOptimized VMDK by `qemu-img convert -o subformat=streamOptimized`
  (#{format('%.0f', Bench.mib(image_size))} MiB), as an OVF/OVA export ships it. vmdksync's time is the
  whole command: Ruby start-up, every check — which inflates every grain once, with libdeflate on
  #{threads} threads, before the first write — then the write of the whole disk, inflating every
  grain again on #{threads} threads while the batch before it is written, and the final
  fdatasync. With `--inflate-once`, the checks inflate nothing (they check every grain marker)
  and the write inflates every grain exactly once; a bad grain would be found part-way. The
  single-pass reference (`bench/peers/inflate_limit.c`, built by the bench) inflates every
  grain exactly once with libdeflate on #{threads} threads, pwrite()s it at once and
  fdatasync()s, checking nothing. qemu-img's output file is created fresh each time and not
  flushed (a further row: the same followed by `sync` of its output, which is what
  vmdksync's fdatasync does).

  #{Bench.table(['tool', 'time', 'throughput (disk bytes)', 'ratio (its time / vmdksync\'s)'],
                [['vmdksync --full (fdatasync)', format('%.2f s', ours), mibs.call(ours), '1.00'],
                 ['vmdksync --full --inflate-once (each grain inflated once, while writing)',
                  format('%.2f s', once), mibs.call(once), format('%.2f×', once / ours)],
                 ['single-pass reference (each grain inflated once, no validation first)',
                  format('%.2f s', single), mibs.call(single), format('%.2f×', single / ours)],
                 ['of which the checks alone (vmdksync --full --dry-run: start-up, every grain inflated once)',
                  format('%.2f s', checks), mibs.call(checks), format('%.2f×', checks / ours)],
                 ['qemu-img convert -O raw', format('%.2f s', qemu), mibs.call(qemu),
                  format('%.2f× (target ≥ 2×: %s)', qemu / ours, qemu >= 2 * ours ? 'met' : 'not met')],
                 ['qemu-img convert -O raw, then sync', format('%.2f s', qemu_sync), mibs.call(qemu_sync),
                  format('%.2f×', qemu_sync / ours)],
                 ['cp + sync of the raw disk', format('%.2f s', cp), mibs.call(cp), format('%.2f×', cp / ours)]])}
  Peak RSS: vmdksync #{ours_rss / 1024} MiB (#{once_rss / 1024} MiB with --inflate-once), qemu-img #{qemu_rss / 1024} MiB.

  `--inflate-once` against the single-pass reference (single-pass time / its time):
  #{format('%.2f×', single / once)} (target ≥ 0.8×: #{single >= 0.8 * once ? 'met' : 'not met'}); against
  qemu-img convert: #{format('%.2f×', qemu / once)} (target ≥ 2×: #{qemu >= 2 * once ? 'met' : 'not met'}).
MD
