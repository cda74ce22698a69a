# frozen_string_literal: true

require "ironshed"

# The LVM API of the original lvmsync gem, on a native core: scripts written against it run
# unchanged.
#
#   vg = LVM::VGConfig.new("vg0")                 # runs `vgcfgbackup -f TMP vg0` and parses it
#   vg.logical_volumes["snap"].snapshot?          # => true
#   lv = LVM::LogicalVolume.new("/dev/vg0/snap")  # resolved with `lvs`
#   lv.origin.path                                # => "/dev/mapper/vg0-origin"
#   lv.changes                                    # => [0..8191, 1048576..1052671, ...]
#
# Differences from the original, all compatible: the metadata parser is native and accepts
# everything LVM writes (negative numbers, escaped quotes, any segment type); changed ranges
# are sorted and adjacent chunks coalesced; the exception store is read with O_DIRECT instead
# of dropping the page cache of the whole machine. Errors are LVM::Error (< Ironshed::Error
# < RuntimeError, the class the original raised); lib/ironshed/errors.rb lists them.
module LVM
  # Each file of lib/lvm/ can also be required alone (as the original gem's specs did with
  # `require 'lvm/vg_config'`): it requires this file, which loads the native extension and
  # makes every class of the API available when first used.
  {
    Helpers: "helpers", PVConfig: "pv_config", SegmentConfig: "segment_config", LVConfig: "lv_config",
    VGConfig: "vg_config", Snapshot: "snapshot", ThinPool: "thin_pool", ThinSnapshot: "thin_snapshot",
    LogicalVolume: "logical_volume"
  }.each { |name, file| autoload name, File.expand_path("lvm/#{file}", __dir__) }
end

# The classes the extension defines, with what Ruby adds to them.
require_relative "lvm/cow_store"
require_relative "lvm/thin_delta"
require_relative "lvm/thin_mapping"
