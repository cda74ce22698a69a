# frozen_string_literal: true

require "open3"
require "rbconfig"
require "tmpdir"
require_relative "rethtool_helper"
require_relative "support/lvm_fixtures"

# Every file the original gems shipped under lib/ — lvmsync 3.3 (lib/lvm.rb, lib/lvm/*.rb,
# lib/vgcfgbackup.rb) and rethtool 0.0.8 (lib/rethtool.rb, lib/rethtool/*.rb) — can be
# required alone, as their users and the original lvmsync's own specs did, and what it
# defines works: each path is required first and only, in a fresh `ruby -Ilib`.
RSpec.describe "the original gems' require paths" do
  LIB = File.expand_path("../lib", __dir__)

  # Runs +script+ after `require path` in a fresh interpreter with only lib/ on the load path
  # and warnings on (inside network namespace +netns+ if given); returns its standard output
  # (failing on any error or warning).
  def alone(path, script, netns: nil)
    cmd = [RbConfig.ruby, "-w", "-I", LIB, "-e", "require #{path.inspect}\n#{script}"]
    cmd = ["ip", "netns", "exec", netns, *cmd] if netns
    out, err, st = Open3.capture3(*cmd)
    expect(err).to eq(""), "#{path}: #{err}"
    expect(st).to be_success
    out
  end

  def fixture(name) = LvmFixtures.path(name).inspect
  def fake_vgcfgbackup = LvmFixtures.path("fake-vgcfgbackup")

  context "lvmsync" do
    it "lvm" do
      out = alone("lvm", <<~RUBY)
        vg = LVM::VGConfig.new("vgfix", vgcfgbackup_command: "#{fake_vgcfgbackup} classic-snapshot")
        lv = LVM::LogicalVolume.new("vgfix", "lin-snap", vgcfg: vg)
        puts lv.snapshot?, lv.origin.lv_name
      RUBY
      expect(out).to eq("true\nlin\n")
    end

    it "lvm/vg_config (as the original's spec did, with a header-only and a whole VG)" do
      Dir.mktmpdir do |dir|
        trivial = File.join(dir, "trivial-vgcfgbackup")
        File.write(trivial, "#!/bin/sh\nprintf 'contents = \"Text Format Volume Group\"\\nversion = 1\\n\\n" \
                            "description = \"vgcfgbackup -f /tmp/faffen2\"\\n' > \"$2\"\n")
        File.chmod(0o755, trivial)
        out = alone("lvm/vg_config", <<~RUBY)
          t = LVM::VGConfig.new("trivial", :vgcfgbackup_command => #{trivial.inspect})
          p t.class, t.version, t.description, t.volume_group, t.uuid, t.logical_volumes, t.physical_volumes
          vg = LVM::VGConfig.new("vgfix", :vgcfgbackup_command => "#{fake_vgcfgbackup} thin")
          puts vg.uuid, vg.logical_volumes["thin-snap"].origin
        RUBY
        uuid = File.read(LvmFixtures.path("thin.vg"))[/^vgfix \{\n\tid = "([^"]+)"/, 1]
        expect(out.lines(chomp: true)).to eq(["LVM::VGConfig", "1", '"vgcfgbackup -f /tmp/faffen2"', "nil", "nil",
                                              "{}", "{}", uuid, "thin1"])
      end
    end

    it "lvm/lv_config" do
      out = alone("lvm/lv_config", <<~RUBY)
        lv = LVM::VGConfig.load(#{fixture('thin.vg')}).logical_volumes["thin-snap"]
        p lv.class, lv.thin?, lv.snapshot?, lv.thin_pool, lv.device_id
      RUBY
      expect(out).to eq("LVM::LVConfig\ntrue\ntrue\n\"pool\"\n2\n")
    end

    it "lvm/pv_config" do
      out = alone("lvm/pv_config", <<~RUBY)
        pv = LVM::VGConfig.load(#{fixture('thin.vg')}).physical_volumes["pv0"]
        p pv.class, pv.name
      RUBY
      expect(out).to eq("LVM::PVConfig\n\"pv0\"\n")
    end

    it "lvm/helpers" do
      out = alone("lvm/helpers", <<~RUBY)
        include LVM::Helpers
        p [htonq(1)].pack("Q").bytes, LVM::Helpers.dm_name("vg-a", "snap-1", "cow")
      RUBY
      expect(out).to eq("[0, 0, 0, 0, 0, 0, 0, 1]\n\"vg--a-snap--1-cow\"\n")
    end

    it "lvm/snapshot" do
      out = alone("lvm/snapshot", <<~RUBY)
        s = LVM::Snapshot.new("vgfix", "lin-snap", vgcfg: LVM::VGConfig.load(#{fixture('classic-snapshot.vg')}))
        puts s.origin, s.metadata_device
      RUBY
      expect(out).to eq("lin\n/dev/mapper/vgfix-lin--snap-cow\n")
    end

    it "lvm/thin_snapshot" do
      out = alone("lvm/thin_snapshot", <<~RUBY)
        s = LVM::ThinSnapshot.new("vgfix", "thin-snap2", vgcfg: LVM::VGConfig.load(#{fixture('thin.vg')}))
        p s.origin, s.device_id, s.origin_snapshot.device_id, s.pool.target_name
      RUBY
      expect(out).to eq("\"thin1\"\n3\n1\n\"vgfix-pool-tpool\"\n")
    end

    it "lvm/logical_volume" do
      out = alone("lvm/logical_volume", <<~RUBY)
        lv = LVM::LogicalVolume.new("vgfix", "thin-snap", vgcfg: LVM::VGConfig.load(#{fixture('thin.vg')}))
        p lv.snapshot?, lv.thin?, lv.origin.path, lv.snapshot.class
      RUBY
      expect(out).to eq("true\ntrue\n\"/dev/mapper/vgfix-thin1\"\nLVM::ThinSnapshot\n")
    end

    it "vgcfgbackup (the parse tree the original built with Treetop)" do
      out = alone("vgcfgbackup", <<~RUBY)
        parser = VgCfgBackupParser.new
        root = parser.parse(File.read(#{fixture('linear.vg')}))
        vg = root.groups["vgfix"]
        p root.variable_value("version"), vg.variable_value("extent_size"), vg.groups["logical_volumes"].groups.keys
        p vg.variables.map(&:name).first(2), parser.parse("vg {"), parser.failure_reason
      RUBY
      expect(out.lines(chomp: true)).to eq(["1", "8192", '["lin"]', '["id", "seqno"]', "nil",
                                            '"(metadata text): line 1, column 5: end of file inside section \'vg\' ' \
                                            'opened at line 1, column 1"'])
    end
  end

  context "rethtool 0.0.8" do
    include NetnsHelpers

    # The queries run inside the test's namespace, as rethtool 0.0.8's callers ran them.
    def alone_in(bed, path, script)
      alone(path, script, netns: bed.ns)
    end

    it "rethtool" do
      with_veth do |bed|
        out = alone_in(bed, "rethtool", "p Rethtool::LinkStatus.new(#{bed.a.inspect}).up?, " \
                                        "Rethtool::InterfaceSettings.new(#{bed.a.inspect}).driver")
        expect(out).to eq("true\n\"veth\"\n")
      end
    end

    it "rethtool/link_status" do
      with_veth(b_up: false) do |bed|
        out = alone_in(bed, "rethtool/link_status", "p Rethtool::LinkStatus.new(#{bed.a.inspect}).down?")
        expect(out).to eq("true\n")
      end
    end

    it "rethtool/interface_settings" do
      with_veth do |bed|
        out = alone_in(bed, "rethtool/interface_settings",
                       "s = Rethtool::InterfaceSettings.new(#{bed.a.inspect}); puts s.current_mode, s.driver")
        expect(out).to eq("#{ethtool_settings(bed.ns, bed.a).fetch('Speed').delete_suffix('Mb/s')}baseT/full\nveth\n")
      end
    end

    it "rethtool/driver_settings" do
      with_veth do |bed|
        out = alone_in(bed, "rethtool/driver_settings",
                       "d = Rethtool::DriverSettings.new(#{bed.a.inspect}); p d.driver, d.bus_info")
        expect(out).to eq("\"veth\"\n\"\"\n")
      end
    end

    it "rethtool/ring_settings (veth has no rings: the kernel's refusal, named)" do
      with_veth do |bed|
        out = alone_in(bed, "rethtool/ring_settings", <<~RUBY)
          begin
            Rethtool::RingSettings.new(#{bed.a.inspect})
          rescue SystemCallError => e
            p e.is_a?(Errno::EOPNOTSUPP), e.message
          end
        RUBY
        expect(out).to eq("true\n\"Operation not supported - #{bed.a}: get ring parameters (ETHTOOL_GRINGPARAM)\"\n")
      end
    end

    it "rethtool/ethtool_value and rethtool/ethtool_cmd (rethtool 0.0.8's structures with Rethtool.ioctl)" do
      with_veth do |bed|
        out = alone_in(bed, "rethtool/ethtool_value", <<~RUBY)
          v = Rethtool::EthtoolValue.new
          v.cmd = Rethtool::ETHTOOL_CMD_GLINK
          p Rethtool.ioctl(#{bed.a.inspect}, v).value, v.value, v.data.bytesize
        RUBY
        expect(out).to eq("1\n0\n8\n")
        out = alone_in(bed, "rethtool/ethtool_cmd", <<~RUBY)
          d = Rethtool::EthtoolCmdDriver.new
          d.cmd = Rethtool::ETHTOOL_CMD_GDRVINFO
          r = Rethtool.ioctl(#{bed.a.inspect}, d)
          p r.driver.pack("c*").delete("\\0"), d.data.bytesize, Rethtool::EthtoolCmd.new.data.bytesize
          ring = Rethtool::EthtoolCmdRing.new
          ring.cmd = Rethtool::ETHTOOL_CMD_GRINGPARAM
          begin
            Rethtool.ioctl(#{bed.a.inspect}, ring)
          rescue Errno::EOPNOTSUPP => e
            p e.message
          end
        RUBY
        expect(out).to eq("\"veth\"\n196\n44\n\"Operation not supported - #{bed.a}: ioctl SIOCETHTOOL (command 0x10)\"\n")
      end
    end
  end
end
