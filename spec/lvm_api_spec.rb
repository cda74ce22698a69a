# frozen_string_literal: true

require "lvm"
require_relative "support/lvm_env"
require_relative "support/lvm_fixtures"

# The original lvmsync's LVM:: API, on real vgcfgbackup files written by LVM 2.03 in the
# real-kernel guest (spec/fixtures/lvm, made by spec/guest/lvmsync.sh), checked against
# `lvs --segments` of the same volume groups.
RSpec.describe "LVM:: API (compatible with lvmsync's lib/lvm)" do
  FAKE = LvmFixtures.path("fake-vgcfgbackup")

  def vg(fixture, name = "vgfix")
    LVM::VGConfig.new(name, vgcfgbackup_command: "#{FAKE} #{fixture}")
  end

  it "parses every fixture consistently with lvs --segments" do
    LvmFixtures.check_against_lvs(self, LvmFixtures.path("thin.vg"), LvmFixtures.path("thin.segments"))
    LvmFixtures.check_against_lvs(self, LvmFixtures.path("classic-hyphen.vg"), LvmFixtures.path("classic-hyphen.segments"))
    Dir[LvmFixtures.path("*.vg")].each { |f| expect(LVM::VGConfig.load(f).problems).to eq([]), f }
  end

  it "runs vgcfgbackup (the original's vgcfgbackup_command option, as a keyword or a hash)" do
    v = vg("linear")
    expect(v).to be_an(LVM::VGConfig)
    expect(v.version).to eq(1)
    expect(v.description).to match(/\Avgcfgbackup -q -f \S+linear\.vg vgfix\z/)
    expect(v.uuid).to match(/\A[A-Za-z0-9]{6}(-[A-Za-z0-9]{4}){5}-[A-Za-z0-9]{6}\z/)
    expect(v.name).to eq("vgfix")
    expect(v.extent_size).to eq(8192)
    expect(v.tags).to eq(["site-a"])
    legacy = LVM::VGConfig.new("vgfix", { vgcfgbackup_command: "#{FAKE} linear" })
    expect(legacy.uuid).to eq(v.uuid)
  end

  it "physical volumes are LVM::PVConfig, keyed by name" do
    pvs = vg("thin").physical_volumes
    expect(pvs.keys).to eq(%w[pv0 pv1])
    expect(pvs.values).to all(be_an(LVM::PVConfig))
    oracle = File.readlines(LvmFixtures.path("thin.pvs"), chomp: true).map { |l| l.split("|") }
    oracle.each do |dev, pe_start, pe_count|
      pv = pvs.values.find { |p| p.device == dev }
      expect([pv.pe_start, pv.pe_count]).to eq([Integer(pe_start), Integer(pe_count)])
    end
  end

  it "linear LVs: two segments, tags, read_ahead none (which the original's grammar could not parse)" do
    lv = vg("linear").logical_volumes["lin"]
    expect(lv).to be_an(LVM::LVConfig)
    expect([lv.thin?, lv.snapshot?, lv.type]).to eq([false, false, "striped"])
    expect(lv.segments.map { |s| [s.start_extent, s.extent_count, s.stripes] }).to eq([[0, 2, [["pv0", 0]]], [2, 1, [["pv1", 0]]]])
    expect(lv.tags).to eq(%w[web db])
    expect(lv.read_ahead).to eq(-1)
    expect(lv.size).to eq(12 << 20)
    expect(lv.visible?).to be(true)
  end

  it "a striped LV over two PVs (where the original crashed)" do
    lv = vg("striped").logical_volumes["stripes"]
    seg = lv.segments.first
    expect([seg.type, seg.stripe_count, seg.stripe_size, seg.extent_count]).to eq(["striped", 2, 128, 4])
    expect(seg.stripes.map(&:first)).to eq(%w[pv0 pv1])
    expect(seg["stripe_size"]).to eq(128)
  end

  it "classic snapshots: the COW LV is the snapshot, the hidden snapshotN LV names it" do
    v = vg("classic-snapshot")
    snap = v.logical_volumes["lin-snap"]
    expect([snap.snapshot?, snap.thin?, snap.visible?]).to eq([true, false, false])
    hidden = v.logical_volumes["snapshot0"]
    expect([hidden.cow_store, hidden.origin, hidden.chunk_size, hidden.snapshot?]).to eq(["lin-snap", "lin", 8192, false])
    expect(v.classic_snapshots).to eq("lin-snap" => { bookkeeping_lv: "snapshot0", origin: "lin", chunk_size: 8192,
                                                      merging: false })
    h = vg("classic-hyphen", "vg-sync")
    expect(h.classic_snapshots.keys.sort).to eq(%w[src-snap tiny])
    expect(h.classic_snapshots.values.map { |s| s[:origin] }.uniq).to eq(["src-lv"])
  end

  it "thin pools, thin LVs and thin snapshots (the original's thintest/thinsnap cases)" do
    v = vg("thin")
    pool = v.logical_volumes["pool"]
    expect([pool.thin?, pool.snapshot?, pool.chunk_size, pool.type]).to eq([false, false, 65_536, "thin-pool"])
    expect(pool.segments.first.metadata).to eq("pool_tmeta")
    thin = v.logical_volumes["thin1"]
    expect([thin.thin?, thin.snapshot?, thin.thin_pool, thin.device_id]).to eq([true, false, "pool", 1])
    snap = v.logical_volumes["thin-snap2"]
    expect([snap.thin?, snap.snapshot?, snap.origin, snap.device_id]).to eq([true, true, "thin1", 3])
    expect(snap.flags).to eq(["ACTIVATION_SKIP"])
    expect(v.logical_volumes.keys).to include("pool_tmeta", "pool_tdata", "lvol0_pmspare")
  end

  it "reports vgcfgbackup failures and unparseable output as LVM::Error" do
    expect { vg("linear", "othervg") }.to raise_error(LVM::Error, /failed \(exit status 5\): Volume group "othervg" not found/)
    expect { LVM::VGConfig.parse("vg {\n id = \n}\n", source: "x.vg") }
      .to raise_error(LVM::MetadataError, "x.vg: line 3, column 1: expected a value for 'id', found '}'")
    expect(LVM::MetadataError.ancestors).to include(LVM::Error, Ironshed::Error, StandardError)
  end

  it "ThinPool#status reads dmsetup's line: a Hash, only :mode for a failed pool, a malformed field named" do
    status = ->(line) { LVM::ThinPool.new("vgfix", "pool", dmsetup: "sh -c 'echo \"$0\"' '#{line}'").status }
    expect(status.call("0 131072 thin-pool 2 113/1024 24/1024 - rw discard_passdown queue_if_no_space - 256"))
      .to eq({ transaction_id: 2, metadata_used: 113, metadata_total: 1024, data_used: 24, data_total: 1024,
               held_root: nil, mode: "rw", needs_check: false })
    expect(status.call("0 131072 thin-pool 2 113/1024 24/1024 7 ro a b needs_check")[:held_root]).to eq(7)
    expect(status.call("0 131072 thin-pool Fail")).to eq({ mode: "Fail" })
    expect { status.call("0 131072 thin-pool 2 113 24/1024 - rw a b - 256") }
      .to raise_error(LVM::MetadataSnapshotError, "thin pool vgfix/pool: unexpected status from dmsetup: 0 131072 " \
                                                  "thin-pool 2 113 24/1024 - rw a b - 256 (the metadata usage is " \
                                                  '"113", not USED/TOTAL)')
  end

  describe "LogicalVolume and Snapshot on a snapshot's devices", :tmpdir do
    before do
      @layout = JSON.parse(testkit("cow", "--dir", @dir, "--origin-size", "32M", "--chunk-size", "4K",
                                   "--cow-size", "16M", "--write", "12M:3M", "--write", "0:512", "--write", "1M:4K"))
      env = LvmEnv.build(@dir, vgs: { "vg-sync" => File.read(LvmFixtures.path("classic-hyphen.vg")) },
                               lvs: { "/dev/vg-sync/src-snap" => %w[vg-sync src-snap] },
                               nodes: { "vg--sync-src--snap-cow" => File.join(@dir, "cow.img") })
      @saved = env.to_h { |k, _| [k, ENV.fetch(k, nil)] }
      ENV.update(env)
    end

    after do
      ENV.update(@saved)
    end

    it "resolves the path with lvs, finds the origin, and lists the changes as coalesced inclusive Ranges" do
      lv = LVM::LogicalVolume.new("/dev/vg-sync/src-snap")
      expect([lv.vg_name, lv.lv_name, lv.snapshot?]).to eq(%w[vg-sync src-snap] << true)
      expect(lv.path).to eq(File.join(@dir, "dev", "mapper", "vg--sync-src--snap"))
      expect(lv.origin.path).to eq(File.join(@dir, "dev", "mapper", "vg--sync-src--lv"))
      expect(lv.changes).to eq([0..4095, (1 << 20)..((1 << 20) + 4095), (12 << 20)..((15 << 20) - 1)])
      snap = LVM::Snapshot.new("vg-sync", "src-snap")
      expect(snap.origin).to eq("src-lv")
      expect(snap.chunk_size).to eq(4096)
      expect(snap.differences).to eq(lv.changes)
      expect(LVM::LogicalVolume.new("vg-sync", "dest").changes).to eq([])
    end

    it "a thin snapshot's changes need its pool active, and a thin LV (clear reasons)" do
      vgcfg = LVM::VGConfig.load(LvmFixtures.path("thin.vg"))
      expect { LVM::ThinSnapshot.new("vgfix", "thin-snap", vgcfg: vgcfg).differences }
        .to raise_error(LVM::MetadataSnapshotError,
                        "thin pool vgfix/pool is not active (no #{@dir}/dev/mapper/vgfix-pool-tpool): activate " \
                        "it, or a thin LV in it (lvchange -ay vgfix/pool)")
      expect { LVM::ThinSnapshot.new("vgfix", "lin", vgcfg: LVM::VGConfig.load(LvmFixtures.path("linear.vg"))) }
        .to raise_error(LVM::Error, "vgfix/lin: not a thin LV")
    end

    it "raises LVM::Error for a path lvs does not know" do
      expect { LVM::LogicalVolume.new("/dev/nope/nope") }.to raise_error(LVM::Error, /Failed to interrogate LVM about '\/dev\/nope\/nope'/)
    end
  end
end
