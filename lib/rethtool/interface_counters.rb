# frozen_string_literal: true

require_relative "base"

class Rethtool
  # The standard interface counters every driver keeps (`ip -s link`, /proc/net/dev,
  # /sys/class/net/IF/statistics): bytes, packets, errors and drops in each direction.
  # Unlike Statistics, the names are the same for every NIC.
  #
  #   c = Rethtool::InterfaceCounters.new("eth0")
  #   c.rx_bytes    # => 123456789
  class InterfaceCounters
    include Query

    FIELDS = Handle::FIELDS.fetch(:counters)

    # Reads the counters of +interface+ (in +netns+, see Rethtool.netns_spec). Raises
    # Errno::ENODEV if the interface does not exist.
    def initialize(interface, netns: nil, handle: nil)
      @data = query(interface, netns, handle) { |h, i| h.counters(i) }.freeze
    end

    FIELDS.each { |f| define_method(f) { @data[f] } }

    # Every counter as a Hash.
    def to_h
      @data.dup
    end
  end
end
