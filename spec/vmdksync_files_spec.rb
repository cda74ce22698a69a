# frozen_string_literal: true

require "shellwords"

# vmdksync and the files around a delta, as a careless or hostile command line meets them: a
# destination (or undo file) that is one of the files vmdksync reads is refused, an input
# that would block the open (a FIFO) is refused at once, and a run that stops after its first
# write — a full disk, a signal — says in one line what it wrote and how to finish or go back.
RSpec.describe "vmdksync and the files around the delta", :tmpdir do
  def path(name)
    File.join(@dir, name)
  end

  # A chain of two COWD snapshots over a 4 MiB disk in +dir+, and a destination holding the
  # base.
  def chain(dir = @dir)
    @files = JSON.parse(testkit("chain", "--dir", dir, "--capacity", "4M", "--seed", 5,
                                "--layer", "cowd,grain=8", "--write", "0:64K", "--write", "1M:8K",
                                "--layer", "cowd,grain=8", "--write", "2M:16K"))
    @newest = @files["layers"].last["descriptor"]
    @dest = path("dest.raw")
    FileUtils.cp(@files["flat"], @dest)
  end

  def extent(layer) = @files["layers"][layer]["extents"].first
  def descriptor(layer) = @files["layers"][layer]["descriptor"]

  def all_files = file_digests(@dir)

  # Runs vmdksync, expecting a refusal: exit +status+, nothing on stdout, exactly +line+ on
  # stderr, and no file changed.
  def refused(*args, line:, status: 1)
    before = all_files
    out, err, st = run_exe_within(60, "vmdksync", *args)
    expect([st.exitstatus, out]).to eq([status, ""]), err
    expect(err).to eq("vmdksync: #{line}\n")
    expect(all_files).to eq(before)
  end

  describe "a destination that is a file vmdksync reads" do
    it "is refused when it is the delta's extent, however it is named" do
      chain
      ext = extent(1)
      File.link(ext, path("hard-link"))
      File.symlink(ext, path("soft-link"))
      role = "(an extent of #{descriptor(1)}); refusing to write to it"
      [ext, path("hard-link"), path("soft-link")].each do |dest|
        refused("--allow-larger-destination", @newest, dest,
                line: "#{dest}: the destination is the same file as #{ext} #{role}")
        refused("--dry-run", "--allow-larger-destination", @newest, dest,
                line: "#{dest}: the destination is the same file as #{ext} #{role}")
      end
    end

    it "is refused when it is an older layer's extent or descriptor, or the base" do
      chain
      refused("--allow-larger-destination", @newest, extent(0),
              line: "#{extent(0)}: the destination is the same file as #{extent(0)} (an extent of " \
                    "#{descriptor(0)}); refusing to write to it")
      refused(@newest, descriptor(0),
              line: "#{descriptor(0)}: the destination is the same file as #{descriptor(0)} (a descriptor of " \
                    "the chain); refusing to write to it")
      refused(@newest, @files["base"],
              line: "#{@files['base']}: the destination is the same file as #{@files['base']} (a descriptor " \
                    "of the chain); refusing to write to it")
      refused("--base", @files["base"], @newest, @files["base"],
              line: "#{@files['base']}: the destination is the same file as #{@files['base']} (the base " \
                    "descriptor (--base)); refusing to write to it")
    end

    it "is refused for a monolithicSparse file of the disk's size given as SNAPSHOT and DESTINATION" do
      files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "1M", "--layer", "sparse",
                                 "--write", "0:8K"))
      sparse = files["layers"].first["descriptor"]
      File.truncate(sparse, 1 << 20) # the disk's size: no option needed to pass the size check
      refused(sparse, sparse,
              line: "#{sparse}: the destination is the same file as #{sparse} (a delta of the chain); " \
                    "refusing to write to it")
    end

    it "is refused when it is a loop device backed by the delta's extent" do
      chain
      with_loop_device(extent(1)) do |dev|
        refused("--allow-larger-destination", @newest, dev,
                line: "#{dev}: the destination is the same file as #{extent(1)} (an extent of " \
                      "#{descriptor(1)}); refusing to write to it")
      end
    end

    it "is refused as the undo file, which must be neither the destination nor an input" do
      chain
      File.symlink(@dest, path("undo-link"))
      refused("--undo", path("undo-link"), @newest, @dest,
              line: "#{path('undo-link')}: the undo file is the same file as #{@dest} (the destination); " \
                    "refusing to write to it")
      refused("--undo", extent(0), @newest, @dest,
              line: "#{extent(0)}: the undo file is the same file as #{extent(0)} (an extent of " \
                    "#{descriptor(0)}); refusing to write to it")
    end
  end

  describe "a FIFO where a file is needed is refused at once, never waited on" do
    def fifo(name)
      File.unlink(name) if File.exist?(name)
      File.mkfifo(name)
      name
    end

    it "as SNAPSHOT, as an extent, as the parent a descriptor names, and as --base" do
      chain
      f = fifo(path("fifo.vmdk"))
      refused(f, @dest, line: "#{f}: not a regular file or block device (a FIFO); refusing to read it")
      refused("--base", f, @newest, @dest,
              line: "#{f}: not a regular file or block device (a FIFO); refusing to read it")
      fifo(extent(1))
      refused(@newest, @dest, line: "#{extent(1)}: not a regular file or block device (a FIFO); refusing to read it")
      chain(path("second"))
      fifo(descriptor(0))
      refused(@newest, @dest,
              line: "#{descriptor(0)}: not a regular file or block device (a FIFO); refusing to read it")
    end

    it "as DESTINATION and as the undo file" do
      chain
      f = fifo(path("fifo"))
      refused(@newest, f, line: "#{f}: not a regular file or block device (a FIFO); refusing to write to it")
      refused("--undo", f, @newest, @dest,
              line: "#{f}: create the snapback file: exists and is not a regular file")
      expect(File.ftype(f)).to eq("fifo")
    end
  end

  it "refuses --undo - (lvmsync --apply - reads standard input) as a usage error, creating nothing" do
    chain
    expect_usage_errors("vmdksync", [[["--undo", "-", @newest, @dest], "--undo -: the undo file needs a real name"],
                                     [["--undo", "", @newest, @dest], "--undo needs a file name"]], @dir)
  end

  it "quotes the paths of the undo advice for the shell" do
    chain
    undo = path("web 01's.undo")
    _out, err, st = run_exe("vmdksync", "--undo", undo, @newest, @dest)
    expect(st.exitstatus).to eq(0), err
    advice = err[/undo with: (.*)$/, 1]
    expect(Shellwords.split(advice)).to eq(["lvmsync", "--apply", undo, @dest])
  end

  # The line of a run stopped after its first write: what happened, the destination, and
  # the commands that finish it and undo it.
  STOPPED = /\Avmdksync: (?<reason>.*): (?<dest>.*) is partly updated; to finish, run the same command again(?: \(it resumes (?<resumes>[^)]*)\))?: (?<finish>[^;]*); (?<back>.*)\n\z/

  # Runs the go-back command of the stop line +err+ (made with --undo +undo+) and expects the
  # destination restored to +original+.
  def expect_go_back_restores(err, undo, original)
    m = STOPPED.match(err)
    expect(m).not_to be_nil, err
    back = Shellwords.split(m[:back].delete_prefix("to go back: "))
    expect(back).to eq(["lvmsync", "--apply", undo, @dest])
    yield if block_given?
    _o, err, st = run_exe("lvmsync", *back.drop(1))
    expect(st.exitstatus).to eq(0), err
    expect(sha(@dest)).to eq(original)
  end

  describe "a full disk in mid-apply (tmpfs): exit 3 and one line saying what was written" do
    # 12 MiB of changes onto a 16 MiB destination (sparse, all zeros) on a 4 MiB tmpfs.
    def big_chain
      @files = JSON.parse(testkit("chain", "--dir", path("chain"), "--capacity", "16M", "--seed", 8,
                                  "--layer", "cowd,grain=128", "--write", "0:12M"))
      @newest = @files["layers"].last["descriptor"]
      @dest = path("mnt/dest.raw")
      File.write(@dest, "")
      File.truncate(@dest, 16 << 20)
    end

    def full_apply_of_the_chain
      ref = path("reference.raw")
      File.write(ref, "")
      File.truncate(ref, 16 << 20)
      _o, err, st = run_exe("vmdksync", "-q", @newest, ref)
      expect(st.exitstatus).to eq(0), err
      sha(ref)
    end

    it "without --undo: the line says so; running the same command again finishes" do
      with_tmpfs(path("mnt"), "4M") do
        big_chain
        out, err, st = run_exe_within(120, "vmdksync", "-q", @newest, @dest)
        expect([st.exitstatus, out]).to eq([3, ""]), err
        m = STOPPED.match(err)
        expect(m).not_to be_nil, err
        expect(m[:reason]).to match(/\A#{Regexp.escape(@dest)}: .*: No space left on device; by then (\d+) bytes of #{Regexp.escape(@dest)} had been written\z/)
        written = m[:reason][/by then (\d+) bytes/, 1].to_i
        expect(written).to be_between(1, 4 << 20)
        expect(m[:dest]).to eq(@dest)
        expect(m[:back]).to eq("no undo file was kept to go back (--undo FILE keeps one)")
        expect(Shellwords.split(m[:finish])).to eq(["vmdksync", "-q", @newest, @dest])
        # Room made, the command the line gives finishes the job.
        system("mount", "-o", "remount,size=64M", path("mnt"), exception: true)
        _o, err, st = run_exe("vmdksync", *Shellwords.split(m[:finish]).drop(1))
        expect(st.exitstatus).to eq(0), err
        expect(sha(@dest)).to eq(full_apply_of_the_chain)
      end
    end

    it "with --undo: the finishing command resumes the undo file, the go-back command then restores exactly" do
      with_tmpfs(path("mnt"), "4M") do
        big_chain
        original = sha(@dest)
        undo = path("dest undo") # on the disk, not the full tmpfs
        _out, err, st = run_exe_within(120, "vmdksync", "--undo", undo, @newest, @dest)
        expect(st.exitstatus).to eq(3), err
        m = STOPPED.match(err)
        expect(m).not_to be_nil, err
        expect(Shellwords.split(m[:resumes])).to eq([undo])
        expect(Shellwords.split(m[:finish])).to eq(["vmdksync", "--undo", undo, @newest, @dest])
        system("mount", "-o", "remount,size=64M", path("mnt"), exception: true)
        _o, out, st = run_exe("vmdksync", *Shellwords.split(m[:finish]).drop(1))
        expect(st.exitstatus).to eq(0), out
        expect(out).to include("vmdksync: resumed #{undo}")
        expect(sha(@dest)).to eq(full_apply_of_the_chain)
        expect_go_back_restores(err, undo, original)
      end
    end
  end

  describe "a signal in mid-apply: one line saying what was written", :sighup do
    # 512 MiB of changes in 1 MiB grains: long enough to be caught in the middle.
    before do
      @big = path("big")
      esx_set(@big, capacity: "512M", grain_size: 2048, writes: ["0:512M"])
      @flat = File.join(@big, "vm-flat.vmdk")
      @dest = File.join(@big, "dest.raw")
      @newest = File.join(@big, "vm-000001.vmdk")
      FileUtils.cp(@flat, @dest)
    end

    # Starts vmdksync, waits until it has written to the destination, stops it there and
    # sends +sig+; returns [status, stderr].
    def signal_mid_apply(sig, *args)
      first = File.binread(@flat, 1 << 20)
      pid, err = spawn_exe("vmdksync", *args, @newest, @dest)
      sleep 0.01 until File.binread(@dest, 1 << 20) != first || Process.wait2(pid, Process::WNOHANG)
      Process.kill("STOP", pid)
      Process.kill(sig, pid)
      Process.kill("CONT", pid)
      [wait_within(pid, 60), err.read]
    ensure
      err&.close
    end

    { "INT" => 130, "TERM" => 143, "HUP" => 129 }.each do |sig, code|
      it "SIG#{sig}: exit #{code}, and the command it gives finishes the apply" do
        st, err = signal_mid_apply(sig, "-q")
        expect(st.exitstatus || (128 + st.termsig)).to eq(code), err
        expect(st.termsig).to eq(Signal.list[sig]) unless sig == "INT"
        m = STOPPED.match(err)
        expect(m).not_to be_nil, err
        reason = sig == "INT" ? "interrupted" : "stopped by SIG#{sig}"
        expect(m[:reason]).to match(/\A#{reason} after (\d+) bytes were written\z/)
        expect(m[:reason][/(\d+) bytes/, 1].to_i).to be_between(1, (512 << 20) - 1)
        expect(m[:back]).to eq("no undo file was kept to go back (--undo FILE keeps one)")
        _o, err, st = run_exe("vmdksync", *Shellwords.split(m[:finish]).drop(1))
        expect(st.exitstatus).to eq(0), err
        reference = File.join(@big, "reference.raw")
        FileUtils.cp(@flat, reference)
        run_exe("vmdksync", "-q", @newest, reference)
        expect(sha(@dest)).to eq(sha(reference))
      end
    end

    it "with --undo, the line names the command that restores the destination" do
      original = sha(@dest)
      undo = File.join(@big, "web01.undo")
      st, err = signal_mid_apply("TERM", "--undo", undo)
      expect(st.termsig).to eq(Signal.list["TERM"]), err
      expect_go_back_restores(err, undo, original)
    end
  end
end
