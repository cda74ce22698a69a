# frozen_string_literal: true

# The vmdksync executable, run as a user runs it: results checked against qemu-img, every
# refusal checked for exit status 1 (2 for usage errors), a one-line reason naming the file,
# and an untouched destination.
RSpec.describe "vmdksync executable", :tmpdir do
  def set_up(**opts)
    defaults = { capacity: "4M", grain_size: 8, writes: %w[0:8K 1M:16K 3M:4K] }
    @layout = esx_set(@dir, **defaults.merge(opts))
    @dest = File.join(@dir, "dest.raw")
    FileUtils.cp(File.join(@dir, "vm-flat.vmdk"), @dest)
  end

  def path(name)
    File.join(@dir, name)
  end

  def expected
    @expected ||= File.binread(qemu_raw(path("vm-000001.vmdk"), path("qemu.raw")))
  end

  it "prints help and version" do
    out, _err, st = run_exe("vmdksync", "--help")
    expect(st.exitstatus).to eq(0)
    expect(out).to include("Usage: vmdksync [options] SNAPSHOT DESTINATION", "--dry-run", "--base")
    out, _err, st = run_exe("vmdksync", "--version")
    expect([st.exitstatus, out]).to eq([0, "vmdksync (ironshed) #{Ironshed::VERSION}\n"])
  end

  it "exits 2 with a usage message on wrong arguments, before opening anything" do
    set_up(grain_size: 1, random: "10:4K")
    before = sha(@dest)
    snap = path("vm-000001.vmdk")
    {
      ["only-one"] => "need SNAPSHOT and DESTINATION",
      [snap, @dest, "extra"] => "need SNAPSHOT and DESTINATION",
      ["--bogus", snap, @dest] => "invalid option: --bogus",
      ["--base"] => "missing argument: --base",
      ["-n", "--verify-only", snap, @dest] => "--dry-run and --verify-only exclude each other",
      ["--verify", "-n", snap, @dest] => "--verify checks an apply; with --dry-run nothing is applied",
      ["-v", "-q", snap, @dest] => "-v and -q exclude each other",
      ["--undo", path("u"), "--verify-only", snap, @dest] => "--undo writes an undo file while applying",
      # Option combinations are judged before the inputs: a missing snapshot is not opened.
      ["-n", "--verify-only", path("nope.vmdk"), @dest] => "--dry-run and --verify-only exclude each other"
    }.each do |args, msg|
      out, err, st = run_exe("vmdksync", *args)
      expect([st.exitstatus, out]).to eq([2, ""]), args.inspect
      expect(err.lines.size).to eq(2), err
      expect(err.lines.first).to start_with("vmdksync: ").and include(msg)
      expect(err.lines.last).to eq("Usage: vmdksync [options] SNAPSHOT DESTINATION (try --help)\n")
    end
    expect(sha(@dest)).to eq(before)
    expect(File.exist?(path("u"))).to be(false)
  end

  it "applies a delta named by its descriptor, as qemu-img reads it" do
    set_up(grain_size: 1, layout: "shuffled", random: "300:4K")
    out, err, st = run_exe("vmdksync", path("vm-000001.vmdk"), @dest)
    expect([st.exitstatus, out]).to eq([0, ""])
    expect(err).to match(/\Avmdksync: applied \d+ grains, .* to #{Regexp.escape(@dest)} in /)
    expect(File.binread(@dest)).to eq(expected)
  end

  it "applies a bare -delta.vmdk extent, as the original tool was used" do
    set_up(grain_size: 128, layout: "reverse")
    _out, _err, st = run_exe("vmdksync", "-q", path("vm-000001-delta.vmdk"), @dest)
    expect(st.exitstatus).to eq(0)
    expect(File.binread(@dest)).to eq(expected)
  end

  it "--verbose describes the delta and the parent check; -q prints nothing" do
    set_up
    _out, err, st = run_exe("vmdksync", "-v", path("vm-000001.vmdk"), @dest)
    expect(st.exitstatus).to eq(0)
    expect(err).to include("COWD (ESX vmfsSparse)", "capacity:    4.0 MiB (4194304 bytes)",
                           "grain size:  4.0 KiB", "CID 5a17b9ae matches")
    FileUtils.cp(path("vm-flat.vmdk"), @dest)
    out, err, st = run_exe("vmdksync", "-q", path("vm-000001.vmdk"), @dest)
    expect([st.exitstatus, out, err]).to eq([0, "", ""])
  end

  it "--dry-run lists grains, bytes and ranges and writes nothing" do
    set_up
    before = sha(@dest)
    out, _err, st = run_exe("vmdksync", "--dry-run", path("vm-000001.vmdk"), @dest)
    expect(st.exitstatus).to eq(0)
    expect(out).to eq(<<~OUT)
      dry run: would write 7 grains, 28672 bytes (28.0 KiB) in 3 ranges to #{@dest}
      offset length
      0 8192
      1048576 16384
      3145728 4096
    OUT
    expect(sha(@dest)).to eq(before)
  end

  it "applies onto a block device" do
    set_up(grain_size: 1, random: "100:4K")
    with_loop_device(@dest) do |dev|
      _out, err, st = run_exe("vmdksync", path("vm-000001.vmdk"), dev)
      expect(st.exitstatus).to eq(0), err
    end
    expect(File.binread(@dest)).to eq(expected)
  end

  it "refuses a block device another program holds exclusively" do
    set_up
    before = sha(@dest)
    with_loop_device(@dest) do |dev|
      File.open(dev, File::RDWR | File::EXCL) do
        _out, err, st = run_exe("vmdksync", path("vm-000001.vmdk"), dev)
        expect(st.exitstatus).to eq(1)
        expect(err).to eq("vmdksync: #{dev}: block device is in use (mounted, part of an active LV/RAID, " \
                          "or opened exclusively by another program); refusing to write to it\n")
      end
    end
    expect(sha(@dest)).to eq(before)
  end

  # The contract of a refusal as a user sees it, for one rule of each kind: exit 1, nothing
  # on stdout, one line on stderr naming the file and the cause, the destination unchanged.
  # Every rule of the readers is tested beside its code, in ext/ironshed-core.
  describe "refusals: exit 1, one line naming the cause, destination unchanged" do
    # Byte offset of the grain-table entry for grain +g+.
    def gte(g)
      @layout["tables"][(g / 4096).to_s] * 512 + (g % 4096) * 4
    end

    def delta
      path("vm-000001-delta.vmdk")
    end

    def desc
      path("vm-000001.vmdk")
    end

    def edit(file, from, to)
      text = File.read(file)
      raise "#{from} not in #{file}" unless text.include?(from)

      File.write(file, text.sub(from, to))
    end

    CASES = {
      "a damaged extent header" => [->(s) { s.poke(s.delta, 0, "XXXX") }, "bad magic 58 58 58 58 at byte 0: line 10 of"],
      "a damaged grain table" => [->(s) { s.poke_u32(s.delta, s.gte(1), 1) }, "grain table 0 entry 1 (grain 1) is 1"],
      "a malformed descriptor" => [->(s) { s.edit(s.desc, "isNativeSnapshot", "garbage\nisNativeSnapshot") },
                                   "line 6: neither 'key=value' nor an extent line"],
      "a delta of another base" => [->(s) { s.edit(s.desc, "parentCID=5a17b9ae", "parentCID=deadbeef") },
                                    "parentCID is deadbeef but the base"],
      "a destination of another size" => [->(s) { File.truncate(s.instance_variable_get(:@dest), 2 << 20) },
                                          "destination is 2097152 bytes but the virtual disk"]
    }.freeze

    CASES.each do |name, (corrupt, message)|
      it "refuses #{name}" do
        set_up
        corrupt.call(self)
        before = sha(@dest)
        out, err, st = run_exe("vmdksync", desc, @dest)
        expect(st.exitstatus).to eq(1)
        expect(out).to eq("")
        expect(err.lines.size).to eq(1), err
        expect(err).to start_with("vmdksync: ")
        expect(err).to include(message)
        expect(sha(@dest)).to eq(before)
      end
    end

    it "refuses a delta not closed cleanly, and applies it with --allow-unclean" do
      set_up
      poke_u32(delta, 1648, 1)
      before = sha(@dest)
      _out, err, st = run_exe("vmdksync", desc, @dest)
      expect(st.exitstatus).to eq(1)
      expect(err).to eq("vmdksync: #{desc}: #{delta}: uncleanShutdown is 1 at byte 1648: the delta was not closed " \
                        "cleanly (VM still running, or the host crashed); power the VM off cleanly first, or pass " \
                        "--allow-unclean to accept a possibly inconsistent delta\n")
      expect(sha(@dest)).to eq(before)
      _out, err, st = run_exe("vmdksync", "--allow-unclean", desc, @dest)
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(@dest)).to eq(expected)
    end

    it "refuses a wrong --base and names both CIDs" do
      set_up
      other = path("other.vmdk")
      File.write(other, File.read(path("vm.vmdk")).sub("CID=5a17b9ae", "CID=0badcafe"))
      before = sha(@dest)
      _out, err, st = run_exe("vmdksync", "--base", other, desc, @dest)
      expect(st.exitstatus).to eq(1)
      expect(err).to eq("vmdksync: #{desc}: parentCID is 5a17b9ae but the base #{other} has CID 0badcafe: " \
                        "the delta was not taken from this base (or the base changed after the snapshot)\n")
      expect(sha(@dest)).to eq(before)
    end

    it "refuses a KDMV file with an unknown header version" do
      set_up
      File.binwrite(path("kdmv.vmdk"), "KDMV" + [7].pack("V") + "\0" * 504)
      before = sha(@dest)
      _out, err, st = run_exe("vmdksync", path("kdmv.vmdk"), @dest)
      expect(st.exitstatus).to eq(1)
      expect(err).to eq("vmdksync: #{path('kdmv.vmdk')}: sparse header version 7 at byte 4 (known: 1, 2, 3)\n")
      expect(sha(@dest)).to eq(before)
    end

    it "refuses a missing destination, a directory and a missing snapshot" do
      set_up
      _out, err, st = run_exe("vmdksync", desc, path("nope.raw"))
      expect([st.exitstatus, err]).to eq([1, "vmdksync: #{path('nope.raw')}: open for writing: No such file or directory\n"])
      expect(File.exist?(path("nope.raw"))).to be(false)
      _out, err, st = run_exe("vmdksync", desc, @dir)
      expect([st.exitstatus, err]).to eq([1, "vmdksync: #{@dir}: not a regular file or block device (a directory); refusing to write to it\n"])
      _out, err, st = run_exe("vmdksync", path("nope.vmdk"), @dest)
      expect([st.exitstatus, err]).to eq([1, "vmdksync: #{path('nope.vmdk')}: open: No such file or directory\n"])
    end
  end
end
