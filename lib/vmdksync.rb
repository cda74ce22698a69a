# frozen_string_literal: true

require "ironshed"

# Apply a VMware snapshot delta onto a raw copy of its base disk.
#
#   delta = VMDKSync::Delta.open("vm-000001.vmdk")   # descriptor or -delta.vmdk extent
#   delta.capacity        # => 4294967296 (bytes)
#   delta.extents         # => [[offset, length], ...] changed byte ranges
#   VMDKSync.apply("vm-000001.vmdk", "/dev/vg0/vm")   # => #<struct VMDKSync::Result ...>
#
# Every check (delta structure, parent CID, destination size) runs before the first write.
module VMDKSync
  # What an apply or dry run did. +seconds+ is wall time; +dry_run+ is true when nothing was
  # written.
  Result = Struct.new(:grains, :bytes, :extents, :writes, :seconds, :dry_run, keyword_init: true)

  # A validated delta (native class). Opening it reads and checks the descriptor, the extent's
  # header and every grain table, and the parent descriptor when one is named or found.
  class Delta
    # Opens +path+ (a descriptor like vm-000001.vmdk or an extent like vm-000001-delta.vmdk).
    #
    # base::          the base disk's descriptor (vm.vmdk); its CID must equal the delta's
    #                 parentCID. Without it, the descriptor's parentFileNameHint is checked
    #                 when that file exists.
    # allow_unclean:: accept a delta whose uncleanShutdown flag is set.
    def self.open(path, base: nil, allow_unclean: false)
      _open(path.to_s, base&.to_s, allow_unclean ? true : false)
    end

    # Writes the delta onto +dest+ (a file or block device holding the raw base).
    #
    # allow_larger_destination:: accept a destination larger than the virtual disk.
    # dry_run::  check the destination read-only and report, writing nothing.
    # progress:: a callable given (bytes_done, bytes_total) a few times a second.
    def apply_to(dest, allow_larger_destination: false, dry_run: false, progress: nil)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      stats = if dry_run
                _dry_run(dest.to_s, allow_larger_destination ? true : false)
              else
                Ironshed.with_progress(progress) do |prog|
                  _apply(dest.to_s, allow_larger_destination ? true : false, prog)
                end
              end
      Result.new(**stats, seconds: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started,
                          dry_run: dry_run)
    end

    # Extents as Ruby Ranges of bytes (exclusive end), like the lvmsync API's differences.
    def ranges
      extents.map { |off, len| off...(off + len) }
    end

    def inspect
      "#<#{self.class} #{path} #{format} capacity=#{capacity} grain_size=#{grain_size} " \
        "grains=#{grain_count} changed_bytes=#{changed_bytes}>"
    end
  end

  # Opens +snapshot+ and applies it to +dest+ (see Delta.open and Delta#apply_to for options).
  def self.apply(snapshot, dest, base: nil, allow_unclean: false, allow_larger_destination: false,
                 dry_run: false, progress: nil)
    Delta.open(snapshot, base: base, allow_unclean: allow_unclean)
         .apply_to(dest, allow_larger_destination: allow_larger_destination, dry_run: dry_run,
                         progress: progress)
  end
end
