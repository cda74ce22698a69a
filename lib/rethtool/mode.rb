# frozen_string_literal: true

require_relative "base"

class Rethtool
  # A link mode: speed (Integer Mb/s, or :unknown), duplex (:half, :full, :fec, :unknown) and
  # medium ("T", "KR4", "F"...). The same Struct as rethtool 0.0.8's
  # Rethtool::InterfaceSettings::Mode (which is this class).
  Mode = Struct.new(:speed, :duplex, :media) do
    # "1000baseT/full", or "Unknown" when the speed is unknown (as rethtool 0.0.8 printed).
    def to_s
      if speed == :unknown
        "Unknown"
      else
        "#{speed}base#{media}/#{duplex}"
      end
    end

    # The name ethtool prints: "1000baseT/Full", "10000baseR_FEC"; nil when unknown.
    def ethtool_name
      return nil if speed == :unknown

      duplex == :fec ? "#{speed}base#{media}_FEC" : "#{speed}base#{media}/#{duplex.to_s.capitalize}"
    end
  end
end
