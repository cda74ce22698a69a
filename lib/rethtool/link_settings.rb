# frozen_string_literal: true

require_relative "base"
require_relative "mode"

class Rethtool
  # Link settings with every link mode the kernel reports (ETHTOOL_GLINKSETTINGS, with the
  # legacy ETHTOOL_GSET as fallback): what `ethtool IF` prints above "Link detected".
  #
  #   ls = Rethtool::LinkSettings.new("eth0")
  #   ls.speed                    # => 1000 (Mb/s), nil when unknown
  #   ls.duplex                   # => :full, :half or :unknown
  #   ls.port_name                # => "Twisted Pair"
  #   ls.autoneg?                 # => true
  #   ls.supported_link_modes     # => ["10baseT/Half", ..., "1000baseT/Full"]
  #   ls.advertised_modes         # => [#<struct Rethtool::Mode speed=10, duplex=:half, media="T">, ...]
  class LinkSettings
    include Query

    # The tables of what the fields mean, from the native core (ethtool::settings), which
    # also does every lookup below. PORT_* values and the names ethtool prints for them.
    PORTS = LinkSettingsData::PORTS
    # Media letters rethtool 0.0.8's current_mode gave each port.
    PORT_MEDIA = LinkSettingsData::PORT_MEDIA
    # Speeds that mean "unknown": 0, and SPEED_UNKNOWN as 16 and 32 bits.
    UNKNOWN_SPEEDS = LinkSettingsData::UNKNOWN_SPEEDS
    # ETH_TP_MDI_* values.
    MDIX = LinkSettingsData::MDIX
    # MASTER_SLAVE_CFG_* values.
    MASTER_SLAVE_CFG = LinkSettingsData::MASTER_SLAVE_CFG
    # MASTER_SLAVE_STATE_* values.
    MASTER_SLAVE_STATE = LinkSettingsData::MASTER_SLAVE_STATE
    # RATE_MATCH_* values.
    RATE_MATCHING = LinkSettingsData::RATE_MATCHING
    # DUPLEX_* values.
    DUPLEX = LinkSettingsData::DUPLEX

    # One set bit of a link-mode mask: its bit number, the name ethtool prints, and its kind
    # (:speed, :port, :autoneg, :pause, :fec, :other); speed/duplex/media for :speed modes.
    LinkMode = Struct.new(:bit, :name, :kind, :speed, :duplex, :media, keyword_init: true) do
      # The Mode struct of InterfaceSettings for a speed mode (nil otherwise).
      def to_mode
        kind == :speed ? Mode.new(speed, duplex, media) : nil
      end

      def to_s
        name
      end
    end

    # Queries +interface+ (in +netns+, see Rethtool.netns_spec).
    def initialize(interface, netns: nil, handle: nil)
      @raw = query(interface, netns, handle) { |h, i| h.link_settings(i) }
    end

    # Builds an instance from a Handle#link_settings reply.
    def self.from_raw(interface, netns, raw)
      obj = allocate
      obj.instance_variable_set(:@interface, interface)
      obj.instance_variable_set(:@netns, netns)
      obj.instance_variable_set(:@raw, raw)
      obj
    end

    # Speed in Mb/s, or nil when the driver does not know it (no link, virtual NIC).
    def speed
      @raw.speed_mbps
    end

    # :half, :full or :unknown.
    def duplex
      @raw.duplex_key
    end

    # :tp, :aui, :mii, :fibre, :bnc, :da, :none, :other, or :unknown.
    def port
      @raw.port_key
    end

    # The port as ethtool names it ("Twisted Pair", "FIBRE", "Direct Attach Copper"...).
    def port_name
      @raw.port_name
    end

    # Whether autonegotiation is on.
    def autoneg?
      @raw.autoneg_on
    end

    # MDIO address of the PHY.
    def phy_address
      @raw.phy_address
    end

    # :internal or :external (deprecated by the kernel; most drivers say :internal).
    def transceiver
      @raw.transceiver_key
    end

    # MDI/MDI-X status: :mdi, :mdi_x, or :unknown.
    def mdix
      @raw.mdix_key
    end

    # MDI/MDI-X control: :mdi, :mdi_x, :auto, or :unknown.
    def mdix_ctrl
      @raw.mdix_ctrl_key
    end

    # Master/slave configuration (:unsupported unless the PHY has it, e.g. 1000baseT1).
    def master_slave_cfg
      @raw.master_slave_cfg_key
    end

    # Master/slave state.
    def master_slave_state
      @raw.master_slave_state_key
    end

    # Rate matching mode of the PHY.
    def rate_matching
      @raw.rate_matching_key
    end

    # :glinksettings, or :gset on kernels/drivers without ETHTOOL_GLINKSETTINGS (then only the
    # first 32 link-mode bits are known).
    def source
      @raw.source
    end

    # True if these settings came from the legacy ETHTOOL_GSET.
    def legacy?
      source == :gset
    end

    # u32 words per link-mode mask the kernel used.
    def link_mode_words
      @raw.link_mode_words
    end

    %i[supported advertising lp_advertising].each do |mask|
      define_method(:"#{mask}_bits") do
        (@bits ||= {})[mask] ||= @raw.public_send(mask).map { |m| LinkMode.new(**m).freeze }.freeze
      end
    end

    # Every supported link-mode bit as LinkMode structs (speeds and flags).
    alias supported_link_mode_bits supported_bits
    # Every advertised bit.
    alias advertised_link_mode_bits advertising_bits
    # Every bit the link partner advertises.
    alias link_partner_link_mode_bits lp_advertising_bits

    # Names of the supported speed modes, as ethtool prints them ("1000baseT/Full").
    def supported_link_modes
      names(supported_bits, :speed)
    end

    # Names of the advertised speed modes.
    def advertised_link_modes
      names(advertising_bits, :speed)
    end

    # Names of the speed modes the link partner advertises.
    def link_partner_link_modes
      names(lp_advertising_bits, :speed)
    end

    # Supported speed modes as Mode structs.
    def supported_modes
      supported_bits.filter_map(&:to_mode)
    end

    # Advertised speed modes as Mode structs.
    def advertised_modes
      advertising_bits.filter_map(&:to_mode)
    end

    # The link partner's speed modes as Mode structs.
    def link_partner_modes
      lp_advertising_bits.filter_map(&:to_mode)
    end

    # Supported port types (:tp, :aui, :mii, :fibre, :bnc, :backplane).
    def supported_ports
      names(supported_bits, :port).map { |n| n.downcase.to_sym }
    end

    # Whether the interface can autonegotiate.
    def supports_autoneg?
      supported_bits.any? { |m| m.kind == :autoneg }
    end

    # Whether it advertises autonegotiation.
    def advertises_autoneg?
      advertising_bits.any? { |m| m.kind == :autoneg }
    end

    # Supported pause flags: a subset of ["Pause", "Asym_Pause"].
    def supported_pause
      names(supported_bits, :pause)
    end

    # Advertised pause flags.
    def advertised_pause
      names(advertising_bits, :pause)
    end

    # Supported FEC modes ("None", "RS", "BASER", "LLRS").
    def supported_fec_modes
      names(supported_bits, :fec)
    end

    # Advertised FEC modes.
    def advertised_fec_modes
      names(advertising_bits, :fec)
    end

    # The current speed/duplex/medium as a Mode (speed :unknown when unknown; the medium
    # from the port, as rethtool 0.0.8 did: "T", "F", "AUI", ...).
    def current_mode
      Mode.new(speed || :unknown, duplex, @raw.port_media)
    end

    # The advertised speed mode rethtool 0.0.8's best_mode picks (the highest speed and,
    # among those, the best duplex: fec > full > half) as a Mode; nil when none is advertised.
    def best_advertised_mode
      best = @raw.best_advertised
      best && LinkMode.new(**best).to_mode
    end

    # Everything as a Hash.
    def to_h
      { interface: interface, speed: speed, duplex: duplex, port: port, autoneg: autoneg?,
        phy_address: phy_address, transceiver: transceiver, mdix: mdix, mdix_ctrl: mdix_ctrl,
        supported_link_modes: supported_link_modes, advertised_link_modes: advertised_link_modes,
        link_partner_link_modes: link_partner_link_modes, supported_ports: supported_ports,
        supports_autoneg: supports_autoneg?, advertises_autoneg: advertises_autoneg?,
        supported_pause: supported_pause, advertised_pause: advertised_pause,
        supported_fec_modes: supported_fec_modes, advertised_fec_modes: advertised_fec_modes,
        master_slave_cfg: master_slave_cfg, master_slave_state: master_slave_state,
        source: source, link_mode_words: link_mode_words }
    end

    def inspect
      "#<#{self.class} #{interface} speed=#{speed.inspect} duplex=#{duplex} port=#{port} " \
        "autoneg=#{autoneg?} supported=#{supported_link_modes.inspect}>"
    end

    private

    def names(bits, kind)
      bits.select { |m| m.kind == kind }.map(&:name)
    end
  end
end
