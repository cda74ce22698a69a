# frozen_string_literal: true

require_relative "support/lvm_env"
require "lvmsync"
require "stringio"

# PROTO[3] compatibility in both directions, written from the format description:
# "lvmsync PROTO[3]\n", then records of (big-endian u64 offset, big-endian u32 length, data).
# Streams are built here the way the original lvmsync builds them (`[htonq(off), len].pack("QN")`
# with its LVM::Helpers), and our output is compared byte for byte with a stream computed
# here from the exception list that ironshed-testkit reports.
RSpec.describe "lvmsync PROTO[3] compatibility", :tmpdir do
  include LVM::Helpers

  def path(name)
    File.join(@dir, name)
  end

  def set_up(*extra)
    @layout = JSON.parse(testkit("cow", "--dir", @dir, "--origin-size", "16M", "--chunk-size", "4K",
                                 "--cow-size", "8M", "--write", "0:3M", "--write", "5M:4K", "--write", "5251072:4K",
                                 "--random-writes", "300:4K", *extra))
    @env = LvmEnv.build(@dir, vgs: { "vg-sync" => LvmEnv.classic_metadata },
                              lvs: { "/dev/vg-sync/src-snap" => %w[vg-sync src-snap] },
                              nodes: { "vg--sync-src--lv" => path("origin.img"), "vg--sync-src--snap-cow" => path("cow.img") })
    @origin = File.binread(path("origin.img"))
  end

  # What the original sender writes: one record per exception, in table order.
  def original_sender_stream
    out = +"lvmsync PROTO[3]\n"
    @layout["records"].each do |old, _new|
      off = old * 4096
      out << [htonq(off), 4096].pack("QN") << @origin.byteslice(off, 4096)
    end
    out.b
  end

  it "keeps the original's htonq byte order helpers" do
    expect([htonq(0x0102030405060708), 0x11223344].pack("QN").bytes)
      .to eq([1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x22, 0x33, 0x44])
    expect(ntohq(htonq(123_456_789))).to eq(123_456_789)
    expect(dtohq(42)).to eq(42)
    expect(LVMSync::PROTOCOL).to eq("lvmsync PROTO[3]")
  end

  it "applies a stream as the original sender writes it (unsorted, one record per chunk)" do
    set_up("--order", "shuffled")
    File.binwrite(path("stream"), original_sender_stream)
    FileUtils.cp(path("before.img"), path("dest"))
    _o, err, st = run_exe("lvmsync", "--apply", path("stream"), path("dest"))
    expect(st.exitstatus).to eq(0), err
    expect(sha(path("dest"))).to eq(sha(path("origin.img")))
    FileUtils.cp(path("before.img"), path("dest"))
    _o, err, st = run_exe("lvmsync", "--apply", "-", path("dest"), stdin_data: original_sender_stream, binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(sha(path("dest"))).to eq(sha(path("origin.img")))
  end

  it "sends exactly the bytes an old receiver expects: sorted, coalesced to 1 MiB, furthest first" do
    set_up
    out, err, st = run_exe("lvmsync", "--stdout", "/dev/vg-sync/src-snap", env: @env, binmode: true)
    expect(st.exitstatus).to eq(0), err
    # Expected stream, computed here: distinct chunks, adjacent ones merged, cut at 1 MiB.
    chunks = @layout["records"].map(&:first).uniq.sort
    ranges = chunks.slice_when { |a, b| b != a + 1 }.map { |run| [run.first * 4096, run.size * 4096] }
    pieces = ranges.flat_map do |off, len|
      (0...len).step(1 << 20).map { |d| [off + d, [1 << 20, len - d].min] }
    end
    pieces.unshift(pieces.pop)
    want = +"lvmsync PROTO[3]\n"
    pieces.each { |off, len| want << [htonq(off), len].pack("QN") << @origin.byteslice(off, len) }
    expect(out.bytesize).to eq(want.bytesize)
    expect(out == want.b).to be(true)
    expect(pieces.first(4).map(&:last)).to eq([4096, 1 << 20, 1 << 20, 1 << 20]) # 3 MiB in 1 MiB records
  end

  it "the snapback file is a PROTO[3] stream of the old data that a plain reader can apply" do
    set_up
    FileUtils.cp(path("before.img"), path("dest"))
    File.binwrite(path("stream"), original_sender_stream)
    _o, err, st = run_exe("lvmsync", "--apply", path("stream"), path("dest"), "--snapback", path("sb"))
    expect(st.exitstatus).to eq(0), err
    sb = File.binread(path("sb"))
    expect(sb).to start_with("lvmsync PROTO[3]\n")
    # Apply it the way the original receiver does: seek, write, for every record.
    File.open(path("dest"), "r+b") do |f|
      io = StringIO.new(sb)
      expect(io.readline.chomp).to eq("lvmsync PROTO[3]")
      while (header = io.read(12))
        offset, len = header.unpack("QN")
        f.seek(ntohq(offset))
        f.write(io.read(len))
      end
    end
    expect(sha(path("dest"))).to eq(sha(path("before.img")))
  end
end
