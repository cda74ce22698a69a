# frozen_string_literal: true

require "digest"
require "lvmsync"
require_relative "support/thin_env"
require_relative "support/lvm_env"
require_relative "support/proto3"

# lvmsync --full (a whole-volume first copy) on stand-ins: a thin snapshot of the stand-in
# pool (real thin metadata written by thin_restore, read by the real thin_dump), a classic
# snapshot and a plain LV as image files, and the files-only API. The real kernel runs the
# same on real thin pools (spec/lvmsync_full_vm_spec.rb).
RSpec.describe "lvmsync --full", :tmpdir do
  def path(name) = File.join(@dir, name)
  def sha_of(name) = Digest::SHA256.file(path(name)).hexdigest
  def lvmsync(*args, env: @env) = run_exe("lvmsync", *args, env: env, binmode: true)
  BLOCK = ThinEnv::BLOCK

  # Allocated bytes of a file (st_blocks), which holes do not count.
  def allocated(name) = File.stat(path(name)).blocks * 512

  # The records of a stream (spec/support/proto3.rb frames it): [handshake line,
  # [[offset, length, :data | :discard], ...] sorted], control items left out.
  def records(stream)
    hs, items, ext = Proto3.items(stream)
    recs = items.reject { |off, _, _, _| off >= 1 << 63 }.map do |off, len, _, _|
      ext && len >= 0x8000_0000 ? [off, len & 0x7fff_ffff, :discard] : [off, len, :data]
    end
    [hs.chomp, recs.sort]
  end

  def coalesce(pairs)
    pairs.sort.each_with_object([]) do |(o, l), acc|
      acc.any? && acc.last[0] + acc.last[1] == o ? acc.last[1] += l : acc << [o, l]
    end
  end

  describe "of a thin snapshot (the stand-in pool)" do
    # thin-snap (id 2) maps 50 scattered blocks of 512; the origin (id 1) others.
    before do
      rng = Random.new(7)
      @snap = (0...512).to_a.sample(50, random: rng).to_h { |b| [b, b] }
      origin = @snap.reject { |b, _| b == @snap.keys.first }.merge(511 => 600)
      data = (0...700).to_h { |d| [d, rng.bytes(BLOCK)] }
      ThinEnv.metadata(path("tmeta"), { 1 => origin, 2 => @snap, 3 => {} })
      ThinEnv.image(path("thin-snap.img"), @snap, data)
      ThinEnv.image(path("thin1.img"), origin, data)
      ThinEnv.image(path("thin-snap2.img"), {}, data)
      File.open(path("dest.img"), "wb") { |f| f.truncate(512 * BLOCK) }
      @env = ThinEnv.build(@dir, images: %w[thin1 thin-snap thin-snap2].to_h { |lv| [lv, path("#{lv}.img")] },
                                 metadata: path("tmeta"))
    end

    it "sends the mapped blocks as data and the rest as discard records: the file gets holes" do
      out, err, st = lvmsync("-v", "--full", "vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin-snap.img"))
      # Only the mapped blocks take space at the destination (a file system block or so of slack).
      expect(allocated("dest.img")).to be_between(50 * BLOCK, 50 * BLOCK + (1 << 20))
      expect(err).to include("thin_dump -m --dev-id 2 ", "50 blocks mapped", "metadata snapshot released")
      expect(err).to match(/sent 3\.1 MiB in \d+ records and 28\.9 MiB as \d+ discard records/)
      expect(out).to be_empty
      expect(ThinEnv.calls(@dir).grep(/message/)).to eq(
        ["dmsetup message vgfix-pool-tpool 0 reserve_metadata_snap",
         "dmsetup message vgfix-pool-tpool 0 release_metadata_snap"]
      )
      expect(ThinEnv.held?(@dir)).to be false
    end

    it "--stdout: data records are exactly the mapped blocks; --plain sends the rest as zeros instead" do
      out, err, st = lvmsync("--full", "--stdout", "vgfix/thin-snap")
      expect(st.exitstatus).to eq(0), err
      line, recs = records(out)
      expect(line).to eq("lvmsync PROTO[3] discards")
      mapped = coalesce(@snap.keys.map { |b| [b * BLOCK, BLOCK] })
      expect(coalesce(recs.select { |r| r[2] == :data }.map { |o, l, _| [o, l] })).to eq(mapped)
      expect(coalesce(recs.map { |o, l, _| [o, l] })).to eq([[0, 512 * BLOCK]])
      expect(err).to include("only an lvmsync that lists 'discards'")

      out, err, st = lvmsync("--full", "--plain", "--stdout", "vgfix/thin-snap")
      expect(st.exitstatus).to eq(0), err
      line, recs = records(out)
      expect(line).to eq("lvmsync PROTO[3]")
      expect(recs.map { |r| r[2] }.uniq).to eq([:data])
      expect(coalesce(recs.map { |o, l, _| [o, l] })).to eq([[0, 512 * BLOCK]])
      File.binwrite(path("plain.stream"), out)
      _, err, st = lvmsync("--apply", path("plain.stream"), path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin-snap.img"))
    end

    # Bytes of the 4 KiB blocks of +bytes+ that are not all zeros.
    def nonzero_block_bytes(bytes)
      (0...bytes.bytesize).step(4096).count { |o| bytes.byteslice(o, 4096).count("\0") != 4096 } * 4096
    end

    it "--snapback onto a destination of zeros: the zeros take no room in the snapback file, which restores it" do
      # A fresh volume: zeros, but for a few blocks (one of them in a 64 KiB block the copy leaves unmapped).
      rng = Random.new(11)
      dest = "\0".b * (512 * BLOCK)
      [[5 * BLOCK + 4096, 4096], [200 * BLOCK, BLOCK], [511 * BLOCK + 10, 100]].each do |off, len|
        dest[off, len] = rng.bytes(len)
      end
      File.binwrite(path("dest.img"), dest)
      nonzero = nonzero_block_bytes(dest)
      expect(nonzero).to eq(4096 + BLOCK + 4096)
      _, err, st = lvmsync("--full", "--snapback", path("sb"), "vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin-snap.img"))
      zeros = (512 * BLOCK) - nonzero
      expect(err).to include("lvmsync: snapback: saved 32.0 MiB of old data " \
                             "(#{format('%.1f', zeros / 1048576.0)} MiB of it zeros, which take no room)")
      # The old non-zero blocks, the JOURNAL item (at most 4 KiB) and 12-byte headers: not 32 MiB.
      size = File.size(path("sb"))
      hs, items, ext = Proto3.items(File.binread(path("sb")))
      expect([hs, ext]).to eq([Proto3::HANDSHAKE_DISCARDS, true])
      expect(size).to be <= nonzero + 4096 + 100 + (items.size * 36)
      expect(items.size).to be < 200
      # Restored byte for byte: from the file, and from standard input.
      File.binwrite(path("after.img"), File.binread(path("dest.img")))
      _, err, st = lvmsync("--apply", path("sb"), path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(path("dest.img")) == dest).to be(true)
      File.binwrite(path("dest.img"), File.binread(path("after.img")))
      _, err, st = run_exe("lvmsync", "--apply", "-", path("dest.img"), env: @env, binmode: true,
                                                                        stdin_data: File.binread(path("sb")))
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(path("dest.img")) == dest).to be(true)
    end

    it "LVM::ThinSnapshot#mapping and LVM::ChangeSet.full: the API behind it" do
      saved = @env.keys.to_h { |k| [k, ENV.fetch(k, nil)] }
      ENV.update(@env)
      m = LVM::ThinSnapshot.new("vgfix", "thin-snap").mapping
      expect([m.dev_id, m.block_size, m.mapped_blocks]).to eq([2, BLOCK, 50])
      expect(m.mapped_extents).to eq(coalesce(@snap.keys.map { |b| [b * BLOCK, BLOCK] }))
      set = LVM::ChangeSet.full(path("thin-snap.img"), mapping: m)
      expect(set.data_extents).to eq(m.mapped_extents)
      expect(set.data_bytes + set.discard_bytes).to eq(512 * BLOCK)
      expect(ThinEnv.held?(@dir)).to be false
      parsed = LVM::ThinMapping.parse(File.read("#{path('tmeta')}.xml"), 2)
      expect(parsed.mapped_extents).to eq(m.mapped_extents)
      expect { LVM::ThinMapping.parse("<superblock data_block_size=\"128\">", 2) }
        .to raise_error(LVM::ThinDeltaError, /thin_dump stopped early/)
    ensure
      ENV.update(saved)
    end

    it "with --from, or on the receiving side, is a usage error (exit 2), and nothing is written" do
      before = sha_of("dest.img")
      _, err, st = lvmsync("--full", "--from", "vgfix/thin-snap", "vgfix/thin-snap2", path("dest.img"))
      expect(st.exitstatus).to eq(2)
      expect(err).to include("--full sends a whole snapshot; --from sends what changed")
      _, err, st = lvmsync("--full", "--apply", "-", path("dest.img"))
      expect(st.exitstatus).to eq(2)
      expect(err).to include("lvmsync: --full is for the sending side")
      expect(sha_of("dest.img")).to eq(before)
    end
  end

  describe "of a classic snapshot and of a plain LV (read whole for zeros)" do
    before do
      rng = Random.new(3)
      # 8 MiB: data in 64 KiB grains 3, 40-47 and the last one, one byte in grain 90.
      @img = "\0".b * (8 << 20)
      [3, *40..47, 127].each { |g| @img[g * BLOCK, BLOCK] = rng.bytes(BLOCK) }
      @img[90 * BLOCK + 5] = "x"
      File.binwrite(path("snapview.img"), @img)
      File.binwrite(path("origin.img"), rng.bytes(8 << 20))
      File.binwrite(path("dest.img"), rng.bytes(8 << 20))
      @env = LvmEnv.build(
        @dir,
        vgs: { "vg-sync" => LvmEnv.classic_metadata },
        lvs: { "vg-sync/src-snap" => %w[vg-sync src-snap], "vg-sync/src-lv" => %w[vg-sync src-lv] },
        nodes: { "vg--sync-src--lv" => path("origin.img"), "vg--sync-src--snap" => path("snapview.img") }
      )
    end

    it "a classic snapshot: its own (frozen) content, all-zero grains as discards (holes)" do
      _, err, st = lvmsync("-v", "--full", "vg-sync/src-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("snapview.img"))
      expect(allocated("dest.img")).to be <= 11 * BLOCK + (1 << 20)
      expect(err).to include("reading #{@dir}/dev/mapper/vg--sync-src--snap for its all-zero parts",
                             "704.0 KiB of data")
      expect(err).not_to include("is no snapshot")
    end

    it "--snapback onto a destination full of data: the snapback file holds that data, and restores it" do
      before = File.binread(path("dest.img"))
      _, err, st = lvmsync("--full", "--snapback", path("sb"), "vg-sync/src-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("snapview.img"))
      expect(err).to include("lvmsync: snapback: saved 8.0 MiB of old data to #{path('sb')}")
      _, items, = Proto3.items(File.binread(path("sb")))
      records = items.reject { |off, _, _, _| off >= 1 << 63 }
      expect(records.map { |_, len, _, _| len }.max).to be < 0x8000_0000 # no discard record
      expect(records.sum { |_, _, data, _| data.bytesize }).to eq(8 << 20)
      expect(File.size(path("sb"))).to be > 8 << 20
      _, err, st = lvmsync("--apply", path("sb"), path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(path("dest.img")) == before).to be(true)
    end

    it "a destination smaller than the volume is refused before anything is written" do
      File.binwrite(path("small.img"), "k" * (4 << 20))
      _, err, st = lvmsync("--full", "vg-sync/src-snap", path("small.img"))
      expect(st.exitstatus).to eq(1)
      expect(err).to include("past the end of the destination (4194304 bytes)")
      expect(File.binread(path("small.img"))).to eq("k" * (4 << 20))
    end

    it "a plain LV: copied whole, with a warning that nothing may write to it meanwhile" do
      _, err, st = lvmsync("--full", "vg-sync/src-lv", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("origin.img"))
      expect(err).to include("lvmsync: note: vg-sync/src-lv is no snapshot: nothing may write to it")
    end

    it "the files-only API: LVM::ChangeSet.full of an image, sent and applied onto a sparse file" do
      set = LVM::ChangeSet.full(path("snapview.img"))
      expect(set.data_extents).to eq([[3 * BLOCK, BLOCK], [40 * BLOCK, 8 * BLOCK], [90 * BLOCK, BLOCK],
                                      [127 * BLOCK, BLOCK]])
      expect(set.discard_bytes).to eq((128 - 11) * BLOCK)
      File.open(path("s.stream"), "wb") { |f| LVMSync.send_changes(set, path("snapview.img"), f, discards: true) }
      File.open(path("fresh.img"), "wb") { |f| f.truncate(8 << 20) }
      r = LVMSync.apply(path("s.stream"), path("fresh.img"))
      expect([r.bytes, r.discard_bytes]).to eq([11 * BLOCK, (128 - 11) * BLOCK])
      expect(sha_of("fresh.img")).to eq(sha_of("snapview.img"))
      expect(allocated("fresh.img")).to be <= 11 * BLOCK + (1 << 20)
    end
  end
end
