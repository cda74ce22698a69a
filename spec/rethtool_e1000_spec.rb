# frozen_string_literal: true

require_relative "rethtool_helper"

# rethtool on a real NIC driver: an emulated e1000 in the real-kernel guest (bin/vm-run
# --e1000), where rings, autonegotiation and supported/advertised link modes exist (veth has
# none of them). One boot runs spec/vm/rethtool_e1000_probe.rb, which records rethtool's
# answers next to the ethtool CLI's for the same NIC; the examples compare them.
RSpec.describe "Rethtool on an e1000 NIC (real-kernel guest)", :vm do
  before(:all) do
    out, err, st = vm_run(RbConfig.ruby, File.join(SpecHelpers::ROOT, "spec", "vm", "rethtool_e1000_probe.rb"),
                          e1000: true, timeout: 600)
    raise "guest probe failed (#{st.exitstatus}): #{err}" unless st.success?

    @r = JSON.parse(out.lines.last)
  end

  def ethtool_out(key)
    v = @r.fetch(key)
    raise "ethtool #{key} failed: #{v['err']}" unless v["status"].zero?

    v["out"]
  end

  it "reports the driver, bus and link settings as ethtool does" do
    i = parse_ethtool_fields(ethtool_out("ethtool_i"))
    expect(@r["settings"].values_at("driver", "bus_info")).to eq(i.values_at("driver", "bus-info"))
    expect(@r["settings"]["driver"]).to eq("e1000")
    d = @r["driver_settings"]
    expect(d.values_at("driver", "version", "fw_version", "bus_info"))
      .to eq(i.values_at("driver", "version", "firmware-version", "bus-info"))

    e = parse_ethtool_fields(ethtool_out("ethtool"), lists: /link modes|FEC modes/)
    ls = @r["link_settings"]
    expect("#{ls['speed']}Mb/s").to eq(e.fetch("Speed")).and eq("1000Mb/s")
    expect(ls["duplex"].capitalize).to eq(e.fetch("Duplex"))
    expect(ls["port_name"]).to eq(e.fetch("Port"))
    expect(ls["autoneg"] ? "on" : "off").to eq(e.fetch("Auto-negotiation")).and eq("on")
    expect(ls["phy_address"].to_s).to eq(e.fetch("PHYAD"))
    expect(ls["transceiver"]).to eq(e.fetch("Transceiver"))
    # ethtool prints MDI-X as off (MDI), on (MDI-X) or Unknown, then "(auto)" when the control
    # is automatic.
    mdix = { "mdi" => "off", "mdi_x" => "on" }.fetch(ls["mdix"], "Unknown")
    expect("#{mdix}#{ls['mdix_ctrl'] == 'auto' ? ' (auto)' : ''}").to eq(e.fetch("MDI-X"))
    expect(@r["link_up"]).to be(true)
    expect(e.fetch("Link detected")).to eq("yes")
  end

  it "lists the supported and advertised modes, autonegotiation, ports and pause as ethtool does" do
    e = parse_ethtool_fields(ethtool_out("ethtool"), lists: /link modes|FEC modes/)
    ls = @r["link_settings"]
    expect(ls["supported_link_modes"]).to eq(e.fetch("Supported link modes"))
    expect(ls["advertised_link_modes"]).to eq(e.fetch("Advertised link modes"))
    expect(ls["supported_link_modes"]).to include("1000baseT/Full")
    expect(ls["supports_autoneg"] ? "Yes" : "No").to eq(e.fetch("Supports auto-negotiation"))
    expect(ls["advertises_autoneg"] ? "Yes" : "No").to eq(e.fetch("Advertised auto-negotiation"))
    expect("[ #{ls['supported_ports'].map(&:upcase).join(' ')} ]").to eq(e.fetch("Supported ports"))
    expect(ls["supported_pause"].empty? ? "No" : ls["supported_pause"]).to eq(e.fetch("Supported pause frame use"))
    # The words per mask are the guest kernel's (its ETH_SS_LINK_MODES count / 32, rounded up).
    expect(ls["link_mode_words"]).to be_between(3, 4)

    # rethtool 0.0.8's view of the same: Mode structs, best mode.
    s = @r["settings"]
    expect(s["supported"]).to eq(ls["supported_link_modes"].map { |m| m.sub(%r{/(\w+)\z}) { "/#{Regexp.last_match(1).downcase}" } })
    expect([s["current"], s["best"]]).to eq(%w[1000baseT/full 1000baseT/full])
  end

  it "reads statistics, the permanent address and pause parameters as ethtool does" do
    names = ethtool_out("ethtool_S").lines.drop(1).map { |l| l.strip.split(":").first }
    expect(@r["stats"]).to eq(names)
    expect(names.size).to be > 30
    expect("Permanent address: #{@r['perm_addr']}\n").to eq(ethtool_out("ethtool_P"))
    a = ethtool_out("ethtool_a")
    pause = @r["pause"].fetch("value")
    { "Autonegotiate" => "autoneg", "RX" => "rx_pause", "TX" => "tx_pause" }.each do |label, key|
      expect(a[/^#{label}:\s+(\w+)/, 1]).to eq(pause[key] ? "on" : "off"), label
    end
    # e1000 has no coalescing op: both fail the same way.
    expect(@r["ethtool_c"]["status"]).not_to eq(0)
    expect(@r["ethtool_c"]["err"]).to include("Operation not supported")
    expect(@r["coalesce"]).to include("errno" => 95, "message" => /eth\d+: get coalescing parameters \(ETHTOOL_GCOALESCE\)/)
  end

  it "reads and sets ring sizes as ethtool -g / -G do, and refuses what the driver or privileges forbid" do
    ring = lambda do |text|
      max, cur = text.split("Current hardware settings:")
      [max[/^RX:\s+(\d+)/, 1].to_i, max[/^TX:\s+(\d+)/, 1].to_i, cur[/^RX:\s+(\d+)/, 1].to_i, cur[/^TX:\s+(\d+)/, 1].to_i]
    end
    before = @r["rings_before"]
    expect(before.values_at("rx_max_pending", "tx_max_pending", "rx_pending", "tx_pending")).to eq(ring.call(ethtool_out("ethtool_g")))
    expect(before.values_at("rx_max_pending", "rx_pending")).to eq([4096, 256])

    # Set with rethtool, read with ethtool.
    expect(@r["rings_after_set"]["rx_pending"]).to eq(512)
    expect(ring.call(ethtool_out("ethtool_g_after_set"))[2..]).to eq([512, 256])
    # Set with ethtool, read with rethtool.
    expect(@r["rings_after_ethtool_G"].values_at("rx_pending", "tx_pending")).to eq([1024, 384])

    expect(@r["rings_too_big"]).to include("error" => "Errno::EINVAL",
                                           "message" => /eth\d+: set ring parameters \(ETHTOOL_SRINGPARAM\)/)
    expect(@r["rings_as_nobody"]["out"]).to match(/\A4096 Operation not permitted - eth\d+: set ring parameters \(ETHTOOL_SRINGPARAM\)\z/)
  end

  it "runs check_interface against the NIC: OK at 1G full, CRITICAL once it is down" do
    nic = @r["nic"]
    up = @r["plugin_up"]
    expect(up["status"]).to eq(0), up["out"] + up["err"]
    expect(up["out"]).to start_with("INTERFACE OK - #{nic} up, 1000Mb/s full")
    expect(@r["link_up_after_down"]).to be(false)
    expect(parse_ethtool_fields(ethtool_out("ethtool_after_down")).fetch("Link detected")).to eq("no")
    down = @r["plugin_down"]
    expect(down["status"]).to eq(2)
    expect(down["out"]).to start_with("INTERFACE CRITICAL - #{nic} down (administratively down)")
  end

  it "runs check_interface against a dummy device, which has no ETHTOOL_GLINK: IFF_RUNNING decides" do
    expect(@r["dummy_modprobe"]["status"]).to eq(0), @r["dummy_modprobe"]["err"]
    expect(@r["dummy_ethtool"]["out"]).not_to include("Link detected")
    up_flags = JSON.parse(@r["dummy_ip_up"]["out"]).first.fetch("flags")
    expect(up_flags).to include("UP", "LOWER_UP")
    up = @r["plugin_dummy_up"]
    expect(up["status"]).to eq(0), up["out"] + up["err"]
    expect(up["out"]).to start_with("INTERFACE OK - dum0 up, first run: baseline saved, rates from the next run " \
                                    "(driver dummy; link from IFF_RUNNING (no ETHTOOL_GLINK)) | ")
    expect(up["out"]).to include("'link'=1")

    expect(JSON.parse(@r["dummy_ip_no_carrier"]["out"]).first.fetch("flags")).to include("UP", "NO-CARRIER")
    down = @r["plugin_dummy_no_carrier"]
    expect(down["status"]).to eq(2), down["out"] + down["err"]
    expect(down["out"]).to start_with("INTERFACE CRITICAL - dum0 down (not running), rx 0 B/s")
    expect(down["out"]).to include("'link'=0")
  end
end
