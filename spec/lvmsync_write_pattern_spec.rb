# frozen_string_literal: true

require_relative "support/proto3"
require_relative "support/syscall_log"

# What `lvmsync --apply` writes, seen from the system calls (strace): the records' ranges,
# each byte once, and each batch (1 MiB, 8 MiB with --snapback) handed to the kernel to write
# out (sync_file_range) once written, before the next batch and before the final fdatasync.
RSpec.describe "lvmsync --apply's writes", :tmpdir do
  def path(name)
    File.join(@dir, name)
  end

  # 1500 records of 4 KiB at random places of a 64 MiB destination, in random order (as a
  # snapshot's exception store lists them), none overlapping: 6 MiB in many batches.
  def scattered_records
    rng = Random.new(12)
    (0...16_384).to_a.sample(1500, random: rng).map { |chunk| [chunk << 12, rng.bytes(4096)] }
  end

  def traced_apply(*opts)
    log = path("strace.log")
    _o, err, st = Open3.capture3("strace", "-f", "-qq", "-y", "-s", "0", "-o", log,
                                 "-e", "trace=pwrite64,pwritev,copy_file_range,sync_file_range,fdatasync",
                                 RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "lvmsync"), "-q", "--apply",
                                 path("stream"), path("dest"), *opts)
    expect(st.success?).to be(true), err
    SyscallLog.events(log, File.realpath(path("dest")))
  end

  [[[], 1 << 20], [["--snapback", "undo"], 8 << 20]].each do |opts, batch|
    it "writes each record once and hands each #{batch >> 20} MiB batch to writeback#{" (#{opts.first})" unless opts.empty?}" do
      records = scattered_records
      File.binwrite(path("stream"), Proto3.encode_marked(records))
      before = Random.new(3).bytes(64 << 20)
      File.binwrite(path("dest"), before)
      events = traced_apply(*opts.map { |o| o == "undo" ? path(o) : o })
      written = SyscallLog.writes(events)
      expect(written.sort).to eq(records.map { |off, data| [off, data.bytesize] }.sort)
      expect(SyscallLog.writeback_problem(events, batch: batch)).to be_nil
      expect(events.count { |e| e[0] == :writeback }).to be >= ((1500 * 4096) / batch)
      expect(events.last).to eq([:flush])
      want = before.dup
      records.each { |off, data| want[off, data.bytesize] = data }
      expect(File.binread(path("dest")) == want).to be(true)
    end
  end
end
