# frozen_string_literal: true

# vmdksync --full: the whole disk an image describes — a parentless image, or a chain whose
# base disk is sparse — written onto a destination full of garbage, compared byte for byte
# with `qemu-img convert -O raw` of the same image.
RSpec.describe "vmdksync --full", :tmpdir do
  # +size+ bytes of mixed data: random stretches, zeros, a repeated text pattern, and a stretch
  # that is only partly zeros, in an order fixed by +seed+.
  def mixed_data(size, seed)
    rng = Random.new(seed)
    out = +""
    while out.bytesize < size
      n = [rng.rand(1..(3 << 20)), size - out.bytesize].min
      out << case rng.rand(4)
             when 0 then rng.bytes(n)
             when 1 then "\0" * n
             when 2 then ("ironshed #{rng.rand(1000)} " * ((n / 12) + 1)).byteslice(0, n)
             else (rng.bytes(512) + ("\0" * 3584)) * (n / 4096) + ("\0" * (n % 4096))
             end
    end
    out
  end

  def garbage(path, size)
    File.binwrite(path, Random.new(size).bytes(size))
  end

  def qemu_convert(src, out, *opts)
    _o, e, st = Open3.capture3("qemu-img", "convert", "-f", "raw", "-O", "vmdk", *opts, src.to_s, out.to_s)
    raise "qemu-img convert failed: #{e}" unless st.success?
  end

  def same_bytes?(a, b)
    system("cmp", "-s", a.to_s, b.to_s)
  end

  # A streamOptimized image made by qemu-img from mixed data whose size is no multiple of the
  # 64 KiB grain; returns [image, qemu's raw reading].
  def stream_image(size = (12 << 20) + (7 * 512))
    src = File.join(@dir, "src.raw")
    File.binwrite(src, mixed_data(size, 11))
    img = File.join(@dir, "export.vmdk")
    qemu_convert(src, img, "-o", "subformat=streamOptimized")
    [img, qemu_raw(img, File.join(@dir, "qemu.raw"))]
  end

  # A monolithicSparse base disk made by qemu-img, a COWD delta over it (its parentCID set to
  # the base's CID) and a seSparse delta over that (with zeroed and unmapped grains); returns
  # [the newest descriptor, qemu's raw reading of the chain].
  def sparse_chain
    files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "16M", "--seed", 4,
                               "--layer", "cowd", "--random-writes", "100:4K", "--write", "5M:3000",
                               "--layer", "sesparse", "--random-writes", "100:4K", "--zero", "2M:64K",
                               "--unmap", "3M:64K"))
    File.delete(files["flat"])
    src = File.join(@dir, "base.raw")
    File.binwrite(src, mixed_data(16 << 20, 12))
    base = files["base"]
    File.delete(base)
    qemu_convert(src, base, "-o", "subformat=monolithicSparse")
    # qemu writes the CID without leading zeros; the delta's text descriptor takes it as it is.
    cid = File.binread(base)[/^CID=(\h+)$/, 1] or raise "no CID in #{base}"
    first = files["layers"].first["descriptor"]
    File.write(first, File.read(first).sub("parentCID=5a17b9ae", format("parentCID=%08x", cid.hex)))
    newest = files["layers"].last["descriptor"]
    [newest, qemu_raw(newest, File.join(@dir, "qemu.raw"))]
  end

  it "a qemu-made streamOptimized image: qemu's bytes, verified, and --undo restores the garbage" do
    img, want = stream_image
    dest = File.join(@dir, "dest.raw")
    garbage(dest, File.size(want))
    before = File.binread(dest)
    undo = File.join(@dir, "undo")
    _o, err, st = run_exe("vmdksync", "--full", "--verify", "--undo", undo, img, dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("identical to the chain")
    expect(same_bytes?(dest, want)).to be(true)
    expect(File.size(undo)).to be > File.size(want)
    _o, err, st = run_exe("lvmsync", "--apply", undo, dest)
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(dest) == before).to be(true)
  end

  it "a monolithicSparse base with a COWD and a seSparse delta: qemu's bytes on a garbage file and loop device" do
    newest, want = sparse_chain
    dest = File.join(@dir, "dest.raw")
    [[], ["--discard-zeros"]].each do |opts|
      garbage(dest, 16 << 20)
      out, err, st = run_exe("vmdksync", "-v", "--full", "--verify", *opts, newest, dest)
      expect(st.exitstatus).to eq(0), err
      expect(out).to eq("")
      expect(err).to include("chain:       3 layers (the base disk last)", "its content is included")
      expect(same_bytes?(dest, want)).to be(true), "with #{opts}"
    end
    garbage(dest, 16 << 20)
    with_loop_device(dest) do |dev|
      _o, err, st = run_exe("vmdksync", "--full", "--discard-zeros", "--verify", newest, dev)
      expect(st.exitstatus).to eq(0), err
      expect(err).to match(/discarded/)
      expect(same_bytes?(dev, want)).to be(true)
    end
    # --base naming the base disk: the same disk.
    garbage(dest, 16 << 20)
    _o, err, st = run_exe("vmdksync", "--full", "--base", File.join(@dir, "vm.vmdk"), newest, dest)
    expect(st.exitstatus).to eq(0), err
    expect(same_bytes?(dest, want)).to be(true)
  end

  it "a twoGbMaxExtentSparse base of two extents (2 GiB + 5 MiB, mostly unallocated), zeros written or discarded" do
    size = (2048 + 5) << 20
    src = File.join(@dir, "src.raw")
    data = mixed_data(3 << 20, 13)
    File.open(src, "wb") do |f|
      f.truncate(size)
      [0, 700 << 20, (2047 << 20) + 512, size - data.bytesize].each { |at| f.pwrite(data, at) }
    end
    img = File.join(@dir, "vm.vmdk")
    qemu_convert(src, img, "-o", "subformat=twoGbMaxExtentSparse")
    expect(File.read(img).scan(/^RW \d+ SPARSE/).size).to eq(2)
    want = qemu_raw(img, File.join(@dir, "qemu.raw"))
    dest = File.join(@dir, "dest.raw")
    # Old data wherever the image has none, inside and across the extents' boundary.
    [[], ["--discard-zeros"]].each do |opts|
      File.open(dest, "wb") do |f|
        f.truncate(size)
        [0, 100 << 20, 2047 << 20, size - (1 << 20)].each { |at| f.pwrite(Random.new(at).bytes(1 << 20), at) }
      end
      _o, err, st = run_exe("vmdksync", "--full", *opts, img, dest)
      expect(st.exitstatus).to eq(0), err
      expect(same_bytes?(dest, want)).to be(true), "with #{opts.inspect}"
    end
  end

  it "flat base disks: a qemu-made monolithicFlat image, and an ESX chain over vm-flat.vmdk" do
    src = File.join(@dir, "src.raw")
    File.binwrite(src, mixed_data((5 << 20) + 1536, 14))
    img = File.join(@dir, "flat.vmdk")
    qemu_convert(src, img, "-o", "subformat=monolithicFlat")
    expect(File.read(img)).to match(/^RW \d+ FLAT "flat-flat.vmdk" 0$/)
    want = qemu_raw(img, File.join(@dir, "qemu.raw"))
    dest = File.join(@dir, "dest.raw")
    garbage(dest, File.size(want))
    _o, err, st = run_exe("vmdksync", "--full", "--verify", img, dest)
    expect(st.exitstatus).to eq(0), err
    expect(same_bytes?(dest, want)).to be(true)

    esx = File.join(@dir, "esx")
    esx_set(esx, capacity: "4M", layout: "shuffled", random: "200:4K")
    newest = File.join(esx, "vm-000001.vmdk")
    want = qemu_raw(newest, File.join(@dir, "qemu-esx.raw"))
    garbage(dest, 4 << 20)
    _o, err, st = run_exe("vmdksync", "-v", "--full", newest, dest)
    expect(st.exitstatus).to eq(0), err
    expect(same_bytes?(dest, want)).to be(true)
    # -v describes the flat base as data, not as a layer of zero-byte grains.
    expect(err).to include("  2. #{File.join(esx, 'vm.vmdk')} (flat: raw data, no grains) CID ", "     4.0 MiB\n",
                           " grains in 2 layers over a flat base disk, 4.0 MiB written (--full)")
    expect(err).not_to include("0 B grains")
  end

  it "--dry-run lists the whole disk as one range and writes nothing" do
    img, want = stream_image(1 << 20)
    dest = File.join(@dir, "dest.raw")
    garbage(dest, File.size(want))
    before = File.binread(dest)
    out, err, st = run_exe("vmdksync", "--dry-run", "--full", img, dest)
    expect(st.exitstatus).to eq(0), err
    expect(out.lines.last(2)).to eq(["offset length\n", "0 #{1 << 20}\n"])
    expect(out).to include("#{1 << 20} bytes")
    expect(File.binread(dest) == before).to be(true)
  end

  it "refuses before the first write: a damaged grain, wrong size, an input as destination, a missing parent; and without --full" do
    img, want = stream_image(1 << 20)
    dest = File.join(@dir, "dest.raw")
    small = File.join(@dir, "small.raw")
    garbage(dest, File.size(want))
    garbage(small, File.size(want) - 512)
    esx = File.join(@dir, "esx")
    esx_set(esx, capacity: "1M", writes: ["4096:512"])
    File.delete(File.join(esx, "vm.vmdk"))
    link = File.join(@dir, "link.vmdk")
    File.link(img, link)
    # A damaged compressed grain: the first one (after overHead sectors, past its 12-byte
    # marker), found by inflating it before the first write.
    FileUtils.mkdir(File.join(@dir, "damaged"))
    damaged = File.join(@dir, "damaged", "export.vmdk")
    FileUtils.cp(img, damaged)
    first_grain = File.binread(damaged, 8, 64).unpack1("Q<") * 512
    expect(File.binread(damaged, 12, first_grain).unpack("Q<L<")).to eq([0, File.binread(damaged, 4, first_grain + 8).unpack1("L<")])
    File.binwrite(damaged, "\xA5".b * 32, first_grain + 12 + 16)
    [
      [[damaged, dest], %r{damaged/export\.vmdk: .*grain}],
      [[img, small], /destination is #{(1 << 20) - 512} bytes but the virtual disk of .* is #{1 << 20} bytes/],
      [[img, link], /link\.vmdk/],
      [[File.join(esx, "vm-000001.vmdk"), dest], /parent .*vm\.vmdk not found, and --full needs every layer down to the base disk/]
    ].each do |(image, target), message|
      before = File.binread(target)
      _o, err, st = run_exe("vmdksync", "--full", image, target)
      expect(st.exitstatus).to eq(1), err
      expect(err.lines.size).to eq(1)
      expect(err).to match(message)
      expect(File.binread(target) == before).to be(true)
    end
    before = File.binread(dest)
    _o, err, st = run_exe("vmdksync", img, dest)
    expect(st.exitstatus).to eq(1)
    expect(err).to include("not a snapshot delta (to write the whole disk it describes, use --full)")
    _o, err, st = run_exe("vmdksync", "--full", "--no-parent-check", img, dest)
    expect(st.exitstatus).to eq(2)
    expect(err).to include("--no-parent-check makes no sense with it")
    expect(File.binread(dest) == before).to be(true)
  end

  # The compressed data of the last grain of a streamOptimized +img+ (grains follow each other
  # from overHead on, each a 12-byte marker and its data padded to a sector, until the first
  # metadata marker, whose size is 0), overwritten with 32 bytes of 0xA5.
  def damage_last_grain(img)
    at = File.binread(img, 8, 64).unpack1("Q<") * 512
    last = nil
    loop do
      size = File.binread(img, 4, at + 8).unpack1("L<")
      break if size.zero?

      last = at
      at = (at + 12 + size + 511) / 512 * 512
    end
    File.binwrite(img, "\xA5".b * 32, last + 12 + 16)
  end

  it "--inflate-once: qemu's bytes; a damaged grain stops it at its batch (exit 3), --undo takes it back" do
    img, want = stream_image
    size = File.size(want)
    dest = File.join(@dir, "dest.raw")
    garbage(dest, size)
    _o, err, st = run_exe("vmdksync", "--full", "--inflate-once", "--verify", img, dest)
    expect(st.exitstatus).to eq(0), err
    expect(same_bytes?(dest, want)).to be(true)
    delta = VMDKSync::Delta.open(img, full: true, inflate_once: true)
    expect(delta.inflate_once?).to be(true)
    garbage(dest, size)
    expect(delta.apply_to(dest).inflated).to eq(delta.grain_count)
    expect(same_bytes?(dest, want)).to be(true)

    FileUtils.mkdir(File.join(@dir, "damaged"))
    damaged = File.join(@dir, "damaged", "export.vmdk")
    FileUtils.cp(img, damaged)
    damage_last_grain(damaged)
    garbage(dest, size)
    before = File.binread(dest)
    # Without --full or --undo: a usage error. Checked first (--dry-run): refused, as without
    # --inflate-once.
    _o, err, st = run_exe("vmdksync", "--inflate-once", damaged, dest)
    expect(st.exitstatus).to eq(2)
    expect(err).to include("vmdksync: --inflate-once can stop part-way, on a grain that does not decode: it needs " \
                           "a full apply (the destination is rewritten whole) or an undo file (which takes it back): " \
                           "add --full or --undo FILE")
    _o, err, st = run_exe("vmdksync", "--full", "--inflate-once", "--dry-run", damaged, dest)
    expect(st.exitstatus).to eq(1), err
    expect(err).to match(%r{damaged/export\.vmdk: grain at byte \d+: compressed data is not valid zlib})
    expect(File.binread(dest) == before).to be(true)
    # The first 8 MiB batch is written; the last one, holding the bad grain, is not.
    undo = File.join(@dir, "undo")
    _o, err, st = run_exe("vmdksync", "--full", "--inflate-once", "--undo", undo, damaged, dest)
    expect(st.exitstatus).to eq(3), err
    expect(err.lines.size).to eq(1)
    expect(err).to include("inflate the compressed grain at byte", "by then #{8 << 20} bytes of #{dest} had been written",
                           "to go back: lvmsync --apply #{undo} #{dest}")
    # The same command cannot finish it: the damaged image stops every run at the same grain.
    expect(err).to include("; to finish, replace the damaged image with a good copy (this one stops every run at " \
                           "the same grain), then run the same command again (it resumes #{undo}): vmdksync --full")
    got = File.binread(dest)
    expect(got.byteslice(0, 8 << 20) == File.binread(want, 8 << 20)).to be(true)
    expect(got.byteslice(8 << 20, size) == before.byteslice(8 << 20, size)).to be(true)
    _o, err, st = run_exe("lvmsync", "--apply", undo, dest)
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(dest) == before).to be(true)
    # The library: the class of the same damage found when opening, extended with PartlyWritten.
    delta = VMDKSync::Delta.open(damaged, full: true, inflate_once: true)
    expect { delta.apply_to(dest) }.to raise_error(VMDKSync::FormatError, /inflate the compressed grain at byte/) { |e|
      expect(e).to be_a(Ironshed::PartlyWritten)
      expect(e.written_bytes).to eq(8 << 20)
    }
  end

  it "inflate_once on a delta (not full): apply_to refuses it without an undo file, before opening the destination" do
    files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "16M", "--seed", 8,
                               "--layer", "stream-footer,layout=shuffled", "--random-writes", "40:64K"))
    desc = files["layers"].last["descriptor"]
    want = qemu_raw(desc, File.join(@dir, "qemu.raw"))
    dest = File.join(@dir, "dest.raw")
    FileUtils.cp(files["flat"], dest)
    before = File.binread(dest)
    why = VMDKSync::Delta.inflate_once_refusal(true, false, false)
    expect(why).to start_with("can stop part-way, on a grain that does not decode")
    expect([VMDKSync::Delta.inflate_once_refusal(true, true, false), VMDKSync::Delta.inflate_once_refusal(true, false, true),
            VMDKSync::Delta.inflate_once_refusal(false, false, false)]).to eq([nil, nil, nil])
    delta = VMDKSync::Delta.open(desc, inflate_once: true)
    expect { delta.apply_to(dest) }.to raise_error(ArgumentError, "inflate_once #{why}")
    expect { delta.apply_to(File.join(@dir, "missing.raw")) }.to raise_error(ArgumentError)
    expect(File.binread(dest) == before).to be(true)
    _o, err, st = run_exe("vmdksync", "--inflate-once", desc, dest)
    expect([st.exitstatus, err.lines.first]).to eq([2, "vmdksync: --inflate-once #{why}: add --full or --undo FILE\n"])
    expect(File.binread(dest) == before).to be(true)
    result = delta.apply_to(dest, undo: File.join(@dir, "undo"))
    expect(result.inflated).to be > 0
    expect(File.binread(dest) == File.binread(want)).to be(true)
  end

  it "an export renamed after it was written (its descriptor names a file that is gone): written, with a warning" do
    img, want = stream_image(1 << 20)
    FileUtils.mkdir(File.join(@dir, "imported"))
    renamed = File.join(@dir, "imported", "web01-disk1.vmdk")
    FileUtils.mv(img, renamed)
    dest = File.join(@dir, "dest.raw")
    garbage(dest, 1 << 20)
    _o, err, st = run_exe("vmdksync", "--full", renamed, dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("vmdksync: warning: #{renamed}: its embedded descriptor (line ",
                           "names #{File.join(@dir, 'imported', 'export.vmdk')}, which does not exist: " \
                           "taken to be this file, renamed since it was written")
    expect(same_bytes?(dest, want)).to be(true)
  end

  it "the Ruby API: Delta.open(full: true) and VMDKSync.apply(..., full: true)" do
    img, want = stream_image(1 << 20)
    delta = VMDKSync::Delta.open(img, full: true)
    expect(delta.full?).to be(true)
    expect(delta.extents).to eq([[0, 1 << 20]])
    expect(delta.changed_bytes).to eq(1 << 20)
    expect(VMDKSync::Delta::OPEN_OPTIONS).to include(:full)
    expect { VMDKSync::Delta.open(img) }.to raise_error(VMDKSync::FormatError, /use --full/)
    dest = File.join(@dir, "dest.raw")
    garbage(dest, 1 << 20)
    r = VMDKSync.apply(img, dest, full: true, discard_zeros: true)
    expect(r.bytes).to eq(1 << 20)
    expect(same_bytes?(dest, want)).to be(true)
  end
end
