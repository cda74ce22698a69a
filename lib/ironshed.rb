# frozen_string_literal: true

# ironshed: VMware deltas, LVM snapshots and NIC monitoring with a native Rust core.
#
# Requiring this file defines the exception classes (lib/ironshed/errors.rb, which lists and
# explains them all) and then loads the native extension, which looks them up.
require_relative "ironshed/version"
require_relative "ironshed/errors"
# Loaded with interrupts deferred: the extension looks up the class of every wrapped type as
# it loads, and a Ctrl-C must not land inside those lookups (it is raised right after).
Thread.handle_interrupt(Object => :never) { require "ironshed/ironshed" }
require_relative "ironshed/units"
require_relative "ironshed/progress_meter"
require_relative "ironshed/stop_line"

module Ironshed
  # Runs the block with +job+ (an Ironshed::Progress, or a fresh one), a native job that
  # runs without the GVL. Meanwhile a helper thread calls +callback+ (if any) with (done,
  # total) every +interval+ seconds, and once more at the end. The thread runs with or
  # without a callback: a signal (Ctrl-C, SIGTERM) is noticed by a Ruby thread, which then
  # stops the job; the thread running it cannot while it is in native code, and the other
  # threads there were when it started may have ended since.
  def self.with_progress(callback, job: nil, interval: 0.2)
    prog = job || Progress.new
    poller = Thread.new do
      loop do
        sleep interval
        callback&.call(prog.done, prog.total)
      end
    end
    result = noting_writes(prog) { yield(prog) }
    poller.kill.join
    callback&.call(prog.done, prog.total)
    result
  ensure
    poller&.kill
  end
end

module Ironshed
  # Runs the block, a native job reporting on +job+ (an Ironshed::Progress). Any exception
  # leaving it after the job started changing its destination — the job's own error, or an
  # Interrupt or SignalException raised while it ran — is extended with PartlyWritten (a
  # frozen one cannot be, and leaves unmarked rather than as a FrozenError).
  def self.noting_writes(job)
    yield
  rescue Exception => e # rubocop:disable Lint/RescueException -- only marked, and re-raised
    if job.written? && !e.is_a?(PartlyWritten) && !e.frozen?
      e.extend(PartlyWritten)
      e.written_bytes = job.written_bytes
    end
    raise
  end

  # The message of +error+ for a one-line report: a SystemCallError's "Reason - path: op"
  # is turned around into "path: op: Reason" (and "Reason - path: op; by then ..." into
  # "path: op: Reason; by then ...").
  def self.describe_error(error)
    return error.message unless error.is_a?(SystemCallError)

    reason, _, detail = error.message.partition(" - ")
    return reason if detail.empty?

    what, sep, note = detail.partition("; by then ")
    "#{what}: #{reason}#{sep}#{note}"
  end
end
