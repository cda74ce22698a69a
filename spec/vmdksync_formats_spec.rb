# frozen_string_literal: true

# vmdksync on every delta format and on snapshot chains, as users run it: results against
# qemu-img, the options added for chains (--discard-zeros, --verify, --verify-only, --base on
# an ancestor, --no-parent-check, --check-redundant-gd), and a refusal of each format and of a
# chain as a user sees it — exit 1, one line naming the cause, destination unchanged. Every
# rule of the readers and of the chain is tested beside its code, in ext/ironshed-core.
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
    it "KDMV: redundant table differs (with --check-redundant-gd; accepted without it)" do
      chain(["sparse,layout=shuffled", "--random-writes", "30:8K"])
      f = newest
      rgd = u64(f, 48) * 512
      rgt = u32(f, rgd) * 512
      poke_u32(f, rgt + 4 * 511, 12_345)
      refuses("#{f}: grain table 0 entry 511 differs from the redundant table's (0 vs 12345)", newest,
              "--check-redundant-gd")
      _out, err, st = run_exe("vmdksync", newest, @dest)
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(@dest)).to eq(expected)
    end

    # --- streamOptimized ---
    it "streamOptimized: compressed data that is not zlib" do
      chain(["stream-footer,layout=shuffled", "--random-writes", "30:8K"])
      f = newest
      footer = File.size(f) - 1024
      gt = u32(f, u64(f, footer + 56) * 512) * 512
      marker = (0...512).map { |j| u32(f, gt + 4 * j) }.find { |e| e > 1 } * 512
      poke(f, marker + 12, "\x00\x01\x02\x03")
      refuses("#{f}: grain #{u64(f, marker) / 128} at sector #{marker / 512}: compressed data is not valid zlib")
    end

    # --- seSparse ---
    it "seSparse: journal to replay" do
      chain(["sesparse,layout=shuffled", "--random-writes", "300:4K"], capacity: "64M")
      f = layer(0)["extents"].first
      poke_u64(f, u64(f, 80) * 512 + 24, 1)
      refuses("#{f}: the volatile header's replayJournal is 1 (journal not replayed): the delta was not closed cleanly")
    end

    # --- chains ---
    it "chain: a middle snapshot's CID changed after its child was taken" do
      chain(["sesparse", "--random-writes", "50:4K"], ["cowd", "--random-writes", "50:4K"])
      edit(layer(0)["descriptor"], "CID=10000000", "CID=0badf00d")
      refuses("parentCID is 10000000 but the base #{layer(0)['descriptor']} has CID 0badf00d")
    end

    it "chain: --base that the chain never reaches" do
      chain(["cowd", "--random-writes", "50:4K"])
      other = File.join(@dir, "other.vmdk")
      File.write(other, File.read(@files["base"]).sub("CID=5a17b9ae", "CID=00000042"))
      refuses("has CID 00000042", newest, "--base", other)
    end
  end
end
