# frozen_string_literal: true

# What a command did to one file, read from an `strace -f -qq -y -s 0` log: its writes
# (pwrite64, copy_file_range), the ranges it asked the kernel to start writing out
# (sync_file_range) and its flushes (fdatasync, fsync), in the order they were made.
module SyscallLog
  # [[:write, offset, length] | [:writeback, offset, length] | [:flush], ...] for +path+
  # (as strace -y prints it: the real path). Raises on a write cut short or a line of a
  # traced call it cannot read, so a parsing slip cannot pass as "nothing was written".
  def self.events(log, path)
    unfinished = {}
    File.readlines(log).filter_map do |line|
      pid, rest = line.split(" ", 2)
      if rest.include?("<unfinished ...>")
        unfinished[pid] = rest.sub(/ <unfinished \.\.\.>.*/m, "")
        next
      end
      rest = unfinished.delete(pid) + rest.sub(/\A<\.\.\. \w+ resumed>/, "") if rest.start_with?("<...")
      next unless rest.include?("<#{path}>")

      event(rest, line)
    end
  end

  def self.event(call, line)
    case call
    when /\Apwrite64\(\d+<[^>]*>, .*, (\d+), (\d+)\)\s+= (\d+)/
      raise "short write: #{line}" unless $1 == $3

      [:write, $2.to_i, $1.to_i]
    when /\Acopy_file_range\(\d+<[^>]*>, \[\d+\], \d+<[^>]*>, \[(\d+)\], (\d+), \d+\)\s+= (\d+)/
      raise "short copy: #{line}" unless $2 == $3

      [:write, $1.to_i, $2.to_i]
    when /\Async_file_range\(\d+<[^>]*>, (\d+), (\d+), SYNC_FILE_RANGE_WRITE\)\s+= 0/
      [:writeback, $1.to_i, $2.to_i]
    when /\A(fdatasync|fsync)\(\d+<[^>]*>\)\s+= 0/
      [:flush]
    when /\A(pwrite64|copy_file_range|sync_file_range|fdatasync|fsync)/
      raise "unparsed call: #{line}"
    end
  end

  # [offset, length] of the writes among +events+.
  def self.writes(events)
    events.select { |e| e[0] == :write }.map { |_, o, l| [o, l] }
  end

  # What is wrong with the early writeback +events+ show, or nil: every write must lie in
  # the range of a sync_file_range made after it (its batch handed to the kernel to write
  # out), before the next flush, and the first hand-over must come before the last write
  # when the writes span more than +batch+ bytes (so the device works while later batches
  # are prepared).
  def self.writeback_problem(events, batch:)
    waiting = []
    events.each_with_index do |(what, off, len), i|
      case what
      when :write then waiting << [off, len, i]
      when :writeback
        waiting.reject! { |o, l, _| o >= off && o + l <= off + len }
      when :flush
        return "flushed with writes never handed to sync_file_range: #{waiting.first(5)}" if waiting.any?
      end
    end
    return "writes never handed to sync_file_range: #{waiting.first(5)}" if waiting.any?

    written = writes(events).sum { |_, l| l }
    first = events.index { |e| e[0] == :writeback }
    last = events.rindex { |e| e[0] == :write }
    return "no sync_file_range at all" if first.nil? && last
    if written > batch && first > last
      return "the first sync_file_range came after the last write (#{written} bytes written)"
    end

    nil
  end
end
