# frozen_string_literal: true

require "optparse"
require "vmdksync"

module VMDKSync
  # The vmdksync command line. Exit status: 0 applied (or dry run passed), 1 refused or
  # failed (one-line reason on stderr), 130 interrupted.
  class CLI
    BANNER = <<~TEXT
      Usage: vmdksync [options] SNAPSHOT DESTINATION

      Apply a VMware snapshot delta onto a raw copy of its base disk, writing only the
      grains the snapshot changed.

        SNAPSHOT     the snapshot's descriptor (vm-000001.vmdk) or its extent
                     (vm-000001-delta.vmdk); naming the descriptor lets vmdksync check
                     the parent CID chain
        DESTINATION  file or block device holding a raw copy of the base disk
                     (vm-flat.vmdk); it is never created, truncated or extended

      Every check runs before the first write: a bad delta, a wrong base or a wrong-sized
      destination leaves the destination untouched.

      Options:
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
      @opts = { verbose: false, quiet: false, dry_run: false, base: nil, allow_unclean: false,
                allow_larger_destination: false }
    end

    def run
      args = parser.parse(@argv)
      return usage_error("need SNAPSHOT and DESTINATION (see --help)") unless args.size == 2

      snapshot, dest = args
      delta = Delta.open(snapshot, base: @opts[:base], allow_unclean: @opts[:allow_unclean])
      report_delta(delta)
      @opts[:dry_run] ? dry_run(delta, dest) : apply(delta, dest)
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    rescue Interrupt
      @meter&.finish
      @err.puts "vmdksync: interrupted; the destination is partly updated. Run the same command " \
                "again to finish: applying a delta twice gives the same result."
      130
    rescue Ironshed::Error, SystemCallError => e
      @meter&.finish
      @err.puts "vmdksync: #{Ironshed.describe_error(e)}"
      1
    end

    private

    def parser
      OptionParser.new do |o|
        o.banner = BANNER
        o.version = Ironshed::VERSION
        o.summary_width = 30
        o.on("-b", "--base DESCRIPTOR",
             "base disk descriptor (vm.vmdk): refuse unless its CID is the delta's parentCID",
             "(default: the descriptor's parentFileNameHint, when that file exists)") do |v|
          @opts[:base] = v
        end
        o.on("-n", "--dry-run", "check everything and list the ranges that would be written;",
             "write nothing") { @opts[:dry_run] = true }
        o.on("--allow-unclean", "apply a delta whose header says it was not closed cleanly") do
          @opts[:allow_unclean] = true
        end
        o.on("--allow-larger-destination",
             "accept a destination larger than the virtual disk (e.g. an LV",
             "rounded up to whole extents); only the disk's part is written") do
          @opts[:allow_larger_destination] = true
        end
        o.on("-v", "--verbose", "describe the delta and the checks before applying") do
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

    def usage_error(msg)
      @err.puts "vmdksync: #{msg}"
      @err.puts "Usage: vmdksync [options] SNAPSHOT DESTINATION (try --help)"
      1
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
      info "changed:     #{delta.grain_count} grains, #{u.bytes(delta.changed_bytes)} " \
           "in #{delta.extents.size} ranges"
      if delta.base_verified
        info "parent:      #{delta.base_verified}: CID #{format('%08x', delta.parent_cid)} matches"
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
                               progress: @meter)
      @meter.finish
      u = Ironshed::Units
      rate = r.seconds.positive? ? u.rate(r.bytes / r.seconds) : "-"
      info "vmdksync: applied #{r.grains} grains, #{u.bytes(r.bytes)} in #{r.extents} ranges " \
           "(#{r.writes} writes) to #{dest} in #{format('%.2f', r.seconds)} s (#{rate})"
      0
    end
  end
end
