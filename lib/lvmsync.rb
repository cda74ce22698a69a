# frozen_string_literal: true

require "lvm"

# Send the chunks an LVM snapshot recorded as changed, and apply such streams, in the
# original lvmsync's "PROTO[3]" format (byte-compatible in both directions).
#
#   store = LVM::CowStore.open("/dev/mapper/vg0-snap-cow")
#   File.open("changes", "wb") { |f| LVMSync.send_changes(store, "/dev/mapper/vg0-origin", f) }
#   LVMSync.apply("changes", "/dev/vg1/copy", snapback: "/var/tmp/copy.snapback")
#
# Both loops run natively without the GVL, with memory bounded by metadata.
module LVMSync
  # The handshake line.
  PROTOCOL = Native::PROTOCOL
  # Largest record sent (bytes): chunks are coalesced up to this size.
  MAX_RECORD = Native::MAX_SEND_RECORD

  # What a send did. +read_mode+ says how the source was read ("O_DIRECT"...).
  SendResult = Struct.new(:records, :bytes, :stream_bytes, :ranges, :source_size, :read_mode, :seconds,
                          keyword_init: true)

  # What an apply did. +snapback+ is nil or a Hash (:records, :bytes, :commits, :file_bytes);
  # +ignored_*+ count a journaled snapback file's uncommitted tail; +skipped_*+ the bytes past
  # the end of a short destination; +checked_first+ is true when the whole input was checked
  # before the first write (a regular file).
  ApplyResult = Struct.new(:records, :bytes, :writes, :skipped_records, :skipped_bytes, :journaled,
                           :ignored_records, :ignored_bytes, :checked_first, :dest_size, :snapback,
                           :seconds, keyword_init: true)

  # Streams the changes of +store+ (an LVM::CowStore, or the path of a -cow device) read from
  # +source+ (the origin, or another device with the same content) to +io+ (an IO with a file
  # descriptor). +progress+ is called with (bytes_done, bytes_total); +job+ (an
  # Ironshed::Progress) can be given to cancel the send from another thread.
  def self.send_changes(store, source, io, name: nil, max_record: MAX_RECORD, progress: nil, job: nil)
    store = LVM::CowStore.open(store) unless store.is_a?(LVM::CowStore)
    io.flush if io.respond_to?(:flush)
    timed(SendResult, progress, job) do |prog|
      Native.send(store, source.to_s, io.fileno, name || describe_io(io), Integer(max_record), prog)
    end
  end

  # Applies a PROTO[3] stream or snapback file to +dest+. +input+ is a path ("-" for standard
  # input) or an IO. A regular file is checked whole before the first write.
  def self.apply(input, dest, snapback: nil, allow_short_destination: false, progress: nil, job: nil)
    path, fd, name = if input == "-"
                       [nil, $stdin.fileno, "standard input"]
                     elsif input.is_a?(String) || input.respond_to?(:to_path)
                       [input.to_s, nil, input.to_s]
                     else
                       [nil, input.fileno, describe_io(input)]
                     end
    timed(ApplyResult, progress, job) do |prog|
      Native.apply(path, fd, name, dest.to_s, snapback&.to_s, allow_short_destination ? true : false, prog)
    end
  end

  def self.describe_io(io)
    return "standard output" if io.fileno == 1
    return "standard input" if io.fileno.zero?

    io.respond_to?(:path) && io.path ? io.path : "the stream"
  end

  def self.timed(klass, callback, job)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    prog = job || Ironshed::Progress.new
    poller = callback && Thread.new do
      loop do
        sleep 0.2
        callback.call(prog.done, prog.total)
      end
    end
    h = yield(prog)
    callback&.call(prog.done, prog.total)
    klass.new(**h, seconds: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
  ensure
    poller&.kill
  end
  private_class_method :timed, :describe_io
end
