# frozen_string_literal: true

require "ironshed"

module LVM
  # The blocks one thin device maps, as `thin_dump` lists them, parsed natively as a stream
  # (memory follows the number of mapped runs, capped at a million ranges: past that the
  # closest runs are merged, and the gaps between them sent as the zeros they hold).
  #
  #   pool = LVM::ThinPool.new("vg0", "pool")
  #   m = pool.with_metadata_snapshot { |meta| LVM::ThinMapping.run(meta, 2) }
  #   m.block_size          # => 65536
  #   m.mapped_extents      # => [[offset, length], ...] the mapped blocks, in bytes
  #   m.mapped_bytes, m.mapped_blocks, m.dev_id
  #   LVM::ChangeSet.full("/dev/vg0/web01-s1", mapping: m)   # what lvmsync --full sends
  class ThinMapping
    # Runs `thin_dump [-m] --dev-id DEV_ID METADATA` and parses its output as it arrives.
    # +job+ (an Ironshed::Progress) lets another thread cancel it; Ctrl-C kills thin_dump.
    # Options: metadata_snap: (default true: read the pool's reserved metadata snapshot, which
    # LVM::ThinPool#with_metadata_snapshot reserves; false reads METADATA directly) and
    # thin_dump: (the program, default "thin_dump"). Raises LVM::ThinDeltaError when
    # thin_dump is missing, fails (with its own message), prints something that is not a
    # dump, or does not list the device.
    def self.run(metadata, dev_id, job: nil, **options)
      _run(metadata, Integer(dev_id), job || Ironshed::Progress.new, **options)
    end

    # Parses thin_dump's XML output held in a String, keeping device +dev_id+.
    def self.parse(xml, dev_id, name: "(thin_dump output)")
      _parse(xml.to_s, name, Integer(dev_id))
    end

    def inspect
      "#<LVM::ThinMapping dev_id=#{dev_id} block_size=#{block_size} mapped_bytes=#{mapped_bytes}>"
    end
  end

  # What a change source says to send: data ranges (data_extents, data_bytes) and ranges that
  # must read as zeros (discard_extents, discard_bytes); LVMSync.send_changes sends it.
  class ChangeSet
    # The set of a whole-volume copy of +source+ (lvmsync --full): with +mapping+ (an
    # LVM::ThinMapping of the device), its mapped ranges as data, nothing read; otherwise
    # +source+ is read whole and every all-zero 64 KiB grain is left out of the data. The
    # rest of the volume goes as discard ranges. +job+ (an Ironshed::Progress) can cancel the
    # read from another thread; +progress+ is called with (bytes_read, bytes_total).
    def self.full(source, mapping: nil, progress: nil, job: nil)
      Ironshed.with_progress(progress, job: job) { |prog| _full(source.to_s, mapping, prog) }
    end

    # The set itself (so that it can be sent like a CowStore or ThinDelta).
    def change_set = self

    # Both lists, merged: every range sent, as [offset, length] pairs.
    def extents
      (data_extents + discard_extents).sort
    end

    def inspect
      "#<LVM::ChangeSet data_bytes=#{data_bytes} discard_bytes=#{discard_bytes}>"
    end
  end
end
