# frozen_string_literal: true

require "etc"
require "fileutils"
require "open3"
require "optparse"
require "socket"
require "zlib"

module RootZone
  # `rootzone setup`: the djbdns wiring of a local root, as steps that each look at the
  # system first and change only what is not in place yet. Without --apply every change is
  # printed and none is made.
  class Setup
    BANNER = <<~TEXT
      Usage: rootzone setup [--apply] [options]

      Show, or with --apply make, the djbdns wiring of a local root (RFC 8806):
        1. the log account and a tinydns instance (tinydns-conf) in INSTANCE,
           listening on ADDRESS, linked into the daemontools service directory;
        2. a first `rootzone update` into it: if it fails, nothing below is
           touched and dnscache keeps its root servers;
        3. dnscache's root/servers/@ pointed at ADDRESS (the old file is kept
           as @.rootzone-orig) and dnscache restarted;
        4. a daily `rootzone update -q`: a systemd timer, or a cron line.
      A step already in place is left alone: running setup again changes
      nothing. Without --apply (or with --dry-run) every change is printed
      and none is made.

      Exit status: 0 done (or shown), 1 a step failed (the steps after it
      were not made), 2 usage error.

      Options:
    TEXT

    DNSCACHE_DIRS = %w[/etc/sv/dnscache /etc/dnscache /etc/service/dnscache].freeze

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @o = { apply: false, address: "127.53.53.53", instance: "/etc/tinydns-root",
             service_dir: "/etc/service", dnscache: nil, user: "tinydns", log_user: "dnslog",
             schedule: File.directory?("/run/systemd/system") ? "systemd" : "cron",
             cron_file: "/etc/cron.d/rootzone", unit_dir: "/etc/systemd/system",
             source: nil, trust_anchor: nil, rootzone: File.expand_path($PROGRAM_NAME) }
    end

    def run
      catch(:done) do
        rest = parser.parse(@argv)
        return usage_error("unexpected argument #{rest.first.inspect}") unless rest.empty?
        return usage_error("--address: #{@o[:address].inspect} is not an IPv4 address") unless ipv4?(@o[:address])

        @o[:dnscache] ||= DNSCACHE_DIRS.find { |d| File.directory?(File.join(d, "root", "servers")) }
        @out.puts(apply? ? "rootzone setup:" : "rootzone setup (dry run: nothing is changed; --apply makes the changes):")
        steps.each { |s| step(*s) }
        0
      end
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    rescue Ironshed::Error, SystemCallError, StepFailed => e
      @err.puts "rootzone setup: #{Ironshed.describe_error(e)}; the steps after this one were not made"
      1
    end

    # A step that could not be made.
    class StepFailed < StandardError; end

    private

    def usage_error(msg)
      @err.puts "rootzone setup: #{msg}"
      2
    end

    def ipv4?(s)
      s.match?(/\A(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\z/) && s.split(".").all? { |x| x.to_i <= 255 }
    end

    def parser
      OptionParser.new do |o|
        o.banner = BANNER
        o.summary_width = 24
        o.summary_indent = "  "
        o.on("--apply", "make the changes") { @o[:apply] = true }
        o.on("-n", "--dry-run", "print the changes, make none (the default;",
             "wins over --apply)") { @o[:dry_run] = true }
        o.on("--address IP", "tinydns's address (default 127.53.53.53)") { |v| @o[:address] = v }
        o.on("--instance DIR", "the tinydns instance (default /etc/tinydns-root)") { |v| @o[:instance] = v }
        o.on("--service-dir DIR", "daemontools service directory (default",
             "/etc/service); skipped when it does not exist") { |v| @o[:service_dir] = v }
        o.on("--dnscache DIR", "the dnscache instance (default: the first of",
             "#{DNSCACHE_DIRS[0..1].join(', ')},", "#{DNSCACHE_DIRS[2]})") { |v| @o[:dnscache] = v }
        o.on("--user USER", "account tinydns runs as (default tinydns)") { |v| @o[:user] = v }
        o.on("--log-user USER", "account of its log (default dnslog, created",
             "if missing)") { |v| @o[:log_user] = v }
        o.on("--schedule KIND", %w[systemd cron none], "systemd, cron or none (default systemd",
             "when systemd runs, else cron)") { |v| @o[:schedule] = v }
        o.on("--cron-file FILE", "(default /etc/cron.d/rootzone)") { |v| @o[:cron_file] = v }
        o.on("--unit-dir DIR", "(default /etc/systemd/system)") { |v| @o[:unit_dir] = v }
        o.on("--source URL|FILE", "passed to every update (default: update's)") { |v| @o[:source] = v }
        o.on("--trust-anchor FILE", "passed to every update (default: update's)") { |v| @o[:trust_anchor] = v }
        o.on("--rootzone PATH", "the rootzone command the schedule runs",
             "(default: this one)") { |v| @o[:rootzone] = v }
        o.on("-h", "--help", "show this help and exit") do
          @out.puts o.help
          throw :done, 0
        end
      end
    end

    def apply?
      @o[:apply] && !@o[:dry_run]
    end

    # A step that does not apply here, and why.
    Skip = Struct.new(:why)

    # Runs one step: +check+ returns nil when the step is in place, a Skip, or the
    # description of the change; with --apply +make+ makes it.
    def step(title, check, make)
      change = check.call
      if change.is_a?(Skip)
        @out.puts "  skip:   #{title}: #{change.why}"
      elsif change.nil?
        @out.puts "  ok:     #{title}"
      elsif apply?
        make.call
        @out.puts "  done:   #{title}: #{change}"
      else
        @out.puts "  change: #{title}: #{change}"
      end
    end

    def steps
      inst = @o[:instance]
      root = File.join(inst, "root")
      list = [
        ["log account #{@o[:log_user]}", -> { account?(@o[:log_user]) ? nil : "useradd --system --no-create-home --shell /usr/sbin/nologin #{@o[:log_user]}" },
         -> { cmd!("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", @o[:log_user]) }],
        ["tinydns instance #{inst} on #{@o[:address]}", -> { instance_change }, -> { make_instance }],
        service_step,
        ["root zone installed in #{root}", -> { installed_change(root) }, -> { first_update(root) }],
        dnscache_step,
        schedule_step(root)
      ]
      list.compact
    end

    def skip(title, why)
      [title, -> { Skip.new(why) }, nil]
    end

    def account?(name)
      Etc.getpwnam(name)
      true
    rescue ArgumentError
      false
    end

    def cmd!(*cmd)
      out, st = Open3.capture2e(*cmd)
      raise StepFailed, "#{cmd.join(' ')} failed: #{out.strip}" unless st.success?

      out
    end

    def instance_change
      inst = @o[:instance]
      return "tinydns-conf #{@o[:user]} #{@o[:log_user]} #{inst} #{@o[:address]}" unless File.exist?(inst)

      ip = File.join(inst, "env", "IP")
      raise StepFailed, "#{inst} exists but is not a tinydns-conf instance (no env/IP)" unless File.file?(ip)

      current = File.read(ip).strip
      current == @o[:address] ? nil : "set #{ip} to #{@o[:address]} (was #{current})"
    end

    def make_instance
      inst = @o[:instance]
      if File.exist?(inst)
        write_atomically(File.join(inst, "env", "IP"), "#{@o[:address]}\n")
      else
        FileUtils.mkdir_p(File.dirname(inst))
        cmd!("tinydns-conf", @o[:user], @o[:log_user], inst, @o[:address])
      end
    end

    def service_step
      dir = @o[:service_dir]
      link = File.join(dir, File.basename(@o[:instance]))
      title = "daemontools service #{link} -> #{@o[:instance]}"
      unless File.directory?(dir)
        return skip(title, "#{dir} does not exist (install daemontools-run, or run " \
                           "#{@o[:instance]}/run under your own supervisor)")
      end
      check = lambda do
        if File.symlink?(link)
          target = File.readlink(link)
          return nil if File.expand_path(target, dir) == File.expand_path(@o[:instance])

          raise StepFailed, "#{link} exists and points to #{target}"
        end
        raise StepFailed, "#{link} exists and is not a link" if File.exist?(link)

        "ln -s #{@o[:instance]} #{link}"
      end
      [title, check, -> { File.symlink(@o[:instance], link) }]
    end

    def installed_change(root)
      serial = File.directory?(root) ? Installed.read(root).serial : nil
      serial ? nil : "rootzone update --tinydns-root #{root}#{update_args.map { |a| " #{a}" }.join}"
    end

    def update_args
      args = []
      args += ["--source", @o[:source]] if @o[:source]
      args += ["--trust-anchor", @o[:trust_anchor]] if @o[:trust_anchor]
      args
    end

    def first_update(root)
      kw = { tinydns_root: root }
      kw[:source] = @o[:source] if @o[:source]
      kw[:trust_anchor] = @o[:trust_anchor] if @o[:trust_anchor]
      report = RootZone.update(**kw)
      @out.puts "          installed root zone serial #{report.serial}"
    end

    def dnscache_step
      dir = @o[:dnscache]
      unless dir && File.directory?(File.join(dir, "root", "servers"))
        return skip("dnscache", "no dnscache instance found (#{dir || DNSCACHE_DIRS.join(', ')}; --dnscache DIR)")
      end
      servers = File.join(dir, "root", "servers", "@")
      check = lambda do
        current = File.exist?(servers) ? File.read(servers) : ""
        return nil if current.split == [@o[:address]]

        "write #{@o[:address]} to #{servers} (the old list kept as @.rootzone-orig), then #{restart_text(dir)}"
      end
      ["dnscache #{dir} asks #{@o[:address]} for the root", check, -> { point_dnscache(dir, servers) }]
    end

    def restart_text(dir)
      restart_cmd(dir)&.join(" ") || "restart dnscache yourself (it reads root/servers/@ when it starts)"
    end

    def restart_cmd(dir)
      if File.directory?("/run/systemd/system") && File.basename(dir) == "dnscache"
        %w[systemctl try-restart dnscache.service]
      elsif File.directory?(File.join(dir, "supervise"))
        ["svc", "-t", dir]
      end
    end

    def point_dnscache(dir, servers)
      orig = "#{servers}.rootzone-orig"
      FileUtils.cp(servers, orig, preserve: true) if File.exist?(servers) && !File.exist?(orig)
      write_atomically(servers, "#{@o[:address]}\n")
      cmd = restart_cmd(dir)
      cmd ? cmd!(*cmd) : @out.puts("          restart dnscache to make it use #{@o[:address]}")
    end

    def schedule_step(root)
      return skip("daily update", "--schedule none") if @o[:schedule] == "none"

      command = [@o[:rootzone], "update", "-q", "--tinydns-root", root, *update_args].join(" ")
      files = if @o[:schedule] == "cron"
                { @o[:cron_file] => cron_text(command) }
              else
                { File.join(@o[:unit_dir], "rootzone-update.service") => service_text(command),
                  File.join(@o[:unit_dir], "rootzone-update.timer") => TIMER }
              end
      check = lambda do
        stale = files.reject { |f, text| File.exist?(f) && File.read(f) == text }
        stale.empty? ? nil : "write #{stale.keys.join(' and ')}#{@o[:schedule] == 'systemd' ? ', enable rootzone-update.timer' : ''}"
      end
      make = lambda do
        files.each { |f, text| write_atomically(f, text) }
        if @o[:schedule] == "systemd"
          cmd!("systemctl", "daemon-reload")
          cmd!("systemctl", "enable", "--now", "rootzone-update.timer")
        end
      end
      ["daily update (#{@o[:schedule]})", check, make]
    end

    # The minute and hour are fixed per host (from its name), so that hosts do not all
    # download at once and a second setup writes the same line.
    def cron_text(command)
      h = Zlib.crc32(Socket.gethostname)
      "# rootzone: refresh the local root zone daily (written by rootzone setup)\n" \
        "#{h % 60} #{2 + (h / 60) % 4} * * * root #{command}\n"
    end

    def service_text(command)
      <<~UNIT
        # Written by rootzone setup.
        [Unit]
        Description=Refresh the local DNS root zone (rootzone update)
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        ExecStart=#{command}
      UNIT
    end

    TIMER = <<~UNIT
      # Written by rootzone setup.
      [Unit]
      Description=Refresh the local DNS root zone daily

      [Timer]
      OnCalendar=daily
      RandomizedDelaySec=4h
      Persistent=true

      [Install]
      WantedBy=timers.target
    UNIT

    def write_atomically(path, text)
      FileUtils.mkdir_p(File.dirname(path))
      tmp = "#{path}.rootzone-tmp-#{Process.pid}"
      File.open(tmp, File::WRONLY | File::CREAT | File::EXCL, 0o644) do |f|
        f.write(text)
        f.fsync
      end
      File.rename(tmp, path)
    ensure
      FileUtils.rm_f(tmp) if tmp && File.exist?(tmp)
    end
  end
end
