# frozen_string_literal: true

require "lvm"
require_relative "support/lvm_fixtures"
require_relative "support/guest_script"
require_relative "support/proto3"

# lvmsync on a real kernel: real LVM, real dm-snapshot, real ssh, in one boot of the QEMU
# guest (spec/guest/lvmsync.sh does the work and prints KEY=VALUE lines). The original
# lvmsync's three scenarios are each checked by checksums of source and destination.
RSpec.describe "lvmsync on a real kernel", :vm do
  MIB = 1 << 20

  include GuestScript
  run_guest_script "lvmsync.sh", timeout: 900

  it "ran every scenario in the guest" do
    expect(@status.exitstatus).to eq(0), "stdout:\n#{@log}\nstderr:\n#{@err}"
    expect(@log).to end_with("DONE\n")
  end

  it "set up a dm-snapshot with 4 KiB chunks, and the origin changed after the copy" do
    expect(kv("snap_table")).to match(/\A0 65536 snapshot \d+:\d+ \d+:\d+ P 8\z/)
    expect(kv("copy_sum")).to eq(kv("snap_sum"))
    expect(kv("src_sum")).not_to eq(kv("copy_sum"))
  end

  it "a buffered read of the -cow device is stale, the O_DIRECT read is not (why no drop_caches is needed)" do
    expect(kv("stale_area0")).to eq("0" * 32)
    expect(kv("direct_area0")).not_to eq("0" * 32)
  end

  it "the LVM:: API finds the snapshot, its origin and exactly the written chunks, coalesced" do
    expect(kv("api_snapshot")).to eq("true")
    expect(kv("api_origin")).to eq("/dev/mapper/vg--sync-src--lv")
    expect(kv("api_origin_snapshot")).to eq("false")
    # 512-byte writes at every MiB, 3 MiB at 12 MiB (merging with the write at 15 MiB), and
    # the last sector: one 4 KiB chunk each, adjacent ones coalesced.
    want = (0..31).reject { |i| (12..15).cover?(i) }.map { |i| [i * MIB, i * MIB + 4095] }
    want << [12 * MIB, 15 * MIB + 4095] << [32 * MIB - 4096, 32 * MIB - 1]
    got = kv("api_changes").split(",").map { |r| r.split("-").map(&:to_i) }
    expect(got).to eq(want.sort)
  end

  it "local sync: the destination equals the source (original scenario 00simple_local_sync)" do
    expect(kv("local_rc")).to eq("0"), err_of("local")
    expect(kv("local_sum")).to eq(kv("src_sum"))
    expect(err_of("local")).to include("exception store /dev/mapper/vg--sync-src--snap-cow (read O_DIRECT)")
  end

  it "--stdout to a file then --apply (original scenario 05sync_via_snapshot_file)" do
    expect([kv("stdout_rc"), kv("apply_rc")]).to eq(%w[0 0]), err_of("stdout") + err_of("apply")
    expect(kv("apply_sum")).to eq(kv("src_sum"))
    # The stream, read here independently: every record holds the source's bytes.
    src = File.binread(File.join(@out, "src.img"))
    stream = File.binread(File.join(@out, "changes.bin"))
    expect(stream).to start_with("lvmsync PROTO[3]\n")
    # Marked: BEGIN and END checked (counts, XXH3 by the reference library) by the decoder.
    expect(Proto3.marked?(stream)).to be(true)
    records = Proto3.decode(stream)
    records.each do |off, data|
      expect(data == src.byteslice(off, data.bytesize)).to be(true), "record at #{off}"
      expect(data.bytesize).to be <= MIB
    end
    total = records.sum { |_, d| d.bytesize }
    expect(total).to eq((28 + 1 + 1) * 4096 + 3 * MIB) # 28 single chunks, 15 MiB's, the last, 3 MiB
  end

  it "a stream cut after its first record is refused, the LV unchanged; cut from a pipe: exit 3, then finished" do
    expect(kv("cut_rc")).to eq("1"), err_of("cut")
    expect(err_of("cut")).to include("before its end-of-stream mark: 1 of its")
    expect(kv("cut_dest_unchanged")).to eq("yes")
    expect(kv("cut_pipe_rc")).to eq("3"), err_of("cut-pipe")
    expect(err_of("cut-pipe")).to include("/dev/vg-sync/dest is partly updated; to finish, send the whole stream again")
    expect(kv("cut_again_rc")).to eq("0"), err_of("cut-again")
    expect(kv("cut_again_sum")).to eq(kv("src_sum"))
  end

  it "a snapback sync killed with SIGKILL and run again resumes; the snapback restores the first state" do
    expect(kv("killed_rc")).to eq("137")
    expect(kv("killed_dest_changed")).to eq("yes")
    expect(kv("resumed_rc")).to eq("0"), err_of("resumed")
    expect(err_of("resumed")).to include("lvmsync: snapback: resumed /tmp/killed.sb")
    expect(kv("resumed_sum")).to eq(kv("src_sum"))
    expect(kv("killed_restore_rc")).to eq("0"), err_of("killed-restore")
    expect(kv("killed_restore_sum")).to eq(kv("copy_sum"))
  end

  it "snapback: the sync matches the source, applying the snapback restores the copy (10snapback)" do
    expect([kv("snapback_rc"), kv("restore_rc")]).to eq(%w[0 0]), err_of("snapback") + err_of("restore")
    expect(kv("snapback_sum")).to eq(kv("src_sum"))
    expect(kv("restore_sum")).to eq(kv("copy_sum"))
  end

  it "remote: through --rsh to a receiver started over ssh on 127.0.0.1" do
    expect(kv("remote_rc")).to eq("0"), err_of("remote")
    expect(kv("remote_sum")).to eq(kv("src_sum"))
    expect(kv("remote_snapback").to_i).to be > 3 * MIB
    expect(err_of("remote")).to match(/^remote: lvmsync: applied \d+ records, 3\.1 MiB/)
  end

  it "a rolling round with classic snapshots: --from OLDER NEWER gives NEWER's content" do
    expect(kv("from_rc")).to eq("0"), err_of("from")
    expect(kv("from_sum")).to eq(kv("snap2_sum"))
    expect(kv("snap2_sum")).not_to eq(kv("src_after_snap2_sum"))
    expect(kv("snap2_sum")).not_to eq(kv("copy_sum"))
    expect(err_of("from")).to include("changes since vg-sync/src-snap", "data read from snapshot vg-sync/snap2")
  end

  it "a failed remote apply reports the receiver's own reason and exits 1" do
    expect(kv("remote_fail_rc")).to eq("1")
    expect(err_of("remote-fail").lines.last).to eq(
      "lvmsync: apply on root@127.0.0.1 failed (exit status 1): /dev/vg-sync/no-such-lv: open for writing: " \
      "No such file or directory\n"
    )
  end

  it "refuses an overflowed snapshot and leaves the destination alone" do
    expect(kv("tiny_status")).to eq("0 65536 snapshot Invalid")
    expect(kv("overflow_rc")).to eq("1")
    expect(kv("overflow_dest_unchanged")).to eq("yes")
    expect(err_of("overflow")).to eq(
      "lvmsync: /dev/mapper/vg--sync-tiny-cow: the snapshot is invalid (header field 'valid' at byte 4 is 0): " \
      "it overflowed (its COW space filled up) or failed, so its list of changes is incomplete; take a new " \
      "snapshot and copy the whole volume again\n"
    )
  end

  it "refuses the origin, named by another device node, as a local sync's destination" do
    expect(kv("same_device_rc")).to eq("1")
    expect(kv("same_device_origin_unchanged")).to eq("yes")
    expect(err_of("same-device")).to match(
      %r{\Alvmsync: /tmp/origin-node: the destination is the same file as /dev/mapper/vg--sync-src--lv \(the data source\); refusing to write to it\n\z}
    )
  end

  it "--apply --verify alone finds a device that does not keep what was written (dm zero)" do
    expect(kv("zero_verify_rc")).to eq("1"), err_of("zero-verify")
    expect(err_of("zero-verify").lines.last).to match(
      %r{\Alvmsync: verify FAILED: \d+ of \d+ records read back from /dev/mapper/zero-dest differ from what the stream carried: bytes \d+\.\.\d+ \(differs\)}
    )
    # The digests of what was read back still go to standard output, for a sender.
    expect(File.read(File.join(@out, "zero-verify.out")).lines).to all(start_with("lvmsync-verify "))
    expect(kv("dest_verify_rc")).to eq("0"), err_of("dest-verify")
    expect(err_of("dest-verify").lines.last).to match(%r{\Alvmsync: verify: all \d+ records read back from /dev/vg-sync/dest match the stream \(XXH3\)\n\z})
  end

  it "a local sync's --verify difference is exit 1 and one line: the apply was complete, no partial update" do
    expect(kv("zero_local_rc")).to eq("1"), err_of("zero-local")
    expect(err_of("zero-local").lines.last).to match(
      %r{\Alvmsync: verify FAILED: \d+ of \d+ ranges of /dev/mapper/zero-dest do not match the source: bytes \d+\.\.\d+ \(differs\)}
    )
    expect(err_of("zero-local")).not_to include("partly updated")
  end

  it "parses the vgcfgbackup files LVM wrote in this run, consistently with `lvs --segments`" do
    dir = File.join(@out, "fixtures")
    expect(Dir.children(dir).sort).to eq(%w[classic-hyphen.segments classic-hyphen.vg classic-snapshot.vg linear.vg
                                            striped.vg thin.pvs thin.segments thin.vg])
    LvmFixtures.check_against_lvs(self, File.join(dir, "thin.vg"), File.join(dir, "thin.segments"))
    LvmFixtures.check_against_lvs(self, File.join(dir, "classic-hyphen.vg"), File.join(dir, "classic-hyphen.segments"))
    %w[linear striped classic-snapshot].each { |n| expect(LVM::VGConfig.load(File.join(dir, "#{n}.vg")).problems).to eq([]) }
  end
end
