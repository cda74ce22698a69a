# frozen_string_literal: true

require "lvm"

# Send the chunks an LVM snapshot recorded as changed, and apply such streams, in the
# original lvmsync's "PROTO[3]" format: streams of the original are applied as they are, and
# plain: true sends exactly the original format.
#
#   store = LVM::CowStore.open("/dev/mapper/vg0-snap-cow")
#   File.open("changes", "wb") { |f| LVMSync.send_changes(store, "/dev/mapper/vg0-origin", f) }
#   LVMSync.apply("changes", "/dev/vg1/copy", snapback: "/var/tmp/copy.snapback")
#
# Both loops run natively without the GVL, with memory bounded by metadata.
#
# By default a stream is marked: a BEGIN item after the handshake and an end-of-stream mark
# (END: the item count and an XXH3-64 digest of every byte) after the last record, so that
# this project's receiver detects a stream cut anywhere, or altered. The original receiver
# stops at BEGIN before writing anything: send it plain: true (see negotiate).
#
# Two more extensions, both opt-in and understood only by this project's receiver:
# * discards: a stream with the handshake PROTOCOL_DISCARDS may carry discard records (a range
#   that must read as zeros, with no data), which the receiver applies by punching holes or
#   unmapping. The original lvmsync refuses that handshake before writing anything.
# * verify: the sender keeps a digest (XXH3-64) per record it sent, the receiver re-reads what
#   it wrote after fdatasync and computes the same list; compare_digests says what differs.
#
#   sent = LVMSync.send_changes(store, origin, io, discards: true, digests: true)
#   got = LVMSync.apply(stream, dest, verify: true)
#   LVMSync.compare_digests(sent.digests, got.digests) # => {matched: 1024, mismatches: 0, examples: []}
module LVMSync
  # The handshake line.
  PROTOCOL = Native::PROTOCOL
  # The handshake line of a stream that may carry discard records.
  PROTOCOL_DISCARDS = Native::PROTOCOL_DISCARDS
  # Extensions this side can receive (a sender asks a remote receiver before using them).
  CAPABILITIES = Native::CAPABILITIES
  # Largest record sent (bytes): chunks are coalesced up to this size.
  MAX_RECORD = Native::MAX_SEND_RECORD
  # Bytes of one packed digest: big-endian u64 offset, u64 length, u64 hash.
  DIGEST_BYTES = Native::DIGEST_BYTES
  # Prefix of the text form of a digest (see digest_lines).
  DIGEST_LINE_PREFIX = Native::DIGEST_LINE_PREFIX

  # What a send did. +read_mode+ says how the source was read ("O_DIRECT"...). +records+ and
  # +bytes+ count data records; +discard_records+ and +discard_bytes+ the discard records (0
  # unless sent with discards: true). +digests+ is nil, or with digests: true a binary String
  # of DIGEST_BYTES per record sent, in stream order. +end_mark+ is false for a plain stream.
  # +expect_ranges+ counts the ranges an EXPECT item listed for the destination check (0:
  # none was sent).
  SendResult = Struct.new(:records, :bytes, :stream_bytes, :ranges, :source_size, :read_mode,
                          :discard_records, :discard_bytes, :digests, :end_mark, :expect_ranges, :seconds,
                          keyword_init: true)

  # What an apply did. +snapback+ is nil or a Hash (:records, :bytes, :zero_bytes (of :bytes,
  # the old zeros, kept as discard records that take no room), :commits, :file_bytes,
  # :state — "created", "resumed" (an interrupted run's journal, continued) or "complete" (the
  # apply had finished: nothing was written) —, :earlier_bytes saved by interrupted runs, and
  # :source_unchecked, true when the stream could not be compared with theirs before it was
  # applied); +journaled+ is true for a snapback (journal) input, +journal_complete+ when its
  # apply had finished, +ignored_*+ count its uncommitted tail; +end_mark+ is true for a
  # marked stream (false: a plain one, where a cut between records cannot be detected);
  # +skipped_*+ count the bytes past the end of a short destination; +checked_first+ is true
  # when the whole input was checked before the first write (a regular file).
  # +discards_in_stream+ is true when the stream had the PROTOCOL_DISCARDS handshake;
  # +discard_records+ / +discard_bytes+ count the discard records applied and the bytes they
  # made read as zeros, of which +discard_zeroed_bytes+ had to be written as zeros (the
  # destination could not unmap them). +digests+ is nil, or with verify: true the packed
  # digests of the ranges read back (see send_changes), and +verified+ what was read back
  # compared with the stream's own data (a Hash as verify_digests returns, its +message+
  # about the stream), leaving out +superseded+ records that a later record of the stream
  # overwrote. +destination_check+ is nil, or for a stream with an EXPECT item (a --from
  # round's destination check) {ranges:, at_newer:, unchecked:}: the ranges compared before
  # the first write, those that already held the newer snapshot's data, those past the end
  # of a short destination; +destination_check_skipped+ is true when the stream had one and
  # no_destination_check: true skipped it.
  ApplyResult = Struct.new(:records, :bytes, :writes, :skipped_records, :skipped_bytes, :journaled,
                           :journal_complete, :ignored_records, :ignored_bytes, :checked_first, :dest_size,
                           :snapback, :discard_records, :discard_bytes, :discard_zeroed_bytes,
                           :discards_in_stream, :end_mark, :digests, :verified, :destination_check,
                           :destination_check_skipped, :seconds, keyword_init: true)

  # Streams the changes of +store+ read from +source+ (the origin, or another device with the
  # same content) to +io+ (an IO with a file descriptor, or the LVMSync::Native::Link of a local
  # receiver thread). +store+ is an LVM::CowStore, the path
  # of a -cow device, an LVM::ThinDelta, or anything else whose #change_set gives an
  # LVM::ChangeSet. +progress+ is called with (bytes_done, bytes_total); +job+ (an
  # Ironshed::Progress) can be given to cancel the send from another thread. Options:
  #
  # max_record:: the largest record (bytes; MAX_RECORD by default): ranges are cut into
  #              records of at most this size.
  # discards::   the stream has the PROTOCOL_DISCARDS handshake and the ranges the source
  #              knows were discarded go out as discard records (no data); only a receiver
  #              listing "discards" in CAPABILITIES accepts it. Without it (the default),
  #              discarded ranges are sent as data, read from the source as zeros.
  # plain::      no BEGIN and END marks: byte-identical to the original format (with
  #              discards: false), for a receiver that does not list "endmark".
  # digests::    the result's +digests+ holds one digest per record sent (for verify).
  # inputs::     [[role, path], ...]: other files the changes come from (the snapshot, its
  #              exception store), which +io+ must not be, any more than +source+: a stream
  #              sent onto a device it reads is refused (Ironshed::DestinationError) before
  #              anything is read or written.
  # expect_from:: the device holding what the destination holds now (the older snapshot of
  #              a --from round): an EXPECT item after BEGIN lists its hash and +source+'s of
  #              every range sent, read before anything is sent, and the receiver refuses
  #              the stream before its first write when its destination holds neither
  #              (Ironshed::DestinationError). Not with plain: true.
  def self.send_changes(store, source, io, name: nil, progress: nil, job: nil, **options)
    store = LVM::CowStore.open(store) if store.is_a?(String) || store.respond_to?(:to_path)
    unless store.respond_to?(:change_set)
      raise TypeError, "no change list in a #{store.class}: expected an LVM::CowStore or LVM::ThinDelta"
    end

    io.flush if io.respond_to?(:flush)
    timed(SendResult, progress, job) do |prog|
      if io.is_a?(Native::Link)
        Native.send_link(store.change_set, source, io, name || "the local receiver", prog, **options)
      else
        Native.send(store.change_set, source, io.fileno, name || describe_io(io), prog, **options)
      end
    end
  end

  # Applies a PROTO[3] stream (plain or with discard records) or snapback file to +dest+.
  # +input+ is a path ("-" for standard input), an IO, or the LVMSync::Native::Link a local sender
  # writes to. A regular file is checked whole before the first write. Options:
  #
  # snapback::                before overwriting, save the destination's old data into this
  #                           journal (a PROTO[3] stream that undoes the apply): a new file,
  #                           or the journal an interrupted apply of the same stream to the
  #                           same destination left, which is resumed; when that apply
  #                           finished, nothing is written. Any other existing file is
  #                           refused (Ironshed::UndoError).
  # allow_short_destination:: write the part of each record that fits and skip the rest,
  #                           instead of refusing a destination smaller than the stream needs.
  # verify::                  after everything is written and flushed, drop the destination's
  #                           cached pages and read every range written back: the result's
  #                           +digests+ then compares with the sender's (compare_digests),
  #                           and +verified+ says whether it is what the stream carried.
  # inputs::                  [[role, path], ...]: other files the stream is made from (a
  #                           local sender's devices), which +dest+ must not be either.
  # no_destination_check::    apply a stream with an EXPECT item without checking the
  #                           destination against it first.
  #
  # A FIFO named as +input+ is read as it arrives, like "-". An exception raised after the
  # destination was first written is an Ironshed::PartlyWritten.
  def self.apply(input, dest, progress: nil, job: nil, **options)
    timed(ApplyResult, progress, job) do |prog|
      if input == "-"
        Native.apply_fd($stdin.fileno, "standard input", dest, prog, **options)
      elsif input.is_a?(String) || input.respond_to?(:to_path)
        Native.apply_file(input, dest, prog, **options)
      elsif input.is_a?(Native::Link)
        Native.apply_link(input, "the local sender", dest, prog, **options)
      else
        Native.apply_fd(input.fileno, describe_io(input), dest, prog, **options)
      end
    end
  end

  # What to send to +peer+ (:stdout, :local, or :remote: a receiver on +host+ whose
  # `lvmsync --capabilities` listed +capabilities+), given what is wanted (discards:, verify:,
  # plain:). Returns {discards:, end_mark:, refusal: (nil, or why nothing may be sent),
  # notes: [[:info | :verbose, text], ...]}.
  def self.negotiate(peer, host = "", capabilities = [], **wanted)
    Native.negotiate(peer, host.to_s, capabilities.map(&:to_s), **wanted)
  end

  # Whether a remote receiver must be asked for its capabilities before sending (discards:,
  # verify:, plain:).
  def self.must_ask?(**wanted)
    Native.must_ask(**wanted)
  end

  # Text form of packed digests, for a remote channel: one line per digest,
  # "lvmsync-verify OFFSET LEN HASH" (decimal offset and length, 16 lowercase hex digits of
  # hash), without line ends.
  def self.digest_lines(packed)
    Native.digest_lines(packed.to_s.b)
  end

  # Parses digest_lines' form back into packed digests. +lines+ is an Array of lines (or a
  # String of them); line ends are ignored. Raises LVMSync::Error naming the first line that
  # is not a digest line.
  def self.parse_digest_lines(lines)
    lines = lines.each_line if lines.is_a?(String)
    Native.parse_digest_lines(lines.map { |l| l.to_s.b })
  end

  # Compares the sender's packed digests with the receiver's, record by record (both in
  # stream order). Returns {matched: Integer, mismatches: Integer (all of them),
  # examples: [[offset, len, "differs" | "missing" | "unexpected"], ...] (the first 20)}:
  # "differs" when the hash, offset or length disagree, "missing" for a record only the sender
  # has, "unexpected" for one only the receiver has.
  def self.compare_digests(sent, received)
    verify_digests(sent, received, "the destination").slice(:matched, :mismatches, :examples)
  end

  # compare_digests, plus +ok+ (true when every record matched), +superseded+ (records left
  # out; 0 here) and +message+: the one line
  # `lvmsync --verify` prints about +destination+ ("verify: all 1200 ranges read back from
  # DEST match the source (XXH3)", or "verify FAILED: 3 of 1200 ranges of DEST do not match
  # the source: bytes 0..4095 (differs), ..." naming the first five).
  def self.verify_digests(sent, received, destination)
    Native.compare_digests(sent.to_s.b, received.to_s.b, destination.to_s)
  end

  def self.describe_io(io)
    return "standard output" if io.fileno == 1
    return "standard input" if io.fileno.zero?

    io.respond_to?(:path) && io.path ? io.path : "the stream"
  end

  def self.timed(klass, callback, job)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    h = Ironshed.with_progress(callback, job: job) { |prog| yield(prog) }
    klass.new(**h, seconds: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
  end
  private_class_method :timed, :describe_io
end
