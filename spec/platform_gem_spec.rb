# frozen_string_literal: true

require "rubygems/package"
require_relative "support/installed_gem"

# The platform gem as a user on a monitored host gets it: built by `rake native:gem`, then
# installed with a clean GEM_HOME, a HOME without ~/.cargo, and a PATH on which cargo, rustc,
# clang, cc and make are decoys that leave a mark if anything calls them. It must install
# and run without building anything.
RSpec.describe "the platform gem (rake native:gem)", :tmpdir do
  platform = Gem::Platform.local.to_s
  let(:gem_file) { File.join(SpecHelpers::ROOT, "pkg", "ironshed-#{Ironshed::VERSION}-#{platform}.gem") }

  before(:all) do
    out, err, st = Open3.capture3("rake", "native:gem", chdir: SpecHelpers::ROOT)
    raise "rake native:gem failed: #{out}#{err}" unless st.success?
  end

  it "holds the compiled, stripped extension, for this Ruby's ABI, and no Rust sources" do
    pkg = Gem::Package.new(gem_file)
    spec = pkg.spec
    expect(spec.platform.to_s).to eq(platform)
    expect(spec.extensions).to eq([])
    expect(spec.required_ruby_version).to eq(Gem::Requirement.new("~> #{RbConfig::CONFIG['ruby_version']}"))
    expect(spec.required_ruby_version.satisfied_by?(Gem::Version.new(RUBY_VERSION))).to be(true)
    expect(spec.required_ruby_version.satisfied_by?(Gem::Version.new("3.9.0"))).to be(false)
    files = pkg.contents
    expect(files).to include("lib/ironshed/ironshed.so", "LICENSE", "CHANGELOG.md", "README.md",
                             "man/vmdksync.1", "man/lvmsync.1", "man/check_interface.1",
                             "man/rootzone.1", "man/check_rootzone.1",
                             "exe/vmdksync", "exe/lvmsync", "exe/check_interface", "exe/rootzone",
                             "exe/check_rootzone")
    expect(files.grep(%r{\Aext/|\ACargo|\.rs\z})).to eq([])

    Dir.chdir(@dir) { pkg.extract_files("x") }
    so = File.join(@dir, "x", "lib", "ironshed", "ironshed.so")
    sections, = Open3.capture2("readelf", "-S", "-W", so)
    expect(sections).not_to match(/\.symtab|\.debug_/) # stripped
    dynsym, = Open3.capture2("readelf", "--dyn-syms", "-W", so)
    expect(dynsym).to match(/\bInit_ironshed\b/)
    # Built with cargo's release profile: the same code as target/release, minus symbols.
    expect(File.size(so)).to be < File.size(File.join(SpecHelpers::ROOT, "target", "release", "libironshed.so"))
    # The C library versions it needs, as the install documentation states them.
    versions, = Open3.capture2("objdump", "-T", so)
    newest = versions.scan(/GLIBC_([\d.]+)/).flatten.max_by { |v| Gem::Version.new(v) }
    expect(newest).to eq("2.34")
  end

  it "installs without any compiler and runs vmdksync, lvmsync and check_interface" do
    tools = File.join(@dir, "tools")
    FileUtils.mkdir_p(tools)
    marker = File.join(@dir, "a-compiler-was-called")
    %w[cargo rustc rustup clang cc gcc make ld].each do |t|
      File.write(File.join(tools, t), "#!/bin/sh\necho \"#{t} $*\" >> '#{marker}'\nexit 1\n")
      File.chmod(0o755, File.join(tools, t))
    end
    File.symlink(RbConfig.ruby, File.join(tools, "ruby"))
    File.symlink("/usr/bin/gem", File.join(tools, "gem"))
    home = File.join(@dir, "home")
    gems = File.join(@dir, "gems")
    FileUtils.mkdir_p(home)
    env = { "PATH" => tools, "HOME" => home, "GEM_HOME" => gems, "GEM_PATH" => gems, "CARGO" => nil,
            "RUSTC" => nil, "CARGO_HOME" => nil, "RUSTUP_HOME" => nil, "RUBYOPT" => nil, "RUBYLIB" => nil,
            "BUNDLE_GEMFILE" => nil, "BUNDLER_SETUP" => nil }
    out, err, st = Open3.capture3(env, "gem", "install", "--local", "--no-document", gem_file, chdir: @dir)
    expect(st.success?).to be(true), out + err
    expect(out + err).not_to include("Building native extensions")
    expect(File.exist?(marker)).to be(false), -> { File.read(marker) }
    installed = File.join(gems, "gems", "ironshed-#{Ironshed::VERSION}-#{platform}")
    expect(Dir.exist?(installed)).to be(true)
    expect(Dir[File.join(installed, "man", "*.1")].map { |f| File.basename(f) })
      .to match_array(%w[vmdksync.1 lvmsync.1 check_interface.1 rootzone.1 check_rootzone.1])
    expect(File.read(File.join(installed, "LICENSE"))).to start_with("MIT License")

    expect_installed_tools_work(env, File.join(gems, "bin"))

    # The library is loaded from the installed gem, not the checkout.
    script = 'require "rethtool"; print $LOADED_FEATURES.grep(/ironshed\.so/).first, " ", Rethtool::LinkStatus.new("lo").up?'
    out, err, st = Open3.capture3(env, RbConfig.ruby, "-e", script, chdir: @dir)
    expect(st.success?).to be(true), err
    expect(out).to eq("#{installed}/lib/ironshed/ironshed.so true")
    expect(File.exist?(marker)).to be(false)

    # The man pages, found as the README says: man "$(gem contents ironshed | grep /man/vmdksync.1)".
    out, err, st = Open3.capture3(env, "gem", "contents", "ironshed", chdir: @dir)
    expect(st.success?).to be(true), err
    page = out.lines.map(&:chomp).grep(%r{/man/vmdksync\.1\z})
    expect(page).to eq(["#{installed}/man/vmdksync.1"])
    out, err, st = Open3.capture3({ "MANWIDTH" => "80" }, "man", page.first)
    expect(st.success?).to be(true), err
    expect(out).to start_with("VMDKSYNC(1)")
  end
end
