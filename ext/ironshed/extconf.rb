# frozen_string_literal: true

# Writes a Makefile that builds the native extension with cargo. Used by `gem install`;
# in a checkout, `rake compile` builds directly.
#
# Notes: RubyGems moves sitearchdir through a siteconf file, so the install directory is
# taken from RbConfig now; cargo output goes to a target directory inside the build
# directory and is deleted after install, so it never lands in the installed gem.
require "rbconfig"

# The tools are Linux's own (SIOCETHTOOL, device-mapper, BLKDISCARD, splice): say so here
# rather than fail later in cargo or cp.
host_os = RbConfig::CONFIG["host_os"]
unless host_os.include?("linux")
  abort "ironshed: this gem runs on Linux only (this Ruby is built for #{host_os}): its tools " \
        "use Linux interfaces (SIOCETHTOOL, device-mapper, BLKDISCARD, splice)."
end

def find_cargo
  return ENV["CARGO"] if ENV["CARGO"] && !ENV["CARGO"].empty?

  ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).each do |dir|
    path = File.join(dir, "cargo")
    return path if File.executable?(path)
  end
  home = File.join(Dir.home, ".cargo", "bin", "cargo")
  return home if File.executable?(home)

  abort "ironshed: cargo not found. Install Rust (https://rustup.rs) or set CARGO=/path/to/cargo."
end

cargo = find_cargo
manifest = File.expand_path("Cargo.toml", __dir__)
target = File.expand_path("cargo-target", Dir.pwd)
sitearchdir = RbConfig::CONFIG["sitearchdir"]
dlext = RbConfig::CONFIG["DLEXT"]

File.write("Makefile", <<~MAKE)
  CARGO = #{cargo}
  MANIFEST = #{manifest}
  TARGET = #{target}
  sitearchdir = #{sitearchdir}
  SO = ironshed.#{dlext}

  all: $(SO)

  $(SO):
  \t$(CARGO) build --release --locked --manifest-path "$(MANIFEST)" --target-dir "$(TARGET)" -p ironshed
  \tcp "$(TARGET)/release/libironshed.so" $(SO)

  install: $(SO)
  \tmkdir -p "$(DESTDIR)$(sitearchdir)/ironshed"
  \tcp $(SO) "$(DESTDIR)$(sitearchdir)/ironshed/$(SO)"
  \trm -rf "$(TARGET)"

  clean:
  \trm -rf "$(TARGET)" $(SO)

  .PHONY: all install clean
MAKE
