# frozen_string_literal: true

require "optparse"
require "open3"
require "shellwords"
require "lvmsync"

module LVMSync
  # The receiver on the other end failed; the message carries its own reason.
  class RemoteError < Error; end

  # The lvmsync command line: the original's options and modes. Exit status: 0 done, 1
  # refused or failed (a one-line reason on stderr; for a failed remote apply, the receiver's
  # own reason), 130 interrupted.
  class CLI
    BANNER = <<~TEXT
      Usage: lvmsync [options] SNAPSHOT [HOST:]DESTINATION
             lvmsync [options] --stdout SNAPSHOT > CHANGES
             lvmsync [options] --apply CHANGES|- DESTINATION
             lvmsync -V | --help

      Send the chunks a classic LVM snapshot recorded as changed, so that a copy of the
      volume taken while it was in use can be brought up to date with little downtime.

        SNAPSHOT     the snapshot LV (/dev/VG/SNAP, /dev/mapper/VG-SNAP or VG/SNAP); the
                     data is read from its origin (or --data-source), never from the snapshot
        DESTINATION  block device or file holding the earlier copy; never created, truncated
                     or extended; a block device is opened exclusively
        HOST:        run the receiver there: `RSH HOST lvmsync --apply - ... DESTINATION`
                     (a colon after a slash belongs to the path: no host)

      The stream is lvmsync's "PROTO[3]", byte-compatible with the original lvmsync on
      either end. Block devices are read with O_DIRECT (no drop_caches).

      Options:
    TEXT

    EPILOG = <<~TEXT

      Moving a live LV with little downtime:
        lvcreate -s -L 10G -n web01-sync vg0/web01           # 1. snapshot: changes are recorded
        dd if=/dev/vg0/web01-sync bs=1M | ssh new dd of=/dev/vg1/web01 bs=1M
                                                             # 2. copy while the service runs
        virsh shutdown web01                                 # 3. stop the service
        lvmsync /dev/vg0/web01-sync new:/dev/vg1/web01       # 4. send only what changed

      A snapback file undoes the sync it was made by: lvmsync --apply FILE DESTINATION.
      Undo several syncs newest first. Snapback files are never overwritten, and stay
      restorable whenever the sync that writes them is interrupted (even by a crash).

      Exit status: 0 done; 1 refused or failed (reason on stderr, nothing written when the
      problem could be seen before the first write); 130 interrupted (run the same command
      again: applying the same changes twice gives the same result).
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @lock = Mutex.new
      @opts = { rsh: "ssh", remote_lvmsync: "lvmsync", verbose: false, debug: false, quiet: false }
    end

    def run
      args = parser.parse(@argv)
      return usage_error("cannot be quiet and verbose at the same time") if @opts[:quiet] && (@opts[:verbose] || @opts[:debug])

      if @opts[:apply]
        return usage_error("--apply needs exactly one DESTINATION (see --help)") unless args.size == 1

        run_apply(@opts[:apply], args[0])
      elsif @opts[:server]
        return usage_error("--server needs a DESTINATION") unless args.size == 1

        info "lvmsync: --server is deprecated; use '--apply -' instead"
        run_apply("-", args[0])
      else
        run_send(args)
      end
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    rescue Interrupt
      @meter&.finish
      say "lvmsync: interrupted; the destination may be partly updated. Run the same command " \
          "again to finish: applying the same changes twice gives the same result."
      130
    rescue Ironshed::Error, SystemCallError => e
      @meter&.finish
      say "lvmsync: #{Ironshed.describe_error(e)}"
      1
    end

    private

    def parser
      OptionParser.new do |o|
        o.banner = BANNER
        o.version = Ironshed::VERSION
        o.summary_width = 30
        o.on("-s", "--stdout", "write the change stream to standard output instead of applying it",
             "(save it to a file, or pipe it to `lvmsync --apply -`)") { @opts[:stdout] = true }
        o.on("-a", "--apply FILE", "apply a change stream or snapback file (- for standard input)",
             "to DESTINATION; a file is checked whole before the first write") { |v| @opts[:apply] = v }
        o.on("-b", "--snapback FILE", "before overwriting, save the destination's old data to FILE",
             "(a new file; restore with `lvmsync --apply FILE DESTINATION`); with",
             "HOST: the file is on HOST") { |v| @opts[:snapback] = v }
        o.on("-r", "--data-source DEV", "read the changed data from DEV instead of the origin",
             "(the change list still comes from the snapshot)") { |v| @opts[:data_source] = v }
        o.on("-e", "--rsh CMD", "remote shell command for HOST: (default: ssh); split into words,",
             "never run through a local shell") { |v| @opts[:rsh] = v }
        o.on("--remote-lvmsync CMD", "the lvmsync command on HOST (default: lvmsync), e.g.",
             "\"sudo /usr/local/bin/lvmsync\"") do |v|
          @opts[:remote_lvmsync] = v
        end
        o.on("--allow-short-destination", "write only what fits in a destination smaller than the",
             "volume; report the rest (default: refuse)") { @opts[:allow_short] = true }
        o.on("--server", "deprecated: same as --apply -") { @opts[:server] = true }
        o.on("-v", "--[no-]verbose", "describe the snapshot, the source and the transfer") do |v|
          @opts[:verbose] = v
        end
        o.on("-d", "--[no-]debug", "also list the changed ranges and the commands run") { |v| @opts[:debug] = v }
        o.on("-q", "--[no-]quiet", "print nothing but errors") { |v| @opts[:quiet] = v }
        o.on("-V", "--version", "print the version and exit") do
          @out.puts "lvmsync (ironshed) #{Ironshed::VERSION}"
          exit 0
        end
        o.on("-h", "--help", "show this help and exit") do
          @out.puts o.help
          @out.puts EPILOG
          exit 0
        end
      end
    end

    # --- output -----------------------------------------------------------------------

    def say(line)
      @lock.synchronize do
        @err.print("\r\e[K") if @meter&.enabled
        @err.puts line
        @err.flush
      end
    end

    def info(line)
      say(line) unless @opts[:quiet]
    end

    def verbose(line)
      say(line) if (@opts[:verbose] || @opts[:debug]) && !@opts[:quiet]
    end

    def debug(line)
      say(line) if @opts[:debug]
    end

    def usage_error(msg)
      @err.puts "lvmsync: #{msg}"
      @err.puts "Usage: lvmsync [options] SNAPSHOT [HOST:]DESTINATION | --stdout SNAPSHOT | " \
                "--apply FILE DESTINATION (try --help)"
      1
    end

    def meter(label)
      @meter = Ironshed::ProgressMeter.new(label, io: LockedIO.new(@err, @lock),
                                                  enabled: !@opts[:quiet] && @err.tty?)
    end

    # Serialises the progress meter's writes with the other output lines.
    class LockedIO
      def initialize(io, lock)
        @io = io
        @lock = lock
      end

      def tty? = @io.tty?

      def print(*args)
        @lock.synchronize { @io.print(*args) }
      end

      def flush
        @io.flush
      end
    end

    def u
      Ironshed::Units
    end

    def rate(bytes, seconds)
      seconds.positive? ? u.rate(bytes / seconds) : "-"
    end

    # --- apply --------------------------------------------------------------------------

    def run_apply(input, dest)
      verbose "lvmsync: applying #{input == '-' ? 'standard input' : input} to #{dest}"
      meter("lvmsync")
      r = LVMSync.apply(input, dest, snapback: @opts[:snapback], allow_short_destination: @opts[:allow_short],
                                     progress: @meter)
      @meter.finish
      report_apply(r, dest)
      0
    end

    def report_apply(r, dest)
      if r.journaled && r.ignored_records.positive?
        info "lvmsync: note: #{r.ignored_records} records (#{u.bytes(r.ignored_bytes)}) after the snapback " \
             "file's last commit were ignored: the run that wrote it stopped before overwriting those ranges"
      end
      if r.skipped_records.positive?
        info "lvmsync: warning: #{r.skipped_records} records had #{r.skipped_bytes} bytes past the end of " \
             "#{dest} (#{r.dest_size} bytes); only the part that fits was written"
      end
      info "lvmsync: applied #{r.records} records, #{u.bytes(r.bytes)} (#{r.writes} writes) to #{dest} " \
           "in #{format('%.2f', r.seconds)} s (#{rate(r.bytes, r.seconds)})"
      return unless r.snapback

      info "lvmsync: snapback: saved #{u.bytes(r.snapback[:bytes])} of old data to #{@opts[:snapback]}; " \
           "undo with: lvmsync --apply #{Shellwords.escape(@opts[:snapback])} #{Shellwords.escape(dest)}"
    end

    # --- send ---------------------------------------------------------------------------

    def run_send(args)
      return usage_error("no SNAPSHOT given (see --help)") if args.empty?

      if @opts[:stdout]
        return usage_error("--snapback cannot be used with --stdout: give it to the --apply side") if @opts[:snapback]
        return usage_error("too many arguments") if args.size > 2

        info "lvmsync: note: with --stdout, #{args[1]} is ignored" if args.size == 2
      elsif args.size != 2
        return usage_error(args.size < 2 ? "no DESTINATION given (see --help)" : "too many arguments")
      end
      snap, store, source = prepare(args[0])
      if @opts[:stdout]
        send_stdout(store, source)
      else
        host, dest = split_dest(args[1])
        host ? send_remote(store, source, host, dest) : send_local(snap, store, source, dest)
      end
    end

    # Resolves the snapshot and opens its exception store: every check before any output.
    def prepare(name)
      lv = LVM::LogicalVolume.new(name)
      raise LVM::Error, "#{name}: not a snapshot (#{lv.vg_name}/#{lv.lv_name} is a #{lv.config.type || 'plain'} LV)" unless lv.snapshot?
      raise LVM::Error, "#{name}: thin snapshots are not supported by this version (only classic snapshots are)" if lv.thin?

      info = lv.config.classic_snapshot
      if info[:merging]
        raise LVM::SnapshotError, "#{name}: the snapshot is being merged into its origin; its exception " \
                                  "store is in flux and cannot be used"
      end
      cow = lv.snapshot.metadata_device
      unless File.exist?(cow)
        raise LVM::Error, "#{name}: #{cow} does not exist: is the snapshot active? (lvchange -ay #{lv.vg_name}/#{lv.lv_name})"
      end
      store = LVM::CowStore.open(cow)
      source = @opts[:data_source] || lv.origin.path
      verbose "lvmsync: snapshot #{lv.vg_name}/#{lv.lv_name} of #{info[:origin]}, exception store #{cow} " \
              "(read #{store.read_mode})"
      verbose "lvmsync: chunk size #{u.bytes(store.chunk_size)}; #{store.exception_count} exceptions in " \
              "#{store.area_count} metadata areas; #{store.chunk_count} chunks changed " \
              "(#{u.bytes(store.changed_bytes)}) in #{store.extents.size} ranges, sent as " \
              "#{store.record_count(LVMSync::MAX_RECORD)} records of at most #{u.bytes(LVMSync::MAX_RECORD)}"
      verbose "lvmsync: data source: #{source}"
      store.extents.each { |off, len| debug "lvmsync: changed: #{off}+#{len}" } if @opts[:debug]
      [lv, store, source]
    end

    # "host:/dev/x" => ["host", "/dev/x"]; "/dev/disk/by-path/pci-0000:00:1f.2" => [nil, ...];
    # "[::1]:/dev/x" => ["::1", "/dev/x"].
    def split_dest(dest)
      if (m = dest.match(/\A\[([^\]]+)\]:(.+)\z/))
        return [m[1], m[2]]
      end

      host, sep, path = dest.partition(":")
      return [nil, dest] if sep.empty? || host.empty? || host.include?("/")

      [host, path]
    end

    def send_stdout(store, source)
      if @out.tty?
        raise LVMSync::Error, "refusing to write a binary change stream to a terminal: redirect standard output"
      end

      meter("lvmsync")
      r = LVMSync.send_changes(store, source, @out, name: "standard output", progress: @meter)
      @meter.finish
      report_send(r, store)
      0
    end

    def report_send(r, store)
      verbose "lvmsync: data source read #{r.read_mode}"
      ratio = r.bytes.positive? ? format(", %.1fx less than a full copy (%s)", r.source_size.to_f / r.bytes, u.bytes(r.source_size)) : ""
      info "lvmsync: sent #{u.bytes(r.bytes)} in #{r.records} records (#{store.chunk_count} changed chunks) " \
           "in #{format('%.2f', r.seconds)} s (#{rate(r.bytes, r.seconds)})#{ratio}"
    end

    def same_device?(a, b)
      sa = File.stat(a)
      sb = File.stat(b)
      return sa.rdev == sb.rdev if sa.blockdev? && sb.blockdev?

      sa.dev == sb.dev && sa.ino == sb.ino
    rescue SystemCallError
      false
    end

    def send_local(lv, store, source, dest)
      { "the data source" => source, "the snapshot" => lv.path, "the exception store" => store.path }.each do |what, path|
        raise Ironshed::DestinationError, "#{dest}: is #{what} (#{path}); refusing to write to it" if same_device?(dest, path)
      end
      meter("lvmsync")
      reader, writer = IO.pipe
      job = Ironshed::Progress.new
      receiver = Thread.new do
        Thread.current.report_on_exception = false
        LVMSync.apply(reader, dest, snapback: @opts[:snapback], allow_short_destination: @opts[:allow_short], job: job)
      ensure
        reader.close
      end
      sent = nil
      send_error = nil
      begin
        sent = LVMSync.send_changes(store, source, writer, name: "the local receiver", progress: @meter)
      rescue Errno::EPIPE, Ironshed::Error, SystemCallError, Interrupt => e
        send_error = e
      ensure
        writer.close
      end
      applied = begin
        receiver.value
      rescue Interrupt
        job.cancel
        receiver.join rescue nil # rubocop:disable Style/RescueModifier
        raise
      rescue Ironshed::Error, SystemCallError => e
        raise e unless send_error.is_a?(Interrupt)

        nil
      end
      @meter.finish
      raise send_error if send_error

      report_send(sent, store)
      report_apply(applied, dest)
      0
    end

    def remote_command(dest)
      words = Shellwords.split(@opts[:remote_lvmsync]) + ["--apply", "-"]
      words += ["--snapback", @opts[:snapback]] if @opts[:snapback]
      words << "-v" if @opts[:verbose]
      words << "-d" if @opts[:debug]
      words << "-q" if @opts[:quiet]
      words << "--allow-short-destination" if @opts[:allow_short]
      words << dest
      # The remote side runs the command through its shell (ssh joins its arguments with
      # spaces), so every word is quoted for it; nothing goes through a local shell.
      words.map { |w| Shellwords.escape(w) }
    end

    def send_remote(store, source, host, dest)
      argv = Shellwords.split(@opts[:rsh]) + [host] + remote_command(dest)
      verbose "lvmsync: running #{argv.map { |w| Shellwords.escape(w) }.join(' ')}"
      meter("lvmsync")
      stdin, stdout, stderr, waiter = Open3.popen3(*argv)
      tail = []
      relays = [stdout, stderr].map do |io|
        Thread.new do
          io.each_line do |line|
            line = line.chomp
            if io == stderr && !line.strip.empty?
              @lock.synchronize { tail << line }
              tail.shift while tail.size > 20
            end
            say "remote: #{line.sub(/\A\r?\e\[2K\r?/, '')}"
          end
        rescue IOError
          nil
        end
      end
      sent = nil
      send_error = nil
      begin
        sent = LVMSync.send_changes(store, source, stdin, name: "the receiver on #{host}", progress: @meter)
      rescue Errno::EPIPE => e
        send_error = e
      rescue Interrupt, Ironshed::Error, SystemCallError => e
        send_error = e
      ensure
        stdin.close unless stdin.closed?
      end
      status = waiter.value
      # ssh in ControlMaster mode may keep stderr open: don't wait for it forever.
      relays.each { |t| t.join(2) || t.kill }
      [stdout, stderr].each { |io| io.close unless io.closed? }
      @meter.finish
      raise send_error if send_error.is_a?(Interrupt)

      unless status.success?
        raise RemoteError, "apply on #{host} failed (#{describe_status(status)}): #{remote_reason(tail)}"
      end
      if send_error.is_a?(Errno::EPIPE)
        raise RemoteError, "the receiver on #{host} closed the stream early (it exited 0): #{remote_reason(tail)}"
      end
      raise send_error if send_error

      report_send(sent, store)
      0
    end

    def describe_status(st)
      st.signaled? ? "killed by signal #{st.termsig}" : "exit status #{st.exitstatus}"
    end

    # The receiver's last message line, skipping the backtrace an uncaught Ruby exception
    # (in the original lvmsync) ends with.
    def remote_reason(tail)
      line = tail.reverse.find { |l| !l.strip.empty? && l !~ /\A\s*from \S+:\d+:in / }
      return "no message from the receiver" unless line

      line.strip.sub(/\A(lvmsync: |FATAL ERROR: )/, "")
    end
  end
end
