# frozen_string_literal: true

# vmdksync --undo: the bytes about to be overwritten are saved, durably and before each
# overwrite, in a PROTO[3] file that `lvmsync --apply` plays back to restore the destination
# exactly — also after the apply was killed half way.
RSpec.describe "vmdksync --undo", :tmpdir do
  def chain(capacity: "16M")
    @files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", capacity, "--seed", 9,
                                "--layer", "sesparse", "--random-writes", "200:4K", "--zero", "1M:256K",
                                "--layer", "stream-footer", "--write", "0:512K",
                                "--layer", "cowd", "--write", "5M:10K"))
    @newest = @files["layers"].last["descriptor"]
    @dest = File.join(@dir, "dest.raw")
    FileUtils.cp(@files["flat"], @dest)
    @undo = File.join(@dir, "web01.undo")
  end

  it "saves what it overwrites; lvmsync --apply of the undo file restores the destination exactly" do
    chain
    original = sha(@dest)
    _out, err, st = run_exe("vmdksync", "--undo", @undo, "--discard-zeros", @newest, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("undo with: lvmsync --apply #{@undo} #{@dest}")
    expect(File.binread(@dest)).to eq(File.binread(qemu_raw(@newest, File.join(@dir, "q.raw"))))
    expect(File.binread(@undo, 17)).to eq("lvmsync PROTO[3]\n")
    _out, err, st = run_exe("lvmsync", "--apply", @undo, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(sha(@dest)).to eq(original)
  end

  it "works on a block device too" do
    chain
    original = sha(@dest)
    with_loop_device(@dest) do |dev|
      _out, err, st = run_exe("vmdksync", "--undo", @undo, @newest, dev)
      expect(st.exitstatus).to eq(0), err
      _out, err, st = run_exe("lvmsync", "--apply", @undo, dev)
      expect(st.exitstatus).to eq(0), err
    end
    expect(sha(@dest)).to eq(original)
  end

  it "refuses to overwrite an existing undo file, before writing anything" do
    chain
    File.write(@undo, "an earlier run's undo data")
    before = sha(@dest)
    _out, err, st = run_exe("vmdksync", "--undo", @undo, @newest, @dest)
    expect(st.exitstatus).to eq(1)
    expect(err).to eq("vmdksync: #{@undo}: the undo file exists and is not empty (26 bytes); refusing to " \
                      "overwrite it, it may be the only way back from an earlier run: choose a new file name\n")
    expect(sha(@dest)).to eq(before)
    expect(File.read(@undo)).to eq("an earlier run's undo data")
  end

  it "makes no sense with --dry-run" do
    chain
    _out, err, st = run_exe("vmdksync", "--undo", @undo, "--dry-run", @newest, @dest)
    expect(st.exitstatus).to eq(2) # a usage error
    expect(err).to include("--undo writes an undo file while applying")
    expect(File.exist?(@undo)).to be(false)
  end

  it "restores the original even when the apply was killed (SIGKILL) half way" do
    big = File.join(@dir, "big")
    files = JSON.parse(testkit("chain", "--dir", big, "--capacity", "768M", "--seed", 4,
                               "--layer", "cowd,grain=2048", "--write", "0:320M",
                               "--layer", "sesparse", "--write", "256M:256M"))
    newest = files["layers"].last["descriptor"]
    dest = File.join(big, "dest.raw")
    killed_mid_write = [0.6, 1.5, 3.0].each_with_index.map do |delay, i|
      FileUtils.cp(files["flat"], dest)
      original = sha(dest)
      undo = File.join(big, "killed-#{i}.undo")
      pid = Process.spawn(RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "vmdksync"), "-q", "--undo", undo,
                          newest, dest)
      sleep delay
      Process.kill("KILL", pid)
      _, status = Process.wait2(pid)
      changed = sha(dest) != original
      _out, err, st = run_exe("lvmsync", "--apply", undo, dest)
      expect(st.exitstatus).to eq(0), err
      expect(sha(dest)).to eq(original), "restore after a kill at #{delay} s (destination changed: #{changed})"
      status.signaled? && changed
    end
    # At least one kill landed while the destination was being overwritten.
    expect(killed_mid_write).to include(true)
  end
end
