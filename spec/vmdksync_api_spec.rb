# frozen_string_literal: true

# The Ruby API: VMDKSync::Delta, VMDKSync.apply, the error hierarchy, progress, and the
# native loop running without the GVL so that other threads run and Thread#kill / Ctrl-C
# interrupt it.
RSpec.describe VMDKSync, :tmpdir do
  def path(name)
    File.join(@dir, name)
  end

  before do
    esx_set(@dir, capacity: "8M", grain_size: 8, layout: "shuffled",
                  writes: %w[0:512 5K:3K 2M:64K 8388096:512])
    @dest = path("dest.raw")
    FileUtils.cp(path("vm-flat.vmdk"), @dest)
  end

  describe VMDKSync::Delta do
    it "describes a delta opened through its descriptor" do
      d = VMDKSync::Delta.open(path("vm-000001.vmdk"))
      expect(d.format).to eq(:cowd)
      expect(d.format_description).to eq("COWD (ESX vmfsSparse)")
      expect(d.capacity).to eq(8 << 20)
      expect(d.grain_size).to eq(4096)
      expect(d.grain_count).to eq(1 + 1 + 16 + 1)
      expect(d.changed_bytes).to eq(19 * 4096)
      expect(d.extents).to eq([[0, 8192], [2 << 20, 65_536], [(8 << 20) - 4096, 4096]])
      expect(d.ranges).to eq([0...8192, (2 << 20)...((2 << 20) + 65_536), ((8 << 20) - 4096)...(8 << 20)])
      expect(d.cid).to eq(0x1234abcd)
      expect(d.parent_cid).to eq(0x5a17b9ae)
      expect(d.parent_hint).to eq("vm.vmdk")
      expect(d.base_verified).to eq(path("vm.vmdk"))
      expect(d.base_note).to be_nil
      expect(d.unclean?).to be(false)
      expect(d.extent_path).to eq(path("vm-000001-delta.vmdk"))
      expect(d.inspect).to include("cowd", "grains=19")
    end

    it "opens a bare extent, saying the parent could not be checked" do
      d = VMDKSync::Delta.open(path("vm-000001-delta.vmdk"))
      expect([d.cid, d.parent_cid, d.base_verified]).to eq([nil, nil, nil])
      expect(d.base_note).to include("carries no parentCID")
      expect(d.changed_bytes).to eq(19 * 4096)
    end

    it "accepts Pathname arguments" do
      require "pathname"
      d = VMDKSync::Delta.open(Pathname(path("vm-000001.vmdk")), base: Pathname(path("vm.vmdk")))
      expect(d.apply_to(Pathname(@dest)).bytes).to eq(19 * 4096)
    end
  end

  describe ".apply" do
    it "writes the delta and reports what it did" do
      r = VMDKSync.apply(path("vm-000001.vmdk"), @dest)
      expect(r).to be_a(VMDKSync::Result)
      expect([r.grains, r.bytes, r.extents, r.writes, r.dry_run]).to eq([19, 19 * 4096, 3, 3, false])
      expect(r.seconds).to be >= 0
      expect(File.binread(@dest)).to eq(File.binread(qemu_raw(path("vm-000001.vmdk"), path("q.raw"))))
    end

    it "dry_run: true reports the same numbers and writes nothing" do
      before = sha(@dest)
      r = VMDKSync.apply(path("vm-000001.vmdk"), @dest, dry_run: true)
      expect([r.grains, r.bytes, r.extents, r.writes, r.dry_run]).to eq([19, 19 * 4096, 3, 0, true])
      expect(sha(@dest)).to eq(before)
    end

    it "calls progress with bytes done and total, ending at the total" do
      calls = []
      VMDKSync.apply(path("vm-000001.vmdk"), @dest, progress: ->(done, total) { calls << [done, total] })
      expect(calls.last).to eq([19 * 4096, 19 * 4096])
      expect(calls.map(&:first)).to eq(calls.map(&:first).sort)
    end
  end

  describe "errors" do
    it "raises FormatError for a damaged delta and leaves the destination alone" do
      poke_u32(path("vm-000001-delta.vmdk"), 16, 3)
      before = sha(@dest)
      expect { VMDKSync.apply(path("vm-000001.vmdk"), @dest) }
        .to raise_error(VMDKSync::FormatError, /vm-000001-delta\.vmdk: grainSize 3 at byte 16/)
      expect(sha(@dest)).to eq(before)
    end

    it "raises BaseMismatch for a wrong parent and a wrong-sized destination" do
      File.write(path("other.vmdk"), File.read(path("vm.vmdk")).sub("CID=5a17b9ae", "CID=00000001"))
      expect { VMDKSync::Delta.open(path("vm-000001.vmdk"), base: path("other.vmdk")) }
        .to raise_error(VMDKSync::BaseMismatch, /parentCID is 5a17b9ae but the base .* has CID 00000001/)
      File.truncate(@dest, 4096)
      expect { VMDKSync.apply(path("vm-000001.vmdk"), @dest) }
        .to raise_error(VMDKSync::BaseMismatch, /destination is 4096 bytes/)
    end

    it "raises UnsupportedFormat (a FormatError) for a kind it does not handle" do
      File.write(path("vm-000001.vmdk"), File.read(path("vm-000001.vmdk")).sub("vmfsSparse", "custom"))
      expect { VMDKSync::Delta.open(path("vm-000001.vmdk")) }
        .to raise_error(VMDKSync::UnsupportedFormat, /createType "custom" is not a delta/)
      expect(VMDKSync::UnsupportedFormat.ancestors).to include(VMDKSync::FormatError, VMDKSync::Error,
                                                              Ironshed::Error, StandardError)
    end

    it "raises Errno:: errors naming the file and the operation" do
      expect { VMDKSync::Delta.open(path("missing.vmdk")) }
        .to raise_error(Errno::ENOENT, /missing\.vmdk: open/)
      expect { VMDKSync.apply(path("vm-000001.vmdk"), path("missing.raw")) }
        .to raise_error(Errno::ENOENT, /missing\.raw: open for writing/)
    end

    it "raises DestinationError for something that is not a file or block device" do
      expect { VMDKSync.apply(path("vm-000001.vmdk"), "/dev/null") }
        .to raise_error(Ironshed::DestinationError, /not a regular file or block device \(a character device\)/)
    end
  end

  describe "long applies" do
    # 512 MiB of changes in 1 MiB grains: long enough to observe and interrupt.
    before do
      @big = File.join(@dir, "big")
      esx_set(@big, capacity: "512M", grain_size: 2048, writes: ["0:512M"])
      @big_dest = File.join(@big, "dest.raw")
      FileUtils.cp(File.join(@big, "vm-flat.vmdk"), @big_dest)
    end

    it "runs without the GVL (other threads run) and Thread#kill stops it between writes" do
      delta = VMDKSync::Delta.open(File.join(@big, "vm-000001.vmdk"))
      prog = Ironshed::Progress.new
      worker = Thread.new { delta._apply(@big_dest, prog) }
      # This thread watches the counters while the worker is inside the native loop: that is
      # only possible because the loop released the GVL.
      Thread.pass until prog.done.positive? || !worker.alive?
      worker.kill
      expect(worker.join(5)).not_to be_nil
      expect(prog.cancelled?).to be(true) # the unblock function ran
      expect(prog.done).to be < prog.total
      expect(prog.total).to eq(512 << 20)
    end

    it "reports progress from a helper thread while the apply runs" do
      seen = []
      VMDKSync.apply(File.join(@big, "vm-000001.vmdk"), @big_dest, progress: ->(d, t) { seen << [d, t] })
      expect(seen.last).to eq([512 << 20, 512 << 20])
      expect(seen.map(&:first)).to eq(seen.map(&:first).sort)
    end

    it "the executable stops on SIGINT with exit 130 and says how to finish" do
      Open3.popen3(RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "vmdksync"), "-v",
                   File.join(@big, "vm-000001.vmdk"), @big_dest) do |_i, _o, e, wait|
        buf = +""
        buf << e.readpartial(4096) until buf.include?("parent:")
        Process.kill("INT", wait.pid)
        rest = e.read
        expect(wait.value.exitstatus).to eq(130)
        # What the line says is what happened to the destination.
        if sha(@big_dest) == sha(File.join(@big, "vm-flat.vmdk"))
          expect(rest).to eq("vmdksync: interrupted; nothing was written to #{@big_dest}\n")
        else
          expect(rest).to match(/\Avmdksync: interrupted after \d+ bytes were written: #{Regexp.escape(@big_dest)} is partly updated; to finish, run the same command again: vmdksync -v /)
        end
      end
    end
  end
end
