# frozen_string_literal: true

# lvmsync: send → apply of 1 GiB of changed 4 KiB chunks through a pipe, file to file, side by
# side with dd moving the same number of bytes through a pipe; and the exception store of 1 M
# exceptions → coalesced ranges, side by side with the original lvmsync's approach (a Ruby
# loop over the records), all measured in this run.
require "bench_helper"
require "json"
require "shellwords"
require "tmpdir"
require_relative "../spec/support/lvm_env"

RUNS = Integer(ENV.fetch("BENCH_RUNS", "3"))
LVMSYNC = [RbConfig.ruby, File.join(Bench::ROOT, "exe", "lvmsync")].freeze
GIB = 1 << 30

def sh(*words)
  words.map { |w| Shellwords.escape(w.to_s) }.join(" ")
end

# A snapshot whose exception store lists +pattern+ (testkit options), over +origin+.
def snapshot(dir, origin, *pattern)
  FileUtils.mkdir_p(dir)
  layout = JSON.parse(Bench.run!(Bench::TESTKIT, "cow", "--dir", dir, "--origin-size", File.size(origin),
                                 "--chunk-size", "4K", "--cow-size", "1100M", "--no-data", "--no-images", *pattern))
  env = LvmEnv.build(dir, vgs: { "vg-sync" => LvmEnv.classic_metadata },
                          lvs: { "/dev/vg-sync/src-snap" => %w[vg-sync src-snap] },
                          nodes: { "vg--sync-src--lv" => origin, "vg--sync-src--snap-cow" => File.join(dir, "cow.img") })
  [env, layout]
end

def pipeline(env, dest, *send_opts)
  cmd = "#{sh(*LVMSYNC, '-q', *send_opts, '--stdout', '/dev/vg-sync/src-snap')} | " \
        "#{sh(*LVMSYNC, '-q', '--apply', '-', dest)}"
  shell(env, cmd)
end

# +cmd+ through sh, without bundler's RUBYOPT (bin/bench runs under `bundle exec`): lvmsync
# starts as an installed gem's executable does.
def shell(env, cmd)
  ["env", "-u", "RUBYOPT", "-u", "BUNDLE_GEMFILE", "-u", "BUNDLE_BIN_PATH", "-u", "RUBYLIB",
   "PATH=#{env['PATH']}", "DM_DEV_DIR=#{env['DM_DEV_DIR']}", "sh", "-c", cmd]
end

# The destination check of a --from round: the scattered case as a round from src-snap (its
# store lists the changes) to tiny (whose node is the origin), with and without
# --no-destination-check. OLDER's node is the destination itself, which holds OLDER's bytes
# in the changed ranges (after the first run NEWER's, which pass the check the same way): each
# checked run reads what it would read with a separate OLDER device.
def destcheck_row(dir, name, origin, dest, cow, layout)
  env = LvmEnv.build(dir, vgs: { "vg-sync" => LvmEnv.classic_metadata },
                          lvs: { "vg-sync/src-snap" => %w[vg-sync src-snap], "vg-sync/tiny" => %w[vg-sync tiny] },
                          nodes: { "vg--sync-src--lv" => origin, "vg--sync-tiny" => origin,
                                   "vg--sync-src--snap" => dest, "vg--sync-src--snap-cow" => cow })
  round = lambda do |*opts|
    shell(env, "#{sh(*LVMSYNC, '-q', *opts, '--stdout', '--from', 'vg-sync/src-snap', 'vg-sync/tiny')} | " \
               "#{sh(*LVMSYNC, '-q', '--apply', '-', dest)}")
  end
  t = Bench.interleaved(RUNS, { checked: round.call, unchecked: round.call("--no-destination-check") })
  check(origin, dest, layout)
  (c, _), (u, _) = t.values_at(:checked, :unchecked)
  [name, format("%.2f s", c), format("%.2f s", u), format("%+.0f %%", (c / u - 1) * 100), format("%.2f×", c / u)]
end

def dd_pipe(origin, dest)
  ["sh", "-c", "dd if=#{sh(origin)} bs=1M count=1024 status=none | " \
               "dd of=#{sh(dest)} bs=1M conv=notrunc,fdatasync status=none"]
end

# Every listed chunk of +dest+ equals the origin's: the run really moved the data.
def check(origin, dest, layout)
  File.open(origin, "rb") do |o|
    File.open(dest, "rb") do |d|
      layout["records"].first(20_000).each do |old, _|
        o.seek(old * 4096)
        d.seek(old * 4096)
        raise "chunk #{old} differs after the run" unless o.read(4096) == d.read(4096)
      end
    end
  end
end

def transfer(work, label, marks, checks = nil)
  FileUtils.mkdir_p(work)
  origin = File.join(work, "origin.img")
  dest = File.join(work, "dest.img")
  stream = File.join(work, "changes")
  # Random data (the origin), a 2 GiB destination with its blocks allocated.
  Bench.run!("dd", "if=/dev/urandom", "of=#{origin}", "bs=1M", "count=2048", "status=none")
  Bench.run!("fallocate", "-l", "2G", dest)
  rows = []
  [["1 GiB contiguous (262144 adjacent chunks, sent as 1024 records of 1 MiB)", ["--write", "0:1G"]],
   ["1 GiB scattered (every other 4 KiB chunk of 2 GiB: 262144 records of 4 KiB)",
    ["--stride-writes", "262144:4K:8K"]]].each_with_index do |(name, pattern), i|
    env, layout = snapshot(File.join(work, "snap#{i}"), origin, *pattern)
    # Interleaved run by run, so that a change in the machine's load touches both alike (dd
    # writes the origin's bytes too: the check below holds whichever ran last).
    t = Bench.interleaved(RUNS, { ours: pipeline(env, dest), dd: dd_pipe(origin, dest) })
    (ours, rss), (dd, _) = t.values_at(:ours, :dd)
    check(origin, dest, layout)
    ratio = dd / ours
    rows << [name, format("%.2f s", ours), format("%.0f MiB/s", 1024 / ours), format("%.2f s", dd),
             format("%.2f×%s", ratio, ratio >= 0.8 ? " (meets ≥ 0.8×)" : " (below 0.8×)"), "#{rss / 1024} MiB"]
    next unless marks

    # The end-of-stream mark: the same pipeline with --plain (no BEGIN/END, the sender hashes
    # nothing); and a stream file applied from its path (read twice: checked whole, then
    # applied) against the same file on standard input (applied as it arrives). Interleaved
    # run by run, so that a change in the machine's load touches all four alike.
    Bench.run!(*shell(env, "#{sh(*LVMSYNC, '-q', '--stdout', '/dev/vg-sync/src-snap')} > #{sh(stream)}"))
    t = Bench.interleaved(RUNS, { marked: pipeline(env, dest), plain: pipeline(env, dest, "--plain"),
                                  file: shell(env, sh(*LVMSYNC, "-q", "--apply", stream, dest)),
                                  stdin: shell(env, "#{sh(*LVMSYNC, '-q', '--apply', '-', dest)} < #{sh(stream)}") })
    check(origin, dest, layout)
    (m, _), (pl, _), (f, _), (si, _) = t.values_at(:marked, :plain, :file, :stdin)
    marks << [name, format("%.2f s", m), format("%.2f s", pl), format("%+.0f %%", (m / pl - 1) * 100),
              format("%.2f s", f), format("%.2f s", si), format("%+.0f %%", (f / si - 1) * 100)]
    checks << destcheck_row(File.join(work, "from#{i}"), name, origin, dest, File.join(work, "snap#{i}", "cow.img"),
                            layout) if checks && i == 1
  end
  FileUtils.rm_f([origin, dest, stream])
  [label, rows]
end

# The original lvmsync's way, written here for comparison: read each metadata area, take the
# records until the terminator, one inclusive range per chunk (no sorting, no coalescing).
def ruby_ranges(path)
  File.open(path, "rb") do |f|
    _magic, _valid, _version, sectors = f.read(16).unpack("V4")
    c = sectors * 512
    per = c / 16
    out = []
    area = 0
    loop do
      f.seek((1 + area * (per + 1)) * c)
      recs = f.read(c).unpack("Q<*")
      done = false
      recs.each_slice(2) do |old, new|
        if new.zero?
          done = true
          break
        end
        out << ((old * c)..((old + 1) * c - 1))
      end
      break if done

      area += 1
    end
    out
  end
end

work = Bench.workdir("lvmsync")
sections = []
marks = []
checks = []
disk = transfer(File.join(work, "disk"), "scratch filesystem (#{Bench.run!('df', '-T', work).lines.last.split[1]}, " \
                                         "destination flushed with fdatasync by both)", nil)
sections << disk
shm = Dir.exist?("/dev/shm") ? File.join("/dev/shm", "ironshed-bench-lvmsync") : nil
if shm
  FileUtils.rm_rf(shm)
  FileUtils.mkdir_p(shm)
  sections << transfer(shm, "tmpfs (/dev/shm: no disk, so the tools' own cost)", marks, checks)
  FileUtils.rm_rf(shm)
end

# 1 M exceptions, in shuffled order, 4 KiB chunks (a 4 GiB sparse store).
meta = File.join(work, "meta")
FileUtils.mkdir_p(meta)
Bench.run!(Bench::TESTKIT, "cow", "--dir", meta, "--origin-size", "8G", "--chunk-size", "4K", "--cow-size", "4200M",
           "--random-writes", "1048576:4K", "--order", "shuffled", "--no-data", "--no-images")
cow = File.join(meta, "cow.img")
probe = <<~RUBY
  require "lvm"
  LVM::CowStore.open(ARGV[0]) # warm the page cache
  times = Array.new(5) do
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    s = LVM::CowStore.open(ARGV[0])
    [Process.clock_gettime(Process::CLOCK_MONOTONIC) - t, s]
  end
  s = times.last[1]
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  ranges = s.ranges
  rt = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
  puts [times.map(&:first).sort[2], rt, s.exception_count, s.chunk_count, ranges.size].join(" ")
RUBY
native, to_ruby, exceptions, chunks, ranges = Bench.run!(RbConfig.ruby, "-I", File.join(Bench::ROOT, "lib"), "-e",
                                                        probe, cow).split.map { |x| Float(x) }
t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
peer = ruby_ranges(cow)
peer_time = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
FileUtils.rm_rf(work)

puts <<~MD
  ## lvmsync

  Machine: #{Bench.machine}.
  Reproduce: `bin/bench lvmsync` (median of #{RUNS} runs each, the tools compared run by run
  interleaved; page cache warm for every tool; other work on the machine adds noise, so compare
  the ratios measured side by side rather than absolute times).

  ### Send → apply through a pipe, file to file

  `lvmsync -q --stdout SNAP | lvmsync -q --apply - DEST` against
  `dd if=ORIGIN bs=1M count=1024 | dd of=DEST bs=1M conv=notrunc,fdatasync`: the same 1 GiB
  through a pipe, the destination flushed at the end by both. lvmsync's time is the whole
  command line: two Ruby start-ups, the snapshot lookup (`lvs` and `vgcfgbackup` answered by
  the specs' stand-in), reading the exception store, the transfer and the final fdatasync. The
  origin is 2 GiB of random data; after each run the changed chunks of the destination are
  compared with the origin. "ratio" is dd's time divided by lvmsync's (target: ≥ 0.8×).

  #{sections.map do |label, rows|
      "On #{label}:\n\n" +
        Bench.table(["changed chunks", "lvmsync", "throughput", "dd (1 GiB)", "ratio", "peak RSS (either side)"], rows)
    end.join("\n")}
  lvmsync's times include the fixed start-up of the two commands (Ruby without RubyGems, the
  snapshot lookup before the first byte is sent), which weighs less as the amount of changed
  data grows.
  The scattered case cannot coalesce anything: 262144 records mean 262144 reads and 262144
  positioned writes of 4 KiB, against dd's 1024 sequential writes of 1 MiB, and on a disk the final
  flush writes 262144 separate blocks instead of one sequential run.

  ### The end-of-stream mark

  What the mark costs, on tmpfs (where nothing hides the tools' own work): the pipeline above
  as it runs by default (a marked stream: BEGIN, the records, END with the XXH3-64 of every
  byte, hashed by the sender as it writes and by the receiver as it reads) against the same
  with `--plain` (the original format); and the stream saved to a file, applied from its path
  (checked whole before the first write: the file is read and hashed twice) against the same
  file on standard input (read once, applied as it arrives).

  #{Bench.table(["changed chunks", "marked", "--plain", "mark's cost", "--apply FILE", "--apply - < FILE",
                 "checking first"], marks)}
  Medians of #{RUNS} runs of each, interleaved; load average #{Bench.load} at the end. The mark
  itself is two headers and 48 bytes; "mark's cost" is what `--plain` saves: the sender's
  hashing. The receiver's share is in both columns: it hashes every stream as it reads it (it
  cannot know before the end that no mark comes), so every byte passes through its memory
  instead of large records being spliced from a pipe to the destination. Checking a file
  whole before the first write reads it twice ("checking first").

  ### The destination check of a --from round

  What checking the destination first costs, on tmpfs: the scattered case sent as a `--from`
  round (`lvmsync -q --stdout --from OLDER NEWER | lvmsync -q --apply - DEST`) as it runs by
  default, against the same with `--no-destination-check`. Checked, the sender reads OLDER and
  NEWER in every changed range and hashes them before it sends anything (NEWER is read again to
  be sent), and the receiver reads and hashes the same ranges of its destination before its
  first write (OLDER's device here is the destination file itself, which holds OLDER's bytes
  there).

  #{Bench.table(["changed chunks", "checked", "--no-destination-check", "check's cost", "ratio"], checks)}
  Medians of #{RUNS} runs of each, interleaved; load average #{Bench.load} at the end (the
  machine is shared: compare the two columns, measured side by side, rather than absolute
  times).

  ### Exception store → coalesced ranges

  A store of #{exceptions.to_i} exceptions (4 KiB chunks, records in shuffled order, as after
  random writes), read from a file in the page cache:

  #{Bench.table(%w[reader time result],
                [["LVM::CowStore.open (native: read, validate, sort, coalesce)", format("%.3f s", native),
                  "#{chunks.to_i} chunks in #{ranges.to_i} ranges#{native < 0.2 ? ' (meets < 0.2 s)' : ' (over 0.2 s)'}"],
                 ["… then #ranges as Ruby Range objects", format("%.3f s", to_ruby), "#{ranges.to_i} Ranges"],
                 ["the original's approach in Ruby (one Range per record, unsorted)", format("%.3f s", peer_time),
                  "#{peer.size} Ranges"]])}
  On a real `-cow` device the native reader uses O_DIRECT, so each of the #{(exceptions / 256).ceil} metadata
  areas is a read from the device rather than from the page cache.
MD
