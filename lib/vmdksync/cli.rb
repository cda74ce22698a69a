# frozen_string_literal: true

require "optparse"
require "shellwords"
require "vmdksync"

module VMDKSync
  # The vmdksync command line. Exit status: 0 applied (or dry run passed), 1 refused or
  # failed before anything was written (one-line reason on stderr), 2 usage error (nothing
  # was done), 3 failed after the first write (the destination is partly updated: the line
  # says how to finish or go back), 130 interrupted; killed by the signal for SIGTERM,
  # SIGHUP... (143, 129), after the same one line.
  class CLI
    BANNER = <<~TEXT
      Usage: vmdksync [options] SNAPSHOT DESTINATION
             vmdksync --full [options] IMAGE DESTINATION

      Apply a VMware snapshot delta, or a whole chain of them, onto a raw copy of
      the base disk, writing only what the snapshots changed. With --full, write
      the whole disk an image describes.

        SNAPSHOT     the newest snapshot's descriptor (vm-000003.vmdk), a hosted
                     sparse file (monolithicSparse, streamOptimized), or a bare
                     extent (vm-000001-delta.vmdk, vm-000001-sesparse.vmdk).
                     From a descriptor, parentFileNameHint is followed down to
                     the base and every parentCID is checked; the whole chain is
                     applied in one pass, newest wins.
        DESTINATION  file or block device holding a raw copy of the base disk
                     (vm-flat.vmdk; with --full: anything, all of it is
                     replaced); never created, truncated or extended
        IMAGE        (--full) a base disk without parent (an OVA's
                     streamOptimized disk, a monolithicSparse or
                     twoGbMaxExtentSparse vm.vmdk, an ESX vm.vmdk over its
                     vm-flat.vmdk), or the newest descriptor of a chain that
                     ends at one: every byte of the disk is written, zeros
                     where no layer has data

      Formats: ESX vmfsSparse (COWD) and seSparse; hosted sparse VMDK4
      (monolithicSparse, twoGbMaxExtentSparse, streamOptimized). Zeroed and
      unmapped grains are written as zeros (as QEMU reads them) unless
      --discard-zeros.

      Every check runs before the first write: a bad delta, a broken chain, a
      wrong base or a wrong-sized destination leaves the destination untouched.
      (With --inflate-once, a compressed grain that does not decode is the one
      thing found after it.)

      Exit status: 0 applied (with --dry-run: every check passed); 1 refused or
      failed before writing anything, reason on stderr; 2 usage error, nothing
      done; 3 failed after the first write: the destination is partly updated
      (the message says how to finish: the same command again, which resumes
      --undo's FILE; or how to go back with that FILE); 130 interrupted, 143
      SIGTERM (the same message).

      Options:
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @opts = { verbose: false, quiet: false, dry_run: false, base: nil, allow_unclean: false,
                allow_larger_destination: false, discard_zeros: false, verify: false,
                verify_only: false, check_redundant: false, no_parent_check: false, undo: nil,
                full: false, inflate_once: false }
    end

    def run
      args = parser.parse(@argv)
      return usage_error("need SNAPSHOT and DESTINATION (see --help)") unless args.size == 2

      conflict = conflicting_options
      return usage_error(conflict) if conflict

      snapshot, @dest = args
      delta = Delta.open(snapshot, base: @opts[:base], allow_unclean: @opts[:allow_unclean],
                                   check_redundant: @opts[:check_redundant],
                                   no_parent_check: @opts[:no_parent_check], full: @opts[:full],
                                   inflate_once: @opts[:inflate_once])
      report_delta(delta)
      return dry_run(delta, @dest) if @opts[:dry_run]
      return verify(delta, @dest) if @opts[:verify_only]

      status = apply(delta, @dest)
      status = verify(delta, @dest) if status.zero? && @opts[:verify]
      status
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    rescue Interrupt => e
      stopped(e, "interrupted")
      130
    rescue SignalException => e
      # SIGTERM, SIGHUP...: say what was written, then die of the signal as its sender expects.
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
        o.summary_width = 28
        o.summary_indent = "  "
        o.on("-b", "--base DESCRIPTOR", "descriptor of the disk DESTINATION holds",
             "(vm.vmdk, or a snapshot applied before): the",
             "chain is applied down to the layer whose",
             "parentCID is its CID, refused if none's is",
             "(default: follow parentFileNameHint)") do |v|
          @opts[:base] = v
        end
        o.on("--full", "write the whole disk: the base disk (flat or",
             "sparse) and every snapshot above it, zeros",
             "where no layer has data; --undo then saves the",
             "whole disk's old content (the size of its",
             "non-zero part)") do
          @opts[:full] = true
        end
        o.on("--inflate-once", "inflate each compressed (streamOptimized)",
             "grain once, while writing, not also before",
             "the first write: a grain that does not decode",
             "is then found part-way, exit 3 with the",
             "destination partly written. Needs --full",
             "or --undo") do
          @opts[:inflate_once] = true
        end
        o.on("-n", "--dry-run", "check everything and list the ranges that",
             "would be written; write nothing") { @opts[:dry_run] = true }
        o.on("--allow-unclean", "apply a delta whose header says it was not",
             "closed cleanly") do
          @opts[:allow_unclean] = true
        end
        o.on("--discard-zeros", "make zeroed and unmapped grains (with --full,",
             "also what no layer has) read as zeros by",
             "punching holes (files) or unmapping (block",
             "devices: a thin LV is not filled) instead of",
             "writing zeros, where that is supported") do
          @opts[:discard_zeros] = true
        end
        o.on("--verify", "after applying, re-read every changed range",
             "from the device and compare it with the chain;",
             "exit 1 on any difference") do
          @opts[:verify] = true
        end
        # (No line of a description may start with "-": OptionParser would take it for
        # another switch of the option.)
        o.on("-u", "--undo FILE", "before overwriting anything, save the old",
             "bytes to FILE (lvmsync PROTO[3]), which",
             "`lvmsync --apply FILE DESTINATION` restores,",
             "even after a crash in mid-apply. After an",
             "interruption, the same command resumes FILE;",
             "once the apply finished, it does nothing. Old",
             "zeros take no room in FILE") do |v|
          @opts[:undo] = v
        end
        o.on("--verify-only", "write nothing: only compare DESTINATION with",
             "the chain") do
          @opts[:verify_only] = true
        end
        o.on("--no-parent-check", "DESTINATION holds exactly this snapshot's",
             "parent: apply even when the parent descriptor",
             "is missing (refused otherwise: a missing",
             "intermediate snapshot would lose its changes)") do
          @opts[:no_parent_check] = true
        end
        o.on("--check-redundant-gd", "compare hosted sparse extents' redundant grain",
             "tables with the primary ones; refuse on any",
             "difference") do
          @opts[:check_redundant] = true
        end
        o.on("--allow-larger-destination",
             "accept a destination larger than the virtual",
             "disk (an LV rounded up to whole extents); only",
             "the disk's part is written") do
          @opts[:allow_larger_destination] = true
        end
        o.on("-v", "--verbose", "describe the delta and the checks first") do
          @opts[:verbose] = true
        end
        o.on("-q", "--quiet", "print nothing but errors") { @opts[:quiet] = true }
        o.on("-V", "--version", "print the version and exit") do
          @out.puts "vmdksync (ironshed) #{Ironshed::VERSION}"
          exit 0
        end
        o.on("-h", "--help", "show this help and exit") do
          @out.puts o.help
          exit 0
        end
      end
    end

    # Options that cannot be honoured together, or an undo file named so that the command
    # given to restore it would mean something else: a usage error, before anything is opened.
    def conflicting_options
      case @opts[:undo]
      when "-"
        return "--undo -: the undo file needs a real name (in `lvmsync --apply - DESTINATION`, " \
               "- means standard input); use ./- for a file named -"
      when ""
        return "--undo needs a file name"
      end
      if @opts[:undo] && (@opts[:dry_run] || @opts[:verify_only])
        return "--undo writes an undo file while applying; it makes no sense with --dry-run or --verify-only"
      end
      return "--dry-run and --verify-only exclude each other" if @opts[:dry_run] && @opts[:verify_only]
      if @opts[:full] && @opts[:no_parent_check]
        return "--full writes the base disk's content too, so it needs the base: --no-parent-check " \
               "makes no sense with it"
      end
      return "--verify checks an apply; with --dry-run nothing is applied" if @opts[:verify] && @opts[:dry_run]
      if (why = Delta.inflate_once_refusal(@opts[:inflate_once], @opts[:full], !@opts[:undo].nil?))
        return "--inflate-once #{why}: add --full or --undo FILE"
      end

      "-v and -q exclude each other" if @opts[:verbose] && @opts[:quiet]
    end

    # The one line of a run stopped by +error+ (described by +reason+): whether DESTINATION
    # was written, and if so how to finish and how to go back.
    def stopped(error, reason)
      @meter&.finish
      if @applied
        @err.puts "vmdksync: #{reason} while verifying; the apply had finished: #{@dest} is fully updated"
      elsif @dest
        @err.puts Ironshed::StopLine.line(tool: "vmdksync", reason: reason, error: error, dest: @dest,
                                          finish: finish(error), undo: @opts[:undo], undo_option: "--undo")
      else
        @err.puts "vmdksync: #{reason}"
      end
    end

    # How to finish a run +error+ stopped after its first write: the same command again; but
    # an image found damaged part-way (--inflate-once) stops every rerun at the same grain.
    def finish(error)
      rerun = Ironshed::StopLine.rerun("vmdksync", @argv, undo: @opts[:undo])
      return rerun unless error.is_a?(FormatError)

      "replace the damaged image with a good copy (this one stops every run at the same grain), then #{rerun}"
    end

    # Status 2: the command line is wrong, nothing was done.
    def usage_error(msg)
      @err.puts "vmdksync: #{msg}"
      @err.puts "Usage: vmdksync [options] SNAPSHOT DESTINATION (try --help)"
      2
    end

    def info(line)
      @err.puts line unless @opts[:quiet]
    end

    def report_delta(delta)
      delta.warnings.each { |w| info("vmdksync: warning: #{w}") }
      return unless @opts[:verbose] && !@opts[:quiet]

      u = Ironshed::Units
      info "delta:       #{delta.path} (#{delta.format_description})"
      info "extent:      #{delta.extent_path}" if delta.extent_path != delta.path
      info "capacity:    #{u.bytes(delta.capacity)} (#{delta.capacity} bytes)"
      info "grain size:  #{u.bytes(delta.grain_size)}"
      layers = delta.layers
      if layers.size > 1
        info "chain:       #{layers.size} #{delta.full? ? 'layers (the base disk last)' : 'snapshots'}, newest first:"
        layers.each_with_index do |l, i|
          cid = l[:cid] ? format(" CID %08x", l[:cid]) : ""
          if l[:format] == :flat
            # A flat extent has no grains: all of it is data.
            info format("  %d. %s (flat: raw data, no grains)%s", i + 1, l[:path], cid)
            info "     #{u.bytes(l[:changed_bytes])}"
            next
          end
          info format("  %d. %s (%s, %s grains%s)%s", i + 1, l[:path], l[:format], u.bytes(l[:grain_size]),
                      l[:zero_grains].positive? ? ", #{l[:zero_grains]} zeroed" : "", cid)
          info "     #{l[:grains]} grains, #{u.bytes(l[:changed_bytes])}"
        end
      end
      if delta.full?
        under = layers.any? { |l| l[:format] == :flat } ? "over a flat base disk" : "over zeros"
        info "whole disk:  #{delta.grain_count} grains in #{layers.size} layer#{layers.size > 1 ? 's' : ''} #{under}, " \
             "#{u.bytes(delta.changed_bytes)} written (--full)"
      else
        info "changed:     #{delta.grain_count} grains, #{u.bytes(delta.changed_bytes)} " \
             "in #{delta.extents.size} ranges#{layers.size > 1 ? ' (chain merged: each byte written once)' : ''}"
      end
      linked = layers.reverse.find { |l| l[:parent_cid] }
      if delta.base_verified && delta.full?
        info "base:        #{delta.base_verified}: CID #{format('%08x', linked[:parent_cid])} matches; " \
             "its content is included"
      elsif delta.base_verified
        info "parent:      #{delta.base_verified}: CID #{format('%08x', linked[:parent_cid])} matches"
      elsif delta.full?
        info "base:        #{delta.base_note}"
      else
        info "parent:      not checked: #{delta.base_note}"
      end
    end

    def dry_run(delta, dest)
      r = delta.apply_to(dest, allow_larger_destination: @opts[:allow_larger_destination],
                               dry_run: true)
      u = Ironshed::Units
      @out.puts "dry run: would write #{r.grains} grains, #{r.bytes} bytes (#{u.bytes(r.bytes)}) " \
                "in #{r.extents} ranges to #{dest}"
      unless @opts[:quiet]
        @out.puts "offset length"
        delta.extents.each { |off, len| @out.puts "#{off} #{len}" }
      end
      0
    end

    def apply(delta, dest)
      @meter = Ironshed::ProgressMeter.new("vmdksync", io: @err, enabled: !@opts[:quiet] && @err.tty?)
      r = delta.apply_to(dest, allow_larger_destination: @opts[:allow_larger_destination],
                               discard_zeros: @opts[:discard_zeros], undo: @opts[:undo], progress: @meter)
      @meter.finish
      @applied = true
      u = Ironshed::Units
      if r.undo_state == "complete"
        info "vmdksync: #{@opts[:undo]} is the undo file of a finished apply of this chain to #{dest}: nothing " \
             "to do, nothing was written (undo with: lvmsync --apply #{Shellwords.escape(@opts[:undo])} " \
             "#{Shellwords.escape(dest)}; to apply again after undoing, give a new undo file name)"
        return 0
      end
      if r.undo_state == "resumed"
        info "vmdksync: resumed #{@opts[:undo]}, which an interrupted run had left with " \
             "#{u.bytes(r.undo_earlier_bytes)} of old data"
      end
      rate = r.seconds.positive? ? u.rate(r.bytes / r.seconds) : "-"
      discarded = r.discarded.positive? ? ", #{u.bytes(r.discarded)} of it discarded" : ""
      info "vmdksync: applied #{r.grains} grains, #{u.bytes(r.bytes)} in #{r.extents} ranges " \
           "(#{r.writes} writes#{discarded}) to #{dest} in #{format('%.2f', r.seconds)} s (#{rate})"
      if @opts[:undo]
        zeros = if r.undo_zero_bytes.positive?
                  " (#{u.bytes(r.undo_zero_bytes)} of it zeros, which take no room)"
                else
                  ""
                end
        info "vmdksync: saved #{u.bytes(r.undo_bytes)} of old data#{zeros} to #{@opts[:undo]}; " \
             "undo with: lvmsync --apply #{Shellwords.escape(@opts[:undo])} #{Shellwords.escape(dest)}"
      end
      0
    end

    def verify(delta, dest)
      @meter = Ironshed::ProgressMeter.new("verify", io: @err, enabled: !@opts[:quiet] && @err.tty?)
      v = delta.verify(dest, progress: @meter)
      @meter.finish
      u = Ironshed::Units
      if v.ok?
        info "vmdksync: verified #{u.bytes(v.bytes)} of #{dest}: identical to the chain"
        return 0
      end
      ranges = v.mismatches.first(3).map { |o, l| "#{o}+#{l}" }.join(", ")
      more = v.mismatches.size > 3 ? ", ..." : ""
      @err.puts "vmdksync: verify failed: #{v.mismatched_bytes} bytes of #{dest} differ from the chain " \
                "in #{v.mismatches.size}#{v.mismatches.size >= 100 ? '+' : ''} ranges (#{ranges}#{more})"
      1
    end
  end
end
