# frozen_string_literal: true

require "optparse"
require "timeout"
require "rethtool"
require_relative "range"
require_relative "state_file"

# check_interface: a Monitoring Plugins (Nagios, Icinga, Naemon...) check that network
# interfaces are up, at the expected speed and duplex, and passing traffic.
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

  class UsageError < StandardError; end

  # The outcome for one interface.
  class Report
    attr_reader :name, :state, :parts, :perfdata, :details, :sample

    def initialize(name)
      @name = name
      @state = OK
      @parts = []
      @perfdata = []
      @details = []
      @sample = nil
    end

    def raise_to(state)
      @state = CheckInterface.worst(@state, state)
    end

    attr_writer :sample

    def text
      @parts.join(", ")
    end
  end

  # The command line. #run returns the exit status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
  class CLI
    BANNER = <<~TEXT
      Usage: check_interface -i INTERFACE [-i INTERFACE]... [options]

      Monitoring plugin (Nagios, Icinga, Naemon, Sensu...): checks that network interfaces
      are up and passing traffic. It asks the kernel directly (SIOCETHTOOL ioctls and the
      interface counters), without running or parsing ethtool.

      For each interface:
        * CRITICAL if it does not exist, is administratively down, or has no link
          (no carrier: cable, switch port, peer down);
        * WARNING if --speed or --duplex is given and the link differs;
        * CRITICAL if --min-rx-rate or --min-tx-rate is given and less traffic flowed
          since the previous run;
        * WARNING / CRITICAL if the error or drop rate since the previous run falls
          outside the -w / -c ranges;
        * UNKNOWN if a check that was asked for cannot be made: the driver does not report
          the speed or link state, the first run has no previous counters (see below), the
          namespace cannot be entered, or the options are wrong.
      The plugin's state is the worst of all (CRITICAL > WARNING > UNKNOWN > OK).

      Rates are computed from the counters saved by the previous run in a state file.
      The first run (or the first after a reboot or a counter reset) saves the counters
      and says so; its state is OK when no rate check was asked for, UNKNOWN otherwise.

      Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for usage errors,
      --help and --version, as the Monitoring Plugins guidelines ask).

      Options:
    TEXT

    FOOTER = <<~TEXT

      RATE is in bytes per second, with an optional suffix k, M, G (x1000) or Ki, Mi, Gi
      (x1024): 500, 1k, 2.5M. SPEED is in Mb/s, with an optional suffix M, G or T: 1000,
      1G, 2.5G, 10G. RANGE is a Monitoring Plugins range of packets per second:
        N      alert if above N (or below 0)   N:     alert if below N
        ~:N    alert if above N                N:M    alert if outside N..M
        @N:M   alert if inside N..M
      -w/-c take ERRORS[,DROPS]; one range applies to both errors and drops. Errors are
      rx_errors + tx_errors, drops rx_dropped + tx_dropped (as in ip -s link).

      Output: one status line, then with -v one line per interface with its driver,
      link modes and counters. Performance data per interface (prefixed IF_ when more
      than one interface is checked): rx_bytes, tx_bytes, rx_packets, tx_packets,
      rx_errors, tx_errors, rx_dropped, tx_dropped (counters, UOM c), link (1 up, 0
      down), speed_mbps, and once a previous sample exists rx_rate, tx_rate (bytes/s,
      with the minimum as critical range), error_rate and drop_rate (packets/s, with
      the -w/-c ranges).

      Examples:
        check_interface -i eth0 --speed 1G --duplex full
        check_interface -i eth0 -i eth1 --min-rx-rate 1k -w 1 -c 10,100
        check_interface -n blue -i veth0 --state-file /var/lib/nagios/veth0.state
    TEXT

    IFF_UP = Rethtool::Interface::IFF_UP

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @opts = { interfaces: [], netns: nil, speed: nil, duplex: nil, min_rx: nil, min_tx: nil,
                warn: [], crit: [], state_file: nil, timeout: 10.0, verbose: false }
    end

    def run
      parse!
      result = Timeout.timeout(@opts[:timeout]) { check }
      emit(*result)
    rescue UsageError, OptionParser::ParseError => e
      @out.puts "INTERFACE UNKNOWN - #{e.message}"
      @out.puts "Usage: check_interface -i INTERFACE [options] (see --help)"
      UNKNOWN
    rescue Timeout::Error
      emit(UNKNOWN, "timed out after #{format_num(@opts[:timeout])} s", [], [])
    rescue StateFile::Error, Rethtool::Error, SystemCallError => e
      emit(UNKNOWN, Ironshed.describe_error(e), [], [])
    end

    private

    def parser
      OptionParser.new do |o|
        o.banner = BANNER
        o.summary_width = 30
        o.on("-i", "--interface IF", "interface to check (repeat for several; all must pass)") do |v|
          @opts[:interfaces] << v
        end
        o.on("-n", "--netns NS", "look in network namespace NS: a name as in `ip netns`,",
             "or a namespace file such as /proc/PID/ns/net (needs root)") do |v|
          @opts[:netns] = v
        end
        o.on("--speed SPEED", "expected link speed (1000, 1G, 10G): WARNING if different") do |v|
          @opts[:speed] = parse_speed(v)
        end
        o.on("--duplex full|half", "expected duplex: WARNING if different") do |v|
          raise UsageError, "--duplex: expected full or half, got #{v.inspect}" unless %w[full half].include?(v)

          @opts[:duplex] = v.to_sym
        end
        o.on("--min-rx-rate RATE", "CRITICAL if fewer bytes/s were received since the last run") do |v|
          @opts[:min_rx] = parse_rate("--min-rx-rate", v)
        end
        o.on("--min-tx-rate RATE", "CRITICAL if fewer bytes/s were sent since the last run") do |v|
          @opts[:min_tx] = parse_rate("--min-tx-rate", v)
        end
        o.on("-w", "--warning ERRORS[,DROPS]", "WARNING ranges for errors and drops per second") do |v|
          @opts[:warn] = parse_ranges("-w", v)
        end
        o.on("-c", "--critical ERRORS[,DROPS]", "CRITICAL ranges for errors and drops per second") do |v|
          @opts[:crit] = parse_ranges("-c", v)
        end
        o.on("-s", "--state-file PATH", "where counters are kept between runs (default",
             "/var/tmp/check_interface.UID/<namespace+interfaces>.state)") do |v|
          @opts[:state_file] = v
        end
        o.on("-t", "--timeout SECONDS", Float, "UNKNOWN after SECONDS (default 10)") do |v|
          raise UsageError, "--timeout: must be positive" unless v.positive?

          @opts[:timeout] = v
        end
        o.on("-v", "--verbose", "one more line per interface: driver, modes, counters") do
          @opts[:verbose] = true
        end
        o.on("-V", "--version", "print the version and exit (status 3)") do
          @out.puts "check_interface (ironshed) #{Ironshed::VERSION}"
          exit UNKNOWN
        end
        o.on("-h", "--help", "show this help and exit (status 3)") do
          @out.puts o.help
          @out.puts FOOTER
          exit UNKNOWN
        end
      end
    end

    def parse!
      rest = parser.parse(@argv)
      raise UsageError, "unexpected argument #{rest.first.inspect} (interfaces are given with -i)" unless rest.empty?
      raise UsageError, "no interface given (-i IF)" if @opts[:interfaces].empty?

      @opts[:interfaces].each do |i|
        Rethtool.check_interface_name(i)
      rescue Rethtool::InvalidInterfaceName => e
        raise UsageError, e.message
      end
      dup = @opts[:interfaces].tally.select { |_, n| n > 1 }.keys
      raise UsageError, "interface #{dup.first} given twice" unless dup.empty?
    end

    SI = { "" => 1, "k" => 1e3, "K" => 1e3, "M" => 1e6, "G" => 1e9, "T" => 1e12,
           "Ki" => 1024.0, "Mi" => 1024.0**2, "Gi" => 1024.0**3, "Ti" => 1024.0**4 }.freeze

    def parse_rate(opt, v)
      m = /\A(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|[kKMGT])?(?:B(?:\/s)?)?\z/.match(v.strip)
      raise UsageError, "#{opt}: #{v.inspect} is not a rate (e.g. 500, 1k, 2.5M)" unless m

      Float(m[1]) * SI.fetch(m[2].to_s)
    end

    def parse_speed(v)
      m = /\A(\d+(?:\.\d+)?)\s*([MGT])?(?:b(?:\/s|ps)?)?\z/i.match(v.strip)
      raise UsageError, "--speed: #{v.inspect} is not a speed (e.g. 1000, 1G, 10G)" unless m

      mult = { nil => 1, "M" => 1, "G" => 1000, "T" => 1_000_000 }.fetch(m[2]&.upcase)
      speed = Float(m[1]) * mult
      raise UsageError, "--speed: #{v.inspect} is not a whole number of Mb/s" unless speed == speed.round

      speed.round
    end

    def parse_ranges(opt, v)
      parts = v.split(",", -1)
      raise UsageError, "#{opt}: expected ERRORS[,DROPS], got #{v.inspect}" unless [1, 2].include?(parts.size)

      ranges = parts.map { |p| Range.parse(p) }
      ranges.size == 1 ? [ranges[0], ranges[0]] : ranges
    rescue ArgumentError => e
      raise UsageError, "#{opt}: #{e.message}"
    end

    def rate_checks?
      @opts[:min_rx] || @opts[:min_tx] || !@opts[:warn].empty? || !@opts[:crit].empty?
    end

    # Returns [state, text, perfdata, details].
    def check
      state_file = StateFile.new(@opts[:state_file] || default_state_path)
      previous, note = state_file.load
      now = StateFile.now
      reports = Rethtool::Handle.open(@opts[:netns]) do |h|
        @opts[:interfaces].map { |name| check_one(h, name, previous[name], now) }
      end
      samples = previous.select { |k, _| !@opts[:interfaces].include?(k) }
      reports.each { |r| samples[r.name] = r.sample if r.sample }
      state_file.save(samples)

      state = CheckInterface.worst(reports.map(&:state))
      text = reports.map { |r| r.parts.empty? ? r.name : "#{r.name} #{r.text}" }.join("; ")
      text += " (#{note})" if note
      multi = reports.size > 1
      perf = reports.flat_map { |r| r.perfdata.map { |l, v| [multi ? "#{r.name}_#{l}" : l, v] } }
      details = reports.flat_map(&:details)
      details << "state file: #{state_file.path}" if @opts[:verbose]
      [state, text, perf, details]
    end

    def default_state_path
      path = StateFile.default_path(@opts[:interfaces], @opts[:netns])
      StateFile.ensure_private_dir(File.dirname(path))
      path
    end

    def check_one(handle, name, prev, now)
      r = Report.new(name)
      iface = Rethtool::Interface.new(name, netns: @opts[:netns], handle: handle)
      begin
        flags = iface.flags
      rescue Errno::ENODEV
        r.parts << "does not exist"
        r.raise_to(CRITICAL)
        return r
      end
      counters = iface.counters.to_h
      ifindex = iface.index
      link = link_state(iface, r)
      settings = link_settings(iface, r)

      if flags.nobits?(IFF_UP)
        r.parts << "down (administratively down)"
        r.raise_to(CRITICAL)
      elsif link == false
        r.parts << "down (no carrier)"
        r.raise_to(CRITICAL)
      elsif link
        r.parts << "up"
        check_speed_duplex(r, settings)
      end

      rates(r, prev, counters, ifindex, now)
      perf_counters(r, counters, link, settings)
      r.sample = { "time" => now, "ifindex" => ifindex, "counters" => counters.transform_keys(&:to_s) }
      verbose(r, iface, settings, counters) if @opts[:verbose]
      r
    end

    def link_state(iface, r)
      iface.link_up?
    rescue Errno::EOPNOTSUPP => e
      r.parts << "link state unknown (#{Ironshed.describe_error(e)})"
      r.raise_to(UNKNOWN)
      nil
    end

    def link_settings(iface, r)
      iface.link_settings
    rescue Errno::EOPNOTSUPP => e
      r.details << Ironshed.describe_error(e) if @opts[:speed] || @opts[:duplex] || @opts[:verbose]
      nil
    end

    def check_speed_duplex(r, settings)
      if settings.nil?
        if @opts[:speed] || @opts[:duplex]
          r.parts << "speed/duplex not reported by the driver (cannot check #{expected_text})"
          r.raise_to(UNKNOWN)
        end
        return
      end
      speed = settings.speed
      duplex = settings.duplex
      text = speed ? "#{speed}Mb/s" : "speed unknown"
      if @opts[:speed]
        if speed.nil?
          text += " (expected #{@opts[:speed]}Mb/s; the driver does not report it)"
          r.raise_to(UNKNOWN)
        elsif speed != @opts[:speed]
          text += " (expected #{@opts[:speed]}Mb/s)"
          r.raise_to(WARNING)
        end
      end
      dtext = duplex == :unknown ? "duplex unknown" : duplex.to_s
      if @opts[:duplex]
        if duplex == :unknown
          dtext += " (expected #{@opts[:duplex]}; the driver does not report it)"
          r.raise_to(UNKNOWN)
        elsif duplex != @opts[:duplex]
          dtext += " (expected #{@opts[:duplex]})"
          r.raise_to(WARNING)
        end
      end
      r.parts << "#{text} #{dtext}"
    end

    def expected_text
      [@opts[:speed] && "#{@opts[:speed]}Mb/s", @opts[:duplex]].compact.join(" ")
    end

    def usable_previous?(prev, counters, ifindex, now)
      return [false, "first run: counters saved, rates from the next run"] unless prev.is_a?(Hash)

      pc = prev["counters"]
      ok = pc.is_a?(Hash) && prev["time"].is_a?(Numeric) && prev["time"] < now &&
           prev["ifindex"] == ifindex &&
           counters.all? { |k, v| pc[k.to_s].is_a?(Integer) && pc[k.to_s] <= v }
      return [true, nil] if ok

      [false, "counters reset (interface re-created or driver reloaded): saved, rates from the next run"]
    end

    def rates(r, prev, counters, ifindex, now)
      usable, why = usable_previous?(prev, counters, ifindex, now)
      unless usable
        r.parts << why
        r.raise_to(UNKNOWN) if rate_checks?
        return
      end
      dt = now - prev["time"]
      pc = prev["counters"]
      per_s = ->(*keys) { keys.sum { |k| counters[k] - pc[k.to_s] } / dt }
      rx = per_s.call(:rx_bytes)
      tx = per_s.call(:tx_bytes)
      err = per_s.call(:rx_errors, :tx_errors)
      drop = per_s.call(:rx_dropped, :tx_dropped)

      r.parts << rate_text("rx", rx, @opts[:min_rx], r)
      r.parts << rate_text("tx", tx, @opts[:min_tx], r)
      r.parts << range_text("errors", err, 0, r)
      r.parts << range_text("drops", drop, 1, r)
      r.perfdata << ["rx_rate", "#{format_num(rx)};;#{@opts[:min_rx] && "#{format_num(@opts[:min_rx])}:"};0"]
      r.perfdata << ["tx_rate", "#{format_num(tx)};;#{@opts[:min_tx] && "#{format_num(@opts[:min_tx])}:"};0"]
      r.perfdata << ["error_rate", "#{format_num(err)};#{@opts[:warn][0]};#{@opts[:crit][0]};0"]
      r.perfdata << ["drop_rate", "#{format_num(drop)};#{@opts[:warn][1]};#{@opts[:crit][1]};0"]
      r.details << format("%s: %.1f s since the previous sample", r.name, dt) if @opts[:verbose]
    end

    def rate_text(dir, rate, min, r)
      t = "#{dir} #{Ironshed::Units.rate(rate)}"
      return t unless min && rate < min

      r.raise_to(CRITICAL)
      "#{t} (minimum #{Ironshed::Units.rate(min)})"
    end

    def range_text(what, rate, idx, r)
      t = "#{what} #{format_num(rate)}/s"
      if (c = @opts[:crit][idx]) && c.alert?(rate)
        r.raise_to(CRITICAL)
        return "#{t} (critical #{c})"
      end
      if (w = @opts[:warn][idx]) && w.alert?(rate)
        r.raise_to(WARNING)
        return "#{t} (warning #{w})"
      end
      t
    end

    def perf_counters(r, c, link, settings)
      %i[rx_bytes tx_bytes rx_packets tx_packets rx_errors tx_errors rx_dropped tx_dropped].each do |k|
        r.perfdata << [k.to_s, "#{c[k]}c"]
      end
      r.perfdata << ["link", link ? "1" : "0"] unless link.nil?
      r.perfdata << ["speed_mbps", settings.speed.to_s] if settings&.speed
    end

    def verbose(r, iface, settings, counters)
      drv = begin
        d = iface.driver_settings
        "driver #{d.driver}#{d.bus_info.empty? ? '' : " at #{d.bus_info}"}"
      rescue Errno::EOPNOTSUPP
        "driver unknown"
      end
      modes = settings ? "; advertised #{settings.advertised_link_modes.join(' ').then { |s| s.empty? ? 'none' : s }}, autoneg #{settings.autoneg? ? 'on' : 'off'}" : ""
      r.details << "#{r.name}: #{drv}#{modes}; rx #{counters[:rx_bytes]} bytes #{counters[:rx_packets]} packets, " \
                   "tx #{counters[:tx_bytes]} bytes #{counters[:tx_packets]} packets, errors #{counters[:rx_errors]}/#{counters[:tx_errors]}, " \
                   "dropped #{counters[:rx_dropped]}/#{counters[:tx_dropped]}"
    end

    def format_num(x)
      return x.to_s if x.is_a?(Integer)

      s = format("%.3f", x).sub(/\.?0+\z/, "")
      s == "-0" ? "0" : s
    end

    def quote(label)
      "'#{label.gsub("'", "''")}'"
    end

    def emit(state, text, perf, details)
      line = "INTERFACE #{NAMES.fetch(state)} - #{text}"
      line += " | #{perf.map { |l, v| "#{quote(l)}=#{v}" }.join(' ')}" unless perf.empty?
      @out.puts line
      details.each { |d| @out.puts d }
      state
    end
  end
end
