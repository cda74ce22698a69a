# frozen_string_literal: true

require "optparse"
require "resolv"
require "timeout"
require "rootzone"
require "check_interface/interface_check"
require "check_interface/range"

# check_rootzone: a Monitoring Plugins check that the local copy of the DNS root zone is
# current: the serial tinydns serves against the live root servers', the age of data.cdb,
# and the hours left before its first signature expires.
module CheckRootZone
  class UsageError < StandardError; end

  # The command line. #run returns the exit status.
  class CLI
    # The Monitoring Plugins states (OK, WARNING, CRITICAL, UNKNOWN, NAMES) and ranges
    # (Range), as check_interface defines them.
    include CheckInterface

    METRICS = %i[serial_lag age sig_expiry].freeze
    DEFAULT_WARN = "200,36,168:"
    DEFAULT_CRIT = "1000,96,72:"
    HINTS = "/usr/share/dns/root.hints"

    BANNER = <<~TEXT
      Usage: check_rootzone [options]

      Monitoring plugin (Nagios, Icinga, Naemon...): checks that the local copy of
      the DNS root zone that tinydns serves (rootzone update) is current.

      Metrics, each with its own -w/-c range:
        serial_lag  how far the serial the local tinydns serves (-H) is behind the
                    one most live root servers answer (RFC 1982 difference; root
                    serials are YYYYMMDDNN, so a day is about 100)
        age         hours since data.cdb was installed or last confirmed current
                    by rootzone update (its modification time)
        sig_expiry  hours until the first RRSIG of the installed copy expires (from
                    the header rootzone update writes into data): the copy must be
                    replaced before then, or it serves data past its signatures
      CRITICAL if the local tinydns does not answer or data.cdb is missing;
      UNKNOWN for a metric that cannot be measured (no live server answered).
      The state is the worst of all (CRITICAL > WARNING > UNKNOWN > OK).

      Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for usage errors,
      --help and --version).

      Options:
    TEXT

    FOOTER = <<~TEXT

      HOST is an IPv4 or IPv6 address, with :PORT if not 53 ([v6]:PORT).
      Ranges are Monitoring Plugins ranges: N alerts above N (or below 0), N:
      below N, ~:N above N, N:M outside N..M, @N:M inside. -w and -c take three,
      L,A,E for serial_lag, age and sig_expiry; an empty part keeps the default,
      ~: turns a metric's alarm off. Defaults: -w #{DEFAULT_WARN} -c #{DEFAULT_CRIT}
      (WARNING: 2 days of serials behind, a day and a half old, a week of
      signatures left; CRITICAL: 10 days behind, 4 days old, 3 days left).

      Performance data: serial_lag, age (hours), sig_expiry (hours), each with
      its -w and -c ranges.

      Examples:
        check_rootzone
        check_rootzone -H 127.53.53.53 -C 198.41.0.4 -C 199.7.83.42 -w 300,,
        check_rootzone -r /etc/tinydns-root/root -c 1000,72,48:
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @opts = { host: "127.53.53.53", root: RootZone::DEFAULT_TINYDNS_ROOT, compare: [], hints: HINTS,
                warn: ranges("-w", DEFAULT_WARN), crit: ranges("-c", DEFAULT_CRIT), timeout: 10.0,
                verbose: false }
    end

    def run
      parse!
      emit(*Timeout.timeout(@opts[:timeout]) { check })
    rescue UsageError, OptionParser::ParseError => e
      @out.puts "ROOTZONE UNKNOWN - #{e.message}"
      @out.puts "Usage: check_rootzone [options] (see --help)"
      UNKNOWN
    rescue Timeout::Error
      emit(UNKNOWN, ["timed out after #{format_num(@opts[:timeout])} s"], [], [])
    rescue Ironshed::Error, SystemCallError => e
      emit(UNKNOWN, [Ironshed.describe_error(e)], [], [])
    end

    private

    def parser
      OptionParser.new do |o|
        o.banner = BANNER
        o.summary_width = 23
        o.summary_indent = "  "
        o.on("-H", "--host HOST", "the local tinydns (default 127.53.53.53)") { |v| @opts[:host] = v }
        o.on("-r", "--tinydns-root DIR", "its root directory, where data.cdb is",
             "(default #{RootZone::DEFAULT_TINYDNS_ROOT})") { |v| @opts[:root] = v }
        o.on("-C", "--compare HOST", "a live root server to ask (repeat for more;",
             "default: the IPv4 addresses in --hints)") { |v| @opts[:compare] << v }
        o.on("--hints FILE", "root hints (default #{HINTS})") { |v| @opts[:hints] = v }
        o.on("-w", "--warning L,A,E", "WARNING ranges of serial_lag, age and",
             "sig_expiry (default #{DEFAULT_WARN})") do |v|
          @opts[:warn] = ranges("-w", v, @opts[:warn])
        end
        o.on("-c", "--critical L,A,E", "CRITICAL ranges (default #{DEFAULT_CRIT})") do |v|
          @opts[:crit] = ranges("-c", v, @opts[:crit])
        end
        o.on("-t", "--timeout SECONDS", Float, "UNKNOWN after SECONDS (default 10)") do |v|
          raise UsageError, "--timeout: must be positive" unless v.positive?

          @opts[:timeout] = v
        end
        o.on("-v", "--verbose", "one more line per live server, and the", "installed copy's details") do
          @opts[:verbose] = true
        end
        o.on("-V", "--version", "print the version and exit (status 3)") do
          @out.puts "check_rootzone (ironshed) #{Ironshed::VERSION}"
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
      raise UsageError, "unexpected argument #{rest.first.inspect}" unless rest.empty?

      ([@opts[:host]] + @opts[:compare]).each { |h| address(h) }
    end

    # "LAG,AGE,EXPIRY" into a hash of Range (an empty part keeps +base+'s).
    def ranges(opt, text, base = nil)
      parts = text.split(",", -1)
      raise UsageError, "#{opt}: expected LAG,AGE,EXPIRY, got #{text.inspect}" unless (1..3).cover?(parts.size)

      METRICS.each_with_index.to_h do |m, i|
        p = parts[i].to_s.strip
        [m, p.empty? ? base&.fetch(m) : Range.parse(p)]
      end
    rescue ArgumentError => e
      raise UsageError, "#{opt}: #{e.message}"
    end

    # [ip, port] from "1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:5353".
    def address(text)
      ip, port = case text
                 when /\A\[([^\]]+)\](?::(\d+))?\z/ then [Regexp.last_match(1), Regexp.last_match(2)]
                 when /\A([^:]+):(\d+)\z/ then [Regexp.last_match(1), Regexp.last_match(2)]
                 else [text, nil]
                 end
      raise UsageError, "#{text.inspect} is not an IP address" unless ip.match?(Resolv::IPv4::Regex) || ip.match?(Resolv::IPv6::Regex)

      [ip, (port || 53).to_i]
    end

    # The SOA serial +host+ serves for ".", or raises with why not.
    def serial_of(host, timeout)
      ip, port = address(host)
      Resolv::DNS.open(nameserver_port: [[ip, port]]) do |dns|
        dns.timeouts = timeout
        dns.getresource(".", Resolv::DNS::Resource::IN::SOA).serial
      end
    rescue Resolv::ResolvError
      raise Resolv::ResolvError, "no SOA for . from #{host} within #{format_num(timeout)} s"
    end

    def live_servers
      return @opts[:compare] unless @opts[:compare].empty?

      # "NAME [TTL] [IN] A ADDRESS" lines (root.hints has no class column).
      File.foreach(@opts[:hints]).filter_map do |l|
        f = l.sub(/;.*/, "").split
        i = f.index { |x| x.casecmp?("A") }
        f[i + 1] if i&.positive? && f[i + 1]
      end.uniq
    end

    # Asks every live server at once; returns { host => serial or error message }.
    def live_serials
      per = [@opts[:timeout] / 2.0, 0.5].max
      live_servers.map { |h| Thread.new { [h, serial_of(h, per)] rescue [h, $!.message] } }.to_h(&:value)
    end

    def majority(answers)
      serials = answers.values.grep(Integer)
      return nil if serials.empty?

      serials.tally.max_by { |s, n| [n, s] }
    end

    # Returns [state, parts, perfdata, details].
    def check
      begin
        local = serial_of(@opts[:host], [@opts[:timeout] / 2.0, 0.5].max)
      rescue Resolv::ResolvError => e
        return [CRITICAL, ["local tinydns: #{e.message}"], [], []]
      end
      inst = RootZone::Installed.read(@opts[:root])
      return [CRITICAL, ["#{File.join(@opts[:root], 'data.cdb')}: missing"], [], []] unless inst.cdb_mtime_epoch

      answers = live_serials
      serial, votes = majority(answers)
      state = OK
      parts = {}
      values = {}
      if serial
        values[:serial_lag] = RootZone.serial_diff(local, serial)
        parts[:serial_lag] = "serial #{local} (live #{serial} from #{votes}/#{answers.size} servers)"
      else
        parts[:serial_lag] = "serial #{local} (no live root server answered)"
        state = UNKNOWN
      end
      values[:age] = ((Time.now.to_f - inst.cdb_mtime_epoch) / 3600.0).round(2)
      parts[:age] = "age #{format_num(values[:age])} h"
      if inst.valid_until_epoch
        values[:sig_expiry] = ((inst.valid_until_epoch - Time.now.to_f) / 3600.0).round(2)
        parts[:sig_expiry] = "signatures valid #{format_num(values[:sig_expiry])} h " \
                             "(until #{inst.valid_until.strftime('%F %T')} UTC, #{inst.valid_until_rrset})"
      else
        parts[:sig_expiry] = "signature expiry unknown (#{inst.notes.last})"
        state = worst(state, UNKNOWN)
      end
      perf = []
      values.each do |m, v|
        s = if @opts[:crit][m].alert?(v) then CRITICAL
            elsif @opts[:warn][m].alert?(v) then WARNING
            else OK
            end
        parts[m] += " [#{NAMES[s]}]" unless s == OK
        state = worst(state, s)
        perf << [m.to_s, "#{format_num(v)};#{@opts[:warn][m]};#{@opts[:crit][m]}"]
      end
      text = parts.values
      text << "tinydns serves #{local}, data.cdb holds #{inst.serial}" if inst.serial && inst.serial != local
      [state, text, perf, details(answers, inst)]
    end

    def details(answers, inst)
      return [] unless @opts[:verbose]

      list = answers.map { |h, s| "#{h}: #{s.is_a?(Integer) ? "serial #{s}" : s}" }
      list << "#{File.join(@opts[:root], 'data.cdb')}: serial #{inst.serial.inspect}, modified #{inst.cdb_mtime}"
      list + inst.notes.map { |n| "note: #{n}" }
    end

    def worst(*states)
      CheckInterface.worst(*states)
    end

    def format_num(x)
      return x.to_s if x.is_a?(Integer)

      s = format("%.2f", x).sub(/\.?0+\z/, "")
      s == "-0" ? "0" : s
    end

    def emit(state, parts, perf, details)
      line = "ROOTZONE #{NAMES.fetch(state)} - #{parts.join(', ')}"
      line += " | #{perf.map { |l, v| "'#{l}'=#{v}" }.join(' ')}" unless perf.empty?
      @out.puts line
      details.each { |d| @out.puts d }
      state
    end
  end
end
