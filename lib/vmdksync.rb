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
  # What an apply or dry run did. +bytes+ counts destination bytes written or discarded
  # (+discarded+ of them by --discard-zeros); +inflated+ counts the compressed grains the
  # apply inflated (0 for a dry run); +seconds+ is wall time; +dry_run+ is true when
  # nothing was written. With an undo file: +undo_bytes+ it holds, +undo_state+ "created",
  # "resumed" (an interrupted apply's journal, continued; +undo_earlier_bytes+ were saved by
  # the interrupted runs) or "complete" (this apply had finished: nothing was written);
  # +undo_zero_bytes+ of +undo_bytes+ were zeros, which take no room in the file.
  Result = Struct.new(:grains, :bytes, :extents, :writes, :discarded, :inflated, :undo_bytes, :undo_state,
                      :undo_earlier_bytes, :undo_zero_bytes, :seconds, :dry_run, keyword_init: true)

  # What a verification found: bytes compared, bytes that differ, and the first differing
  # ranges as [offset, length] pairs.
  Verification = Struct.new(:bytes, :mismatched_bytes, :mismatches, keyword_init: true) do
    def ok?
      mismatched_bytes.zero?
    end
  end

  # A validated delta (native class). Opening it reads and checks the descriptor, the extent's
  # header and every grain table, and the parent descriptor when one is named or found.
  class Delta
    # Opens +path+ (a descriptor like vm-000003.vmdk, a KDMV file, or a bare extent like
    # vm-000001-delta.vmdk) and the snapshot chain below it. Options (OPEN_OPTIONS):
    #
    # base::            the descriptor of the disk the destination holds (vm.vmdk, or a
    #                   snapshot already applied): the chain is followed down to the layer
    #                   whose parentCID is its CID. Without it, parentFileNameHint is followed
    #                   to the base as far as the files exist.
    # allow_unclean::   accept deltas whose headers say they were not closed cleanly.
    # check_redundant:: compare hosted sparse extents' redundant grain tables with the
    #                   primary ones and refuse on any difference.
    # no_parent_check:: accept a chain whose parent file is missing, taking the destination to
    #                   hold exactly that parent (otherwise refused: the missing file could be
    #                   another snapshot whose changes would be lost).
    # full::            the whole disk: +path+ is a base disk without parent (monolithicSparse,
    #                   twoGbMaxExtentSparse, streamOptimized, or flat: vmfs, monolithicFlat...)
    #                   or the newest descriptor of a chain ending at one, which is included as
    #                   the oldest layer (format :flat for a flat one); ranges no
    #                   layer allocates read as zeros, so #extents is [[0, capacity]] and
    #                   apply_to writes (or, with discard_zeros, discards) every byte of the
    #                   disk, an undo file saving all of it. Without it, a parentless image is
    #                   refused. #full? says how the delta was opened.
    # inflate_once::    check every structure of compressed (streamOptimized) images, grain
    #                   markers included, but inflate no grain yet: apply_to inflates each
    #                   compressed grain exactly once, as it writes. A grain that does not
    #                   decode then raises after the batches before it were written (the
    #                   batch holding it is not): the destination is partly written. Without
    #                   it every grain is inflated when opening, to refuse a bad one before
    #                   the first write, and again when applying. A dry run of a delta opened
    #                   so inflates every grain itself (on one thread). apply_to refuses it
    #                   (ArgumentError, before the destination is opened) unless the delta is
    #                   opened with full or the apply keeps an undo file: see
    #                   Delta.inflate_once_refusal. #inflate_once? says how the delta was
    #                   opened.
    def self.open(path, **options)
      _open(path, **options)
    end

    # Writes the delta onto +dest+ (a file or block device holding the raw base).
    #
    # dry_run::  check the destination read-only and report, writing nothing.
    # progress:: a callable given (bytes_done, bytes_total) a few times a second.
    #
    # Options of the write:
    #
    # allow_larger_destination:: accept a destination larger than the virtual disk.
    # discard_zeros:: punch holes (files) or zero-out (block devices) where the chain has
    #                 zeroed grains, instead of writing zeros.
    # undo::     path of the undo journal to save the bytes about to be overwritten to
    #            (lvmsync PROTO[3] format: `lvmsync --apply FILE DEST` restores them), each
    #            batch made durable before it is overwritten: a new file, or the journal an
    #            interrupted apply of this chain to +dest+ left, which is resumed (when that
    #            apply finished, nothing is written); any other existing file is refused.
    def apply_to(dest, dry_run: false, progress: nil, **options)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      stats = if dry_run
                _dry_run(dest, **options)
              else
                Ironshed.with_progress(progress) { |prog| _apply(dest, prog, **options) }
              end
      Result.new(**stats, seconds: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started,
                          dry_run: dry_run)
    end

    # Re-reads every changed range of +dest+ (its cached pages dropped first, so the data
    # comes from the device) and compares it with the chain. Returns a Verification.
    def verify(dest, progress: nil)
      Verification.new(**Ironshed.with_progress(progress) { |prog| _verify(dest, prog) })
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

  # Opens +snapshot+ and applies it to +dest+: the options of Delta.open (Delta::OPEN_OPTIONS)
  # and of Delta#apply_to, in any order.
  def self.apply(snapshot, dest, **options)
    Delta.open(snapshot, **options.slice(*Delta::OPEN_OPTIONS))
         .apply_to(dest, **options.except(*Delta::OPEN_OPTIONS))
  end
end
