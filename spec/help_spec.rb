# frozen_string_literal: true

# Every executable's --help, as a terminal shows it: 80 columns at most.
RSpec.describe "--help of the executables" do
  # Exit status of --help: 0, or 3 for the monitoring plugins (as their guidelines ask).
  statuses = { "vmdksync" => 0, "lvmsync" => 0, "check_interface" => 3, "rootzone" => 0, "check_rootzone" => 3 }

  it "is checked for every executable the gem installs" do
    expect(Dir[File.join(SpecHelpers::ROOT, "exe", "*")].map { |f| File.basename(f) }).to match_array(statuses.keys)
  end

  statuses.each do |exe, status|
    it "#{exe} --help fits 80 columns" do
      out, err, st = run_exe(exe, "--help")
      expect([st.exitstatus, err]).to eq([status, ""])
      expect(out.lines.size).to be > 20
      expect(out.lines.map(&:chomp).reject { |l| l.length <= 80 }).to eq([])
    end
  end
end
