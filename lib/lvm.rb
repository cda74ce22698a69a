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
# < StandardError) where the original raised RuntimeError.
module LVM
end

require_relative "lvm/helpers"
require_relative "lvm/pv_config"
require_relative "lvm/segment_config"
require_relative "lvm/lv_config"
require_relative "lvm/vg_config"
require_relative "lvm/cow_store"
require_relative "lvm/snapshot"
require_relative "lvm/thin_delta"
require_relative "lvm/thin_pool"
require_relative "lvm/thin_snapshot"
require_relative "lvm/logical_volume"
