# frozen_string_literal: true

require "lvmsync"
require "rethtool"
require_relative "rethtool_helper"

# The contract of the Ruby <-> native boundary a user relies on: the exception classes
# (defined once in lib/ironshed/errors.rb and looked up when the extension loads), and
# keyword options checked against one list.
RSpec.describe "the Ruby boundary", :tmpdir do
  ERRORS_RB = File.expand_path("../lib/ironshed/errors.rb", __dir__)

  def path(name)
    File.join(@dir, name)
  end

  describe "exceptions" do
    it "keep the original gems' ancestry" do
      expect(Ironshed::Error.superclass).to eq(RuntimeError)
      # The original lvmsync raised RuntimeError: a `rescue RuntimeError` still catches these.
      [LVM::Error, LVM::MetadataError, LVM::ThinDeltaError, LVMSync::ProtocolError, VMDKSync::FormatError,
       Rethtool::InvalidInterfaceName].each do |c|
        expect(c.ancestors).to include(Ironshed::Error, RuntimeError)
      end
      expect(Rethtool.instance_of?(Class)).to be(true)
    end

    it "have one class for an existing undo file, under each tool's old name" do
      expect(VMDKSync::UndoError).to equal(Ironshed::UndoError)
      expect(LVMSync::SnapbackError).to equal(Ironshed::UndoError)
      File.binwrite(path("stream"), "lvmsync PROTO[3]\n")
      File.binwrite(path("dest"), "\0" * 4096)
      File.binwrite(path("sb"), "x" * 16)
      expect { LVMSync.apply(path("stream"), path("dest"), snapback: path("sb")) }
        .to raise_error(LVMSync::SnapbackError, /snapback file exists and is not empty \(16 bytes\)/)
    end

    it "are each defined in errors.rb with a one-line comment" do
      lines = File.readlines(ERRORS_RB, chomp: true)
      defs = lines.each_index.select { |i| lines[i] =~ /^\s*(class \w+ < [\w:]+; end|[A-Z]\w* = [\w:]+)$/ }
      expect(defs.size).to eq(36)
      defs.each { |i| expect(lines[i - 1]).to match(/^\s*# \S/), lines[i] }
      names = defs.map { |i| lines[i][/(?:class )?(\w+)/, 1] }
      expect(names).to include("Error", "UndoError", "SnapbackError", "RemoteError", "VerifyError", "KernelReplyError",
                               "VerificationError", "SignatureExpired", "RollbackError")
    end

    it "a wrapped type's class is looked up when the extension loads, not at its first use" do
      # magnus looks the class up on first use and panics if that raises: a Ctrl-C landing in
      # the first Ironshed::Progress.new of a run would be a fatal panic, not an Interrupt.
      # With the constant gone after loading, a first use still works only if the class was
      # looked up at load.
      script = <<~RUBY
        require "vmdksync"
        klass = Ironshed::Progress
        Ironshed.send(:remove_const, :Progress)
        puts klass.new.done
      RUBY
      out, err, st = Open3.capture3(RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", script)
      expect([out, st.success?]).to eq(["0\n", true]), err
      # Every wrapped type of the binding is in the list resolved at load.
      src = File.expand_path("../ext/ironshed/src", __dir__)
      wrapped = Dir[File.join(src, "*.rs")].flat_map do |f|
        File.read(f).scan(/#\[magnus::wrap\(class = "[^"]+"[^\]]*\]\s*pub struct (\w+)/).flatten
      end
      expect(wrapped.size).to eq(15)
      listed = File.read(File.join(src, "lib.rs"))[/fn resolve_wrapped_classes.*?\n}/m].scan(/::(Rb\w+)::class/).flatten
      expect(listed.sort).to eq(wrapped.sort)
    end

    it "must all be defined before the extension loads: a missing one fails the require" do
      script = <<~RUBY
        require "ironshed/errors"
        LVM.send(:remove_const, :ThinDeltaError)
        begin
          require "ironshed/ironshed"
        rescue NameError => e
          puts e.message
        end
      RUBY
      out, err, st = Open3.capture3(RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", script)
      expect([err, st.success?]).to eq(["", true])
      expect(out).to match(/uninitialized constant LVM::ThinDeltaError/)
    end

    it "are SystemCallError for failed system calls, naming the file and the operation" do
      File.binwrite(path("dest"), "\0" * 4096)
      expect { LVMSync.apply(path("missing"), path("dest")) }
        .to raise_error(Errno::ENOENT, "No such file or directory - #{path('missing')}: open")
    end
  end

  describe "keyword options" do
    before do
      esx_set(@dir, capacity: "1M", grain_size: 8, writes: %w[0:4K])
      FileUtils.cp(path("vm-flat.vmdk"), path("dest"))
    end

    it "unknown keywords raise ArgumentError naming them, before anything is done" do
      before = File.binread(path("dest"))
      expect { VMDKSync::Delta.open(path("vm-000001.vmdk"), bogus: 1) }
        .to raise_error(ArgumentError, /unknown keyword: :bogus/)
      expect { VMDKSync.apply(path("vm-000001.vmdk"), path("dest"), allow_uncleen: true) }
        .to raise_error(ArgumentError, /unknown keyword: :allow_uncleen/)
      expect(File.binread(path("dest")) == before).to be(true)
      store = path("vm-000001.vmdk") # any path: the keyword is refused first
      expect { LVMSync.apply(store, path("dest"), snapbak: path("sb")) }
        .to raise_error(ArgumentError, /unknown keyword: :snapbak/)
      expect { LVM::ThinDelta.run(path("meta"), 1, 2, thin_deltas: "x") }
        .to raise_error(ArgumentError, /unknown keyword: :thin_deltas/)
      expect(File.exist?(path("sb"))).to be(false)
    end

    it "keep their types and defaults: truthy flags, paths from to_path, wrong types named" do
      require "pathname"
      r = VMDKSync.apply(Pathname(path("vm-000001.vmdk")), path("dest"), allow_unclean: 1, base: Pathname(path("vm.vmdk")))
      expect([r.bytes, r.dry_run]).to eq([4096, false])
      expect { VMDKSync::Delta.open(path("vm-000001.vmdk"), base: 5) }.to raise_error(TypeError, /\Abase: /)
      expect(VMDKSync::Delta::OPEN_OPTIONS).to eq(%i[base allow_unclean check_redundant no_parent_check full inflate_once])
    end

    it "ring and channel fields outside the settable list raise ArgumentError before any ioctl" do
      with_veth do |bed|
        Rethtool::Handle.open(bed.ns) do |h|
          expect { h.set_rings(bed.a, rx_max_pending: 1) }
            .to raise_error(ArgumentError, "cannot set rx_max_pending (settable: rx_pending, rx_mini_pending, " \
                                           "rx_jumbo_pending, tx_pending)")
          expect { h.set_channels(bed.a, max_rx: 1) }.to raise_error(ArgumentError, /\Acannot set max_rx /)
          # A settable field goes to the kernel, which has no rings on a veth.
          expect { h.set_rings(bed.a, rx_pending: 1) }.to raise_error(Errno::EOPNOTSUPP, /get ring parameters/)
        end
      end
      expect(Rethtool::RingSettings::SETTABLE).to eq(%i[rx_pending rx_mini_pending rx_jumbo_pending tx_pending])
      expect(Rethtool::Channels::FIELDS.size).to eq(8)
    end
  end
end
