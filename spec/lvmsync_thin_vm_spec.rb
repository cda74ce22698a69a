# frozen_string_literal: true

require "lvm"
require_relative "support/guest_script"

# lvmsync on thin snapshots on a real kernel: a real thin pool, thin_delta on a real reserved
# metadata snapshot, blkdiscard, ssh, dm-flakey; one boot of the QEMU guest
# (spec/guest/lvmsync_thin.sh does the work and prints KEY=VALUE lines).
RSpec.describe "lvmsync on real thin snapshots", :vm do
  include GuestScript
  run_guest_script "lvmsync_thin.sh", timeout: 1200

  it "ran every step in the guest" do
    expect(@status.exitstatus).to eq(0), "stdout:\n#{@log}\nstderr:\n#{@err}"
    expect(@log).to end_with("DONE\n")
  end

  it "the origin changed after the copy, and its discarded range reads as zeros" do
    expect(kv("dst_copy_sum")).to eq(kv("s1_sum"))
    expect(kv("src_sum")).not_to eq(kv("s1_sum"))
    expect(kv("src_discarded_zero")).to eq("0")
  end

  it "the API's ranges are thin_delta's own (its XML read here independently), and it released the metadata snapshot" do
    xml = File.read(File.join(@out, "thin_delta.xml"))
    bs = Integer(xml[/data_block_size="(\d+)"/, 1]) * 512
    expect(kv("api_block_size")).to eq(bs.to_s)
    expect(kv("api_class")).to eq("LVM::ThinSnapshot")
    runs = xml.scan(/<(different|right_only|left_only) begin="(\d+)" length="(\d+)"/)
    expect(runs.map(&:first)).to include("different", "right_only", "left_only")
    blocks = ->(kinds) { runs.select { |k, _, _| kinds.include?(k) }.flat_map { |_, b, l| (b.to_i...(b.to_i + l.to_i)).to_a } }
    extents = lambda do |bl|
      bl.sort.slice_when { |a, b| b != a + 1 }.map { |r| "#{r.first * bs}+#{r.size * bs}" }.join(",")
    end
    expect(kv("api_changed")).to eq(extents.call(blocks.call(%w[different right_only])))
    expect(kv("api_unmapped")).to eq(extents.call(blocks.call(%w[left_only])))
    # The 2 MiB discard at 4 MiB is unmapped; the 4 KiB one inside a block is not a change.
    expect(kv("api_unmapped")).to include("#{4 << 20}+#{2 << 20}")
    expect(kv("held_after_api")).to eq("-")
    # The real vgcfgbackup of a pool with three thin snapshots parses.
    vg = LVM::VGConfig.load(File.join(@out, "thin-snapshots.vg"))
    expect(%w[s1 s2 s3].map { |n| vg.logical_volumes[n]&.origin }).to eq(%w[src src src])
  end

  it "plain sync to a thin LV: equal to the source, unmapped blocks sent as zeros" do
    expect(kv("plain_rc")).to eq("0"), err_of("plain")
    expect(kv("plain_sum")).to eq(kv("src_sum"))
    expect(err_of("plain")).to include("metadata snapshot released")
    expect(kv("held_after_plain")).to eq("-")
  end

  it "--discards to a file: equal to the source, with a hole where the origin was discarded" do
    expect(kv("file_rc")).to eq("0"), err_of("file")
    expect(kv("file_sum")).to eq(kv("src_sum"))
    expect(kv("file_hole_at_4m")).to eq((4 << 20).to_s)
  end

  it "--discards to a thin LV: equal to the source, and the discarded blocks unmapped there" do
    expect(kv("discards_rc")).to eq("0"), err_of("discards")
    expect(kv("discards_sum")).to eq(kv("src_sum"))
    expect(kv("dst_mapped_before").to_i - kv("dst_mapped_after").to_i).to be >= (2 << 20) / 512
    expect(kv("plain_mapped").to_i).to eq(kv("dst_mapped_before").to_i)
  end

  it "remote over ssh with --discards --verify" do
    expect(kv("remote_rc")).to eq("0"), err_of("remote")
    expect(kv("remote_sum")).to eq(kv("src_sum"))
    expect(err_of("remote")).to include("supports: discards verify", "remote: lvmsync: discarded")
    expect(err_of("remote")).to match(/verify: all \d+ ranges read back from root@127\.0\.0\.1:\/dev\/vgt\/dst match/)
  end

  it "increments over three snapshots, then the origin: each round gives that snapshot's content" do
    %w[inc1 inc2 inc3 inc4].each { |n| expect(kv("#{n}_rc")).to eq("0"), err_of(n) }
    expect(kv("inc1_sum")).to eq(kv("s2_sum"))
    expect(kv("inc2_sum")).to eq(kv("s3_sum"))
    expect(kv("inc3_sum")).to eq(kv("src2_sum"))
    # --from s3 to the origin itself: the same result (the origin was created before s3).
    expect(kv("inc4_sum")).to eq(kv("src2_sum"))
    expect(err_of("inc4")).to match(/changes from vgt\/s3 \(thin id \d+\) to vgt\/src \(thin id \d+\)/)
    expect([kv("s1_sum"), kv("s2_sum"), kv("s3_sum"), kv("src2_sum")].uniq.size).to eq(4)
    expect(err_of("inc1")).to match(/changes from vgt\/s1 \(thin id \d+\) to vgt\/s2/)
    expect(err_of("inc3")).to match(/verify: all \d+ ranges/)
    expect(kv("held_after_inc")).to eq("-")
  end

  it "an interrupted run leaves no metadata snapshot reserved" do
    %w[INT TERM].each do |sig|
      expect(kv("held_during_#{sig}")).to match(/\A\d+\z/)
      expect(kv("held_after_#{sig}")).to eq("-"), err_of("sig#{sig}")
    end
    expect(kv("sigINT_rc")).to eq("130")
    expect(kv("sigTERM_rc")).to eq((128 + 15).to_s)
  end

  it "a metadata snapshot held by someone else is named, and left alone" do
    expect(kv("busy_rc")).to eq("1")
    expect(err_of("busy")).to include("a metadata snapshot is already reserved",
                                      "dmsetup message vgt-pool-tpool 0 release_metadata_snap")
    expect(kv("held_after_busy")).to match(/\A\d+\z/)
  end

  it "--discards over an external origin: the range it unmapped goes as the external origin's data, not a discard" do
    # The kernel reads the external origin where the thin LV maps no block (the premise)...
    expect(kv("ext_reads_base")).to eq("yes")
    # ...and the real vgcfgbackup records it where the metadata parser reads it.
    vg = LVM::VGConfig.load(File.join(@out, "thin-snapshots.vg"))
    expect(vg.logical_volumes["ext"].segments.first.external_origin).to eq("base")
    expect(kv("ext_rc")).to eq("0"), err_of("ext")
    # The copy reads what the thin LV reads: base's data in the range unmapped since e1.
    expect(kv("ext_dest_sum")).to eq(kv("ext_sum"))
    expect(err_of("ext")).to include("lvmsync: note: --discards: vgt/ext reads its external origin vgt/base where it " \
                                     "maps no block")
    expect(err_of("ext")).to match(/\d+ blocks rewritten, \d+ newly mapped, [1-9]\d* unmapped/)
  end

  it "--full of a snapshot over an external origin: read whole, so the copy holds the external origin's data too" do
    expect(kv("ext_full_rc")).to eq("0"), err_of("ext_full")
    expect(err_of("ext_full")).to include("lvmsync: whole vgt/e2: reading /dev/mapper/vgt-e2 for its all-zero parts")
    expect(err_of("ext_full")).not_to include("thin_dump")
    expect(kv("ext_full_sum")).to eq(kv("ext_full_source_sum"))
    expect(kv("ext_full_sum")).to eq(kv("ext_sum"))
  end

  it "an origin extended after its snapshot, thin or classic: the new part sent whole, a --from round refused" do
    { "tg" => "thin", "cg" => "classic" }.each do |lv, kind|
      # The copy of the snapshot, extended to the origin's new size, is the origin: its old
      # part's change and what was written to (and left on the PV in) the new part.
      expect(kv("grown_#{lv}_rc")).to eq("0"), "#{kind}: #{err_of("grown_#{lv}")}"
      expect(err_of("grown_#{lv}")).to start_with(
        "lvmsync: note: vgt/#{lv} grew from 8.0 MiB to 12.0 MiB after vgt/#{lv}1 was taken, and nothing records " \
        "what was written to its last 4.0 MiB: they are sent whole, read from vgt/#{lv} (the destination must " \
        "hold at least 12.0 MiB)\n"
      ), kind
      expect(kv("grown_#{lv}_sum")).to eq(kv("grown_#{lv}_origin_sum")), kind
      # A copy that was not extended: refused before anything was written.
      expect(kv("grown_short_#{lv}_rc")).to eq("1"), kind
      expect(err_of("grown_short_#{lv}")).to include("past the end of the destination (8388608 bytes)"), kind
      expect(kv("grown_short_#{lv}_unchanged")).to eq("yes"), kind
    end
    expect(kv("grown_from_rc")).to eq("1"), err_of("grown_from")
    expect(err_of("grown_from")).to eq(
      "lvmsync: vgt/tg2 is 12.0 MiB but vgt/tg1 records changes only in its first 8.0 MiB: vgt/tg grew after " \
      "vgt/tg1 was taken, and a --from round's destination check has no older bytes to compare in the last " \
      "4.0 MiB; on a destination of at least 12.0 MiB, send vgt/tg1's own round instead (lvmsync vgt/tg1 " \
      "DESTINATION, which sends that part whole, read from vgt/tg), or copy the volume whole (a new snapshot " \
      "sent with --full)\n"
    )
    expect(kv("grown_from_unchanged")).to eq("yes")
    # What the refusal says to do instead: tg1's own round onto the same destination.
    expect(kv("grown_own_rc")).to eq("0"), err_of("grown_own")
    expect(kv("grown_own_sum")).to eq(kv("grown_tg_origin_sum"))
  end

  it "--verify catches a destination that silently drops writes (dm-flakey)" do
    expect(kv("flaky_rc")).to eq("1")
    expect(err_of("flaky")).to match(/verify FAILED: \d+ of \d+ ranges of \/dev\/mapper\/flaky do not match the source: bytes \d+\.\.\d+ \(differs\)/)
    expect(kv("flaky_unchanged")).to eq("yes")
  end
end
