# frozen_string_literal: true

require_relative "rethtool_helper"

# The Ruby API against a real kernel: a veth pair in a namespace of each example's own,
# every value compared with what the ethtool CLI prints for the same interface.
RSpec.describe "Rethtool API" do
  it "reads InterfaceSettings (rethtool 0.0.8 API) as ethtool does" do
    with_veth do |bed|
      e = ethtool_settings(bed.ns, bed.a)
      i = parse_ethtool_fields(ethtool!(bed.ns, "-i", bed.a))
      s = Rethtool::InterfaceSettings.new(bed.a, netns: bed.ns)
      expect(s.driver).to eq(i.fetch("driver")).and eq("veth")
      expect(s.bus_info).to eq(i.fetch("bus-info"))
      mode = s.current_mode
      expect(mode).to be_a(Rethtool::InterfaceSettings::Mode)
      expect("#{mode.speed}Mb/s").to eq(e.fetch("Speed"))
      expect(mode.duplex.to_s).to eq(e.fetch("Duplex").downcase)
      expect(e.fetch("Port")).to eq("Twisted Pair")
      expect(mode.media).to eq("T")
      expect(mode.to_s).to eq("10000baseT/full")
      # veth reports no link modes: ethtool says "Not reported", the API an empty list...
      expect(e.fetch("Supported link modes")).to eq(%w[Not reported])
      expect(s.supported_modes).to eq([])
      expect(s.advertised_modes).to eq([])
      # ...and best_mode raises Errno::EOPNOTSUPP, as rethtool 0.0.8 did, naming the interface.
      expect { s.best_mode }.to raise_error(Errno::EOPNOTSUPP, /#{bed.a}: best_mode/)
      expect(s.link_settings.best_advertised_mode).to be_nil
    end
  end

  it "reads LinkSettings field by field as ethtool prints them" do
    with_veth do |bed|
      e = ethtool_settings(bed.ns, bed.a)
      ls = Rethtool::LinkSettings.new(bed.a, netns: bed.ns)
      expect("#{ls.speed}Mb/s").to eq(e.fetch("Speed"))
      expect(ls.duplex.to_s.capitalize).to eq(e.fetch("Duplex"))
      expect(ls.port_name).to eq(e.fetch("Port"))
      expect(ls.autoneg? ? "on" : "off").to eq(e.fetch("Auto-negotiation"))
      expect(ls.phy_address.to_s).to eq(e.fetch("PHYAD"))
      expect(ls.transceiver.to_s).to eq(e.fetch("Transceiver"))
      expect(e.fetch("MDI-X")).to eq("Unknown")
      expect(ls.mdix).to eq(:unknown)
      expect(ls.supports_autoneg? ? "Yes" : "No").to eq(e.fetch("Supports auto-negotiation"))
      expect(ls.advertises_autoneg? ? "Yes" : "No").to eq(e.fetch("Advertised auto-negotiation"))
      expect(ls.supported_pause).to eq([])
      expect(e.fetch("Supported pause frame use")).to eq("No")
      expect(ls.source).to eq(:glinksettings)
    end
  end

  it "sizes the link-mode masks as the kernel asks and names every bit as the kernel does" do
    with_veth do |bed|
      Rethtool::Interface.open(bed.a, netns: bed.ns) do |i|
        kernel = i.kernel_link_mode_names # ETH_SS_LINK_MODES from the running kernel
        expect(kernel.size).to be > 92 # more bits than the 6.1 UAPI header knows
        words = i.link_settings.link_mode_words
        expect(words).to eq((kernel.size + 31) / 32)
        kernel.each_with_index do |name, bit|
          next if bit >= Rethtool::Handle::KNOWN_LINK_MODES

          expect(Rethtool::Handle.link_mode(bit)[:name]).to eq(name), "bit #{bit}"
        end
        # Names the library has no table entry for are classified from the kernel's string.
        expect(Rethtool::Handle.classify_link_mode("1600000baseCR8/Full"))
          .to eq({ bit: 0, name: "1600000baseCR8/Full", kind: :speed, speed: 1_600_000, duplex: :full, media: "CR8" })
      end
    end
  end

  it "reports the link state from GLINK, down as soon as the peer or the interface is down" do
    with_veth do |bed|
      link = -> { ethtool_settings(bed.ns, bed.a).fetch("Link detected") }
      expect(link.call).to eq("yes")
      expect(Rethtool::LinkStatus.new(bed.a, netns: bed.ns).up?).to be(true)

      link_set(bed, bed.b, "down")
      expect(link.call).to eq("no")
      st = Rethtool::LinkStatus.new(bed.a, netns: bed.ns)
      expect([st.up?, st.down?]).to eq([false, true])

      link_set(bed, bed.b, "up")
      expect(Rethtool::LinkStatus.new(bed.a, netns: bed.ns).up?).to be(true)
      link_set(bed, bed.a, "down")
      expect(link.call).to eq("no")
      expect(Rethtool::LinkStatus.new(bed.a, netns: bed.ns).down?).to be(true)
    end
  end

  it "reads DriverSettings as ethtool -i does" do
    with_veth do |bed|
      i = parse_ethtool_fields(ethtool!(bed.ns, "-i", bed.a))
      d = Rethtool::DriverSettings.new(bed.a, netns: bed.ns)
      expect([d.driver, d.version, d.firmware_version, d.bus_info, d.erom_version])
        .to eq(i.values_at("driver", "version", "firmware-version", "bus-info", "expansion-rom-version"))
      expect(d.n_stats).to eq(ethtool_stats(bed.ns, bed.a).size)
    end
  end

  it "reads Statistics with the names, order and count of ethtool -S, also after the count changes" do
    with_veth do |bed|
      expected = ethtool_stats(bed.ns, bed.a)
      s = Rethtool::Statistics.new(bed.a, netns: bed.ns)
      expect(s.names).to eq(expected.map(&:first))
      expect(s.to_a).to eq(expected) # idle pair: every value is stable
      peer_index = Rethtool::Interface.open(bed.b, netns: bed.ns, &:index)
      expect(s["peer_ifindex"]).to eq(peer_index)

      # More queues, more statistics (10 -> 19 on 6.x kernels).
      ethtool!(bed.ns, "-L", bed.a, "rx", "2", "tx", "2")
      expected = ethtool_stats(bed.ns, bed.a)
      s = Rethtool::Statistics.new(bed.a, netns: bed.ns)
      expect(s.size).to eq(expected.size).and be > 10
      expect(s.names).to eq(expected.map(&:first))
    end
  end

  it "reads and sets Channels as ethtool -l / -L do" do
    with_veth do |bed|
      c = Rethtool::Channels.new(bed.a, netns: bed.ns)
      l = ethtool!(bed.ns, "-l", bed.a)
      max, cur = l.split("Current hardware settings:")
      expect(max[/^RX:\s+(\d+)/, 1].to_i).to eq(c.max_rx)
      expect(max[/^TX:\s+(\d+)/, 1].to_i).to eq(c.max_tx)
      expect(cur[/^RX:\s+(\d+)/, 1].to_i).to eq(c.rx_count)
      expect(cur[/^TX:\s+(\d+)/, 1].to_i).to eq(c.tx_count)
      expect(max[/^Combined:\s+(\S+)/, 1]).to eq("n/a")
      expect(c.max_combined).to eq(0)

      c.set(rx_count: 2, tx_count: 2)
      expect([c.rx_count, c.tx_count]).to eq([2, 2])
      cur = ethtool!(bed.ns, "-l", bed.a).split("Current hardware settings:").last
      expect([cur[/^RX:\s+(\d+)/, 1], cur[/^TX:\s+(\d+)/, 1]]).to eq(%w[2 2])
    end
  end

  it "raises Errno::EOPNOTSUPP naming the interface and operation where veth has no support, as ethtool fails" do
    with_veth do |bed|
      {
        Rethtool::RingSettings => ["-g", /#{bed.a}: get ring parameters \(ETHTOOL_GRINGPARAM\)/],
        Rethtool::PauseSettings => ["-a", /#{bed.a}: get pause parameters \(ETHTOOL_GPAUSEPARAM\)/],
        Rethtool::CoalesceSettings => ["-c", /#{bed.a}: get coalescing parameters \(ETHTOOL_GCOALESCE\)/]
      }.each do |cls, (flag, message)|
        _out, err, st = ethtool_run(bed.ns, flag, bed.a)
        expect(st.success?).to be(false)
        expect(err).to include("Operation not supported")
        expect { cls.new(bed.a, netns: bed.ns) }.to raise_error(Errno::EOPNOTSUPP, message)
      end
    end
  end

  it "reads the permanent address: none for veth, as ethtool -P says" do
    with_veth do |bed|
      expect(ethtool!(bed.ns, "-P", bed.a)).to eq("Permanent address: not set\n")
      pa = Rethtool::PermanentAddress.new(bed.a, netns: bed.ns)
      expect([pa.set?, pa.to_s, pa.bytes.bytesize]).to eq([false, "00:00:00:00:00:00", 6])
    end
  end

  it "reads InterfaceCounters as ip -s link does, moved by raw frames" do
    with_veth do |bed|
      sent = send_frames(bed.ns, bed.a, count: 7, size: 150)
      expect(sent).to eq("frames" => 7, "bytes" => 1050)
      send_frames(bed.ns, bed.a, count: 3, size: 60, ethertype: "88b5") # no handler: rx_dropped
      [bed.a, bed.b].each do |dev|
        ours = Rethtool::InterfaceCounters.new(dev, netns: bed.ns).to_h
        ip = ip_counters(bed.ns, dev)
        %i[rx_bytes rx_packets rx_errors rx_dropped tx_bytes tx_packets tx_errors tx_dropped].each do |k|
          expect(ours[k]).to eq(ip.fetch(k)), "#{dev} #{k}"
        end
      end
      b = Rethtool::InterfaceCounters.new(bed.b, netns: bed.ns)
      expect([b.rx_packets, b.rx_bytes, b.rx_dropped]).to eq([10, 1050 + 180, 3])
    end
  end

  it "refuses an EPERM change as an unprivileged user, while reads still work" do
    with_veth do |bed|
      _o, err, st = Open3.capture3("ip", "netns", "exec", bed.ns, "setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", "ethtool", "-L", bed.a, "rx", "2")
      expect(st.success?).to be(false)
      expect(err).to include("Operation not permitted")

      code = <<~RUBY
        require "rethtool"
        print Rethtool::LinkStatus.new(#{bed.a.inspect}).up?, " ", Process.uid, " "
        begin
          Rethtool::Channels.new(#{bed.a.inspect}).rx_count = 2
        rescue Errno::EPERM => e
          print e.message
        end
      RUBY
      out, err, st = ruby_as_nobody(bed.ns, code)
      expect(st.success?).to be(true), err
      expect(out).to eq("true 65534 Operation not permitted - #{bed.a}: set channels (ETHTOOL_SCHANNELS)")
      expect(Rethtool::Channels.new(bed.a, netns: bed.ns).rx_count).to eq(1)
    end
  end

  it "queries inside the namespace it is given and nowhere else" do
    with_veth do |bed|
      # The interface exists only in the test namespace: the caller's namespace has no such device.
      expect { Rethtool::LinkStatus.new(bed.a) }
        .to raise_error(Errno::ENODEV, /#{bed.a}: get link status \(ETHTOOL_GLINK\)/)
      # By name, by namespace file and by the pid of a process living in it.
      expect(Rethtool::LinkStatus.new(bed.a, netns: "/var/run/netns/#{bed.ns}").up?).to be(true)
      pid = Process.spawn("ip", "netns", "exec", bed.ns, "sleep", "30")
      begin
        ns_ino = File.stat("/var/run/netns/#{bed.ns}").ino
        deadline = Time.now + 5
        sleep 0.02 until (File.stat("/proc/#{pid}/ns/net").ino == ns_ino rescue false) || Time.now > deadline
        expect(Rethtool::DriverSettings.new(bed.a, netns: pid).driver).to eq("veth")
      ensure
        Process.kill("KILL", pid)
        Process.wait(pid)
      end
      expect { Rethtool::LinkStatus.new(bed.a, netns: "#{bed.ns}-missing") }
        .to raise_error(Errno::ENOENT, %r{network namespace #{bed.ns}-missing \(/var/run/netns/#{bed.ns}-missing\): open})
      expect { Rethtool::LinkStatus.new(bed.a, netns: "..") }.to raise_error(Rethtool::InvalidNamespaceName)
    end
  end

  it "refuses interface names the kernel would truncate, rather than query another interface" do
    with_veth do |bed|
      sh!("ip", "-n", bed.ns, "link", "add", "vethABCDEFGHIJK", "type", "veth", "peer", "name", "vethpeer#{bed.a[2..]}")
      expect(Rethtool::LinkStatus.new("vethABCDEFGHIJK", netns: bed.ns)).to be_a(Rethtool::LinkStatus)
      expect { Rethtool::LinkStatus.new("vethABCDEFGHIJKZ", netns: bed.ns) }
        .to raise_error(Rethtool::InvalidInterfaceName, /16 bytes/)
      expect(Rethtool::InvalidInterfaceName.ancestors).to include(Rethtool::Error, Ironshed::Error)
      expect { Rethtool::InterfaceSettings.new("#{bed.a}:1", netns: bed.ns) }.to raise_error(Rethtool::InvalidInterfaceName, /':'/)
      expect { Rethtool::DriverSettings.new("", netns: bed.ns) }.to raise_error(Rethtool::InvalidInterfaceName, /empty/)
      expect { Rethtool::DriverSettings.new("nosuch0", netns: bed.ns) }
        .to raise_error(Errno::ENODEV, /nosuch0: get driver information \(ETHTOOL_GDRVINFO\)/)
    end
  end

  it "reports lo as ethtool does: no link settings or driver info, link up, no statistics" do
    with_veth do |bed|
      _o, err, st = ethtool_run(bed.ns, "-i", "lo")
      expect([st.success?, err]).to eq([false, "Cannot get driver information: Operation not supported\n"])
      expect { Rethtool::InterfaceSettings.new("lo", netns: bed.ns) }
        .to raise_error(Errno::EOPNOTSUPP, /lo: get link settings \(ETHTOOL_GLINKSETTINGS, then ETHTOOL_GSET\)/)
      expect(ethtool_settings(bed.ns, "lo").fetch("Link detected")).to eq("yes")
      expect(Rethtool::LinkStatus.new("lo", netns: bed.ns).up?).to be(true)
      expect(Rethtool::Statistics.new("lo", netns: bed.ns).to_h).to eq({})
    end
  end

  it "keeps rethtool 0.0.8's constants and raw ioctl, with the buffer checked" do
    expect([Rethtool::SIOCETHTOOL, Rethtool::ETHTOOL_CMD_GLINK, Rethtool::ETHTOOL_CMD_GSET,
            Rethtool::ETHTOOL_CMD_GDRVINFO, Rethtool::ETHTOOL_CMD_GRINGPARAM, Rethtool::ETHTOOL_CMD_SRINGPARAM])
      .to eq([0x8946, 0x0a, 0x01, 0x03, 0x10, 0x11])
    expect(Rethtool).to be_a(Class)
    with_veth(b_up: false) do |bed|
      reply = Rethtool.ioctl(bed.a, [Rethtool::ETHTOOL_CMD_GLINK, 99].pack("L2"), netns: bed.ns)
      expect(reply.unpack("L2")).to eq([Rethtool::ETHTOOL_CMD_GLINK, 0])
      link_set(bed, bed.b, "up")
      holder = Struct.new(:data).new([Rethtool::ETHTOOL_CMD_GLINK, 0].pack("L2"))
      expect(Rethtool.ioctl(bed.a, holder, netns: bed.ns).data.unpack("L2")).to eq([0x0a, 1])
      # GSTRINGS with a count of 0 would let the kernel write every string it has.
      expect { Rethtool.ioctl(bed.a, [Rethtool::ETHTOOL_CMD_GSTRINGS, 1, 0].pack("L3"), netns: bed.ns) }
        .to raise_error(Rethtool::Error, /count of 0/)
      expect { Rethtool.ioctl(bed.a, [Rethtool::ETHTOOL_CMD_GDRVINFO].pack("L") + "\0" * 20, netns: bed.ns) }
        .to raise_error(Rethtool::Error, /shorter than the 196/)
    end
  end
end
