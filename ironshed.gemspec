# frozen_string_literal: true

require_relative "lib/ironshed/version"

# The project's public repository. There is none yet, so the gem names no homepage and no
# project links rather than invented ones; setting this one URL fills all of them.
repository = nil

Gem::Specification.new do |s|
  s.name = "ironshed"
  s.version = Ironshed::VERSION
  s.summary = "vmdksync, lvmsync, rethtool, check_interface and rootzone with a native Rust core"
  s.description = <<~TEXT
    Apply VMware snapshot deltas onto raw disks (vmdksync), move changed LVM snapshot chunks
    between machines (lvmsync), query NICs through SIOCETHTOOL (rethtool, and the
    check_interface monitoring plugin), and keep a verified local copy of the DNS root zone
    for djbdns (rootzone, and the check_rootzone plugin), with the hot loops in Rust.
  TEXT
  s.authors = ["ironshed developers"]
  s.license = "MIT"
  s.required_ruby_version = ">= 3.0"
  if repository
    s.homepage = repository
    s.metadata = {
      "source_code_uri" => repository,
      "changelog_uri" => "#{repository}/blob/main/CHANGELOG.md",
      "bug_tracker_uri" => "#{repository}/issues"
    }
  end

  s.files = Dir[
    "README.md", "BENCHMARKS.md", "CHANGELOG.md", "LICENSE", "Cargo.toml", "Cargo.lock",
    "docs/*.md", "man/*.1", "lib/**/*.rb", "exe/*",
    "ext/ironshed/extconf.rb", "ext/*/Cargo.toml", "ext/*/src/**/*.rs"
  ]
  s.bindir = "exe"
  s.executables = %w[vmdksync lvmsync check_interface rootzone check_rootzone]
  s.require_paths = ["lib"]
  s.extensions = ["ext/ironshed/extconf.rb"]
end
