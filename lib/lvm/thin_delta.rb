# frozen_string_literal: true

require "ironshed"

module LVM
  # What changed between two thin devices of one pool, as `thin_delta` reports it, parsed
  # natively as a stream (memory follows the number of changed runs, not the pool's size).
  # Left is the older device (a snapshot), right the newer one (its origin, or a newer
  # snapshot of the same origin).
  #
  #   d = LVM::ThinDelta.run("/dev/mapper/vg0-pool_tmeta", 2, 1)   # needs a reserved metadata
  #   d.block_size          # => 65536                              # snapshot: see ThinPool
  #   d.changed_extents     # => [[offset, length], ...] blocks whose data changed (send them)
  #   d.unmapped_extents    # => blocks the newer device no longer maps (zeros, unless it
  #                         #    reads an external origin there: then its data, to send)
  #   d.ranges              # => inclusive byte Ranges of both, coalesced
  #
  # Methods: block_size, left, right, changed_extents, unmapped_extents, extents (both, merged),
  # changed_bytes, unmapped_bytes, block_counts ({same:, different:, right_only:, left_only:}),
  # record_count(max), command (the thin_delta command line run, or nil when parsed from text),
  # change_set (an LVM::ChangeSet: changed blocks as data, unmapped ones as discards).
  class ThinDelta
    # Runs `thin_delta [-m] --snap1 LEFT --snap2 RIGHT METADATA` and parses its output as it
    # arrives. +job+ (an Ironshed::Progress) lets another thread cancel it; Ctrl-C kills
    # thin_delta. Options:
    #
    # metadata_snap:: (default true) read the pool's reserved metadata snapshot, which a live
    #                 pool requires (LVM::ThinPool#with_metadata_snapshot reserves one); false
    #                 reads METADATA directly (an inactive pool's, or a file from thin_restore).
    # thin_delta::    the program to run (default "thin_delta").
    #
    # Raises LVM::ThinDeltaError when thin_delta is missing, fails (with its own message), or
    # prints something that is not a diff.
    def self.run(metadata, left, right, job: nil, **options)
      _run(metadata, Integer(left), Integer(right), job || Ironshed::Progress.new, **options)
    end

    # Parses thin_delta's XML output held in a String.
    def self.parse(xml, name: "(thin_delta output)")
      _parse(xml.to_s, name)
    end

    # Every byte that differs (changed and unmapped), as inclusive Ranges.
    def ranges
      extents.map { |off, len| off..(off + len - 1) }
    end

    def inspect
      "#<LVM::ThinDelta #{left}->#{right} block_size=#{block_size} changed_bytes=#{changed_bytes} " \
        "unmapped_bytes=#{unmapped_bytes}>"
    end
  end
end
