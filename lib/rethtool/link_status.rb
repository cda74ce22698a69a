# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Whether an interface's link is up (ETHTOOL_GLINK, what `ethtool IF` prints as "Link
  # detected"). rethtool 0.0.8 issued GSET here and so reported most down links as up.
  #
  #   Rethtool::LinkStatus.new("eth0").up?
  class LinkStatus
    include Query

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @up = query(interface, netns, handle) { |h, i| h.link(i) }
    end

    # True when the link is down (no carrier, or the interface is administratively down).
    def down?
      !@up
    end

    # True when the link is up.
    def up?
      @up
    end

    def inspect
      "#<#{self.class} #{interface} #{@up ? 'up' : 'down'}>"
    end
  end
end
