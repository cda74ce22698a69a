# frozen_string_literal: true

# Rethtool: SIOCETHTOOL queries from Ruby, compatible with rethtool 0.0.8 and extended.
#
#   require "rethtool"
#   Rethtool::InterfaceSettings.new("eth0").current_mode.to_s   # => "1000baseT/full"
#   Rethtool::LinkStatus.new("eth0").up?                          # => true
#   Rethtool::Statistics.new("eth0").to_h                         # => {"rx_packets"=>..., ...}
#
# The classes of rethtool 0.0.8 (InterfaceSettings with its Mode struct, LinkStatus,
# DriverSettings, RingSettings, the ETHTOOL_CMD_* constants) keep their names, methods and
# return types. New classes: LinkSettings (every link mode, via ETHTOOL_GLINKSETTINGS),
# Statistics, Channels, PauseSettings, CoalesceSettings, PermanentAddress, InterfaceCounters,
# and Interface (several queries over one socket).
#
# Every constructor takes +netns:+ to query another network namespace: a name as used by
# `ip netns` ("blue"), a namespace file path ("/proc/1234/ns/net"), or a process id (1234).
#
# Failures raise SystemCallError subclasses (Errno::EOPNOTSUPP when the driver lacks the
# operation, Errno::ENODEV for a missing interface, Errno::EPERM for a change without
# CAP_NET_ADMIN, ...) whose message names the interface and the operation, e.g.
# "Operation not supported - veth0: get ring parameters (ETHTOOL_GRINGPARAM)". Our own
# refusals are Rethtool::Error subclasses (< Ironshed::Error): InvalidInterfaceName (empty,
# 16+ bytes, or "eth0:1"), InvalidNamespaceName, KernelReplyError.
require_relative "rethtool/base"
require_relative "rethtool/link_settings"
require_relative "rethtool/driver_settings"
require_relative "rethtool/interface_settings"
require_relative "rethtool/link_status"
require_relative "rethtool/ring_settings"
require_relative "rethtool/channels"
require_relative "rethtool/pause_settings"
require_relative "rethtool/coalesce_settings"
require_relative "rethtool/permanent_address"
require_relative "rethtool/statistics"
require_relative "rethtool/interface_counters"
require_relative "rethtool/interface"
