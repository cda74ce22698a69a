# frozen_string_literal: true

require "etc"
require "fileutils"
require "open3"
require "rbconfig"

# Shared pieces of the benchmark scripts: timing commands (wall time and peak RSS through
# GNU time), medians, the machine description and markdown tables.
module Bench
  ROOT = File.expand_path("..", __dir__)
  TESTKIT = File.join(ROOT, "target", "release", "ironshed-testkit")
  PATTERN_LIMIT = File.join(ROOT, "target", "bench", "pattern-limit")
  INFLATE_LIMIT = File.join(ROOT, "target", "bench", "inflate-limit")

  module_function

  # A scratch directory on a real filesystem (not tmpfs), emptied first.
  def workdir(name)
    dir = File.join(ENV.fetch("BENCH_DIR", "/var/tmp/ironshed-bench"), name)
    FileUtils.rm_rf(dir)
    FileUtils.mkdir_p(dir)
    dir
  end

  # Copies +src+ to +dest+ and flushes it, so that a timed run that ends with fdatasync
  # (vmdksync, lvmsync) flushes only its own writes, not the dirty pages of this copy.
  def fresh_copy(src, dest)
    FileUtils.cp(src, dest)
    File.open(dest, "r+", &:fsync)
  end

  # Builds bench/peers/pattern_limit.c (the write-pattern reference) when it is missing or older
  # than its source; returns its path.
  def pattern_limit
    build_peer(PATTERN_LIMIT, "pattern_limit.c")
  end

  # Builds bench/peers/inflate_limit.c (the single-pass streamOptimized reference, linked
  # with libdeflate); returns its path.
  def inflate_limit
    build_peer(INFLATE_LIMIT, "inflate_limit.c", "-ldeflate", "-lpthread")
  end

  def build_peer(out, name, *libs)
    src = File.join(ROOT, "bench", "peers", name)
    unless File.exist?(out) && File.mtime(out) >= File.mtime(src)
      FileUtils.mkdir_p(File.dirname(out))
      run!("cc", "-O2", "-Wall", "-o", out, src, *libs)
    end
    out
  end

  # The load average now, for the record of a run on a shared machine.
  def load
    File.read("/proc/loadavg").split.first(3).join(" ")
  end

  # Runs each command of +cmds+ (name => argv) +runs+ times, interleaved (a, b, c, a, b, c, ...)
  # so that a change in the machine's load affects all alike; returns name => [median wall,
  # max peak RSS in KiB]. +setup+ (optional, name => callable) runs before each measurement.
  def interleaved(runs, cmds, setup: {})
    got = Hash.new { |h, k| h[k] = [] }
    runs.times do
      cmds.each { |name, cmd| got[name] << measure(*cmd, setup: setup[name]) }
    end
    got.transform_values do |r|
      walls = r.map(&:first).sort
      [walls[walls.size / 2], r.map(&:last).max]
    end
  end

  def run!(*cmd, **opts)
    out, err, st = Open3.capture3(*cmd.map(&:to_s), **opts)
    raise "#{cmd.join(' ')} failed (#{st.exitstatus}): #{err}" unless st.success?

    out
  end

  # Runs +cmd+ under GNU time; returns [wall seconds, peak RSS in KiB].
  def measure(*cmd, setup: nil)
    setup&.call
    _out, err, st = Open3.capture3("/usr/bin/time", "-f", "BENCH %e %M", *cmd.map(&:to_s))
    raise "#{cmd.join(' ')} failed (#{st.exitstatus}): #{err}" unless st.success?

    line = err.lines.grep(/\ABENCH /).last or raise "no timing from #{cmd.first}"
    _, wall, rss = line.split
    [wall.to_f, rss.to_i]
  end

  # Median of +runs+ measurements: [wall, rss].
  def median_of(runs, *cmd, setup: nil)
    results = Array.new(runs) { measure(*cmd, setup: setup) }
    walls = results.map(&:first).sort
    [walls[walls.size / 2], results.map(&:last).max]
  end

  def mib(bytes)
    bytes / 1024.0 / 1024
  end

  def machine
    cpu = File.read("/proc/cpuinfo")[/model name\s*:\s*(.*)/, 1] || "unknown CPU"
    mem = File.read("/proc/meminfo")[/MemTotal:\s*(\d+)/, 1].to_i / 1024 / 1024
    fs = run!("df", "-T", ENV.fetch("BENCH_DIR", "/var/tmp")).lines.last.split[1]
    "#{Etc.nprocessors} × #{cpu}, #{mem} GiB RAM, kernel #{Etc.uname[:release]}, " \
      "scratch filesystem #{fs}, #{Time.now.utc.strftime('%Y-%m-%d')}"
  end

  def table(header, rows)
    out = +"| #{header.join(' | ')} |\n|#{header.map { '---' }.join('|')}|\n"
    rows.each { |r| out << "| #{r.join(' | ')} |\n" }
    out
  end
end
