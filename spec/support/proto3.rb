# frozen_string_literal: true

require "fiddle"
require "stringio"

# An independent PROTO[3] codec for the specs, written from the format description
# (docs/lvmsync.md, "The stream"), not from the gem's codec:
#
#   "lvmsync PROTO[3]\n" (or "lvmsync PROTO[3] discards\n"), then items of a big-endian u64
#   offset, a big-endian u32 length and, for data records, that many bytes. An offset of 2^63
#   or more is a control item: 0xff and a name (zero padded), a payload of `length` bytes.
#   A marked stream starts with BEGIN (u64 records, u64 data bytes, u64 XXH3-64 of the
#   handshake and their headers) and ends with END (u64 items before it, u64 data bytes, u64
#   XXH3-64 of every byte before it).
#
# XXH3-64 comes from the reference C library (libxxhash.so.0, Debian's libxxhash0), through
# Fiddle. Also here: the original lvmsync's receiver, as its source applies a stream.
module Proto3
  HANDSHAKE = "lvmsync PROTO[3]\n".b.freeze
  HANDSHAKE_DISCARDS = "lvmsync PROTO[3] discards\n".b.freeze

  LIB = Fiddle.dlopen("libxxhash.so.0")
  XXH3 = Fiddle::Function.new(LIB["XXH3_64bits"], [Fiddle::TYPE_VOIDP, Fiddle::TYPE_SIZE_T],
                              Fiddle::TYPE_LONG_LONG)

  # XXH3-64 (seed 0) of +bytes+, as an unsigned Integer.
  def self.xxh3(bytes)
    XXH3.call(bytes.b, bytes.bytesize) & 0xffff_ffff_ffff_ffff
  end

  # The offset of the control item +name+: 0xff, the name, zero bytes.
  def self.tag(name)
    "\xff#{name}".b.ljust(8, "\0").unpack1("Q>")
  end

  def self.header(off, len)
    [off >> 32, off & 0xffff_ffff, len].pack("NNN")
  end

  def self.item(off, payload)
    header(off, payload.bytesize) + payload.b
  end

  # A plain stream of [offset, data] records.
  def self.encode(records, handshake: HANDSHAKE)
    records.each_with_object(handshake.b.dup) { |(off, data), out| out << header(off, data.bytesize) << data.b }
  end

  # A marked stream of [offset, data] records.
  def self.encode_marked(records, handshake: HANDSHAKE)
    layout = handshake.b + records.map { |off, data| header(off, data.bytesize) }.join.b
    bytes = records.sum { |_, d| d.bytesize }
    out = handshake.b + item(tag("BEGIN"), [records.size, bytes, xxh3(layout)].pack("Q>3"))
    records.each { |off, data| out << header(off, data.bytesize) << data.b }
    out << item(tag("END"), [records.size + 1, bytes, xxh3(out)].pack("Q>3"))
  end

  # The items of a stream as its framing gives them: [[offset, length, payload, at], ...], the
  # handshake line, and whether it has discard records. Raises when a header or payload is cut.
  def self.items(bytes)
    bytes = bytes.b
    line = bytes.index("\n") or raise "no handshake line"
    hs = bytes.byteslice(0, line + 1)
    ext = hs == HANDSHAKE_DISCARDS
    raise "bad handshake #{hs.inspect}" unless ext || hs == HANDSHAKE

    pos = hs.bytesize
    out = []
    while pos < bytes.bytesize
      raise "stream ends inside a header at #{pos}" if bytes.bytesize - pos < 12

      off, len = bytes.byteslice(pos, 12).unpack("Q>N")
      n = off < (1 << 63) && ext && len >= 0x8000_0000 ? 0 : len
      payload = bytes.byteslice(pos + 12, n)
      raise "stream ends inside the item at #{pos}" if payload.bytesize < n

      out << [off, len, payload, pos]
      pos += 12 + n
    end
    [hs, out, ext]
  end

  # The [offset, data] records of a complete stream, plain or marked; a marked stream's BEGIN
  # and END are checked (counts and digests), and any other control item is refused.
  def self.decode(bytes)
    bytes = bytes.b
    hs, items, = items(bytes)
    records = []
    begin_mark = nil
    items.each_with_index do |(off, len, payload, at), i|
      if off == tag("BEGIN")
        raise "BEGIN is not the first item" unless i.zero?

        begin_mark = payload.unpack("Q>3")
      elsif off == tag("END")
        raise "END without BEGIN" unless begin_mark

        data = records.sum { |_, d| d.bytesize }
        layout = hs + items[1...i].map { |o, l, _, _| header(o, l) }.join
        raise "BEGIN does not match" unless begin_mark == [records.size, data, xxh3(layout)]
        raise "END does not match" unless payload.unpack("Q>3") == [i, data, xxh3(bytes.byteslice(0, at))]
        raise "END is not last" unless i == items.size - 1
      elsif off >= (1 << 63)
        raise "unexpected control item at #{at}"
      else
        records << [off, payload]
      end
    end
    raise "a marked stream without END" if begin_mark && items.last[0] != tag("END")

    records
  end

  # True when +bytes+ is marked (BEGIN first).
  def self.marked?(bytes)
    bytes.b.byteslice(bytes.b.index("\n") + 1, 8) == [tag("BEGIN")].pack("Q>")
  end

  # The original lvmsync's receiver (lvmsync 3.3, `process_dumpdata`), as its source applies a
  # stream: compares the chomped first line with "lvmsync PROTO[3]", then for each 12-byte
  # header unpacks "QN", swaps the offset to host order (ntohq), seeks there (skipping the
  # data when the seek fails with EINVAL) and writes what `read(length)` returns. Raises what
  # it would raise (a RangeError for an offset Ruby cannot seek to).
  def self.original_apply(stream, dest)
    io = StringIO.new(stream.b)
    handshake = io.readline.chomp
    raise "Handshake failed; protocol mismatch? (saw '#{handshake}')" unless handshake == "lvmsync PROTO[3]"

    File.open(dest, "r+") do |d|
      while (header = io.read(12))
        offset, chunksize = header.unpack("QN")
        offset = [offset].pack("Q").reverse.unpack1("Q") # ntohq on a little-endian host
        begin
          d.seek offset
        rescue Errno::EINVAL
          io.read(chunksize)
          next
        end
        d.write io.read(chunksize)
      end
    end
  end
end
