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

    # PORT_* values and the names ethtool prints for them.
    PORTS = { 0x00 => [:tp, "Twisted Pair"], 0x01 => [:aui, "AUI"], 0x02 => [:mii, "MII"],
              0x03 => [:fibre, "FIBRE"], 0x04 => [:bnc, "BNC"], 0x05 => [:da, "Direct Attach Copper"],
              0xef => [:none, "None"], 0xff => [:other, "Other"] }.freeze
    # Media letters rethtool 0.0.8's current_mode gave each port.
    PORT_MEDIA = { 0x00 => "T", 0x01 => "AUI", 0x02 => "MII", 0x03 => "F", 0x04 => "BNC",
                   0x05 => "DA", 0xef => "None", 0xff => "Other" }.freeze
    # Speeds that mean "unknown": 0, and SPEED_UNKNOWN as 16 and 32 bits.
    UNKNOWN_SPEEDS = [0, 0xffff, 0xffff_ffff].freeze
    MDIX = { 0 => :unknown, 1 => :mdi, 2 => :mdi_x, 3 => :auto }.freeze
    MASTER_SLAVE_CFG = { 0 => :unsupported, 1 => :unknown, 2 => :master_preferred, 3 => :slave_preferred,
                         4 => :master_force, 5 => :slave_force }.freeze
    MASTER_SLAVE_STATE = { 0 => :unsupported, 1 => :unknown, 2 => :master, 3 => :slave, 4 => :error }.freeze
    RATE_MATCHING = { 0 => :none, 1 => :pause, 2 => :crs, 3 => :open_loop }.freeze
    DUPLEX = { 0 => :half, 1 => :full }.freeze

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
      s = @raw.speed
      UNKNOWN_SPEEDS.include?(s) ? nil : s
    end

    # :half, :full or :unknown.
    def duplex
      DUPLEX.fetch(@raw.duplex, :unknown)
    end

    # :tp, :aui, :mii, :fibre, :bnc, :da, :none, :other, or :unknown.
    def port
      PORTS.fetch(@raw.port, [:unknown])[0]
    end

    # The port as ethtool names it ("Twisted Pair", "FIBRE", "Direct Attach Copper"...).
    def port_name
      PORTS.fetch(@raw.port, [nil, "Unknown! (#{@raw.port})"])[1]
    end

    # Whether autonegotiation is on.
    def autoneg?
      @raw.autoneg == 1
    end

    # MDIO address of the PHY.
    def phy_address
      @raw.phy_address
    end

    # :internal or :external (deprecated by the kernel; most drivers say :internal).
    def transceiver
      @raw.transceiver == 1 ? :external : :internal
    end

    # MDI/MDI-X status: :mdi, :mdi_x, or :unknown.
    def mdix
      MDIX.fetch(@raw.eth_tp_mdix, :unknown)
    end

    # MDI/MDI-X control: :mdi, :mdi_x, :auto, or :unknown.
    def mdix_ctrl
      MDIX.fetch(@raw.eth_tp_mdix_ctrl, :unknown)
    end

    # Master/slave configuration (:unsupported unless the PHY has it, e.g. 1000baseT1).
    def master_slave_cfg
      MASTER_SLAVE_CFG.fetch(@raw.master_slave_cfg, :unknown)
    end

    # Master/slave state.
    def master_slave_state
      MASTER_SLAVE_STATE.fetch(@raw.master_slave_state, :unknown)
    end

    # Rate matching mode of the PHY.
    def rate_matching
      RATE_MATCHING.fetch(@raw.rate_matching, :none)
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
      Mode.new(speed || :unknown, duplex, PORT_MEDIA.fetch(@raw.port, "Unknown"))
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
