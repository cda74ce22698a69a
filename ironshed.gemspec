# frozen_string_literal: true

require_relative "lib/ironshed/version"

Gem::Specification.new do |s|
  s.name = "ironshed"
  s.version = Ironshed::VERSION
  s.summary = "vmdksync, lvmsync and rethtool with a native Rust core"
  s.description = <<~TEXT
    Apply VMware snapshot deltas onto raw disks (vmdksync), move changed LVM snapshot chunks
    between machines (lvmsync), and query NICs through SIOCETHTOOL (rethtool), with the
    hot loops in Rust.
  TEXT
  s.authors = ["ironshed developers"]
  s.license = "MIT"
  s.required_ruby_version = ">= 3.0"
  s.homepage = "https://example.invalid/ironshed"

  s.files = Dir[
    "README.md", "BENCHMARKS.md", "LICENSE", "Cargo.toml", "Cargo.lock",
    "lib/**/*.rb", "exe/*",
    "ext/ironshed/extconf.rb", "ext/*/Cargo.toml", "ext/*/src/**/*.rs"
  ]
  s.bindir = "exe"
  s.executables = %w[vmdksync lvmsync check_interface]
  s.require_paths = ["lib"]
  s.extensions = ["ext/ironshed/extconf.rb"]
end
