# frozen_string_literal: true

require "shellwords"

module Ironshed
  # The one line vmdksync and lvmsync print when an apply stops without finishing: what
  # happened, whether the destination was written (from Ironshed::PartlyWritten, a fact the
  # native job reports, never a guess), and then the command that finishes the job and the
  # one that undoes it, with every path quoted for the shell.
  module StopLine
    module_function

    # +tool+ names the command ("vmdksync"); +reason+ says what stopped it ("interrupted",
    # "stopped by SIGTERM", or an error's message); +error+ is the exception; +dest+ the
    # destination as named; +finish+ how to finish ("run the same command again: vmdksync
    # ..."); +undo+ the undo file given, if any, and +undo_option+ its option ("--undo").
    # +host+ is the host a remote destination (and its undo file) is on; this process cannot
    # know whether a remote receiver wrote, unless it said so by its exit status.
    def line(tool:, reason:, error:, dest:, finish:, undo:, undo_option:, host: nil)
      partly = partly_written?(error)
      where = host ? "#{host}:#{dest}" : dest
      unless partly
        # An error says itself whether anything was written (PartlyWritten); a signal that
        # stopped a remote receiver's sender leaves it unknown.
        return "#{tool}: #{reason}" unless error.is_a?(SignalException)
        return "#{tool}: #{reason}; nothing was written to #{where}" unless host
      end
      state = partly ? "is partly updated" : "may be partly updated"
      back = if undo
               "to go back#{host ? ", run on #{host}" : ''}: lvmsync --apply #{Shellwords.escape(undo)} " \
                 "#{Shellwords.escape(dest)}"
             else
               "no undo file was kept to go back (#{undo_option} FILE keeps one)"
             end
      "#{tool}: #{reason}#{written(error)}: #{where} #{state}; to finish, #{finish}; #{back}"
    end

    # True when +error+ was raised after the destination was first written.
    def partly_written?(error)
      error.is_a?(Ironshed::PartlyWritten)
    end

    # "run the same command again: TOOL ARGS", the arguments quoted for the shell; with the
    # +undo+ file the command names, saying that the rerun resumes it.
    def rerun(tool, argv, undo: nil)
      "run the same command again#{resumes(undo)}: #{Shellwords.join([tool, *argv])}"
    end

    # " (it resumes FILE)" for an undo file given, which a rerun of the same job continues.
    def resumes(undo)
      undo ? " (it resumes #{Shellwords.escape(undo)})" : ""
    end

    # What was written, for a reason that does not say it (a signal's).
    def written(error)
      return "" if error.message.include?("; by then ")

      bytes = partly_written?(error) && error.written_bytes
      bytes ? " after #{bytes} bytes were written" : ""
    end
  end
end
