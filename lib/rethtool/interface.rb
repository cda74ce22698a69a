# frozen_string_literal: true

require_relative "base"

class Rethtool
  # Several queries of one interface over one socket (the query classes each open their own).
  #
  #   Rethtool::Interface.open("eth0") do |i|
  #     i.link_up?              # ETHTOOL_GLINK
  #     i.admin_up?             # SIOCGIFFLAGS IFF_UP
  #     i.link_settings.speed   # a LinkSettings
  #     i.counters.rx_bytes     # an InterfaceCounters
  #   end
  class Interface
    # Interface flags (SIOCGIFFLAGS).
    IFF_UP = 0x1
    IFF_RUNNING = 0x40

    # The interface name.
    attr_reader :name
    # The network namespace (nil: the caller's).
    attr_reader :netns

    # Opens a handle for +name+ in +netns+ and yields the Interface, closing it afterwards;
    # without a block returns it (call #close when done).
    def self.open(name, netns: nil, handle: nil)
      iface = new(name, netns: netns, handle: handle)
      return iface unless block_given?

      begin
        yield iface
      ensure
        iface.close
      end
    end

    # +handle+: share an open Rethtool::Handle (it is then not closed by #close).
    def initialize(name, netns: nil, handle: nil)
      Rethtool.check_interface_name(name)
      @name = name.to_s
      @netns = netns
      @own = handle.nil?
      @handle = handle || Handle.open(netns)
    end

    # Closes the handle if this object opened it.
    def close
      @handle.close if @own
    end

    # ETHTOOL_GLINK: link detected.
    def link_up?
      @handle.link(@name)
    end

    # Interface flags (IFF_*; low 16 bits).
    def flags
      @handle.if_flags(@name)
    end

    # Administratively up (IFF_UP; `ip link set IF up`).
    def admin_up?
      flags.anybits?(IFF_UP)
    end

    # Interface index.
    def index
      @handle.if_index(@name)
    end

    # A LinkSettings.
    def link_settings
      LinkSettings.new(@name, netns: @netns, handle: @handle)
    end

    # A DriverSettings.
    def driver_settings
      DriverSettings.new(@name, netns: @netns, handle: @handle)
    end

    # An InterfaceSettings (rethtool 0.0.8's view).
    def settings
      InterfaceSettings.new(@name, netns: @netns, handle: @handle)
    end

    # A RingSettings.
    def ring_settings
      RingSettings.new(@name, netns: @netns, handle: @handle)
    end

    # A Channels.
    def channels
      Channels.new(@name, netns: @netns, handle: @handle)
    end

    # A PauseSettings.
    def pause_settings
      PauseSettings.new(@name, netns: @netns, handle: @handle)
    end

    # A CoalesceSettings.
    def coalesce_settings
      CoalesceSettings.new(@name, netns: @netns, handle: @handle)
    end

    # A PermanentAddress.
    def permanent_address
      PermanentAddress.new(@name, netns: @netns, handle: @handle)
    end

    # A Statistics.
    def statistics
      Statistics.new(@name, netns: @netns, handle: @handle)
    end

    # An InterfaceCounters.
    def counters
      InterfaceCounters.new(@name, netns: @netns, handle: @handle)
    end

    # The kernel's ETH_SS_LINK_MODES strings, indexed by bit.
    def kernel_link_mode_names
      @handle.link_mode_names(@name)
    end

    def inspect
      "#<#{self.class} #{@name}#{@netns ? " netns=#{@netns}" : ''}>"
    end
  end
end
