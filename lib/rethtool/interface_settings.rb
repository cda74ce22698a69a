# frozen_string_literal: true

require_relative "base"
require_relative "mode"
require_relative "link_settings"
require_relative "driver_settings"

class Rethtool
  # The settings of an interface, as in rethtool 0.0.8: driver and bus, the supported and
  # advertised modes, the current and the best mode. Now read with ETHTOOL_GLINKSETTINGS, so
  # modes past 56 Gb/s (and past the old 32-bit masks) are reported.
  #
  #   s = Rethtool::InterfaceSettings.new("eth0")
  #   s.current_mode.to_s      # => "1000baseT/full"
  #   s.best_mode.to_s         # => "1000baseT/full"
  #   s.supported_modes        # => [#<struct Rethtool::Mode speed=10, duplex=:half, media="T">, ...]
  class InterfaceSettings
    include Query

    # rethtool 0.0.8's Mode struct (speed, duplex, media), the same class as Rethtool::Mode.
    Mode = Rethtool::Mode

    # Queries link settings and driver information of +interface+; raises like the
    # underlying calls (Errno::EOPNOTSUPP for lo, Errno::ENODEV for a missing interface).
    def initialize(interface, netns: nil, handle: nil)
      query(interface, netns, handle) do |h, i|
        @link_settings = LinkSettings.new(i, netns: netns, handle: h)
        @driver_info = DriverSettings.new(i, netns: netns, handle: h)
      end
    end

    # The full LinkSettings these settings come from.
    attr_reader :link_settings
    # The DriverSettings.
    def driver_settings
      @driver_info
    end

    # The driver (kernel module) name.
    def driver
      @driver_info.driver
    end

    # The bus address of the interface.
    def bus_info
      @driver_info.bus_info
    end

    # The supported speed modes, as Mode structs, in bit order.
    def supported_modes
      @link_settings.supported_modes
    end

    # The advertised speed modes.
    def advertised_modes
      @link_settings.advertised_modes
    end

    # The current mode (speed :unknown when unknown).
    def current_mode
      @link_settings.current_mode
    end

    # The advertised mode with the highest speed and, among those, the best duplex
    # (fec > full > half). Raises Errno::EOPNOTSUPP when no modes are advertised (virtual
    # NICs, bonds), as rethtool 0.0.8 did.
    def best_mode
      @link_settings.best_advertised_mode or
        raise Errno::EOPNOTSUPP, "#{interface}: best_mode: the driver reports no advertised link modes"
    end

    def inspect
      "#<#{self.class} #{interface} driver=#{driver.inspect} current=#{current_mode}>"
    end
  end
end
