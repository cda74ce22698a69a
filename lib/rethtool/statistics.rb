# frozen_string_literal: true

require_relative "base"

class Rethtool
  # NIC statistics (`ethtool -S`): driver-specific names and their counters, read with
  # GSSET_INFO + GSTRINGS + GSTATS (read again if the driver's count changes in between).
  #
  #   s = Rethtool::Statistics.new("eth0")
  #   s["rx_packets"]    # => 123456
  #   s.to_h             # => {"rx_packets"=>123456, ...}
  #
  # An interface whose driver keeps no statistics (lo) gives an empty set.
  class Statistics
    include Query
    include Enumerable

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @pairs = query(interface, netns, handle) { |h, i| h.stats(i) }.freeze
    end

    # Yields [name, value] in the driver's order (names can repeat with some drivers).
    def each(&block)
      @pairs.each(&block)
    end

    # The value of statistic +name+ (the last one if the name repeats), or nil.
    def [](name)
      to_h[name.to_s]
    end

    # The names in the driver's order.
    def names
      @pairs.map(&:first)
    end

    # Number of statistics.
    def size
      @pairs.size
    end
    alias length size

    # {name => value}.
    def to_h
      @to_h ||= @pairs.to_h.freeze
    end

    # The [name, value] pairs.
    def to_a
      @pairs.dup
    end

    def inspect
      "#<#{self.class} #{interface} #{size} statistics>"
    end
  end
end
