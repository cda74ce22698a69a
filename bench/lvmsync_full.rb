# frozen_string_literal: true

# lvmsync --full of a thin LV with 10 % of its blocks mapped (scattered at random): the first
# copy of a migration, onto a fresh (sparse) destination, against the limit of its write
# pattern (bench/peers/pattern_limit.c: pwrite of exactly the mapped ranges, holes punched for
# the rest, fdatasync) and against dd of the whole LV, measured side by side. The thin
# metadata is real (thin_restore writes it, the real thin_dump reads it); the pool's kernel
# side is the specs' stand-in (spec/support/thin_env.rb), so the volumes are files.
require "bench_helper"
require "shellwords"
require_relative "../spec/support/thin_env"

RUNS = Integer(ENV.fetch("BENCH_RUNS", "3"))
LVMSYNC = [RbConfig.ruby, File.join(Bench::ROOT, "exe", "lvmsync")].freeze
BLOCKS = Integer(ENV.fetch("BENCH_FULL_BLOCKS", "262144"))
BS = ThinEnv::BLOCK
SIZE = BLOCKS * BS

def sh(*words) = words.map { |w| Shellwords.escape(w.to_s) }.join(" ")

work = Bench.workdir("lvmsync_full")
rng = Random.new(11)
mapped = (0...BLOCKS).to_a.sample(BLOCKS / 10, random: rng).sort
# Thin metadata: device 2 (thin-snap) and its origin (1) map the same blocks.
xml = +%(<superblock uuid="" time="1" transaction="2" data_block_size="#{BS / 512}" nr_data_blocks="#{BLOCKS}">\n)
[1, 2].each do |id|
  xml << %(  <device dev_id="#{id}" mapped_blocks="#{mapped.size}" transaction="0" creation_time="0" snap_time="1">\n)
  mapped.each_with_index { |b, i| xml << %(    <single_mapping origin_block="#{b}" data_block="#{i}" time="0"/>\n) }
  xml << "  </device>\n"
end
xml << "</superblock>\n"
File.write(File.join(work, "tmeta.xml"), xml)
meta = File.join(work, "tmeta")
File.write(meta, "")
File.truncate(meta, 64 << 20)
Bench.run!("thin_restore", "-q", "-i", File.join(work, "tmeta.xml"), "-o", meta)

snap = File.join(work, "thin-snap.img")
block_data = rng.bytes(8 << 20)
File.open(snap, "wb") do |f|
  f.truncate(SIZE)
  mapped.each { |b| f.pwrite(block_data.byteslice(rng.rand((8 << 20) - BS), BS), b * BS) }
end
dest = File.join(work, "dest.img")
fresh = -> { File.open(dest, "wb") { |f| f.truncate(SIZE) } }
fresh.call
env = ThinEnv.build(work, images: { "thin-snap" => snap }, metadata: meta)
plain_env = ["env", "-u", "RUBYOPT", "-u", "BUNDLE_GEMFILE", "-u", "BUNDLE_BIN_PATH", "-u", "RUBYLIB",
             "PATH=#{env['PATH']}", "DM_DEV_DIR=#{env['DM_DEV_DIR']}"]
limit = Bench.pattern_limit
rfile = File.join(work, "ranges.txt")
Bench.run!(*plain_env, "sh", "-c", "#{sh(*LVMSYNC, '-q', '--full', '--stdout', 'vgfix/thin-snap')} | " \
                                   "#{sh(limit, 'list', '-')} > #{sh(rfile)}")
t = Bench.interleaved(RUNS, { full: [*plain_env, *LVMSYNC, "-q", "--full", "vgfix/thin-snap", dest],
                              limit: [limit, "write", rfile, dest],
                              dd: ["dd", "if=#{snap}", "of=#{dest}", "bs=1M", "conv=notrunc,fdatasync", "status=none"] },
                      setup: { full: fresh, limit: fresh, dd: fresh })
# A last run onto a fresh destination: the whole content arrived, and only the mapped blocks
# take space there.
fresh.call
Bench.run!(*plain_env, *LVMSYNC, "-q", "--full", "vgfix/thin-snap", dest)
raise "the copy differs from the snapshot" unless FileUtils.compare_file(snap, dest)

allocated = File.stat(dest).blocks * 512
FileUtils.rm_rf(work)
full, rss = t[:full]
lim = t[:limit][0]
dd = t[:dd][0]
mib = mapped.size * BS / 1048576.0

puts <<~MD
  ## lvmsync --full of a sparse thin LV

  Machine: #{Bench.machine}; load average #{Bench.load} at the end of the run.
  Reproduce: `bin/bench lvmsync_full` (median of #{RUNS} runs each, interleaved).

  A thin snapshot of #{BLOCKS} blocks of 64 KiB (#{SIZE >> 20} MiB) mapping #{mapped.size} of them (10 %,
  scattered at random: #{mib.round} MiB), copied whole onto a fresh sparse file:
  `lvmsync -q --full vgfix/thin-snap DEST` (the whole command: a Ruby start-up, the stand-in
  LVM and dmsetup, thin_dump on the real thin metadata, the transfer through the local
  receiver, the final fdatasync), against the limit of its write pattern (pwrite of exactly
  the mapped ranges, holes punched for the discard records, fdatasync) and against
  `dd if=SNAPSHOT of=DEST bs=1M conv=notrunc,fdatasync` (every byte of the LV). After the
  runs the copy is compared with the snapshot; it occupies #{(allocated / 1048576.0).round(1)} MiB on disk.

  #{Bench.table(['', 'time', 'throughput (mapped data)', 'peak RSS', 'ratio (pattern limit / this)'],
                [['`lvmsync --full`', format('%.2f s', full), format('%.0f MiB/s', mib / full), "#{rss / 1024} MiB",
                  format('%.2f×', lim / full)],
                 ['pattern limit', format('%.2f s', lim), format('%.0f MiB/s', mib / lim), '', '1.00×'],
                 ['`dd` of the whole LV', format('%.2f s', dd), format('%.0f MiB/s', mib / dd), '',
                  format('%.2f×', lim / dd)]])}
  dd took #{format('%.1f', dd / full)}× as long as `lvmsync --full`, and filled every block of the
  destination, where the copy of `lvmsync --full` stays as sparse as the snapshot.
MD
