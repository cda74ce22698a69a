# frozen_string_literal: true

# lvmsync on thin snapshots: the changes of a thin LV with about 1 M mapped 64 KiB blocks of
# which 10 % changed, (1) listed as ranges (thin_delta run and its XML parsed as a stream)
# against thin_delta alone writing its XML to /dev/null (the floor), and (2) sent and applied
# through a pipe, file to file, against dd moving the same number of bytes. The thin metadata
# is real (thin_restore writes it, the real thin_delta reads it); the pool's kernel side is
# the specs' stand-in (spec/support/thin_env.rb), since no device-mapper is needed for either.
require "bench_helper"
require "shellwords"
require_relative "../spec/support/thin_env"

RUNS = Integer(ENV.fetch("BENCH_RUNS", "3"))
LVMSYNC = [RbConfig.ruby, File.join(Bench::ROOT, "exe", "lvmsync")].freeze
BLOCKS = 1_000_000
BS = ThinEnv::BLOCK

def sh(*words) = words.map { |w| Shellwords.escape(w.to_s) }.join(" ")

# Chooses the changes: 7 % of blocks rewritten (different), 2 % newly mapped in the origin
# (right_only), 1 % unmapped in the origin (left_only, discarded); the rest shared. Writes
# thin_dump-style XML (runs as range mappings) for thin_restore.
def write_metadata(dir)
  rng = Random.new(7)
  kind = Array.new(BLOCKS, 0)
  picks = (0...BLOCKS).to_a.shuffle(random: rng).first(BLOCKS / 10)
  picks.each_with_index { |b, i| kind[b] = i < 70_000 ? 1 : (i < 90_000 ? 2 : 3) }
  snap = []   # [block, data] for device 2 (the snapshot)
  origin = [] # for device 1 (the origin)
  fresh = BLOCKS
  kind.each_with_index do |k, b|
    snap << [b, b] unless k == 2
    origin << [b, k.zero? ? b : (fresh += 1)] unless k == 3
  end
  xml = File.open(File.join(dir, "tmeta.xml"), "w")
  xml.puts %(<superblock uuid="" time="1" transaction="2" data_block_size="#{BS / 512}" nr_data_blocks="#{fresh + 1}">)
  { 1 => origin, 2 => snap }.each do |id, map|
    xml.puts %(  <device dev_id="#{id}" mapped_blocks="#{map.size}" transaction="0" creation_time="0" snap_time="1">)
    map.slice_when { |(b0, d0), (b1, d1)| b1 != b0 + 1 || d1 != d0 + 1 }.each do |run|
      xml.puts %(    <range_mapping origin_begin="#{run[0][0]}" data_begin="#{run[0][1]}" length="#{run.size}" time="0"/>)
    end
    xml.puts "  </device>"
  end
  xml.puts "</superblock>"
  xml.close
  meta = File.join(dir, "tmeta")
  File.write(meta, "")
  File.truncate(meta, 512 << 20)
  Bench.run!("thin_restore", "-q", "-i", File.join(dir, "tmeta.xml"), "-o", meta)
  [meta, kind, snap.size, origin.size]
end

# The origin: random data in every block the origin maps differently from the snapshot, holes
# elsewhere (those blocks are never read).
def write_origin(path, kind)
  rng = Random.new(9)
  pool = rng.bytes(8 << 20)
  File.open(path, "wb") do |f|
    f.truncate(BLOCKS * BS)
    kind.each_with_index do |k, b|
      next unless k == 1 || k == 2

      f.pwrite(pool.byteslice(rng.rand((8 << 20) - BS), BS), b * BS)
    end
  end
end

work = Bench.workdir("lvmsync_thin")
meta, kind, snap_mapped, origin_mapped = write_metadata(work)
changed = kind.count { |k| k.positive? }
changed_bytes = changed * BS

# (1) Listing the ranges.
floor, floor_rss = Bench.median_of(RUNS, "sh", "-c", "#{sh(ThinEnv::THIN_DELTA, '--snap1', 2, '--snap2', 1, meta)} >/dev/null")
probe = <<~RUBY
  require "lvm"
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  d = LVM::ThinDelta.run(ARGV[0], 2, 1, metadata_snap: false, thin_delta: #{ThinEnv::THIN_DELTA.inspect})
  el = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
  c = d.block_counts
  puts [el, d.changed_extents.size + d.unmapped_extents.size, c[:different], c[:right_only], c[:left_only], c[:same]].join(" ")
RUBY
list_runs = Array.new(RUNS) do
  out, err, st = Open3.capture3("/usr/bin/time", "-f", "BENCH %e %M", RbConfig.ruby, "-I", File.join(Bench::ROOT, "lib"),
                                "-e", probe, meta)
  raise "listing failed: #{err}" unless st.success?

  el, ranges, diff, ronly, lonly, same = out.split.map { |x| Float(x) }
  [el, err[/BENCH \S+ (\d+)/, 1].to_i, ranges, diff, ronly, lonly, same]
end
ours = list_runs.map(&:first).sort[RUNS / 2]
ours_rss = list_runs.map { |r| r[1] }.max
_, _, ranges, diff, ronly, lonly, same = list_runs.first
unless [diff, ronly, lonly].map(&:to_i) == [70_000, 20_000, 10_000]
  raise "thin_delta reported #{diff}/#{ronly}/#{lonly} changed blocks, expected 70000/20000/10000"
end

# (2) Send → apply.
origin = File.join(work, "origin.img")
dest = File.join(work, "dest.img")
write_origin(origin, kind)
File.open(dest, "wb") { |f| f.truncate(BLOCKS * BS) }
env = ThinEnv.build(work, images: { "thin1" => origin }, metadata: meta)
plain_env = ["env", "-u", "RUBYOPT", "-u", "BUNDLE_GEMFILE", "-u", "BUNDLE_BIN_PATH", "-u", "RUBYLIB",
             "PATH=#{env['PATH']}", "DM_DEV_DIR=#{env['DM_DEV_DIR']}"]
rows = []
limit = Bench.pattern_limit
[["without --discards (unmapped blocks sent as zeros)", []], ["--discards (unmapped blocks as discard records)", ["--discards"]]]
  .each do |name, extra|
  send = sh(*LVMSYNC, '-q', *extra, '--stdout', 'vgfix/thin-snap')
  # The write pattern of this mode (discard records included), listed once from the stream.
  # (Locals of this block are new names: the listing's results above stay as they are.)
  rfile = File.join(work, "ranges#{extra.size}.txt")
  Bench.run!(*plain_env, "sh", "-c", "#{send} | #{sh(limit, 'list', '-')} > #{sh(rfile)}")
  # The pipe floor: as many bytes as the records' data moved through a pipe, and nothing
  # else, which any sender → receiver pipeline pays at least.
  data = File.readlines(rfile).sum { |l| l.split.size == 2 ? l.split[1].to_i : 0 }
  t = Bench.interleaved(RUNS, { pipe: [*plain_env, "sh", "-c", "#{send} | #{sh(*LVMSYNC, '-q', '--apply', '-', dest)}"],
                                limit: [limit, "write", rfile, dest],
                                floor: ["sh", "-c", "#{sh(limit, 'pipe-send', data)} | #{sh(limit, 'pipe-recv', data)}"] })
  stream_mib = data / 1048576.0
  piped, prss = t[:pipe]
  rows << [name, format("%.2f s", piped), format("%.0f MiB/s", changed_bytes / 1048576.0 / piped), "#{prss / 1024} MiB",
           format("%.2f s", t[:limit][0]), format("%.2f×", t[:limit][0] / piped),
           format("%.2f s (%.0f MiB; %.2f× the limit's time)", t[:floor][0], stream_mib, t[:floor][0] / t[:limit][0])]
end
# The last run of the pipeline wrote the destination: every changed block arrived.
Bench.run!(*plain_env, "sh", "-c", "#{sh(*LVMSYNC, '-q', '--stdout', 'vgfix/thin-snap')} | " \
                                   "#{sh(*LVMSYNC, '-q', '--apply', '-', dest)}")
# Every changed block arrived.
File.open(origin, "rb") do |o|
  File.open(dest, "rb") do |d|
    kind.each_with_index.select { |k, _| k.positive? }.first(5000).each do |_, b|
      raise "block #{b} differs after the run" unless o.pread(BS, b * BS) == d.pread(BS, b * BS)
    end
  end
end
count = changed_bytes / 1048576
dd, = Bench.median_of(RUNS, "sh", "-c", "dd if=#{sh(origin)} bs=1M count=#{count} status=none | " \
                                        "dd of=#{sh(dest)} bs=1M conv=notrunc,fdatasync status=none")
FileUtils.rm_rf(work)

puts <<~MD
  ## lvmsync on thin snapshots

  Machine: #{Bench.machine}; load average #{Bench.load} at the end of the run.
  Reproduce: `bin/bench lvmsync_thin` (median of #{RUNS} runs each, measured side by side).

  A thin LV of #{BLOCKS} blocks of 64 KiB (#{BLOCKS * BS >> 30} GiB), its snapshot mapping #{snap_mapped} of
  them and the origin #{origin_mapped}; #{changed} blocks (10 %, scattered at random) changed since the
  snapshot: #{diff.to_i} rewritten, #{ronly.to_i} newly mapped, #{lonly.to_i} unmapped (discarded);
  #{same.to_i} shared. The thin metadata is real (thin_restore, read by thin-provisioning-tools'
  thin_delta #{Bench.run!(ThinEnv::THIN_DELTA, '-V').strip}).

  ### Listing the changed ranges

  #{Bench.table(['', 'time', 'peak RSS'],
                [['`thin_delta --snap1 2 --snap2 1 META > /dev/null` (the floor)', format('%.2f s', floor), "#{floor_rss / 1024} MiB"],
                 ["`LVM::ThinDelta.run` (thin_delta, its XML parsed as it arrives → #{ranges.to_i} coalesced ranges)",
                  format('%.2f s (%.2f× the floor)', ours, ours / floor), "#{ours_rss / 1024} MiB (the whole Ruby process)"]])}
  The listing keeps only changed runs: memory follows their number (here #{ranges.to_i}), not the
  #{BLOCKS} mappings thin_delta walks.

  ### Send → apply through a pipe, file to file

  `lvmsync -q [--discards] --stdout vgfix/thin-snap | lvmsync -q --apply - DEST` (the whole command
  line: two Ruby start-ups, the stand-in LVM and dmsetup, thin_delta, the transfer, the final
  fdatasync) against the limit of its write pattern (`bench/peers/pattern_limit.c`: pwrite of
  exactly the ranges of the stream's records, holes punched for its discard records, then
  fdatasync; interleaved with lvmsync run by run) and against
  `dd if=ORIGIN bs=1M count=#{count} | dd of=DEST bs=1M conv=notrunc,fdatasync` (the same
  #{count} MiB, sequential). After the runs, changed blocks of the destination are compared
  with the origin.

  #{Bench.table(['mode', 'lvmsync', 'throughput', 'peak RSS (either side)', 'pattern limit', 'ratio (limit / lvmsync)',
                 'pipe floor (the same bytes through a pipe, nothing else)', 'dd', 'ratio (dd / lvmsync)'],
                rows.map { |r| r + [format('%.2f s', dd), format('%.2f×', dd / Float(r[1].to_f))] })}
  The changed blocks are scattered: about #{ranges.to_i} separate ranges, each a positioned read and a
  positioned write of 64 KiB or a little more, where dd makes one sequential pass.

  The pipe floor is measured interleaved with the other two: as many bytes as the stream's
  records carry, moved through a pipe with the 1 MiB buffer lvmsync asks for, and nothing
  else (`pattern-limit pipe-send BYTES | pattern-limit pipe-recv BYTES`: a copy into the
  pipe, one out of it, nothing read from a file, nothing written, nothing checked). A
  pipeline that copies the bytes into and out of a pipe, as lvmsync does, pays at least
  that; lvmsync also reads the source's scattered blocks and hashes every byte on both
  sides, and writes and flushes the destination, which is all the pattern limit does.
MD
