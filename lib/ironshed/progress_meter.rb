# frozen_string_literal: true

module Ironshed
  # A one-line progress display for long native jobs: percentage, bytes, rate and ETA,
  # redrawn in place on a terminal at most a few times a second. Pass it as the
  # +progress:+ callable of VMDKSync::Delta#apply_to and friends.
  class ProgressMeter
    def initialize(label, io: $stderr, enabled: io.tty?, interval: 0.25)
      @label = label
      @io = io
      @enabled = enabled
      @interval = interval
      @start = now
      @last = nil
      @drawn = false
    end

    attr_reader :enabled

    # Called with bytes done and total bytes.
    def call(done, total)
      return unless @enabled

      t = now
      return if @last && t - @last < @interval && (done < total || !total.positive?)

      @last = t
      @io.print("\r#{line(done, total, t - @start)}\e[K")
      @io.flush
      @drawn = true
    end

    # Ends the line so later output starts on a fresh one.
    def finish
      @io.print("\n") if @drawn
      @drawn = false
    end

    def line(done, total, elapsed)
      rate = elapsed.positive? ? done / elapsed : 0
      # Total unknown (a stream read from a pipe): bytes and rate only.
      return format("%s %s  %s", @label, Units.bytes(done), Units.rate(rate)) unless total.positive?

      pct = total.positive? ? 100.0 * done / total : 100.0
      rate = elapsed.positive? ? done / elapsed : 0
      eta = rate.positive? && total > done ? Units.duration((total - done) / rate) : "--:--"
      format("%s %5.1f%% %s / %s  %s  ETA %s", @label, pct, Units.bytes(done), Units.bytes(total),
             Units.rate(rate), eta)
    end

    private

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
