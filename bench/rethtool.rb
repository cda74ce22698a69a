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

  native = per_call(n: 2000) { in_process(iface) }
  fork_parse = per_call(n: 40) { ethtool_parse(iface) }
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
  plugin = lambda do |*cmd|
    times = Array.new(15) do
      t = now
      _o, st = Open3.capture2(*cmd, "-n", ns, "-i", a, "--speed", "10G", "-s", state)
      raise "check_interface exited #{st.exitstatus}" unless st.exitstatus.zero?

      now - t
    end
    median(times)
  end
  plugin_direct, plugin_gems, ruby_bare = clean_env do
    plugin.call(exe) # first run writes the state file
    [plugin.call(exe), plugin.call(RbConfig.ruby, exe),
     median(Array.new(15) { t = now; system(RbConfig.ruby, "--disable-gems", "-e", "0"); now - t })]
  end
  File.delete(state) if File.exist?(state)
ensure
  system("ip", "netns", "del", ns)
end

ratio = fork_parse / native
cpu = File.read("/proc/cpuinfo")[/model name\s*:\s*(.*)/, 1]
load = File.read("/proc/loadavg").split.first(3).join(" ")
puts <<~MD
  ## rethtool / check_interface

  Machine: #{cpu}, #{Etc.nprocessors} cores, Linux #{`uname -r`.strip}, Ruby #{RUBY_VERSION}; load average #{load} at the end of the run (shared machine: expect noise).
  Reproduce: `bin/bench rethtool` (root: it creates and deletes a network namespace with a veth pair).

  | what | time (median) | vs in-process |
  |---|---:|---:|
  | in-process `InterfaceSettings.new` + `LinkStatus.new` (3 ioctls + GLINK), inside the namespace | #{fmt(native)} | 1× |
  | same, from outside with `netns:` (each query enters the namespace on a helper thread) | #{fmt(with_netns)} | #{format('%.1f', with_netns / native)}× |
  | `ethtool IF` spawned and its output parsed, inside the namespace | #{fmt(fork_parse)} | #{format('%.0f', ratio)}× |
  | whole `check_interface -n NS -i IF --speed 10G` run (exe, RubyGems not loaded) | #{fmt(plugin_direct)} | |
  | the same run as `ruby exe/check_interface` (RubyGems loaded, as a gem-installed wrapper does) | #{fmt(plugin_gems)} | |
  | `ruby --disable-gems -e 0` (interpreter start-up alone, for scale) | #{fmt(ruby_bare)} | |

  Targets: in-process query ≥ 100× faster than fork+parse: #{ratio >= 100 ? 'met' : 'NOT met'} (#{format('%.0f', ratio)}×);
  a plugin run under 150 ms: #{plugin_direct < 0.150 ? 'met' : 'NOT met'} (#{fmt(plugin_direct)}; #{fmt(plugin_gems)} with RubyGems loaded).
MD
