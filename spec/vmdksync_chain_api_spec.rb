# frozen_string_literal: true

# The Ruby API on chains: layers, verification, discards.
RSpec.describe VMDKSync::Delta, :tmpdir do
  before do
    @files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "8M", "--seed", 5,
                                "--layer", "sesparse", "--random-writes", "100:4K", "--zero", "1M:64K",
                                "--layer", "stream-footer", "--write", "0:256K",
                                "--layer", "cowd,grain=8", "--write", "4M:10K"))
    @dest = File.join(@dir, "dest.raw")
    FileUtils.cp(@files["flat"], @dest)
    @newest = @files["layers"].last["descriptor"]
  end

  it "lists the chain's layers, newest first" do
    d = described_class.open(@newest)
    layers = d.layers
    expect(layers.map { |l| l[:format] }).to eq(%i[cowd stream_optimized sesparse])
    expect(layers.map { |l| l[:path] }).to eq(@files["layers"].reverse.map { |l| l["descriptor"] })
    expect(layers.map { |l| l[:cid] }).to eq(@files["layers"].reverse.map { |l| l["cid"] })
    expect(layers.last[:parent_cid]).to eq(0x5a17b9ae)
    expect(layers.last[:zero_grains]).to eq(16)
    expect(layers.first[:grain_size]).to eq(4096)
    expect(d.base_verified).to eq(@files["base"])
    expect(d.changed_bytes).to eq(d.extents.sum { |_, len| len })
    expect(d.changed_bytes).to be < layers.sum { |l| l[:changed_bytes] }
  end

  it "verify reports nothing after an apply and names damaged ranges after tampering" do
    d = described_class.open(@newest)
    d.apply_to(@dest)
    v = d.verify(@dest)
    expect(v).to be_ok
    expect(v.bytes).to eq(d.changed_bytes)
    File.open(@dest, "r+b") do |f|
      f.seek((4 << 20) + 5000)
      f.write("\x00" * 1000 + "\xff")
    end
    v = d.verify(@dest)
    expect(v).not_to be_ok
    expect(v.mismatches).to eq([[(4 << 20) + 4608, 1536]]) # sectors 9 to 11 of the write
    expect(v.mismatched_bytes).to be_between(1, 1001)
  end

  it "apply_to(discard_zeros: true) discards zeroed grains and reports it" do
    r = described_class.open(@newest).apply_to(@dest, discard_zeros: true)
    expect(r.discarded).to eq(64 << 10)
    expect(File.binread(@dest)).to eq(File.binread(qemu_raw(@newest, File.join(@dir, "q.raw"))))
  end

  it "base: an ancestor applies only the newer layers" do
    mid = @files["layers"][1]["descriptor"]
    File.binwrite(@dest, File.binread(qemu_raw(mid, File.join(@dir, "mid.raw"))))
    d = described_class.open(@newest, base: mid)
    expect(d.layers.size).to eq(1)
    d.apply_to(@dest)
    expect(File.binread(@dest)).to eq(File.binread(qemu_raw(@newest, File.join(@dir, "q.raw"))))
  end
end
