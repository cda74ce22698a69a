# frozen_string_literal: true

require "ironshed"

# SIOCETHTOOL from Ruby (see lib/rethtool.rb for an overview). A class, as in rethtool 0.0.8.
class Rethtool
  # From <linux/sockios.h>.
  SIOCETHTOOL = 0x8946

  # ethtool command numbers (<linux/ethtool.h>). The first five are rethtool 0.0.8's.
  ETHTOOL_CMD_GLINK         = 0x0000000a
  ETHTOOL_CMD_GSET          = 0x00000001
  ETHTOOL_CMD_GDRVINFO      = 0x00000003
  ETHTOOL_CMD_GRINGPARAM    = 0x00000010
  ETHTOOL_CMD_SRINGPARAM    = 0x00000011
  ETHTOOL_CMD_SSET          = 0x00000002
  ETHTOOL_CMD_GWOL          = 0x00000005
  ETHTOOL_CMD_GMSGLVL       = 0x00000007
  ETHTOOL_CMD_GCOALESCE     = 0x0000000e
  ETHTOOL_CMD_SCOALESCE     = 0x0000000f
  ETHTOOL_CMD_GPAUSEPARAM   = 0x00000012
  ETHTOOL_CMD_SPAUSEPARAM   = 0x00000013
  ETHTOOL_CMD_GSTRINGS      = 0x0000001b
  ETHTOOL_CMD_GSTATS        = 0x0000001d
  ETHTOOL_CMD_GPERMADDR     = 0x00000020
  ETHTOOL_CMD_GSSET_INFO    = 0x00000037
  ETHTOOL_CMD_GCHANNELS     = 0x0000003c
  ETHTOOL_CMD_SCHANNELS     = 0x0000003d
  ETHTOOL_CMD_GLINKSETTINGS = 0x0000004c
  ETHTOOL_CMD_SLINKSETTINGS = 0x0000004d

  # String sets (ETH_SS_*).
  ETH_SS_TEST = 0
  ETH_SS_STATS = 1
  ETH_SS_PRIV_FLAGS = 2
  ETH_SS_FEATURES = 4
  ETH_SS_LINK_MODES = 9

  # The native session class: a socket (and /proc/net/dev) in one network namespace.
  class Handle
    # Opens a handle in +netns+ (nil: the caller's namespace; see Rethtool.netns_spec). With a
    # block, yields it and closes it afterwards.
    def self.open(netns = nil)
      handle = netns.nil? ? _current : _open(**Rethtool.netns_spec(netns))
      return handle unless block_given?

      begin
        yield handle
      ensure
        handle.close
      end
    end
  end

  class << self
    # How +netns+ is passed to the native side (Handle._open's keywords): nil, a name as
    # `ip netns` knows it ("blue") or the path of a namespace file ("/proc/1234/ns/net":
    # anything with a "/"), an object with #to_path, or a process id (Integer).
    def netns_spec(netns)
      case netns
      when nil then {}
      when Integer then { pid: netns }
      when String, Symbol then { name: netns.to_s }
      else
        return { path: netns.to_path } if netns.respond_to?(:to_path)

        raise ArgumentError, "netns: expected a name, a path or a process id, got #{netns.inspect}"
      end
    end

    # Runs the block with +handle+ if given, else with a handle opened (and closed) for it.
    def with_handle(netns, handle = nil, &block)
      return yield(handle) if handle

      Handle.open(netns, &block)
    end

    # Issues SIOCETHTOOL on +interface+ with a caller-built ethtool structure, as rethtool
    # 0.0.8 did. +ecmd+ is a binary String (the reply is returned as a new String), or an
    # object whose #data returns one (a clone whose data holds the reply is returned).
    # Only commands whose reply size is known are accepted, and the buffer must be at least
    # that long; anything else raises Rethtool::Error rather than let the kernel write past it.
    def ioctl(interface, ecmd, netns: nil)
      if ecmd.is_a?(String)
        return with_handle(netns) { |h| h.raw_ethtool(interface.to_s, ecmd) }
      end

      rv = ecmd.clone
      reply = with_handle(netns) { |h| h.raw_ethtool(interface.to_s, ecmd.data.to_s) }
      if rv.respond_to?(:data=)
        rv.data = reply
      else
        rv.data.replace(reply)
      end
      rv
    end

    # True if +name+ is an interface name the kernel would look up exactly as written
    # (1..15 bytes, no '/', ':', whitespace or NUL); raises InvalidInterfaceName otherwise.
    def check_interface_name(name)
      Handle.check_interface_name(name.to_s)
    end
  end

  # Shared by the query classes: remembers the interface and namespace, runs one query.
  module Query
    # The interface name queried.
    attr_reader :interface
    # The network namespace queried (nil: the caller's).
    attr_reader :netns

    private

    def query(interface, netns, handle)
      @interface = interface.to_s
      @netns = netns
      Rethtool.with_handle(netns, handle) { |h| yield h, @interface }
    end
  end
end
