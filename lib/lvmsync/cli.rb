# frozen_string_literal: true

# The lvmsync command line: the original's options and modes, the help text, and the exit
# statuses. It checks the arguments, has LVMSync::Planner plan the round (lvmsync/plan.rb)
# and a transport carry it (lvmsync/transport.rb); messages go through LVMSync::Console.
require "optparse"
require "lvmsync"
require "lvmsync/console"
require "lvmsync/plan"
require "lvmsync/transport"

module LVMSync
  # The command line's settings, one field per option (and the helper programs' names).
  Options = Struct.new(:stdout, :apply, :snapback, :from, :discards, :verify, :plain, :data_source, :rsh,
                       :remote_lvmsync, :allow_short, :server, :capabilities, :verbose, :debug, :quiet,
                       :thin_delta, :dmsetup, :full, :thin_dump, :no_destination_check, keyword_init: true)

  # The lvmsync command line. Exit status: 0 done; 1 refused or failed before anything was
  # written (a one-line reason on stderr; for a failed remote apply, the receiver's own
  # reason), or --verify found a difference; 2 usage error (nothing was done); 3 failed after
  # the first write (the destination is partly updated: the line says how to finish or go
  # back); 130 interrupted; killed by any other signal it was stopped by (SIGTERM: 143).
  class CLI
    # Exit status of a bad or missing option or argument.
    USAGE = 2

    BANNER = <<~TEXT
      Usage: lvmsync [options] SNAPSHOT [HOST:]DESTINATION
             lvmsync [options] --from OLDER_SNAPSHOT SNAPSHOT [HOST:]DESTINATION
             lvmsync [options] --full SNAPSHOT|LV [HOST:]DESTINATION
             lvmsync [options] --stdout [--from OLDER_SNAPSHOT] SNAPSHOT > CHANGES
             lvmsync [options] --apply CHANGES|- DESTINATION
             lvmsync -V | --help

      Send the blocks an LVM snapshot (classic or thin) records as changed, so that
      a copy of the volume taken while it was in use can be brought up to date with
      little downtime.

        SNAPSHOT     the snapshot LV (/dev/VG/SNAP, /dev/mapper/VG-SNAP or VG/SNAP);
                     the data is read from its origin (or --data-source), never
                     from the snapshot
        --from OLDER send what changed between two snapshots of one origin instead:
                     the destination holds OLDER's content, and gets SNAPSHOT's
                     (read from the SNAPSHOT device, which must be active); see
                     "Rolling syncs" below
        DESTINATION  block device or file holding the earlier copy; never created,
                     truncated or extended; a block device is opened exclusively
        HOST:        run the receiver on HOST, through the remote shell:
                     `RSH HOST lvmsync --apply - ... DESTINATION` (a colon after
                     a slash belongs to the path: no host)

      The stream is lvmsync's "PROTO[3]": the original lvmsync's streams are applied
      as they are; sent, it ends with an end-of-stream mark that makes a cut stream
      detectable, except to a receiver that does not take one (the original: asked
      over SSH, or --plain). Block devices are read with O_DIRECT. Thin
      snapshots' changes come from thin_delta on a reserved metadata snapshot of
      the pool, always released (also on errors, Ctrl-C and SIGTERM).

      Options:
    TEXT

    EPILOG = <<~TEXT

      Moving a live LV with little downtime:
        lvcreate -s -L 10G -n web01-sync vg0/web01     # 1. changes are recorded
        lvmsync --full vg0/web01-sync new:/dev/vg1/web01
                                                       # 2. copy while it runs
        virsh shutdown web01                           # 3. stop the service
        lvmsync /dev/vg0/web01-sync new:/dev/vg1/web01 # 4. send what changed

      Rolling syncs (the service keeps running until the last round):
        lvcreate -s -n web01-s1 vg0/web01              # thin: no -L; classic: -L 10G
        lvmsync --full vg0/web01-s1 new:/dev/vg1/web01   # the first copy
        lvcreate -s -n web01-s2 vg0/web01
        lvmsync --from vg0/web01-s1 vg0/web01-s2 new:/dev/vg1/web01  # while busy
        lvremove vg0/web01-s1
        virsh shutdown web01; lvcreate -s -n web01-s3 vg0/web01
        lvmsync --verify --from vg0/web01-s2 vg0/web01-s3 new:/dev/vg1/web01
      (--from reads the newer snapshot, which must be active; thin snapshots skip
      activation by default: lvchange -ay -K vg0/web01-s2 before its round)
      Each --from round first checks that the destination holds OLDER's data
      wherever it writes (OLDER must be active too); if not, nothing is written.

      A snapback file undoes the sync it was made by: lvmsync --apply FILE DEST.
      Undo several syncs newest first. A snapback file stays restorable whenever
      the sync that writes it is interrupted (even by a crash); running the same
      command again with it resumes it, and once the sync finished, a rerun with it
      writes nothing. Any other existing file is never overwritten.

      Exit status: 0 done; 1 refused or failed before writing anything, or --verify
      found a difference (reason on stderr); 2 usage error: a bad or missing option
      or argument (nothing done); 3 failed after the first write (a full disk, an
      I/O error, a cut stream): the destination is partly updated, and the message
      says how to finish (the same command again, which resumes a snapback file)
      or to go back with the snapback file; 130 interrupted, 143 stopped by SIGTERM
      (the same message; applying the same changes twice gives the same result).
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @opts = Options.new(rsh: "ssh", remote_lvmsync: "lvmsync", verbose: false, debug: false, quiet: false,
                          thin_delta: "thin_delta", dmsetup: "dmsetup", thin_dump: "thin_dump")
      @console = Console.new(err, @opts)
    end

    def run
      args = parser.parse(@argv)
      return usage_error("cannot be quiet and verbose at the same time") if @opts.quiet && (@opts.verbose || @opts.debug)

      case @opts.snapback
      when "-"
        return usage_error("--snapback -: the snapback file needs a real name (in `lvmsync --apply - " \
                           "DESTINATION`, - means standard input); use ./- for a file named -")
      when ""
        return usage_error("--snapback needs a file name")
      end

      if @opts.capabilities
        @out.puts Transport.capabilities_line
        return 0
      end
      if @opts.apply
        return usage_error("--apply needs exactly one DESTINATION (see --help)") unless args.size == 1
        if @opts.from || @opts.discards || @opts.plain
          return usage_error("--from, --discards and --plain are for the sending side")
        end
        if @opts.full
          return usage_error("--full is for the sending side: give it with SNAPSHOT, not --apply")
        end

        receive(@opts.apply, args[0])
      elsif @opts.server
        return usage_error("--server needs a DESTINATION") unless args.size == 1

        @console.info "lvmsync: --server is deprecated; use '--apply -' instead"
        receive("-", args[0])
      else
        run_send(args)
      end
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    rescue Interrupt => e
      stopped(e, "interrupted")
      130
    rescue SignalException => e
      # SIGTERM, SIGHUP...: everything held was released on the way out (ensure blocks); say
      # what was written, then die of the signal as the sender of the signal expects.
      stopped(e, "stopped by #{e.message}")
      raise
    rescue Ironshed::Error, SystemCallError => e
      stopped(e, Ironshed.describe_error(e))
      Ironshed::StopLine.partly_written?(e) ? 3 : 1
    end

    private

    def parser
      OptionParser.new do |o|
        o.banner = BANNER
        o.version = Ironshed::VERSION
        o.summary_indent = "  "
        o.summary_width = 25
        o.on("-s", "--stdout", "write the change stream to standard output instead",
             "of applying it (save it to a file, or pipe it to",
             "`lvmsync --apply -`)") { @opts.stdout = true }
        o.on("-a", "--apply FILE", "apply a change stream or snapback file (- for",
             "standard input) to DESTINATION; a file is checked",
             "whole before the first write") { |v| @opts.apply = v }
        o.on("-b", "--snapback FILE", "before overwriting, save the destination's old data",
             "to FILE (a new file, or the one an interrupted run",
             "of this sync left, which is resumed; restore with",
             "`lvmsync --apply FILE DESTINATION`; old zeros take",
             "no room in it); with HOST: the file is on HOST") { |v| @opts.snapback = v }
        o.on("-f", "--from OLDER", "send the changes between snapshot OLDER and",
             "SNAPSHOT (both thin, or both classic, of one",
             "origin); the destination must hold OLDER's content") { |v| @opts.from = v }
        o.on("--no-destination-check", "with --from: do not check first that the",
             "destination holds OLDER's data wherever the round",
             "writes (a wrong destination is then silently",
             "corrupted); with --apply: ignore the stream's check") { @opts.no_destination_check = true }
        o.on("--full", "send SNAPSHOT's whole content, read from it (the",
             "first copy): a thin LV's mapped blocks, else every",
             "non-zero 64 KiB; the rest as discard records (on by",
             "default; zeros with --plain); SNAPSHOT may also be",
             "an LV nothing writes to; not with --from") { @opts.full = true }
        o.on("--discards", "send blocks a thin origin no longer maps as discard",
             "records (the destination unmaps or zeroes them)",
             "instead of zeros, when the receiver supports it",
             "(asked first; else zeros are sent)") { @opts.discards = true }
        o.on("--plain", "send a plain PROTO[3] stream, without the end-of-",
             "stream mark, for the original lvmsync's receiver",
             "(a cut between two records then goes unnoticed)") { @opts.plain = true }
        o.on("--verify", "after the sync, the receiver re-reads every range it",
             "wrote and the sender compares hashes (XXH3) with",
             "the source's; exit 1 on a mismatch (live syncs",
             "only: not with --stdout)") { @opts.verify = true }
        o.on("-r", "--data-source DEV", "read the changed data from DEV instead of the",
             "origin (the change list still comes from the",
             "snapshot)") { |v| @opts.data_source = v }
        o.on("-e", "--rsh CMD", "remote shell command for HOST: (default: ssh);",
             "split into words, never run through a local shell") { |v| @opts.rsh = v }
        o.on("--remote-lvmsync CMD", "the lvmsync command on HOST (default: lvmsync),",
             "e.g. \"sudo /usr/local/bin/lvmsync\"") { |v| @opts.remote_lvmsync = v }
        o.on("--allow-short-destination", "write only what fits in a destination smaller than",
             "the volume; report the rest (default: refuse)") { @opts.allow_short = true }
        o.on("--server", "deprecated: same as --apply -") { @opts.server = true }
        o.on("--capabilities", "print the extensions of the protocol this lvmsync",
             "can receive, and exit (a sender asks this before",
             "it sends an end-of-stream mark, discard records or",
             "digests for --verify)") { @opts.capabilities = true }
        o.on("-v", "--[no-]verbose", "describe the snapshot, the source and the transfer") { |v| @opts.verbose = v }
        o.on("-d", "--[no-]debug", "also list the changed ranges and the commands run") { |v| @opts.debug = v }
        o.on("-q", "--[no-]quiet", "print nothing but errors") { |v| @opts.quiet = v }
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

    # Applies +input+ ("-": standard input) to +dest+ (--apply).
    def receive(input, dest)
      @dest = dest
      # What finishes a cut stream is the whole stream sent again (to this command, which
      # resumes its snapback file); a file, this command.
      @finish = if input == "-"
                  with = @opts.snapback ? " with the same --snapback#{Ironshed::StopLine.resumes(@opts.snapback)}" : ""
                  "send the whole stream again#{with}"
                else
                  rerun(nil)
                end
      Transport::Receiver.new(@opts, @console, @out).run(input, dest)
    end

    # The one line of a run stopped by +error+ (described by +reason+): whether the
    # destination was written, and if so how to finish and how to go back.
    def stopped(error, reason)
      @console.finish_meter
      unless @dest
        @console.say "lvmsync: #{reason}"
        return
      end
      @console.say Ironshed::StopLine.line(tool: "lvmsync", reason: reason, error: error, dest: @dest,
                                           finish: @finish || rerun(error),
                                           undo: @opts.snapback, undo_option: "--snapback", host: @host)
    end

    # How to finish: this command line again (which resumes a snapback file); a --from round
    # that wrote (+error+ says so: it passed the destination check before its first write)
    # without the check, which a range it left partly written would fail. A round stopped
    # before writing, or whose remote receiver may not have written, keeps the check.
    def rerun(error)
      argv = @argv
      if @opts.from && !@opts.no_destination_check && !@opts.apply && Ironshed::StopLine.partly_written?(error)
        argv += ["--no-destination-check"]
      end
      Ironshed::StopLine.rerun("lvmsync", argv, undo: @opts.snapback)
    end

    # A bad or missing option or argument: the reason and a usage line, status USAGE.
    def usage_error(msg)
      @err.puts "lvmsync: #{msg}"
      @err.puts "Usage: lvmsync [options] SNAPSHOT [HOST:]DESTINATION | --stdout SNAPSHOT | " \
                "--apply FILE DESTINATION (try --help)"
      USAGE
    end

    # Checks the arguments, picks the transport (which may refuse first, as --stdout to a
    # terminal does), plans the round and sends it.
    def run_send(args)
      return usage_error("no SNAPSHOT given (see --help)") if args.empty?
      if @opts.full && @opts.from
        return usage_error("--full sends a whole snapshot; --from sends what changed since an older one: " \
                           "give one of them")
      end
      if @opts.plain && @opts.discards
        return usage_error("--plain sends the original format, which has no discard records: it cannot be " \
                           "used with --discards")
      end
      if @opts.verify && @opts.allow_short
        return usage_error("--verify compares every byte sent with the destination: it cannot be used with " \
                           "--allow-short-destination, which leaves some out")
      end

      if @opts.stdout
        return usage_error("--snapback cannot be used with --stdout: give it to the --apply side") if @opts.snapback
        return usage_error("--verify needs a live receiver: it cannot be used with --stdout") if @opts.verify
        return usage_error("too many arguments") if args.size > 2

        @console.info "lvmsync: note: with --stdout, #{args[1]} is ignored" if args.size == 2
        transport = Transport::Stdout.new(@opts, @console, @out)
      elsif args.size != 2
        return usage_error(args.size < 2 ? "no DESTINATION given (see --help)" : "too many arguments")
      else
        transport = Transport.for(args[1], @opts, @console)
      end
      plan = Planner.new(@opts, @console).prepare(args[0])
      # From here on, a stop may leave the destination partly updated.
      @host, @dest = Transport.split_destination(args[1]) unless @opts.stdout
      transport.run(plan)
    end
  end
end
