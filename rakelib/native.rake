# frozen_string_literal: true

require "rbconfig"
require "rubygems/package"

# The platform gem: the compiled extension inside, so that installing it needs no Rust, no
# libclang and no network. It holds the extension built here (release profile, symbols
# stripped) for this machine's platform and for the Ruby ABI it was built against, which
# required_ruby_version states.
namespace :native do
  platform = Gem::Platform.local.to_s # "x86_64-linux"
  ruby_abi = RbConfig::CONFIG["ruby_version"] # "3.1.0": extensions are built per minor version

  desc "Build pkg/ironshed-VERSION-#{platform}.gem with the compiled extension (installs without Rust)"
  task :gem do
    sh(*CARGO_BUILD, "-p", "ironshed")
    spec = Gem::Specification.load("ironshed.gemspec")
    stage = "tmp/native/#{platform}"
    rm_rf stage
    files = spec.files.reject { |f| f.start_with?("ext/") || f.start_with?("Cargo.") }
    files.each do |f|
      mkdir_p File.join(stage, File.dirname(f)), verbose: false
      cp f, File.join(stage, f), verbose: false, preserve: true
    end
    so = "lib/ironshed/ironshed.#{RbConfig::CONFIG['DLEXT']}"
    mkdir_p File.join(stage, "lib/ironshed")
    cp "target/release/libironshed.so", File.join(stage, so)
    # Release builds keep the symbol table (strip = "debuginfo"); the shipped file needs
    # only the dynamic symbols (Init_ironshed).
    sh "strip", "--strip-unneeded", File.join(stage, so)

    spec.platform = platform
    spec.files = files + [so]
    spec.extensions = []
    spec.required_ruby_version = "~> #{ruby_abi}"
    mkdir_p "pkg"
    gem = File.expand_path("pkg/#{spec.file_name}")
    Dir.chdir(stage) { mv Gem::Package.build(spec), gem }
    puts "built #{gem} (Ruby #{spec.required_ruby_version}, #{platform})"
  end
end
