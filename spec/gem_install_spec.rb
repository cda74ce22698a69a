# frozen_string_literal: true

require "rubygems/package"
require_relative "support/installed_gem"

# The gem as a user gets it: `gem build`, then `gem install --local` with cargo offline, then
# the library and the executables used from outside the checkout.
RSpec.describe "the ironshed gem", :tmpdir do
  it "builds, installs offline, and works from outside the checkout" do
    Dir.chdir(SpecHelpers::ROOT) do
      out, err, st = Open3.capture3("gem", "build", "ironshed.gemspec", "--output", File.join(@dir, "ironshed.gem"))
      expect(st.success?).to be(true), out + err
      # No warning (such as a listed file that does not exist) but the one about the homepage,
      # which the gem leaves out on purpose.
      expect(err.lines.grep(/WARNING/).grep_v(/no homepage specified|See https:/)).to eq([])
    end
    pkg = Gem::Package.new(File.join(@dir, "ironshed.gem"))
    expect(pkg.contents).to include("LICENSE", "CHANGELOG.md", "man/vmdksync.1", "man/lvmsync.1",
                                    "man/check_interface.1", "docs/vmdksync.md", "ext/ironshed/extconf.rb")
    expect(pkg.spec.license).to eq("MIT")
    expect(File.read(File.join(SpecHelpers::ROOT, "LICENSE"))).to start_with("MIT License\n\nCopyright (c)")
    # No invented project links: there is no public home yet.
    expect([pkg.spec.homepage, pkg.spec.metadata]).to eq([nil, {}])
    home = File.join(@dir, "gems")
    env = { "GEM_HOME" => home, "GEM_PATH" => home, "CARGO_NET_OFFLINE" => "true", "RUBYOPT" => nil,
            "RUBYLIB" => nil, "BUNDLE_GEMFILE" => nil }
    out, err, st = Open3.capture3(env, "gem", "install", "--local", "--no-document", File.join(@dir, "ironshed.gem"))
    expect(st.success?).to be(true), out + err

    installed = Dir[File.join(home, "gems", "ironshed-*")].first
    expect(Dir[File.join(installed, "**", "cargo-target")]).to be_empty # no build output shipped

    expect_installed_tools_work(env, File.join(home, "bin"))

    script = 'require "vmdksync"; d = VMDKSync::Delta.open("vm-000001.vmdk"); ' \
             'print $LOADED_FEATURES.grep(/ironshed\.so/).first, " ", d.changed_bytes'
    out, err, st = Open3.capture3(env, RbConfig.ruby, "-e", script, chdir: @dir)
    expect(st.success?).to be(true), err
    so, bytes = out.split
    expect(so).to start_with(home)
    expect(bytes).to eq("4096")

    # The LVM:: and Rethtool APIs from the installed gem.
    script = 'require "lvm"; print LVM::VGConfig.parse(%q(vg { id = "x" }), source: "t").uuid'
    out, err, st = Open3.capture3(env, RbConfig.ruby, "-e", script, chdir: @dir)
    expect([st.success?, out]).to eq([true, "x"]), err
    out, err, st = Open3.capture3(env, RbConfig.ruby, "-e", 'require "rethtool"; print Rethtool::LinkStatus.new("lo").up?',
                                  chdir: @dir)
    expect([st.success?, out]).to eq([true, "true"]), err
  end
end

RSpec.describe "ext/ironshed/extconf.rb", :tmpdir do
  it "stops with a clear message on a host that is not Linux, writing no Makefile" do
    extconf = File.join(SpecHelpers::ROOT, "ext", "ironshed", "extconf.rb")
    out, err, st = Open3.capture3(RbConfig.ruby, "-rrbconfig", "-e",
                                  'RbConfig::CONFIG["host_os"] = "darwin22"; load ARGV[0]', extconf, chdir: @dir)
    expect([st.exitstatus, out]).to eq([1, ""])
    expect(err).to eq("ironshed: this gem runs on Linux only (this Ruby is built for darwin22): its tools use " \
                      "Linux interfaces (SIOCETHTOOL, device-mapper, BLKDISCARD, splice).\n")
    expect(Dir.children(@dir)).to eq([])
  end
end
