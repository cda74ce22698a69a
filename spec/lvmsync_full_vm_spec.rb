# frozen_string_literal: true

require_relative "support/guest_script"

# lvmsync --full on a real kernel: real thin pools, thin_dump on a real reserved metadata
# snapshot, a real classic snapshot, ssh; one boot of the QEMU guest (spec/guest/lvmsync_full.sh
# does the work and prints KEY=VALUE lines).
RSpec.describe "lvmsync --full on real thin pools", :vm do
  include GuestScript
  run_guest_script "lvmsync_full.sh", timeout: 1500

  SECTORS = 65_536 / 512

  it "ran every step in the guest" do
    expect(@status.exitstatus).to eq(0), "stdout:\n#{@log}\nstderr:\n#{@err}"
    expect(@log).to end_with("DONE\n")
  end

  it "a sparse thin snapshot onto a fresh thin LV: the same content, and about what the source maps" do
    expect(kv("full_rc")).to eq("0"), err_of("full")
    expect(kv("full_sum")).to eq(kv("s1_sum"))
    # 100 of 1024 blocks were written: the snapshot maps them, and so does the copy, no more.
    expect(kv("s1_mapped").to_i).to eq(100 * SECTORS)
    expect(kv("full_mapped").to_i).to eq(kv("s1_mapped").to_i)
    # The destination's pool (holding only the copy) is about as full as the source's.
    expect(kv("pool2_before").to_f).to eq(0.0)
    expect(kv("pool2_data_percent").to_f).to be_within(1.0).of(kv("pool_data_percent").to_f)
    expect(kv("pool2_data_percent").to_f).to be < 10
    expect(err_of("full")).to include("thin_dump -m --dev-id", "100 blocks mapped", "metadata snapshot released")
    expect(err_of("full")).to match(/sent 6\.2 MiB in \d+ records and 57\.8 MiB as \d+ discard records/)
    expect(kv("held_after_full")).to eq("-")
  end

  it "a --from round after it brings the copy to the next snapshot, still sparse" do
    expect(kv("round_rc")).to eq("0"), err_of("round")
    expect(kv("s2_sum")).not_to eq(kv("s1_sum"))
    expect(kv("round_sum")).to eq(kv("s2_sum"))
    expect(kv("round_mapped").to_i).to eq(kv("s2_mapped").to_i)
  end

  it "over ssh with --verify, and through --stdout | --apply -" do
    expect(kv("remote_rc")).to eq("0"), err_of("remote")
    expect(kv("remote_sum")).to eq(kv("s1_sum"))
    expect(kv("remote_mapped")).to eq(kv("s1_mapped"))
    expect(err_of("remote")).to match(/verify: all \d+ ranges read back from root@127\.0\.0\.1:\/dev\/vgt\/dst2 match/)
    expect(err_of("remote")).to include("remote: lvmsync: discarded")
    expect(kv("pipe_rc")).to eq("0 0"), err_of("pipe_send") + err_of("pipe")
    expect(kv("pipe_sum")).to eq(kv("s1_sum"))
    expect(kv("pipe_mapped")).to eq(kv("s1_mapped"))
  end

  it "--snapback: the copy, then the snapback file restores the destination's previous content" do
    expect(kv("snapback_rc")).to eq("0"), err_of("snapback")
    expect(kv("snapback_sum")).to eq(kv("s1_sum"))
    expect(kv("undo_rc")).to eq("0"), err_of("undo")
    expect(kv("undo_sum")).to eq(kv("dst4_before"))
  end

  it "a classic snapshot and a plain LV, mostly zeros: the zeros go as discards, the thin copy stays small" do
    expect(kv("classic_rc")).to eq("0"), err_of("classic")
    expect(kv("classic_sum")).to eq(kv("lin_sum"))
    expect(kv("classic_mapped").to_i).to eq(50 * SECTORS)
    expect(err_of("classic")).to include("for its all-zero parts")
    expect(kv("plainlv_rc")).to eq("0"), err_of("plainlv")
    expect(kv("plainlv_sum")).to eq(kv("lin_sum"))
    expect(kv("plainlv_mapped").to_i).to eq(50 * SECTORS)
    expect(err_of("plainlv")).to include("is no snapshot: nothing may write to it")
  end
end
