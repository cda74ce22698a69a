# frozen_string_literal: true

require "optparse"
require "rootzone"

module RootZone
  # The rootzone command line: `rootzone update` and `rootzone setup`. Exit status: 0 done
  # (installed, or already current), 1 refused or failed (one line on stderr), 2 usage
  # error, 130 interrupted, 143 terminated.
  class CLI
    USAGE = <<~TEXT
      Usage: rootzone update [options]
             rootzone setup [options]
             rootzone --help | --version

      Keep a local, verified copy of the DNS root zone for djbdns (RFC 8806).

      Commands:
        update   download the root zone, prove it complete and authentic (DNSSEC
                 from the trust anchor, ZONEMD over the whole zone) and install
                 it atomically as tinydns data and data.cdb
        setup    show, or with --apply make, the djbdns wiring: a tinydns
                 instance on 127.53.53.53, dnscache's root servers, a daily
                 update

      Exit status: 0 done (installed, or already current), 1 refused or failed
      (one line on stderr says why), 2 usage error, 130 interrupted, 143
      terminated.

      Examples:
        rootzone setup                 # show the wiring it would make
        rootzone setup --apply         # make it
        rootzone update -v             # what the daily job runs, with details

      `rootzone COMMAND --help` describes each command's options;
      docs/rootzone.md (man rootzone) is the manual.
    TEXT

    UPDATE_BANNER = <<~TEXT
      Usage: rootzone update [options]

      Download the DNS root zone, prove it complete and authentic, and install
      what tinydns can serve from it into a tinydns instance, atomically.

      Before anything is replaced:
        * the apex DNSKEY RRset must be signed by a key of the trust anchor;
        * every signed RRset (SOA, NS, DNSKEY, ZONEMD at the apex, each DS and
          NSEC) must have a valid RRSIG inside its validity window;
        * the ZONEMD digest (scheme SIMPLE, SHA-384, and SHA-512 when present)
          must match the zone: a zone without ZONEMD is refused;
        * the SOA serial must not be older than the installed one.
      DNSSEC algorithms checked: 8, 10, 13, 14, 15; any other is refused.
      Then data and data.cdb are written to temporary files in the instance
      root, fsynced and renamed into place: tinydns never sees a partial file.

      Served: the SOA (the zone's own serial and timers), the root NS, every
      delegation's NS, A and AAAA glue. Not served: the DNSSEC records
      (RRSIG, NSEC, DNSKEY, DS, ZONEMD), since tinydns cannot sign answers.

      Exit status: 0 installed or already current, 1 refused or failed (one
      line on stderr naming the cause; nothing replaced), 2 usage error,
      130 interrupted, 143 terminated.

      Options:
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
    end

    def run
      command = @argv.shift
      case command
      when "update" then update
      when "setup"
        require_relative "setup"
        Setup.new(@argv, out: @out, err: @err).run
      when "-h", "--help", "help"
        @out.puts USAGE
        0
      when "-V", "--version"
        @out.puts "rootzone (ironshed) #{Ironshed::VERSION}"
        0
      when nil then usage_error("a command is needed: update or setup (see --help)")
      else usage_error("unknown command #{command.inspect} (update or setup; see --help)")
      end
    end

    private

    def usage_error(msg)
      @err.puts "rootzone: #{msg}"
      2
    end

    def update_parser(opts)
      OptionParser.new do |o|
        o.banner = UPDATE_BANNER
        o.summary_width = 24
        o.summary_indent = "  "
        o.on("-s", "--source URL|FILE", "the zone: an https:// or http:// URL, a file,",
             "or - for stdin; gzip is recognised (default",
             DEFAULT_SOURCE + ")") { |v| opts[:source] = v }
        o.on("-a", "--trust-anchor FILE", "DNSKEY or DS records of the root's key",
             "signing key (default #{DEFAULT_TRUST_ANCHOR})") { |v| opts[:trust_anchor] = v }
        o.on("-r", "--tinydns-root DIR", "the tinydns instance's root directory, where",
             "data and data.cdb are (default",
             DEFAULT_TINYDNS_ROOT + ")") { |v| opts[:tinydns_root] = v }
        o.on("--signature FILE|URL", "also check this detached OpenPGP signature",
             "of the source with gpgv (needs --keyring)") { |v| opts[:signature] = v }
        o.on("--keyring FILE", "the keyring gpgv checks --signature against") { |v| opts[:keyring] = v }
        o.on("--allow-older", "install even if the serial is older than the",
             "installed one") { opts[:allow_older] = true }
        o.on("-n", "--dry-run", "verify and report; write nothing") { opts[:dry_run] = true }
        o.on("-t", "--timeout SECONDS", Float, "download timeout (default 60)") do |v|
          raise OptionParser::InvalidArgument, "--timeout must be positive" unless v.positive?

          opts[:timeout] = v
        end
        o.on("-q", "--quiet", "print nothing but errors") { opts[:quiet] = true }
        o.on("-v", "--verbose", "also say what was verified, served and left out") { opts[:verbose] = true }
        o.on("-V", "--version", "print the version and exit") do
          @out.puts "rootzone (ironshed) #{Ironshed::VERSION}"
          throw :done, 0
        end
        o.on("-h", "--help", "show this help and exit") do
          @out.puts o.help
          throw :done, 0
        end
      end
    end

    def update
      opts = { source: DEFAULT_SOURCE, trust_anchor: DEFAULT_TRUST_ANCHOR,
               tinydns_root: DEFAULT_TINYDNS_ROOT, timeout: 60.0 }
      catch(:done) do
        rest = update_parser(opts).parse(@argv)
        return usage_error("unexpected argument #{rest.first.inspect} (the zone is given with --source)") unless rest.empty?
        return usage_error("--signature needs --keyring") if opts[:signature] && !opts[:keyring]
        return usage_error("--keyring is only used with --signature") if opts[:keyring] && !opts[:signature]
        return usage_error("--quiet and --verbose contradict each other") if opts[:quiet] && opts[:verbose]

        report = RootZone.update(**opts.slice(:source, :trust_anchor, :tinydns_root, :dry_run,
                                              :allow_older, :signature, :keyring, :timeout))
        describe(report, opts) unless opts[:quiet]
        0
      end
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    rescue Interrupt
      @err.puts "rootzone: interrupted; the installed copy is unchanged, or complete if it was already being renamed into place"
      130
    rescue SignalException => e
      @err.puts "rootzone: stopped by #{e.message}; the installed copy is unchanged, or complete"
      raise
    rescue VerificationError, RollbackError => e
      @err.puts "rootzone: refused, nothing installed: #{e.message}"
      1
    rescue Ironshed::Error, SystemCallError => e
      @err.puts "rootzone: #{Ironshed.describe_error(e)}"
      1
    end

    def describe(report, opts)
      v = report.verification
      dir = opts[:tinydns_root]
      if opts[:verbose]
        keys = v.zone_keys.map { |t, a| "#{t} (#{a})" }.join(", ")
        @out.puts "source: #{opts[:source]}"
        @out.puts "trust anchor: #{opts[:trust_anchor]}: the DNSKEY RRset is signed by key #{v.anchor_keys.join(', ')}; zone keys #{keys}"
        @out.puts "DNSSEC: #{v.signatures} signatures over #{v.rrsets} RRsets verified"
        v.zonemd.each { |h, d| @out.puts "ZONEMD: #{h} #{d} matches the zone" }
        @out.puts "signatures valid until #{v.valid_until} (the first to expire: #{v.valid_until_rrset})"
        soa, ns, a, aaaa = report.served
        @out.puts "served by tinydns: #{soa} SOA, #{ns} NS (#{report.delegations} delegations), #{a} A, #{aaaa} AAAA (generic type 28)"
        @out.puts "not served (DNSSEC records: tinydns cannot sign answers): #{report.not_served}"
        (v.notes + report.notes).each { |n| @out.puts "note: #{n}" }
      end
      @out.puts summary(report, dir)
    end

    def summary(report, dir)
      was = report.previous_serial ? "was #{report.previous_serial}" : "nothing installed before"
      until_text = "signatures valid until #{report.verification.valid_until}"
      case report.outcome
      when :installed
        "rootzone: installed root zone serial #{report.serial} in #{dir} (#{was}); #{report.delegations} delegations; #{until_text}"
      when :current
        "rootzone: root zone serial #{report.serial} is already installed in #{dir}; nothing to do"
      when :would_install
        "rootzone: dry run: serial #{report.serial} verified; would install it in #{dir} (#{was})"
      else
        "rootzone: dry run: serial #{report.serial} verified; already installed in #{dir}, nothing would change"
      end
    end
  end
end
