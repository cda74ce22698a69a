# frozen_string_literal: true

require "ironshed"

module LVM
  # The dm-snapshot exception store of a classic snapshot (its -cow device), validated and
  # read natively: block devices with O_DIRECT, so the records are the ones on the device now.
  #
  #   store = LVM::CowStore.open("/dev/mapper/vg0-snap-cow")
  #   store.chunk_size       # => 4096
  #   store.extents          # => [[offset, length], ...] sorted, adjacent chunks coalesced
  #   store.change_set       # => LVM::ChangeSet (what LVMSync.send_changes sends)
  #
  # Refuses an invalid (overflowed) snapshot with LVM::InvalidSnapshot, and a store with a
  # wrong magic, version or structure with LVM::SnapshotError.
  class CowStore
    def self.open(path)
      _open(path.to_s)
    end

    # Changed origin bytes as inclusive Ranges (the original API's form).
    def ranges
      extents.map { |off, len| off..(off + len - 1) }
    end

    def inspect
      "#<LVM::CowStore #{path} chunk_size=#{chunk_size} exceptions=#{exception_count} " \
        "changed_bytes=#{changed_bytes}>"
    end
  end
end
