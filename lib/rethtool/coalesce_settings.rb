# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Interrupt coalescing (ETHTOOL_GCOALESCE, `ethtool -c`): one reader per field of
  # struct ethtool_coalesce (rx_coalesce_usecs, tx_max_coalesced_frames, ...).
  class CoalesceSettings
    include Query

    FIELDS = Handle::FIELDS.fetch(:coalesce)

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @data = query(interface, netns, handle) { |h, i| h.coalesce(i) }
    end

    FIELDS.each { |f| define_method(f) { @data[f] } }

    # Adaptive RX coalescing on?
    def adaptive_rx?
      @data[:use_adaptive_rx_coalesce] != 0
    end

    # Adaptive TX coalescing on?
    def adaptive_tx?
      @data[:use_adaptive_tx_coalesce] != 0
    end

    # Every field as a Hash.
    def to_h
      @data.dup
    end
  end
end
