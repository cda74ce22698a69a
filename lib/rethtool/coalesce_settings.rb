# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Interrupt coalescing (ETHTOOL_GCOALESCE, `ethtool -c`): one reader per field of
  # struct ethtool_coalesce (rx_coalesce_usecs, tx_max_coalesced_frames, ...).
  class CoalesceSettings
    include Query

    FIELDS = %i[rx_coalesce_usecs rx_max_coalesced_frames rx_coalesce_usecs_irq
                rx_max_coalesced_frames_irq tx_coalesce_usecs tx_max_coalesced_frames
                tx_coalesce_usecs_irq tx_max_coalesced_frames_irq stats_block_coalesce_usecs
                use_adaptive_rx_coalesce use_adaptive_tx_coalesce pkt_rate_low
                rx_coalesce_usecs_low rx_max_coalesced_frames_low tx_coalesce_usecs_low
                tx_max_coalesced_frames_low pkt_rate_high rx_coalesce_usecs_high
                rx_max_coalesced_frames_high tx_coalesce_usecs_high tx_max_coalesced_frames_high
                rate_sample_interval].freeze

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
