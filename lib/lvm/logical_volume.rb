# frozen_string_literal: true

require_relative "../lvm"
require "open3"

module LVM
  # A logical volume, by device path (resolved with `lvs`) or by VG and LV name.
  #
  #   lv = LVM::LogicalVolume.new("/dev/vg0/snap")   # or ("vg0", "snap")
  #   lv.snapshot?     # => true
  #   lv.origin.path   # => "/dev/mapper/vg0-origin"
  #   lv.changes       # => inclusive byte Ranges that differ between snapshot and origin
  class LogicalVolume
    include Helpers

    attr_reader :vg_name, :lv_name

    # Raises LVM::Error when the path is not an LV LVM knows, or the LV does not exist.
    def initialize(path_or_vg_name, lv_name = nil, vgcfg: nil)
      if lv_name.nil?
        @vg_name, @lv_name = resolve(path_or_vg_name.to_s)
      else
        @vg_name = path_or_vg_name.to_s
        @lv_name = lv_name.to_s
      end
      @vgcfg = vgcfg || VGConfig.new(@vg_name)
      @lvcfg = @vgcfg.logical_volumes[@lv_name]
      return if @lvcfg

      raise LVM::Error, "Logical volume #{@lv_name} does not exist in volume group #{@vg_name}"
    end

    # The LV's metadata (LVM::LVConfig).
    def config = @lvcfg
    # The volume group's metadata (LVM::VGConfig).
    def vg_config = @vgcfg

    # /dev/mapper/<vg>-<lv> (dashes in names doubled).
    def path
      dm_path(@vg_name, @lv_name)
    end

    # Is this LV a snapshot (classic or thin)?
    def snapshot?
      @lvcfg.snapshot?
    end

    # Is this a thin LV?
    def thin?
      @lvcfg.thin?
    end

    # The origin LV (an LVM::LogicalVolume) of a snapshot, else nil.
    def origin
      return nil unless snapshot?

      name = @lvcfg.origin || @vgcfg.classic_snapshots.dig(@lv_name, :origin)
      name && LogicalVolume.new(@vg_name, name, vgcfg: @vgcfg)
    end

    # The snapshot object (LVM::Snapshot or LVM::ThinSnapshot), else nil.
    def snapshot
      return nil unless snapshot?

      (thin? ? ThinSnapshot : Snapshot).new(@vg_name, @lv_name, vgcfg: @vgcfg)
    end

    # Inclusive byte Ranges that differ between this snapshot and its origin; [] when this LV
    # is not a snapshot.
    def changes
      snapshot? ? snapshot.differences : []
    end

    def inspect
      "#<LVM::LogicalVolume #{@vg_name}/#{@lv_name}>"
    end

    private

    def resolve(path)
      out, err, st = Open3.capture3("lvs", "--noheadings", "-o", "vg_name,lv_name", path)
      Native.lvs_names(path, out, err, st.success?)
    rescue SystemCallError => e
      raise LVM::Error, "Failed to interrogate LVM about '#{path}': cannot run lvs: #{e.message}"
    end
  end
end
