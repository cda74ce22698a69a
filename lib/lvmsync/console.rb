# frozen_string_literal: true

# What lvmsync tells the user on standard error: one-line messages at the level chosen with
# -q/-v/-d, the progress line on a terminal (kept from tearing the messages apart, as the
# remote receiver's output arrives from other threads), and the reports of a send and an
# apply.
require "shellwords"
require "lvmsync"

module LVMSync
  # Messages and progress on +err+. +options+ is read when a message is written, so the
  # levels it holds may still change after the console is made (while options are parsed).
  class Console
    def initialize(err, options)
      @err = err
      @options = options
      @lock = Mutex.new
      @meter = nil
    end

    # Always written (errors, and output relayed from a remote receiver).
    def say(line)
      @lock.synchronize do
        @err.print("\r\e[K") if @meter&.enabled
        @err.puts line
        @err.flush
      end
    end

    # Written unless -q.
    def info(line)
      say(line) unless @options.quiet
    end

    # Written with -v or -d, unless -q.
    def verbose(line)
      say(line) if verbose? && !@options.quiet
    end

    # Written with -d.
    def debug(line)
      say(line) if debug?
    end

    def verbose? = @options.verbose || @options.debug
    def debug? = @options.debug

    # A new progress line (drawn only on a terminal, and not with -q), to pass as +progress:+.
    def meter
      @meter = Ironshed::ProgressMeter.new("lvmsync", io: LockedIO.new(@err, @lock),
                                                      enabled: !@options.quiet && @err.tty?)
    end

    # Ends the progress line, if one is drawn, so that the next message starts on its own line.
    def finish_meter
      @meter&.finish
    end

    # Reports a send (an LVMSync::SendResult) of +plan+.
    def report_send(r, plan)
      verbose "lvmsync: data source read #{r.read_mode}"
      if r.expect_ranges&.positive?
        verbose "lvmsync: destination check: the older snapshot's hashes of #{r.expect_ranges} ranges went first"
      end
      ratio = if r.bytes.positive?
                format(", %.1fx less than a full copy (%s)", r.source_size.to_f / r.bytes, u.bytes(r.source_size))
              else
                ""
              end
      discarded = r.discard_records.positive? ? " and #{u.bytes(r.discard_bytes)} as #{r.discard_records} discard records" : ""
      info "lvmsync: sent #{u.bytes(r.bytes)} in #{r.records} records#{discarded} (#{plan.summary}) " \
           "in #{format('%.2f', r.seconds)} s (#{rate(r.bytes, r.seconds)})#{ratio}"
    end

    # Reports an apply (an LVMSync::ApplyResult) to +dest+; +snapback+ is the snapback file
    # given, if any; +input+ the stream applied (nil: the local sender).
    def report_apply(r, dest, snapback, input)
      if r.journaled && r.ignored_records.positive?
        info "lvmsync: note: #{r.ignored_records} records (#{u.bytes(r.ignored_bytes)}) after the snapback " \
             "file's last commit were ignored: the run that wrote it stopped before overwriting those ranges"
      end
      if r.journaled
        verbose "lvmsync: #{input} is a snapback journal of an apply that #{r.journal_complete ? 'finished' : 'was interrupted'}"
      elsif !r.end_mark && input
        verbose "lvmsync: note: #{input == '-' ? 'standard input' : input} is a plain PROTO[3] stream, without an " \
                "end-of-stream mark (the original lvmsync's, or --plain): a cut between two of its records could " \
                "not have been detected"
      end
      report_destination_check(r, dest)
      return report_noop(r, dest, snapback) if r.snapback && r.snapback[:state] == "complete"

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

      sb = r.snapback
      if sb[:state] == "resumed"
        info "lvmsync: snapback: resumed #{snapback}, which an interrupted run had left with " \
             "#{u.bytes(sb[:earlier_bytes])} of old data"
        unchecked_note(snapback) if sb[:source_unchecked]
      end
      info "lvmsync: snapback: saved #{u.bytes(sb[:bytes])} of old data#{zeros_note(sb[:zero_bytes])} " \
           "to #{snapback}; " \
           "undo with: lvmsync --apply #{Shellwords.escape(snapback)} #{Shellwords.escape(dest)}"
    end

    # What the destination check of a --from round's stream found (it passed: a failure is
    # an error).
    def report_destination_check(r, dest)
      if r.destination_check_skipped
        info "lvmsync: note: --no-destination-check: #{dest} was not checked against the older snapshot's data"
      end
      c = r.destination_check or return
      verbose "lvmsync: destination check: #{c[:ranges]} ranges of #{dest} hold what the round starts from"
      if c[:at_newer].positive?
        info "lvmsync: note: #{c[:at_newer]} of the #{c[:ranges]} ranges of #{dest} already hold the newer " \
             "snapshot's data (an earlier run of this round wrote them)"
      end
      return unless c[:unchecked].positive?

      info "lvmsync: note: #{c[:unchecked]} ranges past the end of #{dest} were not checked"
    end

    # A rerun whose snapback file says the apply had finished: nothing was written.
    def report_noop(r, dest, snapback)
      unchecked_note(snapback) if r.snapback[:source_unchecked]
      info "lvmsync: #{snapback} is the snapback file of a finished apply of this stream to #{dest}: nothing " \
           "to do, nothing was written (undo with: lvmsync --apply #{Shellwords.escape(snapback)} " \
           "#{Shellwords.escape(dest)}; to apply again after undoing, give a new snapback file name)"
    end

    # " (N of it zeros, which take no room)" when some old data was zeros.
    def zeros_note(zero_bytes)
      zero_bytes.to_i.positive? ? " (#{Ironshed::Units.bytes(zero_bytes)} of it zeros, which take no room)" : ""
    end

    def unchecked_note(snapback)
      info "lvmsync: note: a plain stream arriving as it is sent cannot be identified before it is applied, " \
           "so it was not compared with the stream #{snapback} was started with"
    end

    private

    def u = Ironshed::Units

    def rate(bytes, seconds)
      seconds.positive? ? u.rate(bytes / seconds) : "-"
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
  end
end
