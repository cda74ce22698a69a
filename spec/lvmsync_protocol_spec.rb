# frozen_string_literal: true

require_relative "support/lvm_env"
require_relative "support/proto3"
require "lvmsync"
require "stringio"

# PROTO[3] compatibility in both directions, written from the format description:
# "lvmsync PROTO[3]\n", then records of (big-endian u64 offset, big-endian u32 length, data).
# Streams are built here the way the original lvmsync builds them (`[htonq(off), len].pack("QN")`
# with its LVM::Helpers), our --plain output is compared byte for byte with a stream computed
# here from the exception list that ironshed-testkit reports, and the original receiver's
# apply loop (spec/support/proto3.rb, as its source reads) is run on what we send. The marked
# form (BEGIN ... END) is checked with a codec written from its description, whose XXH3 is
# the reference C library's.
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
    _o, err, st = run_exe("lvmsync", "-v", "--apply", "-", path("dest"), stdin_data: original_sender_stream,
                                                                        binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("standard input is a plain PROTO[3] stream, without an end-of-stream mark (the " \
                           "original lvmsync's, or --plain): a cut between two of its records could not have been detected")
    expect(sha(path("dest"))).to eq(sha(path("origin.img")))
  end

  # The stream computed here from the exception list: distinct chunks, adjacent ones merged,
  # cut at 1 MiB, the furthest first.
  def expected_plain
    chunks = @layout["records"].map(&:first).uniq.sort
    ranges = chunks.slice_when { |a, b| b != a + 1 }.map { |run| [run.first * 4096, run.size * 4096] }
    pieces = ranges.flat_map do |off, len|
      (0...len).step(1 << 20).map { |d| [off + d, [1 << 20, len - d].min] }
    end
    pieces.unshift(pieces.pop)
    want = +"lvmsync PROTO[3]\n"
    pieces.each { |off, len| want << [htonq(off), len].pack("QN") << @origin.byteslice(off, len) }
    [want.b, pieces]
  end

  it "--plain sends exactly the bytes an old receiver expects: sorted, coalesced to 1 MiB, furthest first" do
    set_up
    out, err, st = run_exe("lvmsync", "--stdout", "--plain", "/dev/vg-sync/src-snap", env: @env, binmode: true)
    expect(st.exitstatus).to eq(0), err
    want, pieces = expected_plain
    expect(out.bytesize).to eq(want.bytesize)
    expect(out == want).to be(true)
    expect(pieces.first(4).map(&:last)).to eq([4096, 1 << 20, 1 << 20, 1 << 20]) # 3 MiB in 1 MiB records
  end

  it "by default marks the same records with BEGIN and END, whose counts and digests check out" do
    set_up
    out, err, st = run_exe("lvmsync", "--stdout", "/dev/vg-sync/src-snap", env: @env, binmode: true)
    expect(st.exitstatus).to eq(0), err
    want, pieces = expected_plain
    expect(Proto3.marked?(out)).to be(true)
    expect(Proto3.decode(out)).to eq(pieces.map { |off, len| [off, @origin.byteslice(off, len)] })
    # Between the marks: the plain stream's records, byte for byte.
    expect(out.byteslice(17 + 36, out.bytesize - 17 - 36 - 36) == want.byteslice(17..)).to be(true)
    _hs, items, = Proto3.items(out)
    expect(items.first[0, 2]).to eq([Proto3.tag("BEGIN"), 24])
    expect(items.last[0, 2]).to eq([Proto3.tag("END"), 24])
  end

  it "the original receiver applies --plain streams, and stops at a marked stream's BEGIN before writing" do
    set_up
    plain, = run_exe("lvmsync", "--stdout", "--plain", "/dev/vg-sync/src-snap", env: @env, binmode: true)
    FileUtils.cp(path("before.img"), path("dest"))
    Proto3.original_apply(plain, path("dest"))
    expect(sha(path("dest"))).to eq(sha(path("origin.img")))
    marked, = run_exe("lvmsync", "--stdout", "/dev/vg-sync/src-snap", env: @env, binmode: true)
    FileUtils.cp(path("before.img"), path("dest"))
    expect { Proto3.original_apply(marked, path("dest")) }.to raise_error(RangeError)
    expect(sha(path("dest"))).to eq(sha(path("before.img")))
  end

  it "applies a marked stream written from its description, and refuses every cut of it, writing nothing" do
    set_up
    records = @layout["records"].first(6).map { |old, _| [old * 4096, @origin.byteslice(old * 4096, 4096)] }
    stream = Proto3.encode_marked(records)
    File.binwrite(path("stream"), stream)
    FileUtils.cp(path("before.img"), path("dest"))
    _o, err, st = run_exe("lvmsync", "-v", "--apply", path("stream"), path("dest"))
    expect(st.exitstatus).to eq(0), err
    expect(err).not_to include("without an end-of-stream mark")
    want = File.binread(path("before.img"))
    records.each { |off, data| want[off, data.bytesize] = data }
    expect(File.binread(path("dest")) == want).to be(true)
    _hs, items, = Proto3.items(stream)
    # Cut at every item, inside every header, inside data, inside END. (Right after the
    # handshake it is an empty plain stream, which writes nothing: below.)
    cuts = items.drop(1).map { |i| i[3] } + items.map { |i| i[3] + 5 } + [stream.bytesize - 1, items[1][3] + 12 + 100]
    cuts.each do |cut|
      File.binwrite(path("cut"), stream.byteslice(0, cut))
      FileUtils.cp(path("before.img"), path("dest"))
      _o, err, st = run_exe("lvmsync", "--apply", path("cut"), path("dest"))
      expect(st.exitstatus).to eq(1), "cut at #{cut}: #{err}"
      expect(err.lines.size).to eq(1), err
      expect(sha(path("dest"))).to eq(sha(path("before.img"))), "cut at #{cut}"
    end
    File.binwrite(path("cut"), stream.byteslice(0, 17))
    _o, err, st = run_exe("lvmsync", "-v", "--apply", path("cut"), path("dest"))
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("applied 0 records", "without an end-of-stream mark")
    expect(sha(path("dest"))).to eq(sha(path("before.img")))
  end

  it "applies a plain stream whose first record is (0, 0) as the plain stream it is, every record" do
    set_up
    records = [[0, "".b], [4096, "a".b * 4096], [1, "".b], [8192, "b".b * 100]]
    File.binwrite(path("stream"), Proto3.encode(records))
    FileUtils.cp(path("before.img"), path("dest"))
    _o, err, st = run_exe("lvmsync", "-v", "--apply", path("stream"), path("dest"))
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("applied 2 records", "a plain PROTO[3] stream, without an end-of-stream mark")
    want = File.binread(path("before.img"))
    want[4096, 4096] = "a" * 4096
    want[8192, 100] = "b" * 100
    expect(File.binread(path("dest")) == want).to be(true)
  end

  it "the snapback file is a journal framed as PROTO[3]: a framing reader finds the old data; the original refuses it" do
    set_up
    FileUtils.cp(path("before.img"), path("dest"))
    # Some of the old content is zeros: discard records in the snapback file.
    File.open(path("dest"), "r+b") do |f|
      @layout["records"].first(3).each { |o, _new| f.pwrite("\0" * 4096, o * 4096) }
    end
    old = File.binread(path("dest"))
    File.binwrite(path("stream"), original_sender_stream)
    _o, err, st = run_exe("lvmsync", "--apply", path("stream"), path("dest"), "--snapback", path("sb"))
    expect(st.exitstatus).to eq(0), err
    sb = File.binread(path("sb"))
    expect(sb).to start_with("lvmsync PROTO[3] discards\n\xffJOURNAL".b)
    # Its records (control items skipped; a discard record is zeros) hold the old data.
    _hs, items, = Proto3.items(sb)
    restored = File.binread(path("dest"))
    discarded = 0
    items.each do |off, len, data, _at|
      next if off >= (1 << 63)

      if len >= 0x8000_0000
        restored[off, len & 0x7fff_ffff] = "\0" * (len & 0x7fff_ffff)
        discarded += 1
      else
        restored[off, data.bytesize] = data
      end
    end
    expect(discarded).to be > 0
    expect(Digest::SHA256.hexdigest(restored)).to eq(Digest::SHA256.hexdigest(old))
    # The original receiver refuses its handshake line: it writes nothing.
    after = sha(path("dest"))
    expect { Proto3.original_apply(sb, path("dest")) }.to raise_error(RuntimeError, /Handshake failed/)
    expect(sha(path("dest"))).to eq(after)
    # A snapback file of the older, plain form (made here from the format): the original
    # passes its handshake, then cannot seek to its JOURNAL item's offset; nothing written.
    older = Proto3::HANDSHAKE + Proto3.item(Proto3.tag("JOURNAL"), "ironshed undo journal 1\n") +
            Proto3.header(0, 4) + "abcd"
    expect { Proto3.original_apply(older, path("dest")) }.to raise_error(RangeError)
    expect(sha(path("dest"))).to eq(after)
    _o, err, st = run_exe("lvmsync", "--apply", path("sb"), path("dest"))
    expect(st.exitstatus).to eq(0), err
    expect(Digest::SHA256.file(path("dest")).hexdigest).to eq(Digest::SHA256.hexdigest(old))
  end
end
