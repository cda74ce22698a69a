# frozen_string_literal: true

require "securerandom"
require "rethtool"

# Test beds for the rethtool and check_interface specs: each example gets its own network
# namespace with a veth pair (unique names, always deleted), the `ethtool` CLI run in the
# same namespace as the oracle, and raw frames for traffic. Nothing leaves the namespace.
module NetnsHelpers
  Bed = Struct.new(:ns, :a, :b)

  def sh!(*cmd)
    out, err, st = Open3.capture3(*cmd.map(&:to_s))
    raise "#{cmd.join(' ')} failed: #{err}#{out}" unless st.success?

    out
  end

  # Creates a namespace of the example's own (lo up, IPv6 off so that no background packets
  # move the counters), yields its name and a random tag for device names, deletes it.
  def with_netns
    tag = SecureRandom.hex(3)
    ns = "ish-#{Process.pid}-#{tag}"
    sh!("ip", "netns", "add", ns)
    begin
      sh!("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
          "net.ipv6.conf.default.disable_ipv6=1")
      sh!("ip", "-n", ns, "link", "set", "lo", "up")
      yield ns, tag
    ensure
      system("ip", "netns", "del", ns, err: File::NULL)
    end
  end

  # Creates a veth pair A/B (both up unless told otherwise) in a namespace of its own; yields
  # a Bed; deletes the namespace (and the pair).
  def with_veth(a_up: true, b_up: true)
    with_netns do |ns, tag|
      bed = Bed.new(ns, "va#{tag}", "vb#{tag}")
      sh!("ip", "-n", bed.ns, "link", "add", bed.a, "type", "veth", "peer", "name", bed.b)
      sh!("ip", "-n", bed.ns, "link", "set", bed.a, "up") if a_up
      sh!("ip", "-n", bed.ns, "link", "set", bed.b, "up") if b_up
      yield bed
    end
  end

  def link_set(bed, dev, state)
    sh!("ip", "-n", bed.ns, "link", "set", dev, state)
  end

  # Runs `ethtool ARGS` in the namespace: [stdout, stderr, status].
  def ethtool_run(ns, *args)
    Open3.capture3("ip", "netns", "exec", ns, "ethtool", *args.map(&:to_s))
  end

  # stdout of a successful `ethtool ARGS` in the namespace.
  def ethtool!(ns, *args)
    out, err, st = ethtool_run(ns, *args)
    raise "ethtool #{args.join(' ')} failed: #{err}" unless st.success?

    out
  end

  # `ethtool IF` as {"Speed" => "10000Mb/s", "Supported link modes" => [...], ...}: link-mode
  # lists (continued on indented lines) become arrays.
  def ethtool_settings(ns, dev)
    parse_ethtool_fields(ethtool!(ns, dev), lists: /link modes|FEC modes/)
  end

  def parse_ethtool_fields(text, lists: nil)
    h = {}
    key = nil
    text.each_line do |line|
      next if line.start_with?("Settings for")

      if (m = /\A\s*([^:]+):\s*(.*?)\s*\z/.match(line)) && !(key && line =~ /\A\s{9,}\S/ && h[key].is_a?(Array))
        key = m[1].strip
        h[key] = lists && key =~ lists ? m[2].split : m[2]
      elsif key && h[key].is_a?(Array)
        h[key] += line.split
      end
    end
    h
  end

  # `ethtool -S IF` as [[name, value], ...].
  def ethtool_stats(ns, dev)
    ethtool!(ns, "-S", dev).lines.drop(1).map do |l|
      name, value = l.strip.split(/:\s+/, 2)
      [name, Integer(value)]
    end
  end

  # `ip -s -j link show IF` counters: {rx_bytes:, rx_packets:, rx_dropped:, tx_...}.
  def ip_counters(ns, dev)
    j = JSON.parse(sh!("ip", "-n", ns, "-j", "-s", "link", "show", dev)).first.fetch("stats64")
    %w[rx tx].each_with_object({}) do |d, h|
      j.fetch(d).each { |k, v| h[:"#{d}_#{k}"] = v }
    end
  end

  # Sends +count+ raw frames of +size+ bytes on +dev+ inside +ns+.
  def send_frames(ns, dev, count:, size: 100, ethertype: "0800")
    JSON.parse(testkit("frames", "--netns", ns, "--dev", dev, "--count", count, "--size", size,
                       "--ethertype", ethertype))
  end

  # Runs Ruby code as nobody inside the namespace: [stdout, stderr, status].
  def ruby_as_nobody(ns, code)
    Open3.capture3("ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"), "-e", code)
  end
end

RSpec.configure do |c|
  c.include NetnsHelpers
end
