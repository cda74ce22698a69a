# frozen_string_literal: true

require "digest"
require "lvmsync"
require_relative "support/thin_env"
require_relative "support/proto3"

# lvmsync on thin snapshots, on a stand-in pool (spec/support/thin_env.rb): real LVM metadata,
# real thin metadata made by thin_restore and read by the real thin_delta, a dmsetup that
# records the metadata-snapshot reservations, and device images built to match the mappings.
# The real kernel runs the same workflows on a real thin pool (spec/lvmsync_thin_vm_spec.rb).
RSpec.describe "lvmsync on thin snapshots", :tmpdir do

  def path(name) = File.join(@dir, name)

  # Three states of one thin LV, as block => data block maps:
  #   snap  (thin-snap, id 2):  what the destination holds (the first copy);
  #   snap2 (thin-snap2, id 3): the origin later;
  #   origin (thin1, id 1):     the origin now.
  # Each step rewrites blocks (new data blocks), maps new ones, discards some, and leaves
  # the rest shared. Block 450 is written into thin-snap only (left_only, as the kernel shows
  # writes to a snapshot).
  def set_up(images: %w[thin1 thin-snap thin-snap2])
    rng = Random.new(42)
    snap = (0..99).to_h { |b| [b, b] }.merge((300..309).to_h { |b| [b, b] }).merge(450 => 450)
    snap2 = snap.reject { |b, _| (20..24).cover?(b) || b == 305 || b == 450 }
                .merge(5 => 1005, 6 => 1006, 50 => 1050, 200 => 1200, 201 => 1201, 400 => 1400)
    origin = snap2.reject { |b, _| b == 70 }.merge(60 => 2060, 401 => 2401, 511 => 2511)
    @maps = { "thin-snap" => snap, "thin-snap2" => snap2, "thin1" => origin }
    data = (snap.values + snap2.values + origin.values).uniq.to_h { |d| [d, rng.bytes(ThinEnv::BLOCK)] }
    ThinEnv.metadata(path("tmeta"), { 1 => origin, 2 => snap, 3 => snap2 })
    @maps.each { |lv, map| ThinEnv.image(path("#{lv}.img"), map, data) }
    FileUtils.cp(path("thin-snap.img"), path("dest.img"))
    @env = ThinEnv.build(@dir, images: images.to_h { |lv| [lv, path("#{lv}.img")] }, metadata: path("tmeta"))
  end

  # Byte ranges [offset, length] where two maps differ (what thin_delta should report):
  # an independent computation from the mappings, coalesced.
  def differing(a, b)
    blocks = (a.keys | b.keys).select { |k| a[k] != b[k] }.sort
    blocks.slice_when { |x, y| y != x + 1 }.map { |run| [run.first * ThinEnv::BLOCK, run.size * ThinEnv::BLOCK] }
  end

  def unmapped(a, b)
    blocks = (a.keys - b.keys).sort
    blocks.slice_when { |x, y| y != x + 1 }.map { |run| [run.first * ThinEnv::BLOCK, run.size * ThinEnv::BLOCK] }
  end

  def lvmsync(*args, env: @env)
    run_exe("lvmsync", *args, env: env, binmode: true)
  end

  def sha_of(name) = Digest::SHA256.file(path(name)).hexdigest

  def with_env(env)
    old = env.keys.to_h { |k| [k, ENV.fetch(k, nil)] }
    ENV.update(env)
    yield
  ensure
    ENV.update(old)
  end

  def calls = ThinEnv.calls(@dir)

  # A PROTO[3] stream read independently: [[offset, length, kind, data], ...].
  def records(stream)
    line, rest = stream.split("\n", 2)
    out = []
    pos = 0
    while pos < rest.bytesize
      off, len = rest.byteslice(pos, 12).unpack("Q>N")
      pos += 12
      if off >= 1 << 63 # a control item (BEGIN, END): not a record
        pos += len
      elsif line == "lvmsync PROTO[3] discards" && len >= 0x8000_0000
        out << [off, len & 0x7fff_ffff, :discard, nil]
      else
        out << [off, len, :data, rest.byteslice(pos, len)]
        pos += len
      end
    end
    [line, out]
  end

  def coalesce(pairs)
    pairs.sort.each_with_object([]) do |(o, l), acc|
      if acc.any? && acc.last[0] + acc.last[1] == o
        acc.last[1] += l
      else
        acc << [o, l]
      end
    end
  end

  describe "LVM:: API" do
    before { set_up }

    it "ThinSnapshot#differences: every block whose mapping differs, from thin_delta on a metadata snapshot" do
      snap = LVM::LogicalVolume.new("vgfix", "thin-snap", vgcfg: LVM::VGConfig.load(ThinEnv::FIXTURE)).snapshot
      with_env(@env) do
        expect(snap).to be_an(LVM::ThinSnapshot)
        want = differing(@maps["thin-snap"], @maps["thin1"]).map { |o, l| o..(o + l - 1) }
        expect(snap.differences).to eq(want)
        d = snap.delta
        expect(d.block_size).to eq(ThinEnv::BLOCK)
        expect([d.left, d.right]).to eq([2, 1])
        expect(d.unmapped_extents).to eq(unmapped(@maps["thin-snap"], @maps["thin1"]))
        expect(d.block_counts.values_at(:different, :right_only, :left_only)).to eq([4, 5, 8])
      end
      expect(calls.grep(/message|thin_delta/)).to eq(
        ["dmsetup message vgfix-pool-tpool 0 reserve_metadata_snap",
         "thin_delta -m --snap1 2 --snap2 1 #{@dir}/dev/mapper/vgfix-pool_tmeta",
         "dmsetup message vgfix-pool-tpool 0 release_metadata_snap",
         "dmsetup message vgfix-pool-tpool 0 reserve_metadata_snap",
         "thin_delta -m --snap1 2 --snap2 1 #{@dir}/dev/mapper/vgfix-pool_tmeta",
         "dmsetup message vgfix-pool-tpool 0 release_metadata_snap"]
      )
      expect(ThinEnv.held?(@dir)).to be(false)
    end

    it "ThinSnapshot#delta(from:) compares two snapshots of one origin" do
      vgcfg = LVM::VGConfig.load(ThinEnv::FIXTURE)
      with_env(@env) do
        d = LVM::ThinSnapshot.new("vgfix", "thin-snap2", vgcfg: vgcfg).delta(from: "thin-snap")
        expect([d.left, d.right]).to eq([2, 3])
        expect(d.extents).to eq(differing(@maps["thin-snap"], @maps["thin-snap2"]))
      end
    end

    it "ThinDelta.parse reads thin_delta's --verbose form too" do
      xml = IO.popen([ThinEnv::THIN_DELTA, "--verbose", "--snap1", "2", "--snap2", "1", path("tmeta")], &:read)
      expect(xml).to include("<range ")
      d = LVM::ThinDelta.parse(xml)
      expect(d.extents).to eq(differing(@maps["thin-snap"], @maps["thin1"]))
    end
  end

  describe "the metadata snapshot is always released" do
    before { set_up }

    def spawn_lvmsync(*args)
      r, w = IO.pipe
      pid = Process.spawn(@env, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "lvmsync"), *args,
                          out: File::NULL, err: w)
      w.close
      [pid, r]
    end

    def wait_for_thin_delta
      deadline = Time.now + 30
      sleep 0.05 until calls.any? { |c| c.start_with?("thin_delta") } || Time.now > deadline
      expect(ThinEnv.held?(@dir)).to be(true)
      sleep 0.3
    end

    it "on Thread#kill of the Ruby thread that waits for thin_delta, which is killed" do
      FileUtils.touch(path("meta/thin_delta.hang"))
      snap = LVM::ThinSnapshot.new("vgfix", "thin-snap", vgcfg: LVM::VGConfig.load(ThinEnv::FIXTURE))
      with_env(@env) do
        worker = Thread.new { snap.delta }
        wait_for_thin_delta
        worker.kill
        expect(worker.join(10)).not_to be_nil
      end
      expect(ThinEnv.held?(@dir)).to be(false)
      expect(calls.last).to eq("dmsetup message vgfix-pool-tpool 0 release_metadata_snap")
      # The stand-in thin_delta (a sleep of 60 s) is gone, and was waited for.
      pid = Integer(File.read(path("meta/thin_delta.pid")))
      expect { Process.kill(0, pid) }.to raise_error(Errno::ESRCH)
    end

    { "INT" => ->(st) { st.exitstatus == 130 }, "TERM" => ->(st) { st.termsig == Signal.list["TERM"] } }.each do |sig, ok|
      it "on SIG#{sig} while thin_delta runs" do
        FileUtils.touch(path("meta/thin_delta.hang"))
        pid, err = spawn_lvmsync("vgfix/thin-snap", path("dest.img"))
        wait_for_thin_delta
        Process.kill(sig, pid)
        _, st = Process.wait2(pid)
        msg = err.read
        expect(ok.call(st)).to be(true), "#{st.inspect}: #{msg}"
        expect(ThinEnv.held?(@dir)).to be(false), msg
        expect(calls.last).to eq("dmsetup message vgfix-pool-tpool 0 release_metadata_snap")
        expect(msg).to match(sig == "INT" ? /interrupted/ : /stopped by SIGTERM/)
        expect(sha_of("dest.img")).to eq(sha_of("thin-snap.img"))
      end
    end

    it "when thin_delta prints something that is not a whole diff (nothing written)" do
      FileUtils.touch(path("meta/thin_delta.junk"))
      _o, err, st = lvmsync("vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(1)
      expect(err).to match(/output of thin_delta -m --snap1 2 --snap2 1 \S+: at byte \d+: .*(stopped early|malformed)/)
      expect(ThinEnv.held?(@dir)).to be(false)
      expect(calls.last).to include("release_metadata_snap")
      expect(sha_of("dest.img")).to eq(sha_of("thin-snap.img"))
    end

    it "when thin_delta fails: its own message is shown" do
      # thin-snap of an origin whose id the metadata does not have.
      ThinEnv.metadata(path("tmeta"), { 2 => @maps["thin-snap"] })
      _o, err, st = lvmsync("vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(1)
      expect(err).to include("thin_delta -m --snap1 2 --snap2 1", "exit status")
      expect(err).to match(/Unable to find mapping tree|snap2/)
      expect(ThinEnv.held?(@dir)).to be(false)
    end

    it "a metadata snapshot someone else holds is named, and left alone" do
      FileUtils.touch(path("meta/held"))
      _o, err, st = lvmsync("vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(1)
      expect(err).to include("thin pool vgfix/pool: a metadata snapshot is already reserved (held root 60)",
                             "dmsetup message vgfix-pool-tpool 0 release_metadata_snap")
      expect(ThinEnv.held?(@dir)).to be(true)
      expect(calls.grep(/release|thin_delta/)).to eq([])
    end

    it "a reservation the kernel refuses for another reason is reported as such" do
      FileUtils.touch(path("meta/fail-reserve"))
      _o, err, st = lvmsync("vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(1)
      expect(err).to include("reserve_metadata_snap` failed: device-mapper: message ioctl on vgfix-pool-tpool  " \
                             "failed: No space left on device")
      expect(calls.grep(/release|thin_delta/)).to eq([])
    end

    it "a second lvmsync on the same pool waits for the first (lock file)" do
      pool = LVM::ThinPool.new("vgfix", "pool")
      lock = with_env(@env) { pool.lock_path }
      File.open(lock, File::RDWR | File::CREAT) do |f|
        f.flock(File::LOCK_EX)
        pid, err = spawn_lvmsync("vgfix/thin-snap", path("dest.img"))
        sleep 1.5
        expect(calls.grep(/message/)).to eq([])
        f.flock(File::LOCK_UN)
        _, st = Process.wait2(pid)
        expect(st.exitstatus).to eq(0), err.read
      end
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
    ensure
      File.unlink(lock) if lock && File.exist?(lock)
    end
  end

  describe "sync" do
    before { set_up }

    it "local: the destination equals the origin; unmapped blocks arrive as zeros" do
      _o, err, st = lvmsync("-v", "vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
      expect(err).to include("thin snapshot vgfix/thin-snap (thin id 2) of thin1 (thin id 1), pool vgfix/pool",
                             "4 blocks rewritten, 5 newly mapped, 8 unmapped", "metadata snapshot released",
                             "9 changed and 8 unmapped blocks of 64.0 KiB")
      expect(ThinEnv.held?(@dir)).to be(false)
    end

    it "--stdout: a plain PROTO[3] stream, unmapped ranges as zero data; --apply gives the origin" do
      out, err, st = lvmsync("--stdout", "vgfix/thin-snap")
      expect(st.exitstatus).to eq(0), err
      line, recs = records(out)
      expect(line).to eq("lvmsync PROTO[3]")
      expect(recs.map { |r| r[2] }.uniq).to eq([:data])
      origin = File.binread(path("thin1.img"))
      recs.each { |o, l, _, d| expect(d == origin.byteslice(o, l)).to be(true), "record at #{o}" }
      expect(coalesce(recs.map { |o, l, _, _| [o, l] })).to eq(differing(@maps["thin-snap"], @maps["thin1"]))
      unmapped(@maps["thin-snap"], @maps["thin1"]).each do |o, l|
        expect(origin.byteslice(o, l)).to eq("\0" * l)
      end
      File.binwrite(path("changes"), out)
      _o, err, st = lvmsync("--apply", path("changes"), path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
    end

    it "--discards --stdout: discard records for unmapped ranges, applied as holes" do
      out, err, st = lvmsync("--discards", "--stdout", "vgfix/thin-snap")
      expect(st.exitstatus).to eq(0), err
      expect(err).to include("discard records")
      line, recs = records(out)
      expect(line).to eq("lvmsync PROTO[3] discards")
      discards = coalesce(recs.select { |r| r[2] == :discard }.map { |o, l, _, _| [o, l] })
      expect(discards).to eq(unmapped(@maps["thin-snap"], @maps["thin1"]))
      data = coalesce(recs.select { |r| r[2] == :data }.map { |o, l, _, _| [o, l] })
      expect(coalesce(data + discards)).to eq(differing(@maps["thin-snap"], @maps["thin1"]))
      File.binwrite(path("changes"), out)
      _o, err, st = lvmsync("--apply", path("changes"), path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
      File.open(path("dest.img")) do |f|
        discards.each do |o, _l|
          expect(f.seek(o, :HOLE)).to eq(0)
          expect(f.pos).to eq(o), "a hole at #{o}"
        end
      end
    end

    it "--discards over an external origin: the unmapped ranges go as data read from the origin, with a note" do
      # thin1 reads the external origin vgfix/lin where it maps no block: there the device
      # holds lin's data, not zeros (the image is given that data, as the kernel would read it).
      text = File.read(ThinEnv::FIXTURE)
      seg = "thin_pool = \"pool\"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1\n"
      expect(text.scan(seg).size).to eq(1)
      # (The stand-in's vgcfgbackup answers with this file.)
      File.write(path("meta/vgfix.vg"), text.sub(seg, "thin_pool = \"pool\"\n\t\t\t\texternal_origin = \"lin\"\n" \
                                                    "\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1\n"))
      lin = Random.new(7)
      unmapped = unmapped(@maps["thin-snap"], @maps["thin1"])
      expect(unmapped).not_to be_empty
      File.open(path("thin1.img"), "r+b") { |f| unmapped.each { |o, l| f.pwrite(lin.bytes(l), o) } }
      out, err, st = lvmsync("--discards", "--stdout", "vgfix/thin-snap")
      expect(st.exitstatus).to eq(0), err
      expect(err).to include("lvmsync: note: --discards: vgfix/thin1 reads its external origin vgfix/lin where it " \
                             "maps no block, so its unmapped ranges are sent as data read from it, not as discard " \
                             "records")
      line, recs = records(out)
      expect(line).to eq("lvmsync PROTO[3]")
      expect(recs.map { |r| r[2] }.uniq).to eq([:data])
      expect(coalesce(recs.map { |o, l, _, _| [o, l] })).to eq(differing(@maps["thin-snap"], @maps["thin1"]))
      File.binwrite(path("changes"), out)
      _o, err, st = lvmsync("--apply", path("changes"), path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
      # Locally too.
      FileUtils.cp(path("thin-snap.img"), path("dest.img"))
      _o, err, st = lvmsync("--discards", "vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(err).to include("reads its external origin vgfix/lin")
      expect(err).not_to include("discarded")
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
    end

    it "--discards local: discarded on the destination, reported" do
      _o, err, st = lvmsync("--discards", "vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
      expect(err).to match(%r{discarded 512.0 KiB in \d+ ranges of \S+/dest.img})
    end

    it "--verify (local): every range read back from the destination matches the source" do
      _o, err, st = lvmsync("--verify", "vgfix/thin-snap", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(err).to match(/verify: all \d+ ranges read back from \S+ match the source/)
      _o, err, st = lvmsync("--verify", "--allow-short-destination", "vgfix/thin-snap", path("dest.img"))
      expect([st.exitstatus, err]).to match([2, /--verify .* cannot be used with --allow-short-destination/])
      _o, err, st = lvmsync("--verify", "--stdout", "vgfix/thin-snap")
      expect([st.exitstatus, err]).to match([2, /--verify needs a live receiver/])
    end
  end

  describe "increments (--from OLDER NEWER)" do
    it "rolling rounds: snapshot to snapshot, then the last one to the origin" do
      set_up
      _o, err, st = lvmsync("-v", "--from", "vgfix/thin-snap", "vgfix/thin-snap2", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin-snap2.img"))
      expect(err).to include("changes from vgfix/thin-snap (thin id 2) to vgfix/thin-snap2 (thin id 3)")
      expect(calls).to include("thin_delta -m --snap1 2 --snap2 3 #{@dir}/dev/mapper/vgfix-pool_tmeta")
      # Only the blocks that differ between the two snapshots are sent.
      out, err2, st = lvmsync("--stdout", "--from", "vgfix/thin-snap", "vgfix/thin-snap2")
      expect(st.exitstatus).to eq(0), err2
      expect(coalesce(records(out)[1].map { |o, l, _, _| [o, l] })).to eq(differing(@maps["thin-snap"], @maps["thin-snap2"]))
      _o, err, st = lvmsync("vgfix/thin-snap2", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
    end

    it "--from a snapshot to its origin: the snapshot's own round (the origin was created first)" do
      set_up
      FileUtils.cp(path("thin-snap2.img"), path("dest.img"))
      _o, err, st = lvmsync("-v", "--from", "vgfix/thin-snap2", "vgfix/thin1", path("dest.img"))
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
      expect(err).to include("changes from vgfix/thin-snap2 (thin id 3) to vgfix/thin1 (thin id 1)",
                             "destination check: ")
      # The destination check of a --from round: a destination holding other data is refused
      # with nothing written.
      File.binwrite(path("dest.img"), Random.new(3).bytes(File.size(path("thin1.img"))))
      before = sha_of("dest.img")
      _o, err, st = lvmsync("--from", "vgfix/thin-snap2", "vgfix/thin1", path("dest.img"))
      expect(st.exitstatus).to eq(1), err
      expect(err).to include("the destination does not hold what this round starts from", "nothing was written")
      expect(sha_of("dest.img")).to eq(before)
      out, err2, st = lvmsync("--stdout", "--from", "vgfix/thin-snap2", "vgfix/thin1")
      expect(st.exitstatus).to eq(0), err2
      expect(coalesce(records(out)[1].map { |o, l, _, _| [o, l] })).to eq(differing(@maps["thin-snap2"], @maps["thin1"]))
    end

    it "refuses snapshots in the wrong order, an inactive newer snapshot, and a classic/thin mix" do
      set_up(images: %w[thin1 thin-snap])
      _o, err, st = lvmsync("--from", "vgfix/thin-snap2", "vgfix/thin-snap", path("dest.img"))
      expect([st.exitstatus, err]).to match([1, /--from vgfix\/thin-snap2 was created after vgfix\/thin-snap/])
      _o, err, st = lvmsync("--from", "vgfix/thin-snap", "vgfix/thin-snap2", path("dest.img"))
      expect(st.exitstatus).to eq(1)
      expect(err).to include("is not active", "lvchange -ay -K vgfix/thin-snap2")
      expect(calls.grep(/message/)).to eq([])
      expect(sha_of("dest.img")).to eq(sha_of("thin-snap.img"))
    end
  end

  describe "remote receivers" do
    before { set_up }

    def fake_rsh
      f = path("fake-rsh")
      File.write(f, <<~SH)
        #!/bin/sh
        printf '%s\\n' "$*" >> "#{path('rsh.log')}"
        shift
        exec sh -c "$*"
      SH
      File.chmod(0o755, f)
      f
    end

    let(:ours) { "#{RbConfig.ruby} #{File.join(SpecHelpers::ROOT, 'exe', 'lvmsync')}" }

    # A receiver that does not know --capabilities (as the original lvmsync), and keeps a copy
    # of the stream it was sent.
    def old_receiver
      f = path("old-lvmsync")
      File.write(f, <<~SH)
        #!/bin/sh
        case " $* " in *" --capabilities "*) echo "invalid option: --capabilities" >&2; exit 1 ;; esac
        tee "#{path('received')}" | exec #{ours} "$@"
      SH
      File.chmod(0o755, f)
      f
    end

    it "asks the receiver's capabilities, and sends discard records to ours" do
      out, _e, st = lvmsync("--capabilities")
      expect([st.exitstatus, out]).to eq([0, "lvmsync capabilities: discards verify endmark destcheck\n"])
      _o, err, st = lvmsync("-v", "--rsh", fake_rsh, "--remote-lvmsync", ours, "--discards", "--verify",
                            "vgfix/thin-snap", "otherhost:#{path('dest.img')}")
      expect(st.exitstatus).to eq(0), err
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
      expect(err).to include("the receiver on otherhost supports: discards verify endmark", "remote: lvmsync: discarded")
      expect(err).to match(/verify: all \d+ ranges read back from otherhost:\S+ match the source/)
      expect(File.read(path("rsh.log"))).to include("--capabilities")
    end

    it "an old receiver gets a plain stream (zeros), never the extended one" do
      _o, err, st = lvmsync("--rsh", fake_rsh, "--remote-lvmsync", old_receiver, "--discards",
                            "vgfix/thin-snap", "otherhost:#{path('dest.img')}")
      expect(st.exitstatus).to eq(0), err
      expect(err).to include("cannot apply discard records; sending the unmapped ranges as zeros instead",
                             "does not take an end-of-stream mark")
      expect(File.binread(path("received"))).to start_with("lvmsync PROTO[3]\n")
      expect(Proto3.marked?(File.binread(path("received")))).to be(false)
      expect(sha_of("dest.img")).to eq(sha_of("thin1.img"))
    end

    it "--verify with a receiver that cannot verify: refused before anything is sent" do
      _o, err, st = lvmsync("--rsh", fake_rsh, "--remote-lvmsync", old_receiver, "--verify",
                            "vgfix/thin-snap", "otherhost:#{path('dest.img')}")
      expect(st.exitstatus).to eq(1)
      expect(err).to include("cannot report what it wrote", "nothing was sent")
      expect(File.exist?(path("received"))).to be(false)
      expect(sha_of("dest.img")).to eq(sha_of("thin-snap.img"))
    end

    it "--verify names the ranges whose read-back digest differs" do
      # A receiver whose report of one range disagrees with what the sender read (as when a
      # device drops or corrupts a write: the real one is checked in the VM with dm-flakey).
      f = path("lying-lvmsync")
      File.write(f, <<~SH)
        #!/bin/sh
        #{ours} "$@" | awk '/^lvmsync-verify / && !done { $4 = "0000000000000000"; done = 1 } { print }'
      SH
      File.chmod(0o755, f)
      _o, err, st = lvmsync("--rsh", fake_rsh, "--remote-lvmsync", f, "--verify",
                            "vgfix/thin-snap", "otherhost:#{path('dest.img')}")
      expect(st.exitstatus).to eq(1)
      expect(err).to match(/verify FAILED: 1 of \d+ ranges of otherhost:\S+ do not match the source: bytes \d+\.\.\d+ \(differs\)/)
    end
  end
end
