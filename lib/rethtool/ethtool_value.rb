# frozen_string_literal: true

require_relative "command_struct"

class Rethtool
  # struct ethtool_value (ETHTOOL_GLINK and the other single-value commands).
  class EthtoolValue < CommandStruct
    uint32 :cmd
    uint32 :value
  end
end
