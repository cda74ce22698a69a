# frozen_string_literal: true

# Runs inside the real-kernel guest (bin/vm-run --e1000) for spec/rethtool_e1000_spec.rb: loads
# the e1000 driver, brings its NIC up, and prints one JSON object holding, for each check,
# what rethtool reports and what the ethtool CLI prints for the same NIC. The spec compares
# them on the host. Everything stays in the guest: the NIC's hub is connected to nothing.
$LOAD_PATH.unshift File.expand_path("../../lib", __dir__)
require "json"
require "open3"
require "rbconfig"
require "rethtool"

def sh(*cmd)
  out, err, st = Open3.capture3(*cmd.map(&:to_s))
  { "out" => out, "err" => err, "status" => st.exitstatus }
end

def wait_for(what, seconds: 20)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
  loop do
    v = yield
    return v if v

    raise "timed out waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    sleep 0.1
  end
end

def attempt
  { "value" => yield }
rescue SystemCallError, Rethtool::Error => e
  { "error" => e.class.name, "errno" => (e.errno if e.respond_to?(:errno)), "message" => e.message }
end

r = {}
r["modprobe"] = sh("modprobe", "e1000")
nic = wait_for("an e1000 interface") do
  Dir["/sys/class/net/*/device/driver"].map { |d| [d, File.basename(File.readlink(d))] }
                                       .find { |_, drv| drv == "e1000" }&.then { |d, _| d.split("/")[4] }
end
r["nic"] = nic
sh("ip", "link", "set", nic, "up")
wait_for("link up on #{nic}") { sh("ethtool", nic)["out"].include?("Link detected: yes") }

r["ethtool_i"] = sh("ethtool", "-i", nic)
r["ethtool_S"] = sh("ethtool", "-S", nic)
r["ethtool_P"] = sh("ethtool", "-P", nic)
r["ethtool_a"] = sh("ethtool", "-a", nic)
r["ethtool_c"] = sh("ethtool", "-c", nic)
r["ethtool_g"] = sh("ethtool", "-g", nic)

s = Rethtool::InterfaceSettings.new(nic)
r["settings"] = { "driver" => s.driver, "bus_info" => s.bus_info, "current" => s.current_mode.to_s,
                  "best" => s.best_mode.to_s, "supported" => s.supported_modes.map(&:to_s),
                  "advertised" => s.advertised_modes.map(&:to_s) }
r["driver_settings"] = Rethtool::DriverSettings.new(nic).to_h.transform_keys(&:to_s)
# Some fields (MDI-X) settle a moment after the link comes up: read ours between two
# identical ethtool outputs, so both describe the same state.
ls = nil
10.times do
  before = sh("ethtool", nic)
  ls = Rethtool::LinkSettings.new(nic)
  r["ethtool"] = sh("ethtool", nic)
  break if before == r["ethtool"]

  sleep 0.5
end
r["link_settings"] = ls.to_h.transform_keys(&:to_s).merge("port_name" => ls.port_name)
r["link_up"] = Rethtool::LinkStatus.new(nic).up?
r["stats"] = Rethtool::Statistics.new(nic).names
r["perm_addr"] = Rethtool::PermanentAddress.new(nic).to_s
r["pause"] = attempt { Rethtool::PauseSettings.new(nic).to_h.transform_keys(&:to_s) }
r["coalesce"] = attempt { Rethtool::CoalesceSettings.new(nic).to_h.transform_keys(&:to_s) }

rings = Rethtool::RingSettings.new(nic)
r["rings_before"] = rings.to_h.transform_keys(&:to_s)
rings.rx_pending = 512
r["rings_after_set"] = rings.to_h.transform_keys(&:to_s)
r["ethtool_g_after_set"] = sh("ethtool", "-g", nic)
sh("ethtool", "-G", nic, "rx", "1024", "tx", "384")
r["rings_after_ethtool_G"] = Rethtool::RingSettings.new(nic).to_h.transform_keys(&:to_s)
r["rings_too_big"] = attempt { Rethtool::RingSettings.new(nic).set(rx_pending: 1 << 20) }
r["rings_as_nobody"] = sh("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", RbConfig.ruby,
                          "-I", File.expand_path("../../lib", __dir__), "-e",
                          "require 'rethtool'; r = Rethtool::RingSettings.new(#{nic.inspect}); " \
                          "print r.rx_max_pending, ' '; begin; r.rx_pending = 256; rescue Errno::EPERM => e; " \
                          "print e.message; end")

plugin = File.expand_path("../../exe/check_interface", __dir__)
r["plugin_up"] = sh(RbConfig.ruby, plugin, "-i", nic, "--speed", "1G", "--duplex", "full", "-s", "/tmp/ci.state")
sh("ip", "link", "set", nic, "down")
r["link_up_after_down"] = Rethtool::LinkStatus.new(nic).up?
r["ethtool_after_down"] = sh("ethtool", nic)
r["plugin_down"] = sh(RbConfig.ruby, plugin, "-i", nic, "-s", "/tmp/ci.state")

# A driver without ETHTOOL_GLINK (dummy, a module the host kernel may lack): check_interface
# reads IFF_RUNNING instead, which follows the carrier dummy lets us switch off.
r["dummy_modprobe"] = sh("modprobe", "dummy")
sh("ip", "link", "add", "dum0", "type", "dummy")
sh("ip", "link", "set", "dum0", "up")
r["dummy_ethtool"] = sh("ethtool", "dum0")
r["dummy_ip_up"] = sh("ip", "-j", "link", "show", "dum0")
r["plugin_dummy_up"] = sh(RbConfig.ruby, plugin, "-i", "dum0", "-s", "/tmp/dum.state", "-v")
sh("ip", "link", "set", "dum0", "carrier", "off")
r["dummy_ip_no_carrier"] = sh("ip", "-j", "link", "show", "dum0")
r["plugin_dummy_no_carrier"] = sh(RbConfig.ruby, plugin, "-i", "dum0", "-s", "/tmp/dum.state")

puts JSON.generate(r)
