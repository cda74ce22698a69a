# frozen_string_literal: true

require_relative "support/lvm_env"
require_relative "support/proto3"
require "lvmsync"

# The lvmsync executable, run as a user runs it. The sender side needs LVM: here a stand-in
# answers `lvs` and `vgcfgbackup` and $DM_DEV_DIR/mapper holds the devices (image files
# written by ironshed-testkit, or loop devices); the real kernel runs the same scenarios on
# real dm-snapshot LVs (spec/guest). Every result is checked by content against the origin.
RSpec.describe "lvmsync executable", :tmpdir do
  SNAP = "/dev/vg-sync/src-snap"

  def path(name)
    File.join(@dir, name)
  end

  # Writes the snapshot (origin now, origin when snapped, exception store) and the stand-in
  # LVM, and a destination holding the copy taken when the snapshot was made.
  def set_up(writes: ["0:8K", "1M:300K", "8M:4K"], random: "200:4K", origin_size: "12M", cow_size: "4M",
             chunk: "4K", extra: [], metadata: {}, nodes: {})
    args = ["cow", "--dir", @dir, "--origin-size", origin_size, "--chunk-size", chunk, "--cow-size", cow_size]
    writes.each { |w| args += ["--write", w] }
    args += ["--random-writes", random] if random
    @layout = JSON.parse(testkit(*args, *extra))
    FileUtils.cp(path("before.img"), path("dest.img"))
    FileUtils.cp(path("before.img"), path("snapview.img"))
    @env = LvmEnv.build(
      @dir,
      vgs: { "vg-sync" => LvmEnv.classic_metadata(**metadata) },
      lvs: { SNAP => %w[vg-sync src-snap], "/dev/vg-sync/src-lv" => %w[vg-sync src-lv],
             "vg-sync/src-snap" => %w[vg-sync src-snap], "vg-sync/tiny" => %w[vg-sync tiny] },
      nodes: { "vg--sync-src--lv" => path("origin.img"), "vg--sync-src--snap" => path("snapview.img"),
               "vg--sync-src--snap-cow" => path("cow.img") }.merge(nodes)
    )
  end

  def lvmsync(*args, stdin_data: "", binmode: false)
    run_exe("lvmsync", *args, env: @env || {}, stdin_data: stdin_data, binmode: binmode)
  end

  def origin
    File.binread(path("origin.img"))
  end

  # Compares by digest, so a failure prints two hashes rather than megabytes of bytes.
  def expect_content(file, bytes)
    expect(Digest::SHA256.file(file).hexdigest).to eq(Digest::SHA256.hexdigest(bytes)), "content of #{file}"
  end

  it "prints help and version" do
    out, _err, st = lvmsync("--help")
    expect(st.exitstatus).to eq(0)
    expect(out).to include("Usage: lvmsync [options] SNAPSHOT [HOST:]DESTINATION", "--stdout", "--apply FILE",
                           "--snapback FILE", "--data-source DEV", "--rsh CMD", "--allow-short-destination",
                           "--from OLDER", "--discards", "--verify", "--capabilities", "Rolling syncs",
                           "Exit status:")
    expect(out).to include("2 usage error")
    out, _err, st = lvmsync("-V")
    expect([st.exitstatus, out]).to eq([0, "lvmsync (ironshed) #{Ironshed::VERSION}\n"])
  end

  it "--help fits 80 columns and lists each option once, in the left column" do
    out, _err, st = lvmsync("--help")
    expect(st.exitstatus).to eq(0)
    expect(out.lines.map(&:chomp).reject { |l| l.length <= 80 }).to eq([])
    # A description line starting with "--" would be taken for another option by optparse.
    listed = out.scan(/^  (?:-\w, |    )(--[\w\[\]-]+)/).flatten
    expect(listed).to eq(%w[--stdout --apply --snapback --from --no-destination-check --full --discards --plain
                            --verify --data-source --rsh --remote-lvmsync --allow-short-destination --server --capabilities --[no-]verbose
                            --[no-]debug --[no-]quiet --version --help])
    expect(out.lines.grep(/^ {2,6}(?:-\w, )?--\S+, --/)).to eq([])
  end

  it "exits 2 with a usage line on a bad or missing option or argument, having done nothing" do
    set_up
    dest = path("dest.img")
    before = sha(dest)
    [[[], "no SNAPSHOT given"],
     [[SNAP], "no DESTINATION given"],
     [[SNAP, dest, "extra"], "too many arguments"],
     [["--stdout", SNAP, dest, "extra"], "too many arguments"],
     [["--apply", "x"], "--apply needs exactly one DESTINATION"],
     [["--apply", "x", dest, "extra"], "--apply needs exactly one DESTINATION"],
     [["--apply", "-", "--from", SNAP, dest], "--from, --discards and --plain are for the sending side"],
     [["--apply", "-", "--discards", dest], "--from, --discards and --plain are for the sending side"],
     [["--apply", "-", "--plain", dest], "--from, --discards and --plain are for the sending side"],
     [["--plain", "--discards", SNAP, dest], "--plain sends the original format, which has no discard records"],
     [["--server"], "--server needs a DESTINATION"],
     [["-q", "-v", SNAP, dest], "cannot be quiet and verbose at the same time"],
     [["-q", "-d", SNAP, dest], "cannot be quiet and verbose at the same time"],
     [["--stdout", "--snapback", "f", SNAP], "--snapback cannot be used with --stdout"],
     [["--stdout", "--verify", SNAP], "--verify needs a live receiver"],
     [["--verify", "--allow-short-destination", SNAP, dest], "--verify compares every byte sent"],
     [["--bogus"], "invalid option: --bogus"],
     [[SNAP, dest, "--from"], "missing argument: --from"],
     [["--apply"], "missing argument: --apply"]].each do |args, msg|
      out, err, st = lvmsync(*args)
      expect([st.exitstatus, out]).to eq([2, ""]), "#{args.inspect}: #{err}"
      expect(err.lines.first).to start_with("lvmsync: #{msg}"), args.inspect
      expect(err.lines.last).to start_with("Usage: lvmsync")
      expect(err.lines.size).to eq(2), err
      expect(sha(dest)).to eq(before), args.inspect
    end
    expect(File.exist?(path("f"))).to be(false)
  end

  it "syncs locally onto a file: the destination becomes the origin" do
    set_up
    out, err, st = lvmsync(SNAP, path("dest.img"))
    expect([st.exitstatus, out]).to eq([0, ""]), err
    expect_content(path("dest.img"), origin)
    expect(err).to match(/\Alvmsync: sent .* in \d+ records \(#{@layout['exceptions']} changed chunks\) in [\d.]+ s \(.*\), [\d.]+x less than a full copy \(12\.0 MiB\)\nlvmsync: applied \d+ records, .* to #{Regexp.escape(path('dest.img'))} in /)
  end

  it "accepts the snapshot as /dev/mapper path and as VG/LV, like lvs does" do
    set_up
    _out, err, st = lvmsync("-q", "vg-sync/src-snap", path("dest.img"))
    expect([st.exitstatus, err]).to eq([0, ""])
    expect_content(path("dest.img"), origin)
  end

  it "syncs onto a loop device, reading the exception store and origin with O_DIRECT" do
    set_up
    with_loop_device(path("cow.img")) do |cow|
      with_loop_device(path("origin.img")) do |orig|
        with_loop_device(path("dest.img")) do |dest|
          File.delete(File.join(@dir, "dev/mapper/vg--sync-src--snap-cow"))
          File.delete(File.join(@dir, "dev/mapper/vg--sync-src--lv"))
          File.symlink(cow, File.join(@dir, "dev/mapper/vg--sync-src--snap-cow"))
          File.symlink(orig, File.join(@dir, "dev/mapper/vg--sync-src--lv"))
          _out, err, st = lvmsync("-v", SNAP, dest)
          expect(st.exitstatus).to eq(0), err
          expect(err).to include("exception store #{@dir}/dev/mapper/vg--sync-src--snap-cow (read O_DIRECT)",
                                 "chunk size 4.0 KiB; #{@layout['exceptions']} exceptions in #{@layout['areas'].size} metadata areas",
                                 "data source: #{@dir}/dev/mapper/vg--sync-src--lv")
        end
      end
    end
    expect_content(path("dest.img"), origin)
  end

  it "writes the stream with --stdout, then applies it with --apply (the original's argument order too)" do
    set_up
    out, err, st = lvmsync(SNAP, path("dest.img"), "--stdout", binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("lvmsync: note: with --stdout, #{path('dest.img')} is ignored")
    expect_content(path("dest.img"), File.binread(path("before.img")))
    expect(out).to start_with("lvmsync PROTO[3]\n")
    File.binwrite(path("changes"), out)
    _o, err, st = lvmsync("--apply", path("changes"), path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect_content(path("dest.img"), origin)
    # ... and from standard input.
    FileUtils.cp(path("before.img"), path("dest.img"))
    _o, err, st = lvmsync("--apply", "-", path("dest.img"), stdin_data: out, binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect_content(path("dest.img"), origin)
  end

  it "--stdout onto a device it reads (the origin, the exception store) is refused, nothing written" do
    set_up
    { path("origin.img") => ["vg--sync-src--lv", "the data source"],
      path("cow.img") => ["vg--sync-src--snap-cow", "the exception store"] }.each do |file, (node, role)|
      before = sha(file)
      # Opened for writing without truncating, as `> /dev/vg0/web01` opens a device.
      err_r, err_w = IO.pipe
      pid = Process.spawn(@env, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "lvmsync"), "--stdout", SNAP,
                          out: [file, File::WRONLY], err: err_w)
      err_w.close
      st = wait_within(pid, 60)
      err = err_r.read
      err_r.close
      expect(st.exitstatus).to eq(1), err
      expect(err).to end_with("lvmsync: standard output: the output is the same file as " \
                              "#{path("dev/mapper/#{node}")} (#{role}); refusing to write to it\n")
      expect(sha(file)).to eq(before)
    end
  end

  it "snapback: saves what it overwrites; applying the snapbacks newest first restores each state" do
    set_up
    state0 = File.binread(path("dest.img"))
    _o, err, st = lvmsync(SNAP, path("dest.img"), "--snapback", path("sb1"))
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("lvmsync: snapback: saved", "undo with: lvmsync --apply #{path('sb1')} #{path('dest.img')}")
    state1 = File.binread(path("dest.img"))
    expect(state1).to eq(origin)
    # A second round: other changes to the same volume, on top.
    FileUtils.rm_rf(Dir[File.join(@dir, "{dev,fakebin,meta}")])
    set_up(writes: ["2M:1M", "0:4K"], random: "50:4K")
    File.binwrite(path("dest.img"), state1)
    _o, err, st = lvmsync(SNAP, path("dest.img"), "-b", path("sb2"))
    expect(st.exitstatus).to eq(0), err
    state2 = state1.dup
    @layout["records"].each { |old, _new| state2[old * 4096, 4096] = origin[old * 4096, 4096] }
    expect_content(path("dest.img"), state2)
    _o, err, st = lvmsync("--apply", path("sb2"), path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect_content(path("dest.img"), state1)
    _o, err, st = lvmsync("--apply", path("sb1"), path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect_content(path("dest.img"), state0)
  end

  it "refuses to overwrite an existing file that is no snapback journal, before writing anything" do
    set_up
    File.write(path("sb"), "earlier snapback")
    _o, err, st = lvmsync(SNAP, path("dest.img"), "--snapback", path("sb"))
    expect(st.exitstatus).to eq(1)
    expect(err).to end_with("lvmsync: #{path('sb')}: snapback file exists and is not empty (16 bytes), and it is " \
                            "no lvmsync stream (its first line is not 'lvmsync PROTO[3]'); refusing to overwrite an " \
                            "earlier snapback: choose a new file name\n")
    expect(File.read(path("sb"))).to eq("earlier snapback")
    # A change stream is no journal either: refused, not resumed.
    out, = lvmsync("--stdout", SNAP, binmode: true)
    File.binwrite(path("sb"), out)
    _o, err, st = lvmsync(SNAP, path("dest.img"), "--snapback", path("sb"))
    expect(st.exitstatus).to eq(1)
    expect(err).to include("it is no undo journal (it does not start with a JOURNAL item")
    expect(File.binread(path("sb")) == out).to be(true)
    expect_content(path("dest.img"), File.binread(path("before.img")))
  end

  it "a stream cut between records from a pipe: exit 3, what was applied, how to finish; resuming with the same snapback" do
    set_up(writes: ["0:10M"], random: nil, origin_size: "16M", cow_size: "16M")
    # Zeros in the old content, in both the first (cut) run's batch and the resumed run's:
    # the snapback file keeps them as discard records.
    before = File.binread(path("before.img"))
    [(1 << 20) + 512, (6 << 20) + 512].each { |o| before[o, 3 << 20] = "\0" * (3 << 20) }
    File.binwrite(path("before.img"), before)
    File.binwrite(path("dest.img"), before)
    out, = lvmsync("--stdout", SNAP, binmode: true)
    _hs, items, = Proto3.items(out)
    # Cut after more than one snapback batch (8 MiB) of records.
    cut = items.find { |i| i[3] > 9 << 20 }[3]
    sb = path("sb")
    _o, err, st = lvmsync("--apply", "-", path("dest.img"), "--snapback", sb, stdin_data: out.byteslice(0, cut),
                                                                              binmode: true)
    expect(st.exitstatus).to eq(3), err
    expect(err.lines.size).to eq(1), err
    expect(err).to match(/\Alvmsync: standard input: the stream ends at stream byte #{cut}, before its end-of-stream mark: \d+ of its #{items.size - 2} records .* arrived; .*; by then \d+ records were complete and \d+ bytes had been written: /)
    expect(err).to end_with("had been written: #{path('dest.img')} is partly updated; to finish, send the whole stream " \
                            "again with the same --snapback (it resumes #{sb}); to go back: lvmsync --apply #{sb} " \
                            "#{path('dest.img')}\n")
    partly = File.binread(path("dest.img"))
    expect(partly == before).to be(false)
    # The whole stream with the same snapback file: resumed, finished.
    _o, err, st = lvmsync("--apply", "-", path("dest.img"), "--snapback", sb, stdin_data: out, binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("lvmsync: snapback: resumed #{sb}, which an interrupted run had left with 8.0 MiB of old data")
    expect_content(path("dest.img"), origin)
    # Discard records in the cut run's committed batch and in the resumed run's.
    _hs, jitems, ext = Proto3.items(File.binread(sb))
    first_commit = jitems.index { |off, _, _, _| off == Proto3.tag("COMMIT") }
    discard = ->(off, len) { off < 1 << 63 && len >= 0x8000_0000 }
    expect(ext).to be(true)
    expect(jitems[0...first_commit].count { |off, len, _, _| discard.(off, len) }).to be > 0
    expect(jitems[first_commit..].count { |off, len, _, _| discard.(off, len) }).to be > 0
    zeros = jitems.select { |off, len, _, _| discard.(off, len) }.sum { |_, len, _, _| len & 0x7fff_ffff }
    expect(zeros).to eq(2 * ((3 << 20) - 4096))
    # Once more: nothing to do, nothing written (also from a file: the same stream).
    journal = File.binread(sb)
    File.binwrite(path("changes"), out)
    ["-", path("changes")].each do |input|
      _o, err, st = lvmsync("--apply", input, path("dest.img"), "--snapback", sb, stdin_data: out, binmode: true)
      expect(st.exitstatus).to eq(0), err
      expect(err).to include("#{sb} is the snapback file of a finished apply of this stream to #{path('dest.img')}: " \
                             "nothing to do, nothing was written")
      expect(File.binread(sb) == journal).to be(true)
    end
    # Another stream (one record less), another destination: refused, nothing written.
    other = Proto3.encode_marked(Proto3.decode(out).drop(1))
    File.binwrite(path("other"), other)
    _o, err, st = lvmsync("--apply", path("other"), path("dest.img"), "--snapback", sb)
    expect(st.exitstatus).to eq(1)
    expect(err).to include("#{sb}: this snapback file was started by another apply (it was started for the stream " \
                           "standard input (#{items.size - 2} records")
    FileUtils.cp(path("before.img"), path("dest2.img"))
    _o, err, st = lvmsync("--apply", path("changes"), path("dest2.img"), "--snapback", sb)
    expect(st.exitstatus).to eq(1)
    expect(err).to include("it was started for the destination #{path('dest.img')}")
    expect(File.binread(path("dest2.img")) == before).to be(true)
    expect(File.binread(sb) == journal).to be(true)
    # Restoring gives the state before the first (cut) run.
    _o, err, st = lvmsync("--apply", sb, path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(path("dest.img")) == before).to be(true)
  end

  it "a stream cut between records, from a pipe, without a snapback: exit 3 and how to finish" do
    set_up(writes: ["0:4M"], random: nil, cow_size: "8M")
    out, = lvmsync("--stdout", SNAP, binmode: true)
    _hs, items, = Proto3.items(out)
    cut = items[-2][3]
    _o, err, st = lvmsync("--apply", "-", path("dest.img"), stdin_data: out.byteslice(0, cut), binmode: true)
    expect(st.exitstatus).to eq(3), err
    expect(err).to end_with("#{path('dest.img')} is partly updated; to finish, send the whole stream again; no undo " \
                            "file was kept to go back (--snapback FILE keeps one)\n")
  end

  it "a snapback file whose last batch was never committed: --apply restores up to the last commit, naming what it ignored" do
    set_up(writes: ["0:10M"], random: nil, origin_size: "16M", cow_size: "16M")
    _o, err, st = lvmsync(SNAP, path("dest.img"), "--snapback", path("sb"))
    expect(st.exitstatus).to eq(0), err
    journal = File.binread(path("sb"))
    _hs, items, = Proto3.items(journal)
    commits = items.each_index.select { |i| items[i][0] == Proto3.tag("COMMIT") }
    expect(commits.size).to be >= 2
    expect(items.last[0]).to eq(Proto3.tag("END"))
    # As a crash leaves it: the last batch's records written, its COMMIT (and END) not.
    File.binwrite(path("sb"), journal.byteslice(0, items[commits.last][3]))
    committed = items[1...commits[-2]].reject { |off, *| off >= 1 << 63 }
    tail = items[(commits[-2] + 1)...commits.last]
    want = origin
    committed.each { |off, _len, data, _at| want[off, data.bytesize] = data }
    _o, err, st = lvmsync("--apply", path("sb"), path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    mib = tail.sum { |_, len, _, _| len } / 1048576.0
    expect(err).to include("lvmsync: note: #{tail.size} records (#{format('%.1f', mib)} MiB) after the snapback file's " \
                           "last commit were ignored: the run that wrote it stopped before overwriting those ranges")
    expect_content(path("dest.img"), want)
  end

  it "a plain stream from a pipe, cut inside a record: exit 3; the whole stream with the same snapback resumes it, with a note" do
    set_up(writes: ["0:10M"], random: nil, origin_size: "16M", cow_size: "16M")
    before = File.binread(path("before.img"))
    plain, = lvmsync("--stdout", "--plain", SNAP, binmode: true)
    _hs, items, = Proto3.items(plain)
    cut = items.find { |i| i[3] > 9 << 20 }[3] + 12 + 1000 # inside a record's data
    sb = path("sb")
    _o, err, st = lvmsync("--apply", "-", path("dest.img"), "--snapback", sb, stdin_data: plain.byteslice(0, cut),
                                                                              binmode: true)
    expect(st.exitstatus).to eq(3), err
    expect(err).to include("only 1000 data bytes arrived", "is partly updated; to finish, send the whole stream again " \
                                                            "with the same --snapback (it resumes #{sb})")
    _o, err, st = lvmsync("--apply", "-", path("dest.img"), "--snapback", sb, stdin_data: plain, binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("lvmsync: snapback: resumed #{sb}",
                           "lvmsync: note: a plain stream arriving as it is sent cannot be identified before it is applied, so " \
                           "it was not compared with the stream #{sb} was started with")
    expect_content(path("dest.img"), origin)
    _o, err, st = lvmsync("--apply", sb, path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(path("dest.img")) == before).to be(true)
  end

  # A filesystem of +mib+ MiB (tmpfs) at +dir+ for the block: a destination on it can fill up.
  def with_small_filesystem(dir, mib)
    FileUtils.mkdir_p(dir)
    system("mount", "-t", "tmpfs", "-o", "size=#{mib}m", "tmpfs", dir, exception: true)
    yield
  ensure
    system("umount", dir)
  end

  it "a destination that fills up mid-apply: exit 3 from a file and from a pipe; with room again, the same command finishes" do
    set_up(writes: ["0:6M"], random: nil, origin_size: "16M", cow_size: "12M")
    out, = lvmsync("--stdout", SNAP, binmode: true)
    File.binwrite(path("changes"), out)
    small = path("small")
    dest = File.join(small, "dest.img")
    want = "\0".b * (16 << 20)
    want[0, 6 << 20] = origin.byteslice(0, 6 << 20)
    # A sparse destination (zeros) on a 2 MiB filesystem: every byte written needs space.
    with_small_filesystem(small, 2) do
      File.open(dest, "w") { |f| f.truncate(16 << 20) }
      _o, err, st = lvmsync("--apply", path("changes"), dest, "--snapback", path("sb"))
      expect(st.exitstatus).to eq(3), err
      expect(err.lines.size).to eq(1), err
      expect(err).to include("No space left on device", "#{dest} is partly updated; to finish, run the same command " \
                                                         "again (it resumes #{path('sb')}): lvmsync --apply " \
                                                         "#{path('changes')} #{dest} --snapback #{path('sb')}; to go " \
                                                         "back: lvmsync --apply #{path('sb')} #{dest}\n")
      system("mount", "-o", "remount,size=32m", small, exception: true)
      _o, err, st = lvmsync("--apply", path("changes"), dest, "--snapback", path("sb"))
      expect(st.exitstatus).to eq(0), err
      expect(err).to include("lvmsync: snapback: resumed #{path('sb')}")
      expect_content(dest, want)
      _o, err, st = lvmsync("--apply", path("sb"), dest)
      expect(st.exitstatus).to eq(0), err
      expect_content(dest, "\0".b * (16 << 20))
    end
    with_small_filesystem(small, 2) do
      File.open(dest, "w") { |f| f.truncate(16 << 20) }
      _o, err, st = lvmsync("--apply", "-", dest, stdin_data: out, binmode: true)
      expect(st.exitstatus).to eq(3), err
      expect(err).to include("No space left on device", "#{dest} is partly updated; to finish, send the whole " \
                                                         "stream again; no undo file was kept")
      system("mount", "-o", "remount,size=32m", small, exception: true)
      _o, err, st = lvmsync("--apply", "-", dest, stdin_data: out, binmode: true)
      expect(st.exitstatus).to eq(0), err
      expect_content(dest, want)
    end
  end

  it "--data-source reads the data from another device, the change list from the snapshot" do
    set_up
    File.binwrite(path("other.img"), Random.new(5).bytes(12 << 20))
    out, err, st = lvmsync("-v", "--stdout", "--data-source", path("other.img"), SNAP, binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("data source: #{path('other.img')}")
    other = File.binread(path("other.img"))
    recs = Proto3.decode(out)
    expect(recs.map { |o, d| d.bytesize }.sum).to eq(@layout["exceptions"] * 4096)
    recs.each { |off, data| expect(data).to eq(other.byteslice(off, data.bytesize)) }
  end

  it "--from OLDER NEWER with classic snapshots: OLDER's list of changes, the data read from NEWER" do
    set_up(nodes: { "vg--sync-tiny" => path("newer.img") })
    # NEWER ("tiny", taken after src-snap) shows the origin as it was then: here, the origin
    # now except for one changed chunk that was written only after NEWER was taken.
    newer = origin.dup
    old = @layout["records"].first.first
    newer[old * 4096, 4096] = File.binread(path("before.img"), 4096, old * 4096)
    expect(newer).not_to eq(origin)
    File.binwrite(path("newer.img"), newer)
    _o, err, st = lvmsync("-v", "--from", "vg-sync/src-snap", "vg-sync/tiny", path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect_content(path("dest.img"), newer)
    expect(err).to include("changes since vg-sync/src-snap (its exception store", "data read from snapshot vg-sync/tiny")
    _o, err, st = lvmsync("--from", "vg-sync/tiny", "vg-sync/src-snap", path("dest.img"))
    expect(st.exitstatus).to eq(1)
    expect(err).to include("--from vg-sync/tiny was created after vg-sync/src-snap")
  end

  it "-q prints nothing; the destination path may contain a colon after a slash" do
    set_up
    FileUtils.cp(path("before.img"), path("a:b.img"))
    out, err, st = lvmsync("-q", SNAP, path("a:b.img"))
    expect([st.exitstatus, out, err]).to eq([0, "", ""])
    expect_content(path("a:b.img"), origin)
  end

  it "an origin extended after its snapshot was taken: the snapshot's changes, and the new part sent whole" do
    set_up(origin_size: "40M")
    # src-lv grown from 8 to 10 extents of 4 MiB, as lvextend leaves the metadata: the
    # snapshot's bookkeeping LV keeps the 32 MiB the origin had (checked on a real kernel),
    # and nothing records what is written past them.
    text = LvmEnv.classic_metadata
    at = text.index("src-lv {")
    File.write(path("meta/vg-sync.vg"), text[0...at] + text[at..].sub("extent_count = 8", "extent_count = 10"))
    File.open(path("origin.img"), "r+b") { |f| f.pwrite(Random.new(5).bytes(8 << 20), 32 << 20) }
    # The destination was extended too: its new part holds other bytes.
    File.open(path("dest.img"), "r+b") { |f| f.pwrite("\xAA".b * (8 << 20), 32 << 20) }
    note = "lvmsync: note: vg-sync/src-lv grew from 32.0 MiB to 40.0 MiB after vg-sync/src-snap was taken, and " \
           "nothing records what was written to its last 8.0 MiB: they are sent whole, read from vg-sync/src-lv " \
           "(the destination must hold at least 40.0 MiB)\n"
    # The stream: the store's ranges and the new part, the furthest-reaching record first.
    out, err, st = lvmsync("--stdout", SNAP, binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(err.lines.first).to eq(note)
    records = Proto3.decode(out)
    expect(records.first[0] + records.first[1].bytesize).to eq(40 << 20)
    sent = records.map { |off, data| [off, data.bytesize] }.sort.each_with_object([]) do |(off, len), acc|
      acc.last && acc.last.sum == off ? acc.last[1] += len : acc << [off, len]
    end
    store = LVM::CowStore.open(path("cow.img")).extents.reject { |off, _| off >= 32 << 20 }
    expect(sent).to eq((store + [[32 << 20, 8 << 20]]).sort.each_with_object([]) do |(off, len), acc|
      acc.last && acc.last.sum >= off ? acc.last[1] = [acc.last.sum, off + len].max - acc.last[0] : acc << [off, len]
    end)
    # Applied locally, the destination is the origin.
    out, err, st = lvmsync("-v", SNAP, path("dest.img"))
    expect([st.exitstatus, out]).to eq([0, ""]), err
    expect(err).to include(note)
    expect(err).to match(/changed chunks and the origin's new 8\.0 MiB\)/)
    # -v names the new part; the last line counts the records sent, the part's included (as
    # many as the stream decoded above holds).
    expect(err).to match(%r{^lvmsync: and the origin's new part: bytes 33554432 to 41943040 \(8\.0 MiB\), read from \S+/vg--sync-src--lv$})
    expect(err).to match(/^lvmsync: sent 8\.9 MiB in #{records.size} records \(278 changed chunks and the origin/)
    expect_content(path("dest.img"), origin)
    # Read from a --data-source that ends before the new part does: refused before anything
    # is written (the part past its end would otherwise be left as it was).
    File.open(path("dest.img"), "r+b") { |f| f.pwrite("\xAA".b * (8 << 20), 32 << 20) }
    FileUtils.cp(path("origin.img"), path("copy.img"))
    File.truncate(path("copy.img"), 36 << 20)
    before = sha(path("dest.img"))
    out, err, st = lvmsync("--data-source", path("copy.img"), SNAP, path("dest.img"))
    expect([st.exitstatus, out]).to eq([1, ""]), err
    expect(err.lines.last).to eq("lvmsync: #{path('copy.img')}: this device is only 37748736 bytes, but the " \
                                 "origin's new part, sent whole, reaches byte 41943040: it must be read from a " \
                                 "device of the origin's new size (is it the grown origin, or an up-to-date copy " \
                                 "of it?)\n")
    expect(sha(path("dest.img"))).to eq(before)
    # A destination that was not extended is refused before anything is written.
    File.truncate(path("dest.img"), 32 << 20)
    before = sha(path("dest.img"))
    _out, err, st = lvmsync(SNAP, path("dest.img"))
    expect(st.exitstatus).to eq(1), err
    expect(err).to include("past the end of the destination (33554432 bytes)")
    expect(sha(path("dest.img"))).to eq(before)
  end

  describe "refusals: exit 1, one line naming the cause, destination unchanged" do
    def refuse(*args, message)
      before = sha(path("dest.img"))
      out, err, st = lvmsync(*args)
      expect([st.exitstatus, out]).to eq([1, ""])
      expect(err.lines.size).to eq(1), err
      expect(err).to start_with("lvmsync: ")
      expect(err).to include(message)
      expect(sha(path("dest.img"))).to eq(before)
    end

    it "not a snapshot" do
      set_up
      refuse("/dev/vg-sync/src-lv", path("dest.img"), "/dev/vg-sync/src-lv: not a snapshot (vg-sync/src-lv is a striped LV)")
    end

    it "an LV LVM does not know" do
      set_up
      refuse("/dev/vg-src/nope", path("dest.img"),
             "Failed to interrogate LVM about '/dev/vg-src/nope' (Failed to find logical volume \"/dev/vg-src/nope\")")
    end

    it "an overflowed (invalid) snapshot" do
      set_up(writes: ["0:8M"], random: nil, cow_size: "1M")
      expect(@layout["overflowed"]).to be(true)
      refuse(SNAP, path("dest.img"), "vg--sync-src--snap-cow: the snapshot is invalid (header field 'valid' at byte 4 is 0): " \
                                     "it overflowed (its COW space filled up) or failed")
    end

    it "a store with a wrong magic or version" do
      set_up(extra: ["--magic", "deadbeef"])
      refuse(SNAP, path("dest.img"), "not a device-mapper exception store: magic at byte 0 is 0xdeadbeef")
    end

    it "a store of an unsupported version" do
      set_up(extra: ["--version", "2"])
      refuse(SNAP, path("dest.img"), "exception store version 2 (header byte 8) is not supported")
    end

    it "a snapshot being merged" do
      set_up(metadata: { merging: true })
      refuse(SNAP, path("dest.img"), "the snapshot is being merged into its origin")
    end

    it "a --from round over an origin extended between its snapshots (no older bytes to check there)" do
      set_up
      # tiny (the newer snapshot) was taken after src-lv grew from 8 to 9 extents of 4 MiB.
      text = LvmEnv.classic_metadata
      at = text.index("snapshot1 {")
      File.write(path("meta/vg-sync.vg"), text[0...at] + text[at..].sub("extent_count = 8", "extent_count = 9"))
      message = "vg-sync/tiny is 36.0 MiB but vg-sync/src-snap records changes only in its first 32.0 MiB: " \
                "vg-sync/src-lv grew after vg-sync/src-snap was taken, and a --from round's destination check " \
                "has no older bytes to compare in the last 4.0 MiB; on a destination of at least 36.0 MiB, send " \
                "vg-sync/src-snap's own round instead (lvmsync vg-sync/src-snap DESTINATION, which sends that " \
                "part whole, read from vg-sync/src-lv), or copy the volume whole (a new snapshot sent with --full)"
      refuse("--from", "vg-sync/src-snap", "vg-sync/tiny", path("dest.img"), message)
      refuse("--stdout", "--from", "vg-sync/src-snap", "vg-sync/tiny", message)
    end

    it "an inactive snapshot (no -cow device)" do
      set_up
      File.delete(File.join(@dir, "dev/mapper/vg--sync-src--snap-cow"))
      refuse(SNAP, path("dest.img"), "vg--sync-src--snap-cow does not exist: is the snapshot active? " \
                                     "(lvchange -ay vg-sync/src-snap)")
    end

    it "a destination smaller than the changes (nothing written: the furthest record goes first)" do
      set_up
      File.truncate(path("dest.img"), 8 << 20)
      refuse(SNAP, path("dest.img"), "past the end of the destination (8388608 bytes)")
    end

    it "the origin as destination" do
      set_up
      dest = File.join(@dir, "dev/mapper/vg--sync-src--lv")
      origin = sha(path("origin.img"))
      refuse(SNAP, dest, "#{dest}: the destination is the same file as #{dest} (the data source); " \
                         "refusing to write to it")
      expect(sha(path("origin.img"))).to eq(origin)
      # The exception store is refused by any name (here its image file).
      refuse(SNAP, path("cow.img"), "#{path('cow.img')}: the destination is the same file as " \
                                    "#{File.join(@dir, 'dev/mapper/vg--sync-src--snap-cow')} (the exception store)")
    end

    it "a block device another program holds exclusively" do
      set_up
      with_loop_device(path("dest.img")) do |dev|
        File.open(dev, File::RDWR | File::EXCL) do
          refuse(SNAP, dev, "#{dev}: block device is in use")
        end
      end
    end

    it "a terminal as standard output for --stdout, refused before LVM is asked" do
      set_up
      require "pty"
      master, tty = PTY.open
      err_r, err_w = IO.pipe
      pid = Process.spawn(@env, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "lvmsync"), "--stdout",
                          "/dev/vg-src/nope", out: tty, err: err_w)
      [tty, err_w].each(&:close)
      _, st = Process.wait2(pid)
      err = err_r.read
      expect([st.exitstatus, err]).to eq([1, "lvmsync: refusing to write a binary change stream to a terminal: " \
                                             "redirect standard output\n"])
      written = begin
        master.read_nonblock(100)
      rescue IO::WaitReadable, Errno::EIO, EOFError # EIO: the terminal is closed, nothing left to read
        ""
      end
      expect(written).to eq("")
    ensure
      [master, err_r].each { |io| io&.close }
    end

    it "a stream with the wrong handshake, or a cut one: inside data, between records, inside its end mark" do
      set_up
      File.binwrite(path("s"), "lvmsync PROTO[2]\n#{"\0" * 20}")
      refuse("--apply", path("s"), path("dest.img"), "handshake failed: saw 'lvmsync PROTO[2]', expected 'lvmsync PROTO[3]'")
      out, = lvmsync("--stdout", SNAP, binmode: true)
      _hs, items, = Proto3.items(out)
      last = items[-2] # the last record; items[-1] is END
      File.binwrite(path("s"), out.byteslice(0, last[3] + 12 + 100))
      refuse("--apply", path("s"), path("dest.img"), "only 100 data bytes arrived")
      File.binwrite(path("s"), out.byteslice(0, items[-1][3]))
      refuse("--apply", path("s"), path("dest.img"),
             "before its end-of-stream mark: #{items.size - 2} of its #{items.size - 2} records")
      File.binwrite(path("s"), out.byteslice(0, out.bytesize - 5))
      refuse("--apply", path("s"), path("dest.img"), "is a control item END cut short: only 19 of its 24 bytes arrived")
      File.binwrite(path("s"), out.byteslice(0, items[2][3]))
      refuse("--apply", path("s"), path("dest.img"), "before its end-of-stream mark: 1 of its #{items.size - 2} records")
    end
  end

  it "--allow-short-destination writes what fits and says what it skipped" do
    set_up
    File.truncate(path("dest.img"), 8 << 20)
    _o, err, st = lvmsync("--allow-short-destination", SNAP, path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect(err).to match(/lvmsync: warning: \d+ records had \d+ bytes past the end of .*dest\.img \(8388608 bytes\)/)
    expect(File.size(path("dest.img"))).to eq(8 << 20)
    expect_content(path("dest.img"), origin.byteslice(0, 8 << 20))
  end

  describe "Ctrl-C while a peer stalls" do
    # Starts lvmsync with +args+, lets it block on the stalled pipe, sends SIGINT, and returns
    # [exit status, stderr, seconds it took to stop].
    def interrupt(*args, stdin: nil, stdout: nil)
      err_r, err_w = IO.pipe
      opts = { err: err_w }
      opts[:in] = stdin if stdin
      opts[:out] = stdout if stdout
      pid = Process.spawn(@env || {}, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "lvmsync"), *args, **opts)
      err_w.close
      sleep 3
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Process.kill("INT", pid)
      status = nil
      50.times do
        _, status = Process.wait2(pid, Process::WNOHANG)
        break if status

        sleep 0.1
      end
      unless status
        Process.kill("KILL", pid)
        Process.wait(pid)
      end
      [status&.exitstatus, err_r.read, Process.clock_gettime(Process::CLOCK_MONOTONIC) - t]
    ensure
      err_r&.close
    end

    it "the receiver stops while waiting for a sender that sends nothing" do
      set_up
      r, w = IO.pipe
      w.write("lvmsync PROTO[3]\n")
      rc, err, _secs = interrupt("--apply", "-", path("dest.img"), stdin: r)
      w.close
      r.close
      expect(rc).to eq(130), err
      expect(err).to include("lvmsync: interrupted")
    end

    it "the sender stops while the receiver reads nothing" do
      set_up(writes: ["0:8M"], random: nil, cow_size: "12M")
      r, w = IO.pipe
      rc, err, _secs = interrupt("--stdout", SNAP, stdout: w)
      w.close
      r.close
      expect(rc).to eq(130), err
    end
  end

  it "a local sync that fills its destination's disk exits 3, saying what was written and how to finish" do
    set_up(writes: ["0:8M"], random: nil, cow_size: "12M")
    with_tmpfs(path("mnt"), "4M") do
      dest = path("mnt/dest.img")
      File.write(dest, "")
      File.truncate(dest, 12 << 20)
      out, err, st = lvmsync(SNAP, dest)
      expect([st.exitstatus, out]).to eq([3, ""]), err
      expect(err.lines.size).to eq(1), err
      expect(err).to match(
        /\Alvmsync: #{Regexp.escape(dest)}: write \d+ bytes at byte \d+: No space left on device; by then \d+ records were complete and \d+ bytes had been written: #{Regexp.escape(dest)} is partly updated; to finish, run the same command again: lvmsync #{Regexp.escape(Shellwords.join([SNAP, dest]))}; no undo file was kept to go back \(--snapback FILE keeps one\)\n\z/
      )
      system("mount", "-o", "remount,size=64M", path("mnt"), exception: true)
      _o, err, st = lvmsync(SNAP, dest)
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(dest, 8 << 20)).to eq(origin.byteslice(0, 8 << 20))
    end
  end

  describe "remote (HOST:DEST through --rsh)" do
    # Stands in for ssh: logs its argv, drops the host, and runs the rest as ssh does, joined
    # with spaces through the remote shell.
    def fake_rsh
      f = path("fake-rsh")
      File.write(f, <<~SH)
        #!/bin/sh
        printf '%s\\n' "$@" > "#{path('rsh.log')}"
        while [ "$1" = "-o" ]; do shift 2; done
        shift
        exec sh -c "$*"
      SH
      File.chmod(0o755, f)
      f
    end

    def remote(*args, receiver: "#{RbConfig.ruby} #{File.join(SpecHelpers::ROOT, 'exe', 'lvmsync')}")
      lvmsync("--rsh", "#{fake_rsh} -o BatchMode=yes", "--remote-lvmsync", receiver, *args)
    end

    it "streams to the receiver; a destination name with spaces and shell characters stays one word" do
      set_up
      odd = path("my dest $(touch pwned) ;.img")
      FileUtils.cp(path("before.img"), odd)
      _o, err, st = remote("-b", path("remote sb"), SNAP, "somehost:#{odd}")
      expect(st.exitstatus).to eq(0), err
      expect_content(odd, origin)
      expect(File.exist?(path("pwned"))).to be(false)
      expect(File.exist?(path("remote sb"))).to be(true)
      log = File.read(path("rsh.log")).lines.map(&:chomp)
      expect(log[0, 2]).to eq(["-o", "BatchMode=yes"])
      expect(log[2]).to eq("somehost")
      expect(log[-5..]).to eq(["--apply", "-", "--snapback", Shellwords.escape(path("remote sb")), Shellwords.escape(odd)])
      expect(err).to match(/^remote: lvmsync: applied \d+ records/)
      expect(err).to match(/^lvmsync: sent /)
    end

    it "takes [ADDRESS]:DESTINATION as an IPv6 host" do
      set_up
      _o, err, st = remote(SNAP, "[::1]:#{path('dest.img')}")
      expect(st.exitstatus).to eq(0), err
      expect(File.read(path("rsh.log")).lines[2]).to eq("::1\n")
      expect_content(path("dest.img"), origin)
    end

    it "reports the receiver's own reason and exits 1 when it fails" do
      set_up
      _o, err, st = remote(SNAP, "somehost:#{path('missing.img')}")
      expect(st.exitstatus).to eq(1)
      expect(err).to include("remote: lvmsync: #{path('missing.img')}: open for writing: No such file or directory\n")
      expect(err.lines.last).to eq("lvmsync: apply on somehost failed (exit status 1): " \
                                   "#{path('missing.img')}: open for writing: No such file or directory\n")
    end

    it "understands an original receiver's FATAL ERROR lines" do
      set_up
      old = path("old-lvmsync")
      File.write(old, "#!/bin/sh\ncat >/dev/null\necho 'FATAL ERROR: Handshake failed; protocol mismatch?' >&2\nexit 1\n")
      File.chmod(0o755, old)
      _o, err, st = remote(SNAP, "somehost:#{path('dest.img')}", receiver: old)
      expect(st.exitstatus).to eq(1)
      expect(err.lines.last).to eq("lvmsync: apply on somehost failed (exit status 1): Handshake failed; protocol mismatch?\n")
    end

    it "skips the backtrace an original receiver's uncaught exception ends with" do
      set_up
      old = path("old-lvmsync")
      File.write(old, <<~'SH')
        #!/bin/sh
        cat >/dev/null
        cat >&2 <<'MSG'
        /usr/bin/lvmsync:148:in `initialize': No such file or directory @ rb_sysopen - /dev/x (Errno::ENOENT)
        	from /usr/bin/lvmsync:148:in `open'
        	from /usr/bin/lvmsync:357:in `<main>'
        MSG
        exit 1
      SH
      File.chmod(0o755, old)
      _o, err, st = remote(SNAP, "somehost:#{path('dest.img')}", receiver: old)
      expect(st.exitstatus).to eq(1)
      expect(err.lines.last).to eq("lvmsync: apply on somehost failed (exit status 1): /usr/bin/lvmsync:148:in " \
                                   "`initialize': No such file or directory @ rb_sysopen - /dev/x (Errno::ENOENT)\n")
    end

    it "exits 3 when the receiver failed after its first write, with the commands to finish and go back" do
      set_up
      receiver = path("cut-receiver")
      File.write(receiver, <<~SH)
        #!/bin/sh
        cat >/dev/null
        echo 'lvmsync: /dev/x: write 4096 bytes at byte 0: Input/output error; by then 2 records were complete' >&2
        exit 3
      SH
      File.chmod(0o755, receiver)
      _o, err, st = remote("--snapback", path("remote sb"), SNAP, "somehost:#{path('dest.img')}", receiver: receiver)
      expect(st.exitstatus).to eq(3)
      expect(err.lines.last).to eq(
        "lvmsync: apply on somehost failed (exit status 3): /dev/x: write 4096 bytes at byte 0: Input/output error; " \
        "by then 2 records were complete: somehost:#{path('dest.img')} is partly updated; to finish, run the same " \
        "command again (it resumes #{Shellwords.escape(path('remote sb'))}): " \
        "#{Shellwords.join(['lvmsync', '--rsh', "#{fake_rsh} -o BatchMode=yes", '--remote-lvmsync',
                                          receiver, '--snapback', path('remote sb'), SNAP,
                                          "somehost:#{path('dest.img')}"])}; " \
        "to go back, run on somehost: lvmsync --apply #{Shellwords.escape(path('remote sb'))} " \
        "#{Shellwords.escape(path('dest.img'))}\n"
      )
    end

    # The original lvmsync's receiver as its source applies a stream (spec/support/proto3.rb),
    # not knowing --capabilities, keeping a copy of what it was sent.
    def original_receiver
      f = path("original-lvmsync")
      File.write(f, <<~RUBY)
        #!#{RbConfig.ruby}
        require #{File.join(SpecHelpers::ROOT, 'spec/support/proto3').inspect}
        if ARGV.include?("--capabilities")
          warn "invalid option: --capabilities"
          exit 1
        end
        data = $stdin.binmode.read
        File.binwrite(#{path('received').inspect}, data)
        Proto3.original_apply(data, ARGV.last)
      RUBY
      File.chmod(0o755, f)
      f
    end

    it "sends the original receiver a plain stream it applies, with a note; ours gets a marked one" do
      set_up
      _o, err, st = remote(SNAP, "somehost:#{path('dest.img')}", receiver: original_receiver)
      expect(st.exitstatus).to eq(0), err
      expect(err).to include("lvmsync: note: the lvmsync on somehost does not take an end-of-stream mark")
      expect(Proto3.marked?(File.binread(path("received")))).to be(false)
      expect_content(path("dest.img"), origin)
      # --plain: not even asked.
      FileUtils.cp(path("before.img"), path("dest.img"))
      _o, err, st = remote("--plain", SNAP, "somehost:#{path('dest.img')}", receiver: original_receiver)
      expect(st.exitstatus).to eq(0), err
      expect(File.read(path("rsh.log"))).not_to include("--capabilities")
      expect(err).not_to include("end-of-stream mark")
      expect_content(path("dest.img"), origin)
      # Ours lists endmark, and gets BEGIN ... END.
      tee = path("tee-lvmsync")
      File.write(tee, "#!/bin/sh\ncase \" $* \" in *\" --capabilities \"*) exec #{RbConfig.ruby} " \
                      "#{File.join(SpecHelpers::ROOT, 'exe', 'lvmsync')} \"$@\" ;; esac\n" \
                      "tee #{path('received')} | exec #{RbConfig.ruby} #{File.join(SpecHelpers::ROOT, 'exe', 'lvmsync')} \"$@\"\n")
      File.chmod(0o755, tee)
      FileUtils.cp(path("before.img"), path("dest.img"))
      _o, err, st = remote(SNAP, "somehost:#{path('dest.img')}", receiver: tee)
      expect(st.exitstatus).to eq(0), err
      expect(Proto3.marked?(File.binread(path("received")))).to be(true), err + File.read(tee)
      expect(Proto3.decode(File.binread(path("received"))).size).to be > 1
      expect_content(path("dest.img"), origin)
    end

    it "reports a remote shell that cannot be run" do
      set_up
      _o, err, st = lvmsync("--rsh", path("no-such-ssh"), SNAP, "somehost:#{path('dest.img')}")
      expect(st.exitstatus).to eq(1)
      expect(err).to include(path("no-such-ssh"))
      expect_content(path("dest.img"), File.binread(path("before.img")))
    end
  end
end
