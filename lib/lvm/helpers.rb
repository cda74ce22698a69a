# frozen_string_literal: true

require_relative "../lvm"

module LVM
  # Byte-order helpers of the original API (used by scripts that build PROTO[3] headers as
  # `[htonq(offset), length].pack("QN")`), plus device naming.
  module Helpers
    # Are we on a big-endian system?
    def big_endian?
      [1].pack("s") == [1].pack("n")
    end

    # Host to network (big-endian) order of a 64-bit value, for `pack("Q")`.
    def htonq(val)
      big_endian? ? val : swap_longs(val)
    end

    # Network (big-endian) to host order of a 64-bit value read with `unpack("Q")`.
    def ntohq(val)
      big_endian? ? val : swap_longs(val)
    end

    # On-disk LVM (little-endian) to host order of a 64-bit value.
    def dtohq(val)
      big_endian? ? swap_longs(val) : val
    end

    # Reverses the 8 bytes of a 64-bit value.
    def swap_longs(val)
      [val].pack("Q").reverse.unpack1("Q")
    end

    module_function

    # Where device nodes live: $DM_DEV_DIR (as LVM and libdevmapper honour it) or /dev.
    def dev_dir
      dir = ENV.fetch("DM_DEV_DIR", "")
      dir.empty? ? "/dev" : dir.chomp("/")
    end

    # The device-mapper name of +lv+ in +vg+, with an optional layer ("cow", "real"...):
    # dashes inside names doubled, parts joined with a dash.
    def dm_name(vg, lv, layer = nil)
      LVM::Native.dm_name(vg.to_s, lv.to_s, layer&.to_s)
    end

    # /dev/mapper/<dm name>
    def dm_path(vg, lv, layer = nil)
      File.join(dev_dir, "mapper", dm_name(vg, lv, layer))
    end
  end
end
