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

    FIELDS = %i[rx_bytes rx_packets rx_errors rx_dropped rx_fifo_errors rx_frame_errors
                rx_compressed multicast tx_bytes tx_packets tx_errors tx_dropped tx_fifo_errors
                collisions tx_carrier_errors tx_compressed].freeze

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
