# frozen_string_literal: true

require "optparse"
require "timeout"
require "rethtool"
require_relative "values"
require_relative "range"
require_relative "state_file"
require_relative "output"
require_relative "interface_check"

# check_interface: a Monitoring Plugins (Nagios, Icinga, Naemon...) check that network
# interfaces are up, at the expected speed and duplex, and passing traffic.
module CheckInterface
  # The command line. #run returns the exit status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
  class CLI
    BANNER = <<~TEXT
      Usage: check_interface -i INTERFACE [-i INTERFACE]... [options]

      Monitoring plugin (Nagios, Icinga, Naemon, Sensu...): checks that network
      interfaces are up and passing traffic, asking the kernel directly (SIOCETHTOOL
      and the interface counters) instead of running ethtool.

      For each interface:
        * CRITICAL if it does not exist, is administratively down, or has no link
          (no carrier; IFF_RUNNING off for drivers without a link state);
        * WARNING if --speed or --duplex is given and the link differs;
        * CRITICAL if --min-rx-rate or --min-tx-rate is given and less traffic
          flowed since the previous run;
        * WARNING / CRITICAL if the error or drop rate since the previous run is
          outside the -w / -c ranges;
        * UNKNOWN if a check that was asked for cannot be made (the driver does
          not report the speed, the namespace cannot be entered), and for usage
          errors.
      The plugin's state is the worst of all (CRITICAL > WARNING > UNKNOWN > OK).

      Rates are computed from the counters the previous run saved. The first run,
      and the first after a reboot or a counter reset, only saves them ("baseline
      saved"): it checks everything else and is not UNKNOWN for want of a rate.

      Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for usage errors,
      --help and --version, as the Monitoring Plugins guidelines ask).

      Options:
    TEXT

    FOOTER = <<~TEXT

      RATE is bytes per second with an optional suffix k, M, G (x1000) or Ki, Mi,
      Gi (x1024): 500, 1k, 2.5M; rates are shown in the units it was written in.
      SPEED is in Mb/s with an optional suffix M, G or T: 1000, 1G, 2.5G, 10G.
      RANGE is a Monitoring Plugins range of packets per second:
        N     alert above N (or below 0)    N:    alert below N
        ~:N   alert above N                 N:M   alert outside N..M
        @N:M  alert inside N..M
      -w/-c take ERRORS[,DROPS]; one range applies to both. Errors are rx_errors +
      tx_errors, drops rx_dropped + tx_dropped (as in ip -s link).

      State file: --state-file, else DIR/KEY.state with --state-dir DIR, else
      $MP_STATE_PATH/EUID/check_interface/KEY.state (or $NAGIOS_PLUGIN_STATE_DIRECTORY
      instead of $MP_STATE_PATH), else /var/tmp/check_interface.EUID/KEY.state.
      KEY names the namespace and the interfaces.

      Output: one status line with the performance data; -v adds the driver and
      how the link state was read to it; -vv adds a line per interface (driver,
      link modes, counters) and the state file; -vvv how each value was obtained.
      Performance data per interface (prefixed IF_ when several are checked):
      rx_bytes, tx_bytes, rx_packets, tx_packets, rx_errors, tx_errors,
      rx_dropped, tx_dropped (counters, UOM c), link (1 up, 0 down), speed_mbps,
      and from the second run rx_rate, tx_rate (bytes/s, the minimum as critical
      range), error_rate and drop_rate (packets/s, with the -w/-c ranges).

      Examples:
        check_interface -i eth0 --speed 1G --duplex full
        check_interface -i eth0 -i eth1 --min-rx-rate 1k -w 1 -c 10,100
        check_interface -n blue -i veth0 --state-dir /var/lib/nagios/state
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @opts = { interfaces: [], netns: nil, speed: nil, duplex: nil, min_rx: nil, min_tx: nil,
                warn: [], crit: [], state_file: nil, state_dir: nil, timeout: 10.0, verbose: 0 }
    end

    def run
      parse!
      Output.emit(@out, *Timeout.timeout(@opts[:timeout]) { check })
    rescue UsageError, OptionParser::ParseError => e
      @out.puts "INTERFACE UNKNOWN - #{Output.text(e.message)}"
      @out.puts "Usage: check_interface -i INTERFACE [options] (see --help)"
      UNKNOWN
    rescue Timeout::Error
      Output.emit(@out, UNKNOWN, "timed out after #{Output.num(@opts[:timeout])} s")
    rescue StateFile::Error, Rethtool::Error, SystemCallError => e
      Output.emit(@out, UNKNOWN, Ironshed.describe_error(e))
    rescue StandardError => e
      # A bug must not look like a WARNING (exit 1) with a backtrace: UNKNOWN, and the
      # backtrace on stderr for the bug report.
      @err.puts e.full_message
      Output.emit(@out, UNKNOWN, "internal error: #{e.class}: #{e.message}")
    end

    private

    def parser
      OptionParser.new do |o|
        o.banner = BANNER
        o.summary_width = 29
        o.summary_indent = "  "
        o.on("-i", "--interface IF", "interface to check (repeat for several)") do |v|
          @opts[:interfaces] << v
        end
        o.on("-n", "--netns NS", "look in network namespace NS: a name as in",
             "`ip netns` or a file such as /proc/PID/ns/net") do |v|
          @opts[:netns] = v
        end
        o.on("--speed SPEED", "expected speed (1000, 1G): WARNING if not") do |v|
          @opts[:speed] = Values.speed(v)
        end
        o.on("--duplex full|half", "expected duplex: WARNING if different") do |v|
          raise UsageError, "--duplex: expected full or half, got #{v.inspect}" unless %w[full half].include?(v)

          @opts[:duplex] = v.to_sym
        end
        o.on("--min-rx-rate RATE", "CRITICAL if fewer bytes/s were received",
             "since the previous run") do |v|
          @opts[:min_rx] = Values.rate("--min-rx-rate", v)
        end
        o.on("--min-tx-rate RATE", "CRITICAL if fewer bytes/s were sent") do |v|
          @opts[:min_tx] = Values.rate("--min-tx-rate", v)
        end
        o.on("-w", "--warning ERRORS[,DROPS]", "WARNING ranges: errors, drops per second") do |v|
          @opts[:warn] = parse_ranges("-w", v)
        end
        o.on("-c", "--critical ERRORS[,DROPS]", "CRITICAL ranges: errors, drops per second") do |v|
          @opts[:crit] = parse_ranges("-c", v)
        end
        o.on("-s", "--state-file FILE", "keep the counters between runs in FILE") do |v|
          @opts[:state_file] = v
        end
        o.on("--state-dir DIR", "keep them in DIR (which must exist)") do |v|
          @opts[:state_dir] = v
        end
        o.on("-t", "--timeout SECONDS", "UNKNOWN after SECONDS (default 10)") do |v|
          @opts[:timeout] = Values.timeout(v)
        end
        o.on("-v", "--verbose", "more output (up to -vvv)") do
          @opts[:verbose] = [@opts[:verbose] + 1, 3].min
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
      raise UsageError, "--state-file and --state-dir exclude each other" if @opts[:state_file] && @opts[:state_dir]

      @opts[:interfaces].each do |i|
        Rethtool.check_interface_name(i)
      rescue Rethtool::InvalidInterfaceName => e
        raise UsageError, e.message
      end
      dup = @opts[:interfaces].tally.select { |_, n| n > 1 }.keys
      raise UsageError, "interface #{dup.first} given twice" unless dup.empty?
    end

    def parse_ranges(opt, v)
      parts = v.split(",", -1)
      raise UsageError, "#{opt}: expected ERRORS[,DROPS], got #{v.inspect}" unless [1, 2].include?(parts.size)

      ranges = parts.map { |p| Range.parse(p) }
      ranges.size == 1 ? [ranges[0], ranges[0]] : ranges
    rescue ArgumentError => e
      raise UsageError, "#{opt}: #{e.message}"
    end

    # Returns [state, text, perfdata, long-output lines].
    def check
      state_file = StateFile.locate(interfaces: @opts[:interfaces], netns: @opts[:netns],
                                    file: @opts[:state_file], dir: @opts[:state_dir])
      previous, why = state_file.load
      now = StateFile.now
      reports = Rethtool::Handle.open(@opts[:netns]) do |h|
        @opts[:interfaces].map { |name| InterfaceCheck.new(h, name, @opts).run(previous[name], why, now) }
      end
      samples = previous.reject { |k, _| @opts[:interfaces].include?(k) }
      reports.each { |r| samples[r.name] = r.sample if r.sample }
      state_file.save(samples)
      summarize(reports, state_file)
    end

    def summarize(reports, state_file)
      state = CheckInterface.worst(reports.map(&:state))
      text = reports.map do |r|
        parts = r.parts.join(", ")
        parts += " (#{r.notes.join('; ')})" unless r.notes.empty?
        parts.empty? ? r.name : "#{r.name} #{parts}"
      end.join("; ")
      multi = reports.size > 1
      perf = reports.flat_map { |r| r.perfdata.map { |l, v| [multi ? "#{r.name}_#{l}" : l, v] } }
      lines = reports.flat_map(&:details)
      lines << "state file: #{state_file.path} (#{state_file.origin})" if @opts[:verbose] >= 2
      lines += reports.flat_map(&:debug)
      lines << "boot id #{StateFile.boot_id}; ironshed #{Ironshed::VERSION}, ruby #{RUBY_VERSION}" if @opts[:verbose] >= 3
      [state, text, perf, lines]
    end
  end
end
