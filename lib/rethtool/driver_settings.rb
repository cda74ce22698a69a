# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Driver information of an interface (ETHTOOL_GDRVINFO, `ethtool -i`).
  #
  #   d = Rethtool::DriverSettings.new("eth0")
  #   d.driver     # => "e1000"
  #   d.bus_info   # => "0000:00:03.0"
  class DriverSettings
    include Query

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @raw = query(interface, netns, handle) { |h, i| h.driver_info(i) }
    end

    # The driver (kernel module) name.
    def driver
      @raw.driver
    end

    # The bus address ("0000:00:03.0"; "" for virtual devices).
    def bus_info
      @raw.bus_info
    end

    # The driver version.
    def version
      @raw.version
    end

    # The firmware version ("" when none).
    def firmware_version
      @raw.fw_version
    end
    alias fw_version firmware_version

    # The expansion ROM version.
    def erom_version
      @raw.erom_version
    end

    # Number of NIC statistics, private flags, self-tests; EEPROM and register dump sizes.
    %i[n_stats n_priv_flags testinfo_len eedump_len regdump_len].each do |k|
      define_method(k) { @raw.public_send(k) }
    end

    # Everything as a Hash (driver, version, fw_version, bus_info, erom_version and the counts).
    def to_h
      DriverInfoData::FIELDS.to_h { |f| [f, @raw.public_send(f)] }
    end

    def inspect
      "#<#{self.class} #{interface} driver=#{driver.inspect} bus_info=#{bus_info.inspect}>"
    end
  end
end
