# frozen_string_literal: true

# How lvmsync's change stream travels once a round is planned: to standard output (--stdout),
# to a receiver thread in this process (a local DESTINATION), or through the remote shell to
# `lvmsync --apply -` on HOST (HOST:DESTINATION), whose protocol extensions are asked first
# (--capabilities) and whose output is relayed line by line; and the receiving end itself
# (--apply). What to send to each (end-of-stream mark, discard records) is decided by
# LVMSync.negotiate. With --verify the receiver's digests of what it read back (from the
# thread, or as lines on the remote's standard output) are compared with the sender's.
require "open3"
require "shellwords"
require "lvmsync"

module LVMSync
  # The receiver on the other end failed; the message carries its own reason.
  class RemoteError < Error; end
  # --verify found the destination different from the source.
  class VerifyError < Error; end

  # Every transport is made with the command line's LVMSync::Options and an LVMSync::Console;
  # #run(plan) sends an LVMSync::Plan and returns the exit status (0), or raises.
  module Transport
    # How `lvmsync --capabilities` starts its one line of output.
    CAPABILITIES_PREFIX = "lvmsync capabilities: "

    # The line `lvmsync --capabilities` prints: the extensions this side can receive.
    def self.capabilities_line
      "#{CAPABILITIES_PREFIX}#{LVMSync::CAPABILITIES.join(' ')}"
    end

    # The transport to the DESTINATION argument +arg+: Remote for "host:/dev/x" (or
    # "[::1]:/dev/x"), Local for a path ("/dev/disk/by-path/pci-0000:00:1f.2": a colon after
    # a slash belongs to the path).
    def self.for(arg, options, console)
      host, dest = split_destination(arg)
      host ? Remote.new(options, console, host, dest) : Local.new(options, console, dest)
    end

    # "host:/dev/x" => ["host", "/dev/x"]; "/dev/disk/by-path/pci-0000:00:1f.2" => [nil, ...];
    # "[::1]:/dev/x" => ["::1", "/dev/x"].
    def self.split_destination(arg)
      if (m = arg.match(/\A\[([^\]]+)\]:(.+)\z/))
        return [m[1], m[2]]
      end

      host, sep, path = arg.partition(":")
      return [nil, arg] if sep.empty? || host.empty? || host.include?("/")

      [host, path]
    end

    # What the transports share: the options, the console, and the --verify comparison.
    class Base
      def initialize(options, console)
        @options = options
        @console = console
      end

      private

      def verify? = @options.verify ? true : false

      # What to send to +peer+ (see LVMSync.negotiate) for +plan+: prints the notes, raises
      # +refusal+ (an exception class) when nothing may be sent.
      def decide(plan, peer, refusal, host = "", capabilities = [])
        d = LVMSync.negotiate(peer, host, capabilities, **wanted(plan))
        d[:notes].each { |level, text| level == :info ? @console.info(text) : @console.verbose(text) }
        raise refusal, d[:refusal] if d[:refusal]

        d
      end

      def wanted(plan)
        { discards: plan.discards, verify: verify?, plain: @options.plain ? true : false, destcheck: !plan.older.nil? }
      end

      # Compares the sender's digests with the receiver's; raises VerifyError on a mismatch.
      def check_digests(sent, received, dest)
        report(LVMSync.verify_digests(sent, received, dest))
      end

      # Says the report of a --verify comparison; raises VerifyError on a mismatch.
      def report(rep)
        raise VerifyError, rep[:message] unless rep[:ok]

        @console.info "lvmsync: #{rep[:message]}"
      end
    end

    # The receiving end (--apply): applies a stream or snapback file (+input+, "-" for
    # standard input) to +dest+; with --verify, writes the digests of what it read back to
    # +out+ for the sender, one line per record, and compares them with what the stream
    # itself carried. An error after the first write leaves as an Ironshed::PartlyWritten
    # (LVMSync.apply), for the command line's one line.
    class Receiver < Base
      def initialize(options, console, out)
        super(options, console)
        @out = out
      end

      def run(input, dest)
        @console.verbose "lvmsync: applying #{input == '-' ? 'standard input' : input} to #{dest}"
        r = LVMSync.apply(input, dest, snapback: @options.snapback, allow_short_destination: @options.allow_short,
                                       verify: verify?, no_destination_check: @options.no_destination_check ? true : false,
                                       progress: @console.meter)
        @console.finish_meter
        @console.report_apply(r, dest, @options.snapback, input)
        return 0 unless verify?

        # For a sender on the other end of `--apply -`, the digests of what was read back...
        LVMSync.digest_lines(r.digests).each { |l| @out.puts l }
        @out.flush
        # ... and here, the same compared with what the stream itself carried.
        report(r.verified)
        0
      end
    end

    # --stdout: the stream goes to +out+, which must not be a terminal (checked when made,
    # before the round is planned).
    class Stdout < Base
      def initialize(options, console, out)
        super(options, console)
        if out.tty?
          raise LVMSync::Error, "refusing to write a binary change stream to a terminal: redirect standard output"
        end

        @out = out
      end

      def run(plan)
        d = decide(plan, :stdout, LVMSync::Error)
        r = LVMSync.send_changes(plan.changes, plan.source, @out, name: "standard output", discards: d[:discards],
                                                                  plain: !d[:end_mark], inputs: plan.devices.to_a,
                                                                  expect_from: plan.older, progress: @console.meter)
        @console.finish_meter
        @console.report_send(r, plan)
        0
      end
    end

    # A local DESTINATION: the receiver runs in a thread of this process, fed through an
    # in-process link (LVMSync::Native::Link: the stream's bytes, handed over in memory).
    class Local < Base
      def initialize(options, console, dest)
        super(options, console)
        @dest = dest
      end

      def run(plan)
        d = decide(plan, :local, LVMSync::Error)
        job = Ironshed::Progress.new
        # Whatever stops the sync (its error, the receiver's, a signal) says whether the
        # receiver had written to the destination: stopped first, so that it is known.
        sent, applied = Ironshed.noting_writes(job) do
          transfer(plan, d, job)
        rescue Exception # rubocop:disable Lint/RescueException -- re-raised
          job.cancel
          begin
            @receiver&.join(10)
          rescue Exception # rubocop:disable Lint/RescueException -- its error was seen, or is beside the point
            nil
          end
          raise
        end
        # The apply is complete: a --verify difference is no partial update.
        @console.report_send(sent, plan)
        @console.report_apply(applied, @dest, @options.snapback, nil)
        check_digests(sent.digests, applied.digests, @dest) if verify?
        0
      end

      private

      # Sends +plan+ as decided (+d+, LVMSync.negotiate) to a receiver thread reporting on
      # +job+; returns what each side did.
      def transfer(plan, d, job)
        progress = @console.meter
        link = LVMSync::Native::Link.new
        receiver = @receiver = Thread.new do
          Thread.current.report_on_exception = false
          LVMSync.apply(link, @dest, snapback: @options.snapback, allow_short_destination: @options.allow_short,
                                     verify: verify?, inputs: plan.devices.to_a, job: job)
        ensure
          link.close_reader
        end
        sent = nil
        send_error = nil
        begin
          sent = LVMSync.send_changes(plan.changes, plan.source, link, name: "the local receiver",
                                                                       discards: d[:discards], plain: !d[:end_mark],
                                                                       digests: verify?, expect_from: plan.older,
                                                                       progress: progress)
        rescue Errno::EPIPE, Ironshed::Error, SystemCallError, Interrupt => e
          send_error = e
        ensure
          link.close_writer
        end
        applied = begin
          receiver.value
        rescue Interrupt
          job.cancel
          receiver.join rescue nil # rubocop:disable Style/RescueModifier
          raise
        rescue Ironshed::Error, SystemCallError => e
          # The sender's error is the cause when it stopped the stream (or was an interrupt).
          raise e unless send_error.is_a?(Interrupt) ||
                         (send_error && e.message.include?(LVMSync::Native::Link::SENDER_STOPPED))

          nil
        end
        @console.finish_meter
        raise send_error if send_error

        [sent, applied]
      end
    end

    # HOST:DESTINATION: `RSH HOST REMOTE_LVMSYNC --apply - ... DESTINATION`, the stream on its
    # standard input; its standard error (and output) relayed with a "remote: " prefix.
    class Remote < Base
      def initialize(options, console, host, dest)
        super(options, console)
        @host = host
        @dest = dest
      end

      def run(plan)
        d = negotiate(plan)
        argv = rsh + [@host] + command
        @console.verbose "lvmsync: running #{argv.map { |w| Shellwords.escape(w) }.join(' ')}"
        progress = @console.meter
        stdin, stdout, stderr, waiter = Open3.popen3(*argv)
        tail = []
        digest_lines = []
        relays = [relay(stdout, digest_lines, nil), relay(stderr, nil, tail)]
        sent = nil
        send_error = nil
        begin
          sent = LVMSync.send_changes(plan.changes, plan.source, stdin, name: "the receiver on #{@host}",
                                                                        discards: d[:discards], plain: !d[:end_mark],
                                                                        digests: verify?, expect_from: plan.older,
                                                                        progress: progress)
        rescue Errno::EPIPE, Interrupt, Ironshed::Error, SystemCallError => e
          send_error = e
        ensure
          stdin.close unless stdin.closed?
        end
        status = waiter.value
        # ssh in ControlMaster mode may keep stderr open: don't wait for it forever. The
        # digests come on stdout, which ends when the receiver does.
        relays[0].join(verify? ? 30 : 2) || relays[0].kill
        relays[1].join(2) || relays[1].kill
        [stdout, stderr].each { |io| io.close unless io.closed? }
        @console.finish_meter
        raise send_error if send_error.is_a?(Interrupt)

        unless status.success?
          error = RemoteError.new("apply on #{@host} failed (#{describe_status(status)}): #{remote_reason(tail)}")
          # Exit 3: the receiver failed after its first write (this lvmsync's receivers say so).
          error.extend(Ironshed::PartlyWritten) if status.exitstatus == 3
          raise error
        end
        if send_error.is_a?(Errno::EPIPE)
          raise RemoteError, "the receiver on #{@host} closed the stream early (it exited 0): #{remote_reason(tail)}"
        end
        raise send_error if send_error

        @console.report_send(sent, plan)
        check_digests(sent.digests, LVMSync.parse_digest_lines(digest_lines), "#{@host}:#{@dest}") if verify?
        0
      end

      private

      def rsh = Shellwords.split(@options.rsh)
      def remote_words = Shellwords.split(@options.remote_lvmsync)

      # What to send (LVMSync.negotiate), after asking the receiver what it supports when
      # that matters. Raises RemoteError when nothing may be sent (--verify with a receiver
      # that cannot report what it wrote).
      def negotiate(plan)
        caps = LVMSync.must_ask?(**wanted(plan)) ? capabilities : []
        decide(plan, :remote, RemoteError, @host, caps)
      end

      # The receiver's protocol extensions, asked with `lvmsync --capabilities` over the same
      # remote shell. An lvmsync that does not know the option (the original) has none.
      def capabilities
        argv = rsh + [@host] + (remote_words + ["--capabilities"]).map { |w| Shellwords.escape(w) }
        @console.debug "lvmsync: running #{argv.map { |w| Shellwords.escape(w) }.join(' ')}"
        out, _err, st = Open3.capture3(*argv)
        line = out.lines.find { |l| l.start_with?(CAPABILITIES_PREFIX) }
        caps = st.success? && line ? line.delete_prefix(CAPABILITIES_PREFIX).split : []
        @console.verbose "lvmsync: the receiver on #{@host} supports: #{caps.empty? ? '(no extensions)' : caps.join(' ')}"
        caps
      end

      # The remote command, every word quoted for the remote shell (ssh joins its arguments
      # with spaces and runs them there); nothing goes through a local shell.
      def command
        words = remote_words + ["--apply", "-"]
        words += ["--snapback", @options.snapback] if @options.snapback
        words << "--verify" if verify?
        words << "-v" if @options.verbose
        words << "-d" if @options.debug
        words << "-q" if @options.quiet
        words << "--allow-short-destination" if @options.allow_short
        words << @dest
        words.map { |w| Shellwords.escape(w) }
      end

      # A thread relaying +io+'s lines as "remote: LINE"; with --verify, digest lines are kept
      # in +digests+ instead; the last non-empty lines are kept in +tail+ (for the reason of a
      # failure).
      def relay(io, digests, tail)
        Thread.new do
          io.each_line do |line|
            line = line.chomp
            if digests && verify? && line.start_with?("#{LVMSync::DIGEST_LINE_PREFIX} ")
              digests << line
              next
            end
            if tail && !line.strip.empty?
              tail << line
              tail.shift while tail.size > 20
            end
            @console.say "remote: #{line.sub(/\A\r?\e\[2K\r?/, '')}"
          end
        rescue IOError
          nil
        end
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
end
