# frozen_string_literal: true

require "rethtool"

module CheckInterface
  OK = 0
  WARNING = 1
  CRITICAL = 2
  UNKNOWN = 3
  NAMES = { OK => "OK", WARNING => "WARNING", CRITICAL => "CRITICAL", UNKNOWN => "UNKNOWN" }.freeze
  # Severity for combining states: CRITICAL > WARNING > UNKNOWN > OK.
  RANK = { OK => 0, UNKNOWN => 1, WARNING => 2, CRITICAL => 3 }.freeze

  def self.worst(*states)
    states.flatten.max_by { |s| RANK.fetch(s) } || OK
  end

  # The outcome for one interface: its state, the parts of its status text, perfdata, the
  # single-line additions of -v, the lines of -vv and -vvv, and the sample to save.
  class Report
    attr_reader :name, :state, :parts, :perfdata, :notes, :details, :debug
    attr_accessor :sample

    def initialize(name)
      @name = name
      @state = OK
      @parts = []
      @perfdata = []
      @notes = []
      @details = []
      @debug = []
      @sample = nil
    end

    def raise_to(state)
      @state = CheckInterface.worst(@state, state)
    end
  end

  # Why there is no usable previous sample, as the status text says it.
  BASELINE = {
    first_run: "first run",
    reboot: "first run since a reboot",
    damaged: "state file was damaged",
    reset: "counters reset (interface re-created or driver reloaded)"
  }.freeze

  # Checks one interface over an open Rethtool::Handle. +opts+ are the CLI's options.
  class InterfaceCheck
    IFF_UP = Rethtool::Interface::IFF_UP
    IFF_RUNNING = Rethtool::Interface::IFF_RUNNING
    COUNTERS = %i[rx_bytes tx_bytes rx_packets tx_packets rx_errors tx_errors rx_dropped tx_dropped].freeze

    def initialize(handle, name, opts)
      @opts = opts
      @r = Report.new(name)
      @iface = Rethtool::Interface.new(name, netns: opts[:netns], handle: handle)
    end

    # +prev+: the saved sample or nil; +why+: the reason there is none (a BASELINE key).
    def run(prev, why, now)
      begin
        flags = @iface.flags
      rescue Errno::ENODEV
        @r.parts << "does not exist"
        @r.raise_to(CRITICAL)
        return @r
      end
      counters = @iface.counters.to_h
      ifindex = @iface.index
      settings = link_settings
      state_text(flags, settings)
      rates(prev, why, counters, ifindex, now)
      perf_counters(counters, settings)
      @r.sample = { "time" => now, "ifindex" => ifindex, "counters" => counters.transform_keys(&:to_s) }
      verbose(flags, settings, counters, prev) if @opts[:verbose] >= 1
      @r
    end

    private

    def verbose?(level)
      @opts[:verbose] >= level
    end

    # Administrative state first; only an interface that is up has a link state worth
    # naming. The link state is ETHTOOL_GLINK (carrier, as `ethtool` shows it) or, for
    # drivers without it (ifb, dummy, many virtual devices), IFF_RUNNING: the kernel's
    # operational state (`ip link`'s "state UP" or "UNKNOWN").
    def state_text(flags, settings)
      @link, @link_source = link_state(flags)
      if flags.nobits?(IFF_UP)
        @r.parts << "down (administratively down)"
        @r.raise_to(CRITICAL)
      elsif !@link
        @r.parts << (@link_source == :glink ? "down (no carrier)" : "down (not running)")
        @r.raise_to(CRITICAL)
      else
        @r.parts << "up"
        check_speed_duplex(settings)
      end
    end

    def link_state(flags)
      [@iface.link_up?, :glink]
    rescue Errno::EOPNOTSUPP => e
      @glink_error = Ironshed.describe_error(e)
      [flags.anybits?(IFF_RUNNING), :iff_running]
    end

    def link_settings
      @iface.link_settings
    rescue Errno::EOPNOTSUPP => e
      @settings_error = Ironshed.describe_error(e)
      nil
    end

    def check_speed_duplex(settings)
      if settings.nil?
        if @opts[:speed] || @opts[:duplex]
          @r.parts << "speed/duplex not reported by the driver (cannot check #{expected_text})"
          @r.raise_to(UNKNOWN)
        end
        return
      end
      @r.parts << "#{speed_text(settings.speed)} #{duplex_text(settings.duplex)}"
    end

    def speed_text(speed)
      text = speed ? "#{speed}Mb/s" : "speed unknown"
      compare(text, @opts[:speed] && "#{@opts[:speed]}Mb/s", speed.nil?, speed == @opts[:speed])
    end

    def duplex_text(duplex)
      text = duplex == :unknown ? "duplex unknown" : duplex.to_s
      compare(text, @opts[:duplex], duplex == :unknown, duplex == @opts[:duplex])
    end

    # +text+, with what was expected when it differs (WARNING) or is not reported (UNKNOWN).
    def compare(text, want, unreported, same)
      return text if want.nil? || (same && !unreported)

      if unreported
        @r.raise_to(UNKNOWN)
        return "#{text} (expected #{want}; the driver does not report it)"
      end
      @r.raise_to(WARNING)
      "#{text} (expected #{want})"
    end

    def expected_text
      [@opts[:speed] && "#{@opts[:speed]}Mb/s", @opts[:duplex]].compact.join(" ")
    end

    # nil when +prev+ can serve as the base of a rate, else the BASELINE key saying why not.
    def unusable(prev, why, counters, ifindex, now)
      return why || :first_run unless prev.is_a?(Hash)

      pc = prev["counters"]
      ok = pc.is_a?(Hash) && prev["time"].is_a?(Numeric) && prev["time"] < now &&
           prev["ifindex"] == ifindex &&
           counters.all? { |k, v| pc[k.to_s].is_a?(Integer) && pc[k.to_s] <= v }
      ok ? nil : :reset
    end

    # Rates need two samples. Without a usable previous one (first run, first run after a
    # reboot, counters reset) this run only saves its counters: OK, not UNKNOWN, so that a
    # reboot does not page anyone; the next run measures.
    def rates(prev, why, counters, ifindex, now)
      if (reason = unusable(prev, why, counters, ifindex, now))
        @r.parts << "#{BASELINE.fetch(reason)}: baseline saved, rates from the next run"
        return
      end
      @interval = dt = now - prev["time"]
      pc = prev["counters"]
      per_s = ->(*keys) { keys.sum { |k| counters[k] - pc[k.to_s] } / dt }
      rx = per_s.call(:rx_bytes)
      tx = per_s.call(:tx_bytes)
      err = per_s.call(:rx_errors, :tx_errors)
      drop = per_s.call(:rx_dropped, :tx_dropped)

      @r.parts << rate_text("rx", rx, @opts[:min_rx])
      @r.parts << rate_text("tx", tx, @opts[:min_tx])
      @r.parts << range_text("errors", err, 0)
      @r.parts << range_text("drops", drop, 1)
      @r.perfdata << ["rx_rate", "#{Output.num(rx)};;#{min_range(@opts[:min_rx])};0"]
      @r.perfdata << ["tx_rate", "#{Output.num(tx)};;#{min_range(@opts[:min_tx])};0"]
      @r.perfdata << ["error_rate", "#{Output.num(err)};#{@opts[:warn][0]};#{@opts[:crit][0]};0"]
      @r.perfdata << ["drop_rate", "#{Output.num(drop)};#{@opts[:warn][1]};#{@opts[:crit][1]};0"]
    end

    def min_range(min)
      min && "#{Output.num(min.bytes_per_second)}:"
    end

    # "rx 2.6 MB/s (minimum 2.5 MB/s)": in the units the threshold was written in (decimal
    # for k/M/G, binary for Ki/Mi/Gi); without a suffix on either threshold, binary.
    def rate_text(dir, rate, min)
      si = rate_family(min) == :si
      t = "#{dir} #{Ironshed::Units.rate(rate, si: si)}"
      return t unless min && rate < min.bytes_per_second

      @r.raise_to(CRITICAL)
      "#{t} (minimum #{Ironshed::Units.rate(min.bytes_per_second, si: si)})"
    end

    def rate_family(min)
      min&.family || [@opts[:min_rx], @opts[:min_tx]].compact.map(&:family).compact.first
    end

    def range_text(what, rate, idx)
      t = "#{what} #{Output.num(rate)}/s"
      if (c = @opts[:crit][idx]) && c.alert?(rate)
        @r.raise_to(CRITICAL)
        return "#{t} (critical #{c})"
      end
      if (w = @opts[:warn][idx]) && w.alert?(rate)
        @r.raise_to(WARNING)
        return "#{t} (warning #{w})"
      end
      t
    end

    def perf_counters(c, settings)
      COUNTERS.each { |k| @r.perfdata << [k.to_s, "#{c[k]}c"] }
      @r.perfdata << ["link", @link ? "1" : "0"]
      @r.perfdata << ["speed_mbps", settings.speed.to_s] if settings&.speed
    end

    def driver
      d = @iface.driver_settings
      [d.driver, d.bus_info]
    rescue Errno::EOPNOTSUPP
      [nil, nil]
    end

    # -v: one parenthesis per interface; -vv: one line per interface; -vvv: how each value
    # was obtained.
    def verbose(flags, settings, counters, prev)
      drv, bus = driver
      link = @link_source == :glink ? "link from ETHTOOL_GLINK" : "link from IFF_RUNNING (no ETHTOOL_GLINK)"
      @r.notes << "driver #{drv || 'unknown'}" << link
      @r.notes << format("rates over %.1f s", @interval) if @interval
      return unless verbose?(2)

      modes = ""
      if settings
        adv = settings.advertised_link_modes.join(" ")
        modes = "; advertised #{adv.empty? ? 'none' : adv}, autoneg #{settings.autoneg? ? 'on' : 'off'}"
      end
      c = counters
      @r.details << "#{@r.name}: driver #{drv || 'unknown'}#{bus.to_s.empty? ? '' : " at #{bus}"}#{modes}; " \
                    "rx #{c[:rx_bytes]} bytes #{c[:rx_packets]} packets, tx #{c[:tx_bytes]} bytes " \
                    "#{c[:tx_packets]} packets, errors #{c[:rx_errors]}/#{c[:tx_errors]}, " \
                    "dropped #{c[:rx_dropped]}/#{c[:tx_dropped]}"
      debug(flags, prev) if verbose?(3)
    end

    def debug(flags, prev)
      n = @r.name
      @r.debug << format("%s: ifindex %d, flags 0x%04x (IFF_UP %s, IFF_RUNNING %s)", n, @iface.index, flags,
                         flags.anybits?(IFF_UP) ? "on" : "off", flags.anybits?(IFF_RUNNING) ? "on" : "off")
      @r.debug << "#{n}: ETHTOOL_GLINK not supported (#{@glink_error}); link state from IFF_RUNNING" if @glink_error
      @r.debug << "#{n}: link settings not reported (#{@settings_error})" if @settings_error
      if prev.is_a?(Hash) && prev["counters"].is_a?(Hash)
        saved = prev["counters"].map { |k, v| "#{k} #{v}" }.join(", ")
        @r.debug << "#{n}: previous sample: ifindex #{prev['ifindex']}, #{saved}"
      else
        @r.debug << "#{n}: no previous sample"
      end
    end
  end
end
