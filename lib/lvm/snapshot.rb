# frozen_string_literal: true

require_relative "../lvm"

module LVM
  # A classic (dm-snapshot) snapshot, by VG and LV name (the COW LV's name, which is the name
  # users give the snapshot).
  class Snapshot
    include Helpers

    def initialize(vg, lv, vgcfg: nil)
      @vg = vg
      @lv = lv
      @vgcfg = vgcfg
    end

    # Inclusive byte Ranges of the origin that differ from the snapshot: sorted, adjacent
    # chunks coalesced. Read from the -cow device, which must be active.
    def differences
      @differences ||= begin
        check_not_merging
        cow_store.ranges
      end
    end

    # The origin LV's name.
    def origin
      info = vgcfg.classic_snapshots[@lv]
      raise LVM::Error, "#{@vg}/#{@lv}: not a classic snapshot" unless info

      info[:origin]
    end

    # The exception store (LVM::CowStore), read once.
    def cow_store
      @cow_store ||= CowStore.open(metadata_device)
    end

    # Path of the -cow device.
    def metadata_device
      dm_path(@vg, @lv, "cow")
    end

    # Chunk size in bytes, from the store's header.
    def chunk_size
      cow_store.chunk_size
    end

    private

    def vgcfg
      @vgcfg ||= VGConfig.new(@vg)
    end

    def check_not_merging
      info = vgcfg.classic_snapshots[@lv]
      return unless info && info[:merging]

      raise LVM::SnapshotError, "#{@vg}/#{@lv}: the snapshot is being merged into its origin " \
                                "(merging_store); its exception store is in flux and cannot be used"
    end
  end
end
