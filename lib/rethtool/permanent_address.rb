# frozen_string_literal: true

require_relative "base"

class Rethtool
  # The permanent (burned-in) hardware address (ETHTOOL_GPERMADDR). Devices without one (veth,
  # lo, bridges) report all zeros: #set? is then false.
  class PermanentAddress
    include Query

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @bytes = query(interface, netns, handle) { |h, i| h.perm_addr(i) }.b.freeze
    end

    # The address bytes (a binary String, 6 bytes for Ethernet).
    attr_reader :bytes

    # "00:1b:21:3c:4d:5e".
    def to_s
      @bytes.unpack("C*").map { |b| format("%02x", b) }.join(":")
    end

    # False when the driver reports no permanent address (all zeros, or empty).
    def set?
      @bytes.each_byte.any?(&:positive?)
    end

    def inspect
      "#<#{self.class} #{interface} #{self}>"
    end
  end
end
