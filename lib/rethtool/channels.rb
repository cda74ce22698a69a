# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Channel (queue) counts (ETHTOOL_GCHANNELS / SCHANNELS, `ethtool -l` / `-L`).
  #
  #   c = Rethtool::Channels.new("eth0")
  #   c.max_combined       # => 8
  #   c.combined_count = 4 # needs CAP_NET_ADMIN (else Errno::EPERM)
  class Channels
    include Query

    FIELDS = Handle::FIELDS.fetch(:channels)
    SETTABLE = Handle::SETTABLE.fetch(:channels)

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @handle = handle
      @data = query(interface, netns, handle) { |h, i| h.channels(i) }
    end

    FIELDS.each { |f| define_method(f) { @data[f] } }

    SETTABLE.each do |f|
      define_method(:"#{f}=") { |value| set(f => value) }
    end

    # Sets several counts in one SCHANNELS call (unchanged ones are left alone); the counts
    # are read back afterwards.
    def set(**counts)
      @data = Rethtool.with_handle(netns, @handle) { |h| h.set_channels(interface, **counts) }
      self
    end

    # The counts as a Hash.
    def to_h
      @data.dup
    end

    def inspect
      "#<#{self.class} #{interface} #{@data.map { |k, v| "#{k}=#{v}" }.join(' ')}>"
    end
  end
end
