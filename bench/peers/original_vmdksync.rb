# frozen_string_literal: true

# The original vmdksync's approach, as a peer for the benchmarks: a Ruby loop over a COWD
# delta's grain directory and tables that, for every allocated grain, seeks in the delta,
# reads the grain, seeks in the destination and writes it — one read and one write per grain,
# in grain-table order. The original opened the destination for appending, which makes every
# write land at the end of the file whatever the seek; this version opens it for update
# ("r+b") so that its result is correct, and flushes it at the end (fdatasync) as the
# other tools of the benchmark do. It checks nothing.
#
#   ruby bench/peers/original_vmdksync.rb DELTA_EXTENT DEST
abort "usage: #{$PROGRAM_NAME} DELTA_EXTENT DEST" unless ARGV.size == 2

SECTOR = 512
File.open(ARGV[0], "rb") do |delta|
  File.open(ARGV[1], "r+b") do |dest|
    magic, _version, _flags, _sectors, grain_size, gd_offset, gd_entries = delta.read(28).unpack("a4V6")
    abort "#{ARGV[0]}: not a COWD delta" unless magic == "COWD"
    grain_bytes = grain_size * SECTOR
    delta.seek(gd_offset * SECTOR)
    directory = delta.read(gd_entries * 4).unpack("V*")
    directory.each_with_index do |table, i|
      next if table.zero?

      delta.seek(table * SECTOR)
      delta.read(4096 * 4).unpack("V*").each_with_index do |sector, j|
        next if sector.zero?

        delta.seek(sector * SECTOR)
        data = delta.read(grain_bytes)
        dest.seek((i * 4096 + j) * grain_bytes)
        dest.write(data)
      end
    end
    dest.flush
    dest.fdatasync
  end
end
