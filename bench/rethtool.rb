# frozen_string_literal: true

# bin/bench rethtool: the rethtool query and the check_interface plugin, against the way
# scripts did it before (running `ethtool IF` and parsing its output). Creates a network
# namespace with a veth pair for the run and deletes it afterwards. Prints a markdown section.
#
# Rows (medians; ratios from the same run):
#   * in-process InterfaceSettings.new + LinkStatus.new, measured inside the namespace;
#   * the same from outside, with netns: (each query enters the namespace on a helper thread);
#   * `ethtool IF` spawned and parsed (speed, duplex, link detected), inside the namespace;
#   * a whole check_interface run (process start to exit), as Nagios runs it.
require "json"
require "open3"
require "rbconfig"
require "etc"
require "securerandom"
require "tmpdir"
require "rethtool"
require_relative "bench_helper"

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def median(xs)
  s = xs.sort
  s[s.size / 2]
end

# Median seconds per call of the block, over +batches+ batches of +n+ calls.
def per_call(n:, batches: 7)
  times = Array.new(batches) do
    t = now
    n.times { yield }
    (now - t) / n
  end
  median(times)
end

def ethtool_parse(iface)
  out, st = Open3.capture2("ethtool", iface)
  raise "ethtool failed" unless st.success?

  { speed: out[/Speed: (\d+)Mb\/s/, 1].to_i, duplex: out[/Duplex: (\w+)/, 1].downcase.to_sym,
    link: out[/Link detected: (\w+)/, 1] == "yes" }
end

def in_process(iface, netns = nil)
  s = Rethtool::InterfaceSettings.new(iface, netns: netns)
  l = Rethtool::LinkStatus.new(iface, netns: netns)
  { speed: s.current_mode.speed, duplex: s.current_mode.duplex, link: l.up? }
end

if ARGV[0] == "--inner"
  # Inside the namespace: both sides pay no namespace cost.
  iface = ARGV[1]
  raise "results differ" unless in_process(iface) == ethtool_parse(iface)

  # Interleaved batches, so that both sides see the same load on a shared machine.
  native = []
  fork_parse = []
  9.times do
    native << per_call(n: 2000, batches: 1) { in_process(iface) }
    fork_parse << per_call(n: 30, batches: 1) { ethtool_parse(iface) }
  end
  native = median(native)
  fork_parse = median(fork_parse)
  puts JSON.generate(native: native, ethtool: fork_parse)
  exit 0
end

def fmt(sec)
  if sec < 1e-3 then format("%.1f µs", sec * 1e6)
  elsif sec < 1 then format("%.2f ms", sec * 1e3)
  else format("%.2f s", sec)
  end
end

def sh!(*cmd)
  out, err, st = Open3.capture3(*cmd)
  raise "#{cmd.join(' ')}: #{err}" unless st.success?

  out
end

# Child processes must start as a user's would: without the RUBYOPT/RUBYLIB that
# `bundle exec` (which bin/bench uses) sets, or every child Ruby loads Bundler.
def clean_env
  return yield unless defined?(Bundler)

  Bundler.with_unbundled_env { yield }
end

root = File.expand_path("..", __dir__)
tag = SecureRandom.hex(3)
ns = "ish-bench-#{tag}"
a = "ba#{tag}"
b = "bb#{tag}"
sh!("ip", "netns", "add", ns)
begin
  sh!("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
  sh!("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
  sh!("ip", "-n", ns, "link", "set", a, "up")
  sh!("ip", "-n", ns, "link", "set", b, "up")

  inner = clean_env do
    JSON.parse(sh!("ip", "netns", "exec", ns, RbConfig.ruby, "-I", File.join(root, "lib"), __FILE__, "--inner", a))
  end
  native = inner.fetch("native")
  fork_parse = inner.fetch("ethtool")
  raise "netns query differs" unless in_process(a, ns) == { speed: 10_000, duplex: :full, link: true }

  with_netns = per_call(n: 500) { in_process(a, ns) }

  state = File.join(Dir.tmpdir, "ish-bench-#{tag}.state")
  exe = File.join(root, "exe", "check_interface")
  args = ["-n", ns, "-i", a, "--speed", "10G", "-s", state]
  # Wall time with the monotonic clock (GNU time rounds to 10 ms); peak RSS from GNU time.
  run = lambda do |*cmd|
    wall = median(Array.new(15) do
      t = now
      Bench.run!(*cmd)
      now - t
    end)
    [wall, Bench.measure(*cmd)[1]]
  end
  plugin_direct, plugin_gems, ruby_bare = clean_env do
    Bench.run!(exe, *args) # the first run writes the state file
    [run.call(exe, *args), run.call(RbConfig.ruby, "-rrubygems", exe, *args), run.call(RbConfig.ruby, "--disable-gems", "-e", "0")]
  end
  File.delete(state) if File.exist?(state)
ensure
  system("ip", "netns", "del", ns)
end

ratio = fork_parse / native
load = File.read("/proc/loadavg").split.first(3).join(" ")
rows = [
  ["in-process `InterfaceSettings.new` + `LinkStatus.new` (GLINKSETTINGS, GDRVINFO, GLINK), inside the namespace",
   fmt(native), "1×"],
  ["the same from outside, with `netns:` (each query enters the namespace on a helper thread)",
   fmt(with_netns), format("%.1f×", with_netns / native)],
  ["`ethtool IF` spawned and its output parsed (speed, duplex, link), inside the namespace",
   fmt(fork_parse), format("**%.0f×**", ratio)]
]
plugin_rows = [
  ["`check_interface -n NS -i IF --speed 10G` (the executable as shipped, RubyGems not loaded)",
   fmt(plugin_direct[0]), "#{plugin_direct[1] / 1024} MiB"],
  ["the same with RubyGems loaded first, as a gem's wrapper does (`ruby -rrubygems exe/check_interface`)",
   fmt(plugin_gems[0]), "#{plugin_gems[1] / 1024} MiB"],
  ["`ruby --disable-gems -e 0` (interpreter start-up alone, for scale)", fmt(ruby_bare[0]),
   "#{ruby_bare[1] / 1024} MiB"]
]
puts <<~MD
  ## rethtool / check_interface

  Machine: #{Bench.machine}; load average #{load} at the end of the run (a shared machine: compare
  ratios rather than absolute times).
  Reproduce: `bin/bench rethtool` (as root: it creates a network namespace with a veth pair and
  deletes it afterwards). Medians of 9 interleaved batches of 2000 in-process queries and of 30
  ethtool runs, of 7 batches of 500 namespaced queries, and of 15 plugin runs.

  One query as a monitoring script makes it (speed, duplex, link state of one interface):

  #{Bench.table(%w[how time ratio], rows).strip}

  Whole plugin runs (process start to exit, state file read and written, wall time and peak RSS):

  #{Bench.table(["run", "time", "peak RSS"], plugin_rows).strip}

  Targets: in-process query ≥ 100× faster than fork+parse: #{ratio >= 100 ? 'met' : 'NOT met'} (#{format('%.0f', ratio)}×);
  a plugin run under 150 ms: #{plugin_direct[0] < 0.150 ? 'met' : 'NOT met'} (#{fmt(plugin_direct[0])}).
MD
