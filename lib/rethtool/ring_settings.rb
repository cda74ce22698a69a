# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Ring buffer sizes (ETHTOOL_GRINGPARAM / SRINGPARAM, `ethtool -g` / `-G`), as in
  # rethtool 0.0.8, getters and setters.
  #
  #   r = Rethtool::RingSettings.new("eth0")
  #   r.rx_max_pending      # => 4096
  #   r.rx_pending = 512    # needs CAP_NET_ADMIN (else Errno::EPERM)
  #
  # Drivers without ring parameters (veth, lo) raise Errno::EOPNOTSUPP at #new.
  class RingSettings
    include Query

    # The eight fields; the last four (current sizes) can be set.
    FIELDS = Handle::FIELDS.fetch(:rings)
    SETTABLE = Handle::SETTABLE.fetch(:rings)

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @handle = handle
      @data = query(interface, netns, handle) { |h, i| h.rings(i) }
    end

    FIELDS.each { |f| define_method(f) { @data[f] } }

    SETTABLE.each do |f|
      define_method(:"#{f}=") { |value| set(f => value) }
    end

    # Sets several sizes in one SRINGPARAM call: set(rx_pending: 512, tx_pending: 512).
    # Fields already at the requested value are left alone; nothing is sent when none differ.
    # The sizes are read back afterwards (drivers may round).
    def set(**sizes)
      @data = Rethtool.with_handle(netns, @handle) { |h| h.set_rings(interface, **sizes) }
      self
    end

    # The sizes as a Hash.
    def to_h
      @data.dup
    end

    def inspect
      "#<#{self.class} #{interface} rx=#{rx_pending}/#{rx_max_pending} tx=#{tx_pending}/#{tx_max_pending}>"
    end
  end
end
