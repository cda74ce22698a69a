# frozen_string_literal: true

require "lvmsync"
require "stringio"

# Digests for --verify: the sender keeps one digest per record it sent (offset, length,
# XXH3-64 of the bytes), the receiver re-reads what it wrote and computes the same list; the
# packed form is 24 bytes per digest (big-endian u64 offset, u64 length, u64 hash), the text
# form "lvmsync-verify OFFSET LEN HASH16HEX". Checked on real streams against the records a
# decoder written here finds in them.
RSpec.describe "lvmsync verify digests", :tmpdir do
  def path(name)
    File.join(@dir, name)
  end

  # The records of a PROTO[3] stream: [[offset, data], ...] (control items skipped).
  def records(stream)
    io = StringIO.new(stream.b)
    expect(io.readline).to eq("lvmsync PROTO[3]\n")
    out = []
    while (h = io.read(12))
      hi, lo, len = h.unpack("NNN")
      data = io.read(len)
      out << [(hi << 32) | lo, data] if hi < 0x8000_0000
    end
    out
  end

  def unpack(packed)
    packed.unpack("Q>*").each_slice(3).to_a
  end

  before do
    testkit("cow", "--dir", @dir, "--origin-size", "16M", "--chunk-size", "4K", "--cow-size", "8M",
            "--write", "0:3M", "--write", "9M:600K", "--random-writes", "150:4K")
    @store = LVM::CowStore.open(path("cow.img"))
    File.open(path("stream"), "wb") do |f|
      @sent = LVMSync.send_changes(@store, path("origin.img"), f, digests: true)
    end
    @stream = File.binread(path("stream"))
    FileUtils.cp(path("before.img"), path("dest"))
  end

  it "sends one digest per record, in stream order, without changing the stream" do
    recs = records(@stream)
    expect(@sent.digests.encoding).to eq(Encoding::BINARY)
    expect(@sent.digests.bytesize).to eq(24 * recs.size)
    expect(unpack(@sent.digests).map { |o, l, _| [o, l] }).to eq(recs.map { |o, d| [o, d.bytesize] })
    # Equal bytes, equal hashes; different bytes, different hashes.
    by_data = unpack(@sent.digests).zip(recs).group_by { |_, (_, d)| d }.transform_values { |v| v.map { |x| x[0][2] }.uniq }
    expect(by_data.values).to all(satisfy { |h| h.size == 1 })
    expect(by_data.values.flatten.uniq.size).to eq(by_data.size)
    File.open(path("plain"), "wb") { |f| LVMSync.send_changes(@store, path("origin.img"), f) }
    expect(File.binread(path("plain")) == @stream).to be(true)
  end

  it "reads back the same digests after applying, from a file and through a pipe" do
    got = LVMSync.apply(path("stream"), path("dest"), verify: true)
    expect(got.digests == @sent.digests).to be(true)
    report = LVMSync.compare_digests(@sent.digests, got.digests)
    expect(report).to eq({ matched: @sent.records, mismatches: 0, examples: [] })
    expect(File.binread(path("dest")) == File.binread(path("origin.img"))).to be(true)

    FileUtils.cp(path("before.img"), path("dest"))
    rd, wr = IO.pipe
    sender = Thread.new do
      r = LVMSync.send_changes(@store, path("origin.img"), wr, digests: true)
      wr.close
      r
    end
    got = LVMSync.apply(rd, path("dest"), verify: true)
    sent = sender.value
    rd.close
    expect(LVMSync.compare_digests(sent.digests, got.digests)[:mismatches]).to eq(0)
    expect(LVMSync.apply(path("stream"), path("dest")).digests).to be_nil
  end

  it "finds a byte changed on the way, and says which record" do
    # A marked stream's end mark already refuses it, before anything is written...
    recs = records(@stream)
    victim = recs.index { |_, d| d.bytesize == 1 << 20 }
    at = 17 + 36 + recs.first(victim).sum { |_, d| 12 + d.bytesize } + 12 + 4321
    bent = @stream.dup
    bent.setbyte(at, bent.getbyte(at) ^ 0xff)
    File.binwrite(path("bent"), bent)
    expect { LVMSync.apply(path("bent"), path("dest"), verify: true) }
      .to raise_error(LVMSync::ProtocolError, /is the end-of-stream mark, and the stream does not match it/)
    expect(File.binread(path("dest")) == File.binread(path("before.img"))).to be(true)
    # ... a plain one cannot tell; the digests read back can.
    File.open(path("plain"), "wb") { |f| LVMSync.send_changes(@store, path("origin.img"), f, plain: true) }
    bent = File.binread(path("plain"))
    at -= 36
    bent.setbyte(at, bent.getbyte(at) ^ 0xff)
    File.binwrite(path("bent"), bent)
    got = LVMSync.apply(path("bent"), path("dest"), verify: true)
    report = LVMSync.compare_digests(@sent.digests, got.digests)
    expect(report[:matched]).to eq(recs.size - 1)
    expect(report[:mismatches]).to eq(1)
    expect(report[:examples]).to eq([[recs[victim][0], 1 << 20, "differs"]])
    # The line lvmsync --verify prints: the same comparison, worded by the core.
    v = LVMSync.verify_digests(@sent.digests, got.digests, "/dev/vg1/copy")
    expect(v.slice(:matched, :mismatches, :examples)).to eq(report)
    expect(v[:ok]).to be(false)
    expect(v[:message]).to eq("verify FAILED: 1 of #{recs.size} ranges of /dev/vg1/copy do not match the source: " \
                              "bytes #{recs[victim][0]}..#{recs[victim][0] + (1 << 20) - 1} (differs)")
    v = LVMSync.verify_digests(@sent.digests, @sent.digests, "host:/dev/x")
    expect(v.values_at(:ok, :message))
      .to eq([true, "verify: all #{recs.size} ranges read back from host:/dev/x match the source (XXH3)"])
  end

  it "reports missing and unexpected records, and keeps only the first 20 examples" do
    d = @sent.digests
    n = d.bytesize / 24
    expect(LVMSync.compare_digests(d, d.byteslice(0, 24 * (n - 1)))[:examples])
      .to eq([[*unpack(d).last.first(2), "missing"]])
    expect(LVMSync.compare_digests(d.byteslice(24..), d)[:examples].first[2]).to eq("differs")
    expect(LVMSync.compare_digests("".b, d.byteslice(0, 48))[:examples].map(&:last)).to eq(%w[unexpected unexpected])
    r = LVMSync.compare_digests(d, "".b)
    expect([r[:matched], r[:mismatches], r[:examples].size]).to eq([0, n, 20])
    expect { LVMSync.compare_digests("x", d) }.to raise_error(LVMSync::Error, /sent digests: 1 bytes/)
  end

  it "has a text form for the remote channel that parses back exactly" do
    lines = LVMSync.digest_lines(@sent.digests)
    expect(lines.size).to eq(@sent.records)
    expect(lines).to all(match(/\Alvmsync-verify \d+ \d+ [0-9a-f]{16}\z/))
    off, len, hash = unpack(@sent.digests).first
    expect(lines.first).to eq("lvmsync-verify #{off} #{len} #{hash.to_s(16).rjust(16, '0')}")
    expect(LVMSync.parse_digest_lines(lines) == @sent.digests).to be(true)
    expect(LVMSync.parse_digest_lines(lines.map { |l| "#{l}\n" }.join) == @sent.digests).to be(true)
    expect(LVMSync.parse_digest_lines([])).to eq("".b)
    top = [2**64 - 1, 2**64 - 1, 2**64 - 1].pack("Q>3")
    expect(LVMSync.parse_digest_lines(LVMSync.digest_lines(top))).to eq(top)
    ["lvmsync-verify 1 2 abc", "lvmsync-verify 1 2 0123456789abcdef extra", "lvmsync-verify -1 2 0123456789abcdef",
     "lvmsync-verify 18446744073709551616 2 0123456789abcdef", "FATAL ERROR: APPLY FAILED"].each do |bad|
      expect { LVMSync.parse_digest_lines([lines.first, bad]) }
        .to raise_error(LVMSync::Error, /digest line 2 is malformed/)
    end
    expect { LVMSync.digest_lines("x" * 25) }.to raise_error(LVMSync::Error, /25 bytes/)
  end
end
