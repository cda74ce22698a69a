# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Pause frame settings (ETHTOOL_GPAUSEPARAM, `ethtool -a`).
  class PauseSettings
    include Query

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @data = query(interface, netns, handle) { |h, i| h.pause(i) }
    end

    # Pause autonegotiation.
    def autoneg?
      @data[:autoneg]
    end

    # Receive pause frames.
    def rx?
      @data[:rx_pause]
    end

    # Send pause frames.
    def tx?
      @data[:tx_pause]
    end

    # {autoneg:, rx_pause:, tx_pause:} as booleans.
    def to_h
      @data.dup
    end
  end
end
