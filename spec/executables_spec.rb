# frozen_string_literal: true

# Every executable starts without RubyGems (nothing in the gem needs it, and it costs about
# 40 ms per start): run as shipped, a probe loaded before the script reports at exit whether
# RubyGems was ever loaded. Installed as a gem, RubyGems' own wrapper runs them instead.
executables = %w[vmdksync lvmsync check_interface rootzone check_rootzone].freeze

RSpec.describe "the executables", :tmpdir do
  it "are all covered here" do
    expect(Dir[File.join(SpecHelpers::ROOT, "exe", "*")].map { |f| File.basename(f) }.sort).to eq(executables.sort)
  end

  executables.each do |name|
    it "#{name} starts without RubyGems, and works" do
      probe = File.join(@dir, "probe.rb")
      File.write(probe, "at_exit { $stderr.puts \"rubygems: \#{defined?(Gem) ? 'loaded' : 'not loaded'}\" }\n")
      env = { "RUBYOPT" => "-r#{probe}", "RUBYLIB" => nil, "BUNDLE_GEMFILE" => nil, "BUNDLE_BIN_PATH" => nil }
      # The plugins answer --version with UNKNOWN (3), as the Monitoring Plugins do.
      code = name.start_with?("check_") ? 3 : 0
      # Ruby honours the flags of the script's #! line also when given the script to run.
      out, err, st = Open3.capture3(env, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", name), "--version")
      expect([st.exitstatus, out, err]).to eq([code, "#{name} (ironshed) #{Ironshed::VERSION}\n", "rubygems: not loaded\n"])
      # The probe can tell: the same executable with RubyGems loaded first reports it.
      _out, err, st = Open3.capture3(env, RbConfig.ruby, "-rrubygems", File.join(SpecHelpers::ROOT, "exe", name),
                                     "--version")
      expect([st.exitstatus, err]).to eq([code, "rubygems: loaded\n"])
    end
  end
end
