# frozen_string_literal: true

require "optparse"
require "open3"
require "shellwords"
require "lvmsync"

module LVMSync
  # The receiver on the other end failed; the message carries its own reason.
  class RemoteError < Error; end
  # --verify found the destination different from the source.
  class VerifyError < Error; end

  # The lvmsync command line: the original's options and modes. Exit status: 0 done, 1
  # refused or failed (a one-line reason on stderr; for a failed remote apply, the receiver's
  # own reason), 130 interrupted.
  class CLI
    BANNER = <<~TEXT
      Usage: lvmsync [options] SNAPSHOT [HOST:]DESTINATION
             lvmsync [options] --from OLDER SNAPSHOT [HOST:]DESTINATION
             lvmsync [options] --stdout [--from OLDER] SNAPSHOT > CHANGES
             lvmsync [options] --apply CHANGES|- DESTINATION
             lvmsync -V | --help

      Send the blocks an LVM snapshot (classic or thin) records as changed, so
      that a copy of the volume taken while it was in use can be brought up to
      date with little downtime.

        SNAPSHOT     the snapshot LV (/dev/VG/SNAP, /dev/mapper/VG-SNAP or
                     VG/SNAP); the data is read from its origin (or
                     --data-source), never from the snapshot
        --from OLDER send what changed between two snapshots of one origin
                     instead: the destination holds OLDER's content, and gets
                     SNAPSHOT's (read from the SNAPSHOT device, which must be
                     active); see "Rolling syncs" below
        DESTINATION  block device or file holding the earlier copy; never
                     created, truncated or extended; a block device is opened
                     exclusively
        HOST:        run the receiver there: `RSH HOST lvmsync --apply - ...
                     DESTINATION` (a colon after a slash belongs to the path)

      The stream is lvmsync's "PROTO[3]", byte-compatible with the original
      lvmsync on either end. Block devices are read with O_DIRECT (no
      drop_caches). Thin snapshots' changes come from thin_delta on a reserved
      metadata snapshot of the pool, always released (also on errors, Ctrl-C
      and SIGTERM).

      Options:
    TEXT

    EPILOG = <<~TEXT

      Moving a live LV with little downtime:
        # 1. snapshot: from now on changes are recorded
        lvcreate -s -L 10G -n web01-sync vg0/web01
        # 2. copy while the service runs
        dd if=/dev/vg0/web01-sync bs=1M | ssh new dd of=/dev/vg1/web01 bs=1M
        # 3. stop the service; 4. send only what changed
        virsh shutdown web01
        lvmsync /dev/vg0/web01-sync new:/dev/vg1/web01

      Rolling syncs (the service keeps running until the last round):
        lvcreate -s -n web01-s1 vg0/web01         # thin: no -L; classic: -L 10G
        dd if=/dev/vg0/web01-s1 bs=1M | ssh new dd of=/dev/vg1/web01 bs=1M
        lvcreate -s -n web01-s2 vg0/web01         # repeat while busy:
        lvmsync --from vg0/web01-s1 vg0/web01-s2 new:/dev/vg1/web01
        lvremove vg0/web01-s1
        virsh shutdown web01; lvcreate -s -n web01-s3 vg0/web01
        lvmsync --verify --from vg0/web01-s2 vg0/web01-s3 new:/dev/vg1/web01
      (--from reads the newer snapshot, which must be active; thin snapshots
      skip activation by default: lvchange -ay -K vg0/web01-s2 before its round)

      A snapback file undoes the sync it was made by: lvmsync --apply FILE
      DESTINATION. Undo several syncs newest first. Snapback files are never
      overwritten, and stay restorable whenever the sync that writes them is
      interrupted (even by a crash).

      Exit status: 0 done; 1 refused or failed, or --verify found a difference
      (reason on stderr, nothing written when the problem could be seen before
      the first write); 130 interrupted, 143 stopped by SIGTERM (run the same
      command again: applying the same changes twice gives the same result).
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @lock = Mutex.new
      @opts = { rsh: "ssh", remote_lvmsync: "lvmsync", verbose: false, debug: false, quiet: false,
                thin_delta: "thin_delta", dmsetup: "dmsetup" }
    end

    def run
      args = parser.parse(@argv)
      return usage_error("cannot be quiet and verbose at the same time") if @opts[:quiet] && (@opts[:verbose] || @opts[:debug])

      if @opts[:capabilities]
        @out.puts "#{CAPABILITIES_PREFIX}#{LVMSync::CAPABILITIES.join(' ')}"
        return 0
      end
      if @opts[:apply]
        return usage_error("--apply needs exactly one DESTINATION (see --help)") unless args.size == 1
        return usage_error("--from and --discards are for the sending side") if @opts[:from] || @opts[:discards]

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
    rescue SignalException => e
      # SIGTERM, SIGHUP...: everything held was released on the way out (ensure blocks); say
      # so, then die of the signal as the sender of the signal expects.
      @meter&.finish
      say "lvmsync: stopped by #{e.message}; the destination may be partly updated. Run the same " \
          "command again to finish."
      raise
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
        o.summary_width = 29
        o.summary_indent = "  "
        o.on("-s", "--stdout", "write the change stream to standard output",
             "instead of applying it (save it to a file, or",
             "pipe it to `lvmsync --apply -`)") { @opts[:stdout] = true }
        o.on("-a", "--apply FILE", "apply a change stream or snapback file (-",
             "for standard input) to DESTINATION; a file is",
             "checked whole before the first write") { |v| @opts[:apply] = v }
        o.on("-b", "--snapback FILE", "before overwriting, save the destination's old",
             "data to FILE (a new file; restore it with",
             "`lvmsync --apply FILE DESTINATION`); with",
             "HOST: the file is on HOST") { |v| @opts[:snapback] = v }
        o.on("-f", "--from OLDER", "send the changes between snapshot OLDER and",
             "SNAPSHOT (both thin, or both classic, of one",
             "origin); the destination must hold OLDER's",
             "content") { |v| @opts[:from] = v }
        o.on("--discards", "send blocks a thin origin no longer maps as",
             "discard records (the destination unmaps or",
             "zeroes them) instead of zeros, when the",
             "receiver supports it (asked first)") { @opts[:discards] = true }
        o.on("--verify", "after the sync, the receiver re-reads every",
             "range it wrote and the sender compares hashes",
             "(XXH3) with the source's; exit 1 on a mismatch",
             "(not with --stdout)") { @opts[:verify] = true }
        o.on("-r", "--data-source DEV", "read the changed data from DEV instead of the",
             "origin (the change list still comes from the",
             "snapshot)") { |v| @opts[:data_source] = v }
        o.on("-e", "--rsh CMD", "remote shell command for HOST: (default: ssh);",
             "split into words, never run through a shell") { |v| @opts[:rsh] = v }
        o.on("--remote-lvmsync CMD", "the lvmsync command on HOST (default:",
             "lvmsync), e.g. \"sudo /usr/local/bin/lvmsync\"") do |v|
          @opts[:remote_lvmsync] = v
        end
        o.on("--allow-short-destination", "write only what fits in a destination smaller",
             "than the volume; report the rest (default:",
             "refuse)") { @opts[:allow_short] = true }
        o.on("--server", "deprecated: same as --apply -") { @opts[:server] = true }
        o.on("--capabilities", "print the protocol extensions this lvmsync",
             "can receive, and exit (asked by a sender",
             "before --discards or --verify)") { @opts[:capabilities] = true }
        o.on("-v", "--[no-]verbose", "describe the snapshot, the source and the",
             "transfer") do |v|
          @opts[:verbose] = v
        end
        o.on("-d", "--[no-]debug", "also list the changed ranges and the commands",
             "run") { |v| @opts[:debug] = v }
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
                                     verify: @opts[:verify] ? true : false, progress: @meter)
      @meter.finish
      report_apply(r, dest)
      # The digests of what was written, read back from the destination, for the sender
      # (which compares them with its own): one line per record, on standard output.
      if @opts[:verify]
        LVMSync.digest_lines(r.digests).each { |l| @out.puts l }
        @out.flush
      end
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
      if r.discard_records.positive?
        info "lvmsync: discarded #{u.bytes(r.discard_bytes)} in #{r.discard_records} ranges of #{dest} " \
             "(they read as zeros now)"
      end
      info "lvmsync: applied #{r.records} records, #{u.bytes(r.bytes)} (#{r.writes} writes) to #{dest} " \
           "in #{format('%.2f', r.seconds)} s (#{rate(r.bytes, r.seconds)})"
      return unless r.snapback

      info "lvmsync: snapback: saved #{u.bytes(r.snapback[:bytes])} of old data to #{@opts[:snapback]}; " \
           "undo with: lvmsync --apply #{Shellwords.escape(@opts[:snapback])} #{Shellwords.escape(dest)}"
    end

    # --- send ---------------------------------------------------------------------------

    # What to send: +changes+ (an LVM::CowStore or LVM::ThinDelta) read from +source+;
    # +devices+ the paths a destination must not be; +summary+ describes the changes.
    Plan = Struct.new(:changes, :source, :devices, :summary, keyword_init: true)

    def run_send(args)
      return usage_error("no SNAPSHOT given (see --help)") if args.empty?
      if @opts[:verify] && @opts[:allow_short]
        return usage_error("--verify compares every byte sent with the destination: it cannot be used with " \
                           "--allow-short-destination, which leaves some out")
      end

      if @opts[:stdout]
        return usage_error("--snapback cannot be used with --stdout: give it to the --apply side") if @opts[:snapback]
        return usage_error("--verify needs a live receiver: it cannot be used with --stdout") if @opts[:verify]
        return usage_error("too many arguments") if args.size > 2

        info "lvmsync: note: with --stdout, #{args[1]} is ignored" if args.size == 2
      elsif args.size != 2
        return usage_error(args.size < 2 ? "no DESTINATION given (see --help)" : "too many arguments")
      end
      plan = prepare(args[0])
      if @opts[:stdout]
        send_stdout(plan)
      else
        host, dest = split_dest(args[1])
        host ? send_remote(plan, host, dest) : send_local(plan, dest)
      end
    end

    # Resolves the snapshot(s) and reads the change list: every check before any output.
    def prepare(name)
      lv = LVM::LogicalVolume.new(name)
      older = @opts[:from] && LVM::LogicalVolume.new(@opts[:from])
      if older && older.vg_name != lv.vg_name
        raise LVM::Error, "--from #{@opts[:from]} is in volume group #{older.vg_name}, #{name} in " \
                          "#{lv.vg_name}: both must be snapshots of one origin"
      end
      plan = lv.thin? || older&.thin? ? prepare_thin(name, lv, older) : prepare_classic(name, lv, older)
      verbose "lvmsync: data source: #{plan.source}"
      plan.changes.extents.each { |off, len| debug "lvmsync: changed: #{off}+#{len}" } if @opts[:debug]
      plan
    end

    def not_a_snapshot(name, lv)
      LVM::Error.new("#{name}: not a snapshot (#{lv.vg_name}/#{lv.lv_name} is a #{lv.config.type || 'plain'} LV)")
    end

    def check_order(older, newer)
      t0 = older.config.creation_time
      t1 = newer.config.creation_time
      return unless t0 && t1 && t0 > t1

      raise LVM::Error, "--from #{@opts[:from]} was created after #{newer.vg_name}/#{newer.lv_name} " \
                        "(#{Time.at(t0).utc} > #{Time.at(t1).utc}): give the older snapshot to --from"
    end

    def active!(lv, how)
      return if File.exist?(lv.path)

      raise LVM::Error, "#{lv.path} does not exist: #{lv.vg_name}/#{lv.lv_name} is not active (#{how})"
    end

    def prepare_classic(name, lv, older)
      raise not_a_snapshot(name, lv) unless lv.snapshot?

      info = lv.config.classic_snapshot
      listed = older || lv
      if older
        raise LVM::Error, "--from #{@opts[:from]}: not a classic snapshot, and #{name} is one" unless older.snapshot? && !older.thin?

        oinfo = older.config.classic_snapshot
        unless oinfo[:origin] == info[:origin]
          raise LVM::Error, "--from #{@opts[:from]} is a snapshot of #{oinfo[:origin]}, #{name} of " \
                            "#{info[:origin]}: both must be snapshots of one origin"
        end
        check_order(older, lv)
        info = oinfo
      end
      if info[:merging]
        raise LVM::SnapshotError, "#{listed.vg_name}/#{listed.lv_name}: the snapshot is being merged into " \
                                  "its origin; its exception store is in flux and cannot be used"
      end
      cow = listed.snapshot.metadata_device
      unless File.exist?(cow)
        raise LVM::Error, "#{listed.vg_name}/#{listed.lv_name}: #{cow} does not exist: is the snapshot active? " \
                          "(lvchange -ay #{listed.vg_name}/#{listed.lv_name})"
      end
      store = LVM::CowStore.open(cow)
      source = @opts[:data_source]
      if older
        active!(lv, "lvchange -ay #{lv.vg_name}/#{lv.lv_name}") unless source
        source ||= lv.path
        verbose "lvmsync: changes since #{older.vg_name}/#{older.lv_name} (its exception store #{cow}, " \
                "read #{store.read_mode}); data read from snapshot #{lv.vg_name}/#{lv.lv_name}, as it was taken"
      else
        source ||= lv.origin.path
        verbose "lvmsync: snapshot #{lv.vg_name}/#{lv.lv_name} of #{info[:origin]}, exception store #{cow} " \
                "(read #{store.read_mode})"
      end
      verbose "lvmsync: chunk size #{u.bytes(store.chunk_size)}; #{store.exception_count} exceptions in " \
              "#{store.area_count} metadata areas; #{store.chunk_count} chunks changed " \
              "(#{u.bytes(store.changed_bytes)}) in #{store.extents.size} ranges, sent as " \
              "#{store.record_count(LVMSync::MAX_RECORD)} records of at most #{u.bytes(LVMSync::MAX_RECORD)}"
      Plan.new(changes: store, source: source,
               devices: { "the data source" => source, "the snapshot" => lv.path, "the exception store" => store.path },
               summary: "#{store.chunk_count} changed chunks")
    end

    def prepare_thin(name, lv, older)
      unless lv.thin? && (older.nil? || older.thin?)
        raise LVM::Error, "--from #{@opts[:from]} and #{name}: one is a thin LV and the other is not; " \
                          "both must be snapshots of one origin"
      end
      snap = LVM::ThinSnapshot.new(lv.vg_name, lv.lv_name, vgcfg: lv.vg_config, thin_delta: @opts[:thin_delta],
                                                           dmsetup: @opts[:dmsetup])
      source = @opts[:data_source]
      if older
        old = LVM::ThinSnapshot.new(older.vg_name, older.lv_name, vgcfg: older.vg_config,
                                                                  thin_delta: @opts[:thin_delta], dmsetup: @opts[:dmsetup])
        raise not_a_snapshot(@opts[:from], older) unless old.origin

        unless snap.origin == old.origin || lv.lv_name == old.origin
          raise LVM::Error, "--from #{@opts[:from]} is a snapshot of #{old.origin}, #{name} " \
                            "#{snap.origin ? "of #{snap.origin}" : 'is not its origin'}: both must be snapshots of one origin"
        end
        check_order(older, lv)
        unless source
          active!(lv, "thin snapshots are skipped at activation by default: lvchange -ay -K #{lv.vg_name}/#{lv.lv_name}")
        end
        source ||= lv.path
        left = old
        what = "changes from #{older.vg_name}/#{older.lv_name} (thin id #{old.device_id}) to #{lv.vg_name}/" \
               "#{lv.lv_name} (thin id #{snap.device_id}), data read from #{lv.lv_name}"
      else
        raise not_a_snapshot(name, lv) unless snap.origin

        source ||= lv.origin.path
        left = nil
        what = "thin snapshot #{lv.vg_name}/#{lv.lv_name} (thin id #{snap.device_id}) of #{snap.origin} " \
               "(thin id #{snap.origin_snapshot.device_id})"
      end
      verbose "lvmsync: #{what}, pool #{lv.vg_name}/#{snap.config.thin_pool}"
      delta = left ? snap.delta(from: left) : snap.delta
      counts = delta.block_counts
      verbose "lvmsync: #{delta.command}: pool block #{u.bytes(delta.block_size)}; #{counts[:different]} blocks " \
              "rewritten, #{counts[:right_only]} newly mapped, #{counts[:left_only]} unmapped, " \
              "#{counts[:same]} shared; metadata snapshot released"
      changed = counts[:different] + counts[:right_only]
      Plan.new(changes: delta, source: source,
               devices: { "the data source" => source, "the snapshot" => lv.path,
                          "the pool's metadata" => snap.pool.metadata_device },
               summary: "#{changed} changed and #{counts[:left_only]} unmapped blocks of #{u.bytes(delta.block_size)}")
    end

    # True when unmapped (discarded) ranges should go as discard records.
    def discards?(plan)
      return false unless @opts[:discards]

      unless plan.changes.respond_to?(:unmapped_bytes)
        info "lvmsync: note: --discards: a classic snapshot has no unmapped ranges; nothing to discard"
        return false
      end
      plan.changes.unmapped_bytes.positive?
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

    def send_stdout(plan)
      if @out.tty?
        raise LVMSync::Error, "refusing to write a binary change stream to a terminal: redirect standard output"
      end

      discards = discards?(plan)
      if discards
        info "lvmsync: note: --discards: the stream carries discard records (handshake " \
             "'#{LVMSync::PROTOCOL_DISCARDS}'): only an lvmsync that lists 'discards' in --capabilities " \
             "can apply it; others refuse it before writing anything"
      end
      meter("lvmsync")
      r = LVMSync.send_changes(plan.changes, plan.source, @out, name: "standard output", discards: discards,
                                                                progress: @meter)
      @meter.finish
      report_send(r, plan)
      0
    end

    def report_send(r, plan)
      verbose "lvmsync: data source read #{r.read_mode}"
      ratio = r.bytes.positive? ? format(", %.1fx less than a full copy (%s)", r.source_size.to_f / r.bytes, u.bytes(r.source_size)) : ""
      discarded = r.discard_records.positive? ? " and #{u.bytes(r.discard_bytes)} as #{r.discard_records} discard records" : ""
      info "lvmsync: sent #{u.bytes(r.bytes)} in #{r.records} records#{discarded} (#{plan.summary}) " \
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

    def send_local(plan, dest)
      plan.devices.each do |what, path|
        raise Ironshed::DestinationError, "#{dest}: is #{what} (#{path}); refusing to write to it" if same_device?(dest, path)
      end
      discards = discards?(plan)
      verify = @opts[:verify] ? true : false
      meter("lvmsync")
      reader, writer = IO.pipe
      job = Ironshed::Progress.new
      receiver = Thread.new do
        Thread.current.report_on_exception = false
        LVMSync.apply(reader, dest, snapback: @opts[:snapback], allow_short_destination: @opts[:allow_short],
                                    verify: verify, job: job)
      ensure
        reader.close
      end
      sent = nil
      send_error = nil
      begin
        sent = LVMSync.send_changes(plan.changes, plan.source, writer, name: "the local receiver", discards: discards,
                                                                        digests: verify, progress: @meter)
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

      report_send(sent, plan)
      report_apply(applied, dest)
      check_digests(sent.digests, applied.digests, dest) if verify
      0
    end

    # Compares the sender's digests with the receiver's; raises VerifyError on a mismatch.
    def check_digests(sent, received, dest)
      rep = LVMSync.compare_digests(sent, received)
      total = sent.bytesize / 24
      if rep[:mismatches].zero?
        info "lvmsync: verify: all #{rep[:matched]} ranges read back from #{dest} match the source (XXH3)"
        return
      end
      examples = rep[:examples].first(5).map do |off, len, kind|
        "bytes #{off}..#{off + len - 1} (#{kind})"
      end
      raise VerifyError, "verify FAILED: #{rep[:mismatches]} of #{total} ranges of #{dest} do not match the " \
                         "source: #{examples.join(', ')}#{rep[:mismatches] > examples.size ? ', ...' : ''}"
    end

    CAPABILITIES_PREFIX = "lvmsync capabilities: "

    def remote_words
      Shellwords.split(@opts[:remote_lvmsync])
    end

    # The receiver's protocol extensions, asked with `lvmsync --capabilities` over the same
    # remote shell. An lvmsync that does not know the option (the original) has none.
    def remote_capabilities(host)
      argv = Shellwords.split(@opts[:rsh]) + [host] + (remote_words + ["--capabilities"]).map { |w| Shellwords.escape(w) }
      debug "lvmsync: running #{argv.map { |w| Shellwords.escape(w) }.join(' ')}"
      out, _err, st = Open3.capture3(*argv)
      line = out.lines.find { |l| l.start_with?(CAPABILITIES_PREFIX) }
      caps = st.success? && line ? line.delete_prefix(CAPABILITIES_PREFIX).split : []
      verbose "lvmsync: the receiver on #{host} supports: #{caps.empty? ? '(no extensions)' : caps.join(' ')}"
      caps
    end

    def remote_command(dest, verify)
      words = remote_words + ["--apply", "-"]
      words += ["--snapback", @opts[:snapback]] if @opts[:snapback]
      words << "--verify" if verify
      words << "-v" if @opts[:verbose]
      words << "-d" if @opts[:debug]
      words << "-q" if @opts[:quiet]
      words << "--allow-short-destination" if @opts[:allow_short]
      words << dest
      # The remote side runs the command through its shell (ssh joins its arguments with
      # spaces), so every word is quoted for it; nothing goes through a local shell.
      words.map { |w| Shellwords.escape(w) }
    end

    def send_remote(plan, host, dest)
      discards = discards?(plan)
      verify = @opts[:verify] ? true : false
      if discards || verify
        caps = remote_capabilities(host)
        if verify && !caps.include?("verify")
          raise RemoteError, "--verify: the lvmsync on #{host} cannot report what it wrote (it does not list " \
                             "'verify' in --capabilities: not ironshed's lvmsync, or an older one); nothing was sent"
        end
        if discards && !caps.include?("discards")
          info "lvmsync: note: the lvmsync on #{host} cannot apply discard records; sending the unmapped " \
               "ranges as zeros instead"
          discards = false
        end
      end
      argv = Shellwords.split(@opts[:rsh]) + [host] + remote_command(dest, verify)
      verbose "lvmsync: running #{argv.map { |w| Shellwords.escape(w) }.join(' ')}"
      meter("lvmsync")
      stdin, stdout, stderr, waiter = Open3.popen3(*argv)
      tail = []
      digest_lines = []
      relays = [stdout, stderr].map do |io|
        Thread.new do
          io.each_line do |line|
            line = line.chomp
            if verify && io == stdout && line.start_with?("lvmsync-verify ")
              digest_lines << line
              next
            end
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
        sent = LVMSync.send_changes(plan.changes, plan.source, stdin, name: "the receiver on #{host}",
                                                                      discards: discards, digests: verify, progress: @meter)
      rescue Errno::EPIPE => e
        send_error = e
      rescue Interrupt, Ironshed::Error, SystemCallError => e
        send_error = e
      ensure
        stdin.close unless stdin.closed?
      end
      status = waiter.value
      # ssh in ControlMaster mode may keep stderr open: don't wait for it forever. The
      # digests come on stdout, which ends when the receiver does.
      relays[0].join(verify ? 30 : 2) || relays[0].kill
      relays[1].join(2) || relays[1].kill
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

      report_send(sent, plan)
      check_digests(sent.digests, LVMSync.parse_digest_lines(digest_lines), "#{host}:#{dest}") if verify
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
