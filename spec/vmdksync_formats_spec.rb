# frozen_string_literal: true

# vmdksync on every delta format and on snapshot chains, as users run it: results against
# qemu-img, the options added for chains (--discard-zeros, --verify, --verify-only, --base on
# an ancestor, --no-parent-check), and a refusal for every invalid case of the hosted sparse,
# seSparse and chain checks — exit 1, one line naming the cause, destination unchanged.
RSpec.describe "vmdksync on all formats and chains", :tmpdir do
  def chain(*layers, capacity: "16M", seed: 3)
    args = ["chain", "--dir", @dir, "--capacity", capacity, "--seed", seed]
    layers.each do |fmt, *ops|
      args += ["--layer", fmt]
      ops.each_slice(2) { |op, v| args += [op, v] }
    end
    @files = JSON.parse(testkit(*args))
    @dest = File.join(@dir, "dest.raw")
    FileUtils.cp(@files["flat"], @dest)
    @files
  end

  def newest
    @files["layers"].last["descriptor"]
  end

  def layer(i)
    @files["layers"][i]
  end

  def expected(desc = newest)
    File.binread(qemu_raw(desc, File.join(@dir, "qemu-#{File.basename(desc)}.raw")))
  end

  def u32(path, off)
    File.binread(path, 4, off).unpack1("V")
  end

  def u64(path, off)
    File.binread(path, 8, off).unpack1("Q<")
  end

  def poke_u64(path, off, value)
    poke(path, off, [value].pack("Q<"))
  end

  def edit(file, from, to)
    text = File.read(file)
    raise "#{from} not in #{file}" unless text.include?(from)

    File.write(file, text.sub(from, to))
  end

  FORMATS = {
    "monolithicSparse" => ["sparse", "--random-writes", "60:8K", "--write", "1000:3000"],
    "monolithicSparse with zeroed grains" => ["sparse-zeroed,grain=16", "--random-writes", "60:8K", "--zero", "1M:256K"],
    "streamOptimized" => ["stream", "--random-writes", "40:64K"],
    "streamOptimized with a footer" => ["stream-footer,layout=shuffled", "--random-writes", "40:64K", "--zero", "8M:128K"],
    "twoGbMaxExtentSparse" => ["twogb,extent=5M,layout=reverse", "--random-writes", "60:8K", "--write", "5242000:1000"],
    "seSparse" => ["sesparse,layout=shuffled", "--random-writes", "500:4K", "--zero", "2M:64K", "--unmap", "3M:64K"]
  }.freeze

  FORMATS.each do |name, layer|
    it "applies a #{name} delta as qemu-img reads it" do
      chain(layer)
      _out, err, st = run_exe("vmdksync", newest, @dest)
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(@dest)).to eq(expected)
    end
  end

  it "applies a chain of four mixed formats in one pass and describes it with -v" do
    chain(["sesparse", "--random-writes", "300:4K", "--write", "0:1M"],
          ["stream-footer", "--random-writes", "20:64K", "--zero", "4M:1M"],
          ["cowd,layout=write-order", "--random-writes", "200:4K"],
          ["sparse-zeroed,grain=8", "--write", "100:2M", "--zero", "10M:64K"])
    _out, err, st = run_exe("vmdksync", "-v", newest, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("chain:       4 snapshots, newest first:", "(chain merged: each byte written once)",
                           "parent:      #{@files['base']}: CID 5a17b9ae matches")
    expect(File.binread(@dest)).to eq(expected)
  end

  it "--base names an ancestor the destination already holds: only newer layers are applied" do
    chain(["sesparse", "--random-writes", "100:4K"], ["cowd", "--random-writes", "50:4K"],
          ["stream", "--random-writes", "10:64K"])
    # The destination already holds snapshot 1.
    File.binwrite(@dest, expected(layer(0)["descriptor"]))
    _out, err, st = run_exe("vmdksync", "-v", "--base", layer(0)["descriptor"], newest, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("chain:       2 snapshots")
    expect(File.binread(@dest)).to eq(expected)
  end

  it "refuses a chain whose parent file is missing unless told the destination holds it" do
    chain(["sesparse", "--random-writes", "100:4K"], ["cowd", "--random-writes", "50:4K"])
    FileUtils.mv(layer(0)["descriptor"], File.join(@dir, "moved.vmdk"))
    before = sha(@dest)
    _out, err, st = run_exe("vmdksync", newest, @dest)
    expect(st.exitstatus).to eq(1)
    expect(err).to eq("vmdksync: #{newest}: parent #{layer(0)['descriptor']} not found: it may be another snapshot " \
                      "whose changes would be missing; copy it (and the base descriptor) next to the delta, name the " \
                      "disk the destination holds with --base, or pass --no-parent-check if the destination holds " \
                      "exactly this snapshot's parent\n")
    expect(sha(@dest)).to eq(before)
  end

  it "--no-parent-check applies onto a destination holding the parent" do
    chain(["sesparse", "--random-writes", "100:4K"], ["cowd", "--random-writes", "50:4K"])
    want = expected
    File.binwrite(@dest, expected(layer(0)["descriptor"]))
    File.delete(layer(0)["descriptor"])
    _out, err, st = run_exe("vmdksync", "--no-parent-check", newest, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(@dest)).to eq(want)
  end

  it "--discard-zeros punches holes in a file where the chain has zeroed grains" do
    chain(["sesparse", "--random-writes", "50:4K", "--zero", "4M:2M", "--unmap", "8M:1M"])
    blocks_before = File.stat(@dest).blocks
    _out, err, st = run_exe("vmdksync", "--discard-zeros", newest, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("3.0 MiB of it discarded")
    expect(File.binread(@dest)).to eq(expected)
    expect(File.stat(@dest).blocks).to be <= blocks_before - (3 << 20) / 512
  end

  it "--discard-zeros unmaps a block device's ranges (the loop device punches holes in its file)" do
    chain(["stream-footer", "--random-writes", "20:64K", "--zero", "2M:1M"])
    blocks_before = File.stat(@dest).blocks
    with_loop_device(@dest) do |dev|
      _out, err, st = run_exe("vmdksync", "--discard-zeros", newest, dev)
      expect(st.exitstatus).to eq(0), err
      expect(err).to match(/MiB of it discarded/)
    end
    expect(File.binread(@dest)).to eq(expected)
    expect(File.stat(@dest).blocks).to be < blocks_before
  end

  it "--verify confirms the result; --verify-only finds and names a damaged range" do
    chain(["sesparse", "--random-writes", "200:4K", "--write", "5M:8K"])
    _out, err, st = run_exe("vmdksync", "--verify", newest, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to match(/verified .* identical to the chain/)
    poke(@dest, (5 << 20) + 1000, "XXXX")
    _out, err, st = run_exe("vmdksync", "--verify-only", newest, @dest)
    expect(st.exitstatus).to eq(1)
    expect(err).to include("vmdksync: verify failed: 4 bytes of #{@dest} differ from the chain in 1 ranges " \
                           "(#{(5 << 20) + 512}+512)")
  end

  describe "refusals: exit 1, one line naming the cause, destination unchanged" do
    def refuses(message, snapshot = newest, *opts)
      before = sha(@dest)
      out, err, st = run_exe("vmdksync", *opts, snapshot, @dest)
      expect(st.exitstatus).to eq(1), err
      expect(out).to eq("")
      expect(err.lines.size).to eq(1), err
      expect(err).to include(message)
      expect(sha(@dest)).to eq(before)
    end

    # --- hosted sparse (KDMV) ---
    def sparse_file(kind = "sparse")
      chain(["#{kind},layout=shuffled", "--random-writes", "30:8K"])
      newest
    end

    def first_gte(path)
      gd = u64(path, 56) * 512
      gt = u32(path, gd) * 512
      (0...512).map { |j| gt + 4 * j }.find { |off| u32(path, off).positive? }
    end

    it "KDMV: unknown version" do
      f = sparse_file
      poke_u32(f, 4, 4)
      refuses("sparse header version 4 at byte 4 (known: 1, 2, 3)")
    end

    it "KDMV: unknown incompatible flag" do
      f = sparse_file
      poke_u32(f, 8, u32(f, 8) | 0x40000)
      refuses("unknown incompatible flags 0x40000 at byte 8")
    end

    it "KDMV: newline bytes mangled by a text-mode transfer" do
      f = sparse_file
      poke(f, 75, "\n")
      refuses("not 0a 20 0d 0a: the file was damaged by a text-mode transfer")
    end

    it "KDMV: numGTEsPerGT other than 512" do
      f = sparse_file
      poke_u32(f, 44, 256)
      refuses("numGTEsPerGT is 256 at byte 44")
    end

    it "KDMV: grainSize not a power of two" do
      f = sparse_file
      poke_u64(f, 20, 3)
      refuses("grainSize 3 at byte 20 is not a power of two")
    end

    it "KDMV: grain table entry 1 without the zeroed-grain flag" do
      f = sparse_file
      poke_u32(f, first_gte(f), 1)
      refuses("is 1 but the zeroed-grain flag (0x4) is not set")
    end

    it "KDMV: grain past the end of the file" do
      f = sparse_file
      poke_u32(f, first_gte(f), 1 << 30)
      refuses("points past the end of the file")
    end

    it "KDMV: two entries on one grain" do
      f = sparse_file
      gte = first_gte(f)
      other = (gte + 4...gte + 2048).step(4).find { |o| u32(f, o).positive? }
      poke_u32(f, other, u32(f, gte))
      refuses("overlaps another structure of the file")
    end

    it "KDMV: redundant table differs (with --check-redundant-gd)" do
      f = sparse_file
      rgd = u64(f, 48) * 512
      rgt = u32(f, rgd) * 512
      poke_u32(f, rgt + 4 * 511, 12_345)
      refuses("differs from the redundant table's", newest, "--check-redundant-gd")
    end

    it "KDMV: capacity differs from the descriptor's extent line" do
      f = sparse_file
      edit(f, "RW 32768 SPARSE", "RW 32767 SPARSE")
      refuses("embedded descriptor line 10: extent says 32767 sectors but the header says 32768")
    end

    it "streamOptimized: footer marker damaged" do
      f = sparse_file("stream-footer")
      poke_u32(f, File.size(f) - 1536 + 12, 2)
      refuses("is not a footer marker (size 0, type 2)")
    end

    it "streamOptimized: grain marker with the wrong lba" do
      f = sparse_file("stream-footer")
      marker = u32(f, first_gte_stream(f)) * 512
      poke_u64(f, marker, u64(f, marker) + 128)
      refuses("grain table puts grain")
    end

    it "streamOptimized: compressed data that is not zlib" do
      f = sparse_file("stream-footer")
      marker = u32(f, first_gte_stream(f)) * 512
      poke(f, marker + 12, "\x00\x01\x02\x03")
      refuses("compressed data is not valid zlib")
    end

    it "streamOptimized: compressed size larger than two grains" do
      f = sparse_file("stream-footer")
      marker = u32(f, first_gte_stream(f)) * 512
      poke_u32(f, marker + 8, 200_000)
      refuses("compressed size 200000 is not between 1 and 131072")
    end

    def first_gte_stream(path)
      footer = File.size(path) - 1024
      gd = u64(path, footer + 56) * 512
      gt = u32(path, gd) * 512
      (0...512).map { |j| gt + 4 * j }.find { |off| u32(path, off) > 1 }
    end

    # --- seSparse ---
    def se_file
      chain(["sesparse,layout=shuffled", "--random-writes", "300:4K"], capacity: "64M")
      layer(0)["extents"].first
    end

    def se_gte(f)
      gd = u64(f, 128) * 512
      slot = (0...64).find { |i| u64(f, gd + 8 * i).positive? }
      table = u64(f, gd + 8 * slot) & 0xffff_ffff
      t = (u64(f, 144) + table * 64) * 512
      (0...4096).map { |j| t + 8 * j }.find { |off| (u64(f, off) >> 60) == 3 }
    end

    { "constant header magic" => [0, 0xcafe, "bad magic fe ca 00 00 at byte 0: line 10 of"],
      "version" => [8, 0x100000001, "seSparse version 0x0000000100000001"],
      "grain size" => [24, 16, "grain size 16 sectors at byte 24 (only 8 is known)"],
      "grain table size" => [32, 32, "grain table size 32 sectors"],
      "flags" => [40, 1, "flags 0x1 at byte 40"],
      "reserved field" => [56, 7, "reserved field at byte 56 is 0x7"] }.each do |what, (off, val, msg)|
      it "seSparse: #{what}" do
        f = se_file
        poke_u64(f, off, val)
        refuses(msg)
      end
    end

    it "seSparse: non-zero padding" do
      f = se_file
      poke(f, 300, "\x01")
      refuses("constant header padding (bytes 208..511) is not zero")
    end

    it "seSparse: volatile magic 0xcafebabe (the value some tools wrongly document)" do
      f = se_file
      poke_u64(f, u64(f, 80) * 512, 0xcafebabe)
      refuses("bad volatile header magic 0x00000000cafebabe")
    end

    it "seSparse: journal to replay" do
      f = se_file
      poke_u64(f, u64(f, 80) * 512 + 24, 1)
      refuses("replayJournal is 1 (journal not replayed): the delta was not closed cleanly")
    end

    it "seSparse: overlapping regions" do
      f = se_file
      poke_u64(f, 144, u64(f, 128)) # tables start where the directory starts
      refuses("overlaps the grain directory region")
    end

    it "seSparse: directory entry without the 0x10000000 marker" do
      f = se_file
      gd = u64(f, 128) * 512
      slot = (0...64).find { |i| u64(f, gd + 8 * i).positive? }
      poke_u64(f, gd + 8 * slot, (0x20000000 << 32) | (u64(f, gd + 8 * slot) & 0xffff_ffff))
      refuses("the top 32 bits must be 0x10000000")
    end

    it "seSparse: directory entry naming a table outside the region" do
      f = se_file
      gd = u64(f, 128) * 512
      slot = (0...64).find { |i| u64(f, gd + 8 * i).positive? }
      poke_u64(f, gd + 8 * slot, (0x10000000 << 32) | 999)
      refuses("names grain table 999, but the tables region holds")
    end

    it "seSparse: two directory entries sharing a table" do
      chain(["sesparse", "--write", "0:64K"], capacity: "64M")
      f = layer(0)["extents"].first

      gd = u64(f, 128) * 512
      used = (0...64).select { |i| u64(f, gd + 8 * i).positive? }
      free = (0...4).find { |i| u64(f, gd + 8 * i).zero? }
      poke_u64(f, gd + 8 * free, u64(f, gd + 8 * used.first))
      refuses("which another entry already uses")
    end

    it "seSparse: unknown grain entry type" do
      f = se_file
      poke_u64(f, se_gte(f), 4 << 60)
      refuses("has unknown type 0x4")
    end

    it "seSparse: grain index outside the grains region" do
      f = se_file
      poke_u64(f, se_gte(f), (3 << 60) | (1 << 40))
      refuses("but the grains region holds")
    end

    it "seSparse: one grain index used twice" do
      f = se_file
      a = se_gte(f)
      b = (a + 8...a + 32_768).step(8).find { |o| (u64(f, o) >> 60) == 3 }
      poke_u64(f, b, u64(f, a))
      refuses("which another table entry already uses")
    end

    # --- chains ---
    it "chain: a middle snapshot's CID changed after its child was taken" do
      chain(["sesparse", "--random-writes", "50:4K"], ["cowd", "--random-writes", "50:4K"])
      edit(layer(0)["descriptor"], "CID=10000000", "CID=0badf00d")
      refuses("parentCID is 10000000 but the base #{layer(0)['descriptor']} has CID 0badf00d")
    end

    it "chain: parentFileNameHint loops" do
      chain(["cowd", "--random-writes", "50:4K"], ["cowd", "--random-writes", "50:4K"])
      edit(layer(0)["descriptor"], 'parentFileNameHint="vm.vmdk"', 'parentFileNameHint="vm-000002.vmdk"')
      edit(layer(0)["descriptor"], "parentCID=5a17b9ae", "parentCID=10000111")
      refuses("loops back on itself")
    end

    it "chain: layers of different sizes" do
      chain(["sesparse", "--random-writes", "50:4K"], ["cowd", "--random-writes", "50:4K"])
      edit(layer(0)["descriptor"], "RW 32768 SESPARSE", "RW 32760 SESPARSE")
      refuses("capacity is 32768 sectors but its parent #{layer(0)['descriptor']} has 32760")
    end

    it "chain: --base that the chain never reaches" do
      chain(["cowd", "--random-writes", "50:4K"])
      other = File.join(@dir, "other.vmdk")
      File.write(other, File.read(@files["base"]).sub("CID=5a17b9ae", "CID=00000042"))
      refuses("has CID 00000042", newest, "--base", other)
    end
  end
end
