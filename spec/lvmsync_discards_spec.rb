# frozen_string_literal: true

require_relative "support/lvm_env"
require_relative "support/proto3"
require "lvmsync"
require "stringio"

# The "discards" extension of the lvmsync stream, checked with a decoder and an encoder written
# here from its description (not from the implementation):
#
#   first line "lvmsync PROTO[3] discards\n" instead of "lvmsync PROTO[3]\n";
#   then records of (big-endian u64 offset, big-endian u32 length, data) as in PROTO[3], except
#   that a length with the top bit (0x8000_0000) set is a discard record of (length & 0x7fff_ffff)
#   bytes at offset with no data following: that range must read as zeros afterwards.
#   A zero-length discard is invalid. In a plain stream the top bit is part of the length.
RSpec.describe "lvmsync discard records", :tmpdir do
  def plain_hs = "lvmsync PROTO[3]\n".b
  def extended_hs = "lvmsync PROTO[3] discards\n".b

  def path(name)
    File.join(@dir, name)
  end

  # [extended?, [[:data, offset, bytes] | [:discard, offset, len], ...]]; control items
  # (offset 2^63 or more: a marked stream's BEGIN and END, a journal's items) are skipped.
  def decode(stream)
    io = StringIO.new(stream.b)
    first = io.readline
    ext = case first
          when extended_hs then true
          when plain_hs then false
          else raise "bad handshake #{first.inspect}"
          end
    recs = []
    while (h = io.read(12))
      raise "stream ends inside a header" if h.bytesize < 12

      off_hi, off_lo, len = h.unpack("NNN")
      off = (off_hi << 32) | off_lo
      if off >= 1 << 63
        io.read(len)
      elsif ext && len & 0x8000_0000 != 0
        recs << [:discard, off, len & 0x7fff_ffff]
      else
        data = io.read(len) || "".b
        raise "stream ends inside a record" if data.bytesize < len

        recs << [:data, off, data]
      end
    end
    [ext, recs]
  end

  def encode(records, handshake: extended_hs)
    out = handshake.b.dup
    records.each do |kind, off, x|
      if kind == :data
        out << [off >> 32, off & 0xffff_ffff, x.bytesize].pack("NNN") << x.b
      else
        out << [off >> 32, off & 0xffff_ffff, x | 0x8000_0000].pack("NNN")
      end
    end
    out
  end

  # Bytes never zero.
  def pattern(seed, len)
    Array.new(len) { |i| ((i * 31 + seed) % 255) + 1 }.pack("C*")
  end

  def model(before, records)
    m = before.b.dup
    records.each do |kind, off, x|
      if kind == :data
        m[off, x.bytesize] = x
      else
        m[off, x] = "\0".b * x
      end
    end
    m
  end

  # Bytes of the file that are allocated on disk.
  def allocated(file)
    File.stat(file).blocks * 512
  end

  it "has a first line the original receiver refuses (it compares the chomped line with PROTO[3])" do
    expect(LVMSync::PROTOCOL_DISCARDS).to eq("lvmsync PROTO[3] discards")
    expect(LVMSync::CAPABILITIES).to eq(%w[discards verify endmark destcheck])
    expect(LVMSync::CAPABILITIES).to be_frozen
    # The original: handshake = $stdin.readline.chomp; unless handshake == PROTO then exit 1.
    original_accepts = ->(stream) { StringIO.new(stream).readline.chomp == "lvmsync PROTO[3]" }
    expect(original_accepts.call(extended_hs + "rest")).to be(false)
    expect(original_accepts.call(plain_hs + "rest")).to be(true)
    expect(extended_hs).not_to eq(plain_hs)
  end

  context "sending" do
    before do
      @layout = JSON.parse(testkit("cow", "--dir", @dir, "--origin-size", "8M", "--chunk-size", "4K",
                                   "--cow-size", "4M", "--write", "0:2M", "--write", "5M:4K",
                                   "--random-writes", "100:4K"))
      @origin = File.binread(path("origin.img"))
      @store = LVM::CowStore.open(path("cow.img"))
    end

    def send_to_string(**opts)
      File.open(path("out"), "wb") { |f| @result = LVMSync.send_changes(@store, path("origin.img"), f, **opts) }
      File.binread(path("out"))
    end

    it "is off by default: the plain handshake, no discard records" do
      default = send_to_string
      expect(default).to start_with(plain_hs)
      expect(send_to_string(discards: false) == default).to be(true)
      expect(@result.discard_records).to eq(0)
      expect(@result.digests).to be_nil
    end

    it "with discards: true, writes the extended handshake and the same records (a classic store has no discards)" do
      plain = send_to_string(plain: true)
      ext = send_to_string(discards: true, plain: true)
      expect(ext).to start_with(extended_hs)
      expect(ext.byteslice(extended_hs.bytesize..) == plain.byteslice(plain_hs.bytesize..)).to be(true)
      ext = send_to_string(discards: true)
      expect(decode(ext)[1] == decode(plain)[1]).to be(true)
      expect(Proto3.decode(ext).size).to eq(decode(plain)[1].size)
      is_ext, recs = decode(ext)
      expect(is_ext).to be(true)
      expect(recs).to all(satisfy { |r| r[0] == :data })
      recs.each { |_, off, data| expect(@origin.byteslice(off, data.bytesize) == data).to be(true) }
      expect([@result.records, @result.discard_records, @result.discard_bytes]).to eq([recs.size, 0, 0])
      expect(@result.stream_bytes).to eq(ext.bytesize)
    end

    it "accepts a CowStore, its path, and refuses other objects naming their class" do
      a = send_to_string(discards: true)
      File.open(path("out2"), "wb") { |f| LVMSync.send_changes(path("cow.img"), path("origin.img"), f, discards: true) }
      expect(File.binread(path("out2")) == a).to be(true)
      expect { LVMSync.send_changes(Object.new, path("origin.img"), File.open(path("out3"), "wb")) }
        .to raise_error(TypeError, /no change list in a Object: expected an LVM::CowStore/)
    end
  end

  context "applying" do
    before do
      @before = pattern(3, 4 << 20)
      File.binwrite(path("dest"), @before)
      File.open(path("dest"), &:fsync)
    end

    let(:records) do
      [[:data, 0, pattern(10, 8192)],
       [:discard, 1 << 20, 1 << 20],
       [:data, (1 << 20) + 4096, pattern(11, 100)], # after the discard: written over its zeros
       [:discard, 3 << 20, 65_536],
       [:discard, (4 << 20) - 1000, 1000]]
    end

    it "makes discarded ranges read as zeros and punches holes in a file, from a file and from a pipe" do
      stream = encode(records)
      File.binwrite(path("stream"), stream)
      full = allocated(path("dest"))
      r = LVMSync.apply(path("stream"), path("dest"))
      expect(File.binread(path("dest")) == model(@before, records)).to be(true)
      expect(r.discards_in_stream).to be(true)
      expect([r.records, r.bytes]).to eq([2, 8292])
      expect([r.discard_records, r.discard_bytes, r.discard_zeroed_bytes]).to eq([3, (1 << 20) + 65_536 + 1000, 0])
      expect(allocated(path("dest"))).to be <= full - (1 << 20)

      File.binwrite(path("dest"), @before)
      rd, wr = IO.pipe
      writer = Thread.new do
        wr.write(stream)
        wr.close
      end
      r = LVMSync.apply(rd, path("dest"))
      writer.join
      rd.close
      expect(File.binread(path("dest")) == model(@before, records)).to be(true)
      expect(r.discard_records).to eq(3)
    end

    it "lvmsync --apply takes an extended stream as it is" do
      File.binwrite(path("stream"), encode(records))
      _o, err, st = run_exe("lvmsync", "--apply", path("stream"), path("dest"))
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(path("dest")) == model(@before, records)).to be(true)
    end

    it "saves the old bytes of discarded ranges in the snapback file, which restores them exactly" do
      # 256 KiB of the old content inside the first discarded range are zeros.
      before = @before.dup
      before[(1 << 20) + 65_536, 262_144] = "\0" * 262_144
      File.binwrite(path("dest"), before)
      File.binwrite(path("stream"), encode(records))
      r = LVMSync.apply(path("stream"), path("dest"), snapback: path("undo"))
      expect(File.binread(path("dest")) == model(before, records)).to be(true)
      expect(r.snapback[:bytes]).to eq(8192 + (1 << 20) + 65_536 + 1000)
      expect(r.snapback[:zero_bytes]).to eq(262_144)
      # The snapback file is an extended PROTO[3] stream: old data, and the old zeros as a
      # discard record.
      ext, recs = decode(File.binread(path("undo")))
      expect(ext).to be(true)
      recs.each do |kind, off, x|
        if kind == :discard
          expect(before.byteslice(off, x).count("\0")).to eq(x)
        else
          expect(x == before.byteslice(off, x.bytesize)).to be(true)
        end
      end
      expect(recs.select { |kind, _, _| kind == :discard }.map { |_, off, len| [off, len] })
        .to eq([[(1 << 20) + 65_536, 262_144]])
      LVMSync.apply(path("undo"), path("dest"))
      expect(File.binread(path("dest")) == before).to be(true)
    end

    it "reads the top bit as part of the length in a plain stream, and as a discard in an extended one" do
      header = [0, 100, 0x8000_0010].pack("NNN")
      File.binwrite(path("plain"), plain_hs + header)
      expect { LVMSync.apply(path("plain"), path("dest")) }
        .to raise_error(LVMSync::ProtocolError, /stream ends inside record 0 .*2147483664 bytes for offset 100/)
      expect(File.binread(path("dest")) == @before).to be(true)
      File.binwrite(path("ext"), extended_hs + header)
      r = LVMSync.apply(path("ext"), path("dest"))
      expect([r.discard_records, r.discard_bytes]).to eq([1, 16])
      expect(File.binread(path("dest")) == model(@before, [[:discard, 100, 16]])).to be(true)
    end

    it "refuses a zero-length discard and a discard past the end before writing anything" do
      File.binwrite(path("zero"), encode([[:data, 0, "abc"], [:discard, 4096, 0]]))
      expect { LVMSync.apply(path("zero"), path("dest")) }
        .to raise_error(LVMSync::ProtocolError, /record 1 \(stream byte 41\) is a discard record of length 0/)
      File.binwrite(path("past"), encode([[:data, 0, "abc"], [:discard, (4 << 20) - 4096, 8192]]))
      expect { LVMSync.apply(path("past"), path("dest")) }
        .to raise_error(Ironshed::DestinationError, /record 1 \(stream byte 41\) discards 8192 bytes at byte 4190208, past the end/)
      expect(File.binread(path("dest")) == @before).to be(true)
      r = LVMSync.apply(path("past"), path("dest"), allow_short_destination: true)
      expect([r.discard_bytes, r.skipped_records, r.skipped_bytes]).to eq([4096, 1, 4096])
    end

    it "still applies plain streams as the original writes them" do
      recs = [[:data, 8192, pattern(1, 4096)], [:data, 0, pattern(2, 4096)], [:data, 4096, pattern(3, 4096)]]
      File.binwrite(path("stream"), encode(recs, handshake: plain_hs))
      r = LVMSync.apply(path("stream"), path("dest"))
      expect(File.binread(path("dest")) == model(@before, recs)).to be(true)
      expect([r.discards_in_stream, r.discard_records]).to eq([false, 0])
    end
  end
end
