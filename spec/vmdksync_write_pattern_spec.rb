# frozen_string_literal: true

# What vmdksync writes, seen from the system calls (strace): for every delta format, and for a
# chain mixing them, the destination ranges written are exactly the ranges `--dry-run` lists,
# every byte once, in ascending order — however the grains are laid out in the delta and
# however the copy loop batches, sorts and overlaps its reads. And each batch, once written, is
# handed to the kernel to write out (sync_file_range) before the next batch is written and
# before the final fdatasync.
require_relative "support/syscall_log"

RSpec.describe "vmdksync's writes", :tmpdir do
  def merged(ranges)
    ranges.each_with_object([]) do |(o, l), out|
      if out.any? && out.last[0] + out.last[1] == o
        out.last[1] += l
      else
        out << [o, l]
      end
    end
  end

  def check_writes(descriptor, flat, *opts)
    dest = File.join(@dir, "dest.raw")
    FileUtils.cp(flat, dest)
    out, err, st = run_exe("vmdksync", "--dry-run", *opts, descriptor, dest)
    expect(st.success?).to be(true), err
    listed = out.lines.grep(/\A\d+ \d+\n\z/).map { |l| l.split.map(&:to_i) }
    expect(listed).not_to be_empty
    log = File.join(@dir, "strace.log")
    _o, err, st = Open3.capture3("strace", "-f", "-qq", "-y", "-s", "0", "-e", "trace=pwrite64,copy_file_range,sync_file_range,fdatasync",
                                 "-o", log, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "vmdksync"), "-q", *opts,
                                 descriptor, dest)
    expect(st.success?).to be(true), err
    events = SyscallLog.events(log, File.realpath(dest))
    written = SyscallLog.writes(events)
    expect(written.each_cons(2).all? { |(a, l), (b, _)| a + l <= b }).to be(true),
                                                                          "writes not in ascending order: #{written.first(20)}"
    expect(merged(written)).to eq(listed)
    expect(written.sum { |_, l| l }).to eq(listed.sum { |_, l| l })
    expect(SyscallLog.writeback_problem(events, batch: 8 << 20)).to be_nil
    expect(events.last).to eq([:flush])
    expect(File.binread(dest)).to eq(File.binread(qemu_raw(descriptor, File.join(@dir, "qemu.raw"))))
  end

  it "COWD with 512-byte grains stored shuffled: one write per changed range, as listed" do
    esx_set(@dir, capacity: "8M", layout: "shuffled", random: "300:4K", writes: ["1M:200K"])
    check_writes(File.join(@dir, "vm-000001.vmdk"), File.join(@dir, "vm-flat.vmdk"))
  end

  {
    "hosted sparse" => ["sparse,layout=shuffled", "--random-writes", "60:8K", "--write", "1000:3000"],
    "hosted sparse with zeroed grains" => ["sparse-zeroed,grain=16", "--random-writes", "60:8K", "--zero", "1M:256K"],
    "streamOptimized" => ["stream,layout=shuffled", "--random-writes", "40:64K"],
    "streamOptimized with a footer" => ["stream-footer", "--random-writes", "40:64K", "--zero", "8M:128K"],
    "twoGbMaxExtentSparse" => ["twogb,extent=5M,layout=reverse", "--random-writes", "60:8K"],
    "seSparse" => ["sesparse,layout=shuffled", "--random-writes", "500:4K", "--zero", "2M:64K", "--unmap", "3M:64K"]
  }.each do |name, (fmt, *ops)|
    it "#{name}: the ranges written are the dry-run list" do
      files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "16M", "--seed", 5, "--layer", fmt, *ops))
      check_writes(files["layers"].last["descriptor"], files["flat"])
    end
  end

  it "a chain mixing formats: each merged range written once, as listed" do
    files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "16M", "--seed", 9,
                               "--layer", "cowd,layout=shuffled", "--random-writes", "300:4K",
                               "--layer", "sesparse", "--random-writes", "200:8K", "--zero", "4M:64K",
                               "--layer", "stream-footer", "--random-writes", "20:64K",
                               "--layer", "sparse,grain=16", "--random-writes", "100:4K"))
    check_writes(files["layers"].last["descriptor"], files["flat"])
  end

  it "--full of a sparse base disk under two deltas: the whole disk, each byte once, in order" do
    files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "80M", "--seed", 6,
                               "--layer", "sparse,layout=shuffled", "--random-writes", "200:8K",
                               "--write", "70M:3M",
                               "--layer", "cowd,layout=shuffled", "--random-writes", "300:4K",
                               "--layer", "stream-footer", "--random-writes", "20:64K", "--zero", "4M:128K"))
    # The first layer, made parentless (its hint commented out: qemu follows it whatever the
    # parentCID says), is the base disk; the raw copy is garbage to replace.
    base = files["layers"].first["descriptor"]
    File.binwrite(base, File.binread(base).sub("parentCID=5a17b9ae", "parentCID=ffffffff")
                            .sub("parentFileNameHint=", "#arentFileNameHint="))
    File.binwrite(files["flat"], Random.new(6).bytes(80 << 20))
    check_writes(files["layers"].last["descriptor"], files["flat"], "--full")
  end
end
