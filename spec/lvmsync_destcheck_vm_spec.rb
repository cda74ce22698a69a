# frozen_string_literal: true

require_relative "support/guest_script"

# The destination check of --from rounds on a real kernel: real thin and classic snapshots,
# thin_delta, LVs and files as destinations, ssh on 127.0.0.1; one boot of the QEMU guest
# (spec/guest/lvmsync_destcheck.sh does the work and prints KEY=VALUE lines).
RSpec.describe "lvmsync --from's destination check on real snapshots", :vm do
  include GuestScript
  run_guest_script "lvmsync_destcheck.sh", timeout: 1500

  # The line a refused round prints: the first ranges that differ, nothing written.
  def refused(name, ranges, total)
    expect(kv("#{name}_rc")).to eq("1"), err_of(name)
    expect(err_of(name)).to include("the destination does not hold what this round starts from: " \
                                    "#{ranges.size} of the #{total} ranges it changes hold neither the older " \
                                    "snapshot's data nor the newer one's: #{ranges.join(', ')}; nothing was written")
    expect(kv("#{name}_unchanged")).to eq("yes"), @log
  end

  THIN = ["bytes 1048576..1114111", "bytes 5242880..5308415", "bytes 12582912..12648447"].freeze
  CLASSIC = ["bytes 2097152..2101247", "bytes 9445376..9449471"].freeze

  it "ran every step in the guest" do
    expect(@status.exitstatus).to eq(0), "stdout:\n#{@log}\nstderr:\n#{@err}"
    expect(@log).to end_with("DONE\n")
  end

  it "thin: a round onto the LV holding OLDER proceeds, checked, and leaves NEWER" do
    expect(kv("dst_sum")).to eq(kv("s1_sum"))
    expect(kv("s2_sum")).not_to eq(kv("s1_sum"))
    expect(kv("thin_ok_rc")).to eq("0"), err_of("thin_ok")
    expect(kv("thin_ok_sum")).to eq(kv("s2_sum"))
    expect(err_of("thin_ok")).to include("destination check: 3 ranges of /dev/vgd/dst hold what the round starts from")
  end

  it "thin: a round onto an LV or a file holding something else is refused, exit 1, unchanged" do
    refused("thin_lv", THIN, 3)
    refused("thin_file", THIN, 3)
    expect(kv("thin_file_snapback")).to eq("no")
  end

  it "thin: --no-destination-check sends the round unchecked" do
    expect(kv("thin_nocheck_rc")).to eq("0"), err_of("thin_nocheck")
    expect(kv("thin_nocheck_unchanged")).to eq("no")
  end

  it "over ssh: the receiver checks its own destination" do
    expect(kv("ssh_ok_rc")).to eq("0"), err_of("ssh_ok")
    expect(kv("ssh_ok_sum")).to eq(kv("s2_sum"))
    refused("ssh_wrong", THIN, 3)
    expect(err_of("ssh_wrong")).to include("lvmsync: apply on root@127.0.0.1 failed (exit status 1): /dev/vgd/wrong: " \
                                           "the destination does not hold")
  end

  it "--stdout, then --apply: refused onto the wrong LV, applied onto the copy of OLDER" do
    expect(kv("stdout_rc")).to eq("0"), err_of("stdout")
    refused("apply_wrong", THIN, 3)
    expect(kv("apply_ok_rc")).to eq("0"), err_of("apply_ok")
    expect(kv("apply_ok_sum")).to eq(kv("s2_sum"))
  end

  it "classic: proceeds onto the LV holding OLDER; refused onto an LV, a file and over ssh holding something else" do
    expect(kv("cdst_sum")).to eq(kv("c1_sum"))
    expect(kv("classic_ok_rc")).to eq("0"), err_of("classic_ok")
    expect(kv("classic_ok_sum")).to eq(kv("c2_sum"))
    expect(err_of("classic_ok")).to include("destination check: 2 ranges of /dev/vgd/cdst hold what the round")
    refused("classic_lv", CLASSIC, 2)
    refused("classic_file", CLASSIC, 2)
    refused("classic_ssh", CLASSIC, 2)
  end
end
