# frozen_string_literal: true

# vmdksync --undo: the bytes about to be overwritten are saved, durably and before each
# overwrite, in a PROTO[3] file that `lvmsync --apply` plays back to restore the destination
# exactly — also after the apply was killed half way. Rerunning the same command resumes the
# file; once the apply finished, a rerun does nothing; another delta or destination is refused.
require_relative "support/proto3"

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
    expect(File.binread(@undo, 26)).to eq("lvmsync PROTO[3] discards\n")
    _out, err, st = run_exe("lvmsync", "--apply", @undo, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(sha(@dest)).to eq(original)
  end

  # Bytes of the 4 KiB blocks of +bytes+ that are not all zeros.
  def nonzero_block_bytes(bytes)
    (0...bytes.bytesize).step(4096).count { |o| bytes.byteslice(o, 4096).count("\0") != 4096 } * 4096
  end

  # The base's copy with zeros from 0 to 3 MiB and from 6 MiB to 10 MiB (where the chain writes).
  def zeroed_base(path)
    b = File.binread(@files["flat"])
    b[0, 3 << 20] = "\0" * (3 << 20)
    b[6 << 20, 4 << 20] = "\0" * (4 << 20)
    File.binwrite(path, b)
    b
  end

  it "zeros it overwrites take no room in the undo file, and are restored as zeros" do
    chain
    # A fresh destination: zeros, but for two 4 KiB blocks where the chain writes.
    dest = "\0".b * (16 << 20)
    rng = Random.new(5)
    dest[4096, 4096] = rng.bytes(4096)
    dest[5 << 20, 4096] = rng.bytes(4096)
    File.binwrite(@dest, dest)
    _out, err, st = run_exe("vmdksync", "--undo", @undo, @newest, @dest)
    expect(st.exitstatus).to eq(0), err
    saved = err[/saved ([\d.]+ MiB) of old data \(([\d.]+ MiB) of it zeros, which take no room\)/, 1]
    expect(saved).not_to be_nil, err
    expect(saved.to_f).to be > 1.0 # the chain writes more than a MiB here
    # The two old blocks, the JOURNAL item (at most 4 KiB), 12-byte headers and the marks.
    _hs, items, ext = Proto3.items(File.binread(@undo))
    expect(ext).to be(true)
    expect(File.size(@undo)).to be <= nonzero_block_bytes(dest) + 4096 + 100 + (items.size * 36)
    expect(items.size).to be < 1000
    _out, err, st = run_exe("lvmsync", "--apply", @undo, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(@dest) == dest).to be(true)
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

  it "refuses to overwrite an existing file that is no undo journal, before writing anything" do
    chain
    File.write(@undo, "an earlier run's undo data")
    before = sha(@dest)
    _out, err, st = run_exe("vmdksync", "--undo", @undo, @newest, @dest)
    expect(st.exitstatus).to eq(1)
    expect(err).to eq("vmdksync: #{@undo}: the undo file exists and is not empty (26 bytes), and it is no lvmsync " \
                      "stream (its first line is not 'lvmsync PROTO[3]'); refusing to overwrite it, it may be the " \
                      "only way back from an earlier run: choose a new file name\n")
    expect(sha(@dest)).to eq(before)
    expect(File.read(@undo)).to eq("an earlier run's undo data")
  end

  it "a rerun after the apply finished does nothing and says so; another delta or destination is refused" do
    chain
    original = sha(@dest)
    _out, err, st = run_exe("vmdksync", "--undo", @undo, @newest, @dest)
    expect(st.exitstatus).to eq(0), err
    applied = sha(@dest)
    journal = File.binread(@undo)
    _out, err, st = run_exe("vmdksync", "--undo", @undo, @newest, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(err).to eq("vmdksync: #{@undo} is the undo file of a finished apply of this chain to #{@dest}: nothing " \
                      "to do, nothing was written (undo with: lvmsync --apply #{@undo} #{@dest}; to apply again " \
                      "after undoing, give a new undo file name)\n")
    expect(sha(@dest)).to eq(applied)
    expect(File.binread(@undo) == journal).to be(true)
    # Another delta of the chain (the layer below the newest).
    older = @files["layers"][-2]["descriptor"]
    _out, err, st = run_exe("vmdksync", "--undo", @undo, older, @dest)
    expect(st.exitstatus).to eq(1)
    expect(err).to include("#{@undo}: this undo file was started by another apply (it was started for the delta " \
                           "#{@newest} (3 layers")
    expect(err).to include("refusing to use it")
    # Another destination of the same size.
    other = File.join(@dir, "other.raw")
    FileUtils.cp(@files["flat"], other)
    _out, err, st = run_exe("vmdksync", "--undo", @undo, @newest, other)
    expect(st.exitstatus).to eq(1)
    expect(err).to include("it was started for the destination #{@dest} (file, file:", "this is #{other} (file, file:")
    expect(sha(other)).to eq(sha(@files["flat"]))
    expect(File.binread(@undo) == journal).to be(true)
    _out, err, st = run_exe("lvmsync", "--apply", @undo, @dest)
    expect(st.exitstatus).to eq(0), err
    expect(sha(@dest)).to eq(original)
  end

  it "killed (SIGKILL) at points throughout, then run again: resumes, finishes, and the undo file restores the first state" do
    chain
    # Part of the old content is zeros: the undo file holds discard records too.
    base = File.join(@dir, "zeroed-base.raw")
    zeroed_base(base)
    FileUtils.cp(base, @dest)
    original = sha(@dest)
    FileUtils.cp(@dest, File.join(@dir, "want.raw"))
    _o, err, st = run_exe("vmdksync", @newest, File.join(@dir, "want.raw"))
    expect(st.exitstatus).to eq(0), err
    want = sha(File.join(@dir, "want.raw"))
    exe = [RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "vmdksync"), "-q", "--undo", @undo, @newest, @dest]
    # Killed when entering the Nth call of a syscall (strace fault injection): every fdatasync
    # and the rename of a run, and writes (journal) and pwrites (destination) spread over it;
    # then the rerun is killed too (at its first ftruncate: while cutting the journal back, or
    # later), then the same command runs to the end.
    calls = %w[write pwrite64 fdatasync rename]
    FileUtils.cp(base, @dest)
    _o, e, s = Open3.capture3("strace", "-f", "-qq", "-o", File.join(@dir, "calls"), "-e", "trace=#{calls.join(',')}",
                              *exe)
    expect(s.exitstatus).to eq(0), e
    trace = File.readlines(File.join(@dir, "calls")).reject { |l| l.include?("resumed>") }
    count = calls.to_h { |c| [c, trace.count { |l| l.include?(" #{c}(") }] }
    expect(count["fdatasync"]).to eq(5) # created, records, commit, destination, END
    # (Ruby may write to its own pipes now and then: no write point near the end, where END's
    # fdatasync is one.)
    points = (1..5).map { |k| ["fdatasync", k] } + [["rename", 1], ["write", count["write"] / 2],
                                                    ["pwrite64", count["pwrite64"] / 2]]
    points.each_with_index do |(sys, n), i|
      FileUtils.cp(base, @dest)
      FileUtils.rm_f(@undo)
      again = i.even? ? ["ftruncate", 1] : points[(i * 5) % points.size]
      [[sys, n], again].each_with_index do |(c, k), j|
        _o, e, s = Open3.capture3("strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=#{c}",
                                  "-e", "inject=#{c}:signal=KILL:when=#{k}", *exe)
        # The first run is killed; a resumed run has less to do and may finish first.
        killed = s.termsig == 9 || s.exitstatus == 137
        expect(killed || (j == 1 && s.success?)).to be(true), "killed at #{c} #{k}: #{s.inspect} #{e}"
      end
      first, second = [sys, n], again
      _o, err, st = run_exe("vmdksync", "--undo", @undo, @newest, @dest)
      expect(st.exitstatus).to eq(0), "after kills at #{first}, #{second}: #{err}"
      expect(sha(@dest)).to eq(want), "after kills at #{first}, #{second}"
      _o, err, st = run_exe("lvmsync", "--apply", @undo, @dest)
      expect(st.exitstatus).to eq(0), err
      expect(sha(@dest)).to eq(original), "restored after kills at #{first}, #{second}"
    end
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
    # Killed (asynchronously, whatever its threads are doing) when its undo file has just
    # appeared, and when it holds 48 MiB and 256 MiB of old data (of 512 MiB): the apply is
    # then overwriting the destination. The points are states the test sees, not times.
    killed_mid_write = [1, 48 << 20, 256 << 20].each_with_index.map do |saved, i|
      FileUtils.cp(files["flat"], dest)
      original = sha(dest)
      undo = File.join(big, "killed-#{i}.undo")
      pid = Process.spawn(RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "vmdksync"), "-q", "--undo", undo,
                          newest, dest)
      until File.size?(undo).to_i >= saved
        raise "vmdksync ended before its undo file reached #{saved} bytes" if Process.wait(pid, Process::WNOHANG)

        sleep 0.005
      end
      Process.kill("KILL", pid)
      _, status = Process.wait2(pid)
      changed = sha(dest) != original
      if i == 1
        # The same command again: it resumes the undo file and finishes the apply.
        _out, err, st = run_exe("vmdksync", "-q", "--undo", undo, newest, dest)
        expect(st.exitstatus).to eq(0), err
        expect(err).to eq("")
        _out, err, st = run_exe("vmdksync", "--verify-only", newest, dest)
        expect(st.exitstatus).to eq(0), err
      end
      # The undo file restores the original, whether or not the apply was finished.
      _out, err, st = run_exe("lvmsync", "--apply", undo, dest)
      expect(st.exitstatus).to eq(0), err
      expect(sha(dest)).to eq(original), "restore after a kill at #{saved} bytes saved (destination changed: #{changed})"
      status.signaled? && changed
    end
    # The last kill landed while the destination was being overwritten (the copy loop holds
    # far less than the 256 MiB saved before it in memory, so much of it was written).
    expect(killed_mid_write.last).to be(true)
  end
end
