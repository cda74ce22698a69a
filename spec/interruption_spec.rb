# frozen_string_literal: true

require_relative "support/lvm_env"

# "An interrupted run is finished by running the same command again" (vmdksync and lvmsync,
# with and without --undo/--snapback), and "applying the same changes twice gives the same
# result": each run is stopped by a signal delivered when it enters its Nth write to the
# destination (strace fault injection, so the point is known: some data is written, not all),
# then the same command runs to the end; the result is compared with qemu-img's (vmdksync) or
# the origin (lvmsync), then a third run changes nothing; with an undo or snapback file, it
# then restores the state before the first run.
RSpec.describe "interrupted runs", :tmpdir, :sighup do
  def path(name)
    File.join(@dir, name)
  end

  # The calls that write to a destination: positioned writes, and copies from a delta file.
  WRITES = "pwrite64,pwritev,copy_file_range"

  # Runs +argv+ (an executable of exe/ and its arguments) with +sig+ delivered when it enters
  # its +n+th call of one of WRITES; returns its Process::Status (strace dies of the tracee's
  # signal) and stderr.
  def interrupt(sig, n, argv, env: {})
    _o, e, st = Open3.capture3(env, "strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=#{WRITES}",
                               "-e", "inject=#{WRITES}:signal=#{sig}:when=#{n}",
                               RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", argv[0]), *argv[1..])
    [st, e]
  end

  # The status the tool gives for +sig+: 130 for SIGINT, killed by the others.
  def stopped_by?(st, sig)
    case sig
    when "INT" then st.exitstatus == 130
    else st.termsig == Signal.list[sig] || st.exitstatus == 128 + Signal.list[sig]
    end
  end

  describe "vmdksync" do
    before do
      @files = JSON.parse(testkit("chain", "--dir", @dir, "--capacity", "32M", "--seed", 5,
                                  "--layer", "cowd,grain=128", "--write", "0:6M", "--random-writes", "200:64K",
                                  "--layer", "sesparse", "--write", "20M:3M"))
      @newest = @files["layers"].last["descriptor"]
      @dest = path("dest.raw")
      @want = sha(qemu_raw(@newest, path("qemu.raw")))
    end

    # SIGHUP: the terminal or SSH session it ran in was lost.
    [["INT", 3], ["TERM", 5], ["HUP", 7], ["KILL", 9]].each do |sig, n|
      it "stopped by SIG#{sig} mid-apply, then run again: the chain's content; once more: unchanged" do
        [[], ["--undo", path("undo-#{sig}")]].each do |undo|
          FileUtils.cp(@files["flat"], @dest)
          st, e = interrupt(sig, n, ["vmdksync", *undo, @newest, @dest])
          expect(stopped_by?(st, sig)).to be(true), "#{st.inspect}: #{e}"
          # One line: what was written, and the command that finishes (resuming the undo file).
          unless sig == "KILL"
            reason = sig == "INT" ? "interrupted" : "stopped by SIG#{sig}"
            expect(e).to match(/\Avmdksync: #{reason} after \d+ bytes were written: #{Regexp.escape(@dest)} is partly updated; to finish, run the same command again#{Regexp.escape(Ironshed::StopLine.resumes(undo[1]))}: /)
          end
          expect(sha(@dest)).not_to eq(sha(@files["flat"]))
          _o, err, st = run_exe("vmdksync", *undo, @newest, @dest)
          expect(st.exitstatus).to eq(0), err
          expect(err).to include("vmdksync: resumed") unless undo.empty?
          expect(sha(@dest)).to eq(@want)
          _o, err, st = run_exe("vmdksync", @newest, @dest)
          expect(st.exitstatus).to eq(0), err
          expect(sha(@dest)).to eq(@want)
          next if undo.empty?

          _o, err, st = run_exe("lvmsync", "--apply", undo[1], @dest)
          expect(st.exitstatus).to eq(0), err
          expect(sha(@dest)).to eq(sha(@files["flat"]))
        end
      end
    end
  end

  describe "lvmsync" do
    SNAPSHOT = "/dev/vg-sync/src-snap"

    before do
      @layout = JSON.parse(testkit("cow", "--dir", @dir, "--origin-size", "24M", "--chunk-size", "4K",
                                   "--cow-size", "16M", "--write", "0:4M", "--write", "9M:3M",
                                   "--random-writes", "300:4K"))
      @env = LvmEnv.build(@dir, vgs: { "vg-sync" => LvmEnv.classic_metadata },
                                lvs: { SNAPSHOT => %w[vg-sync src-snap] },
                                nodes: { "vg--sync-src--lv" => path("origin.img"),
                                         "vg--sync-src--snap-cow" => path("cow.img") })
    end

    [["INT", 3], ["TERM", 4], ["HUP", 5], ["KILL", 6]].each do |sig, n|
      it "a local sync stopped by SIG#{sig} mid-apply, then run again: the origin; once more: unchanged" do
        [[], ["--snapback", path("sb-#{sig}")]].each do |sb|
          FileUtils.cp(path("before.img"), path("dest.img"))
          st, e = interrupt(sig, n, ["lvmsync", *sb, SNAPSHOT, path("dest.img")], env: @env)
          expect(stopped_by?(st, sig)).to be(true), "#{st.inspect}: #{e}"
          unless sig == "KILL"
            reason = sig == "INT" ? "interrupted" : "stopped by SIG#{sig}"
            expect(e).to match(/^lvmsync: #{reason} after \d+ bytes were written: #{Regexp.escape(path('dest.img'))} is partly updated; to finish, run the same command again#{Regexp.escape(Ironshed::StopLine.resumes(sb[1]))}: /)
          end
          expect(sha(path("dest.img"))).not_to eq(sha(path("before.img")))
          2.times do
            _o, err, st = run_exe("lvmsync", *sb, SNAPSHOT, path("dest.img"), env: @env)
            expect(st.exitstatus).to eq(0), err
            expect(sha(path("dest.img"))).to eq(sha(path("origin.img")))
          end
          next if sb.empty?

          _o, err, st = run_exe("lvmsync", "--apply", sb[1], path("dest.img"))
          expect(st.exitstatus).to eq(0), err
          expect(sha(path("dest.img"))).to eq(sha(path("before.img")))
        end
      end
    end

    it "an --apply of a stream file stopped by SIGKILL, then run again: the origin" do
      out, = run_exe("lvmsync", "--stdout", SNAPSHOT, env: @env, binmode: true)
      File.binwrite(path("changes"), out)
      FileUtils.cp(path("before.img"), path("dest.img"))
      st, e = interrupt("KILL", 3, ["lvmsync", "--apply", path("changes"), path("dest.img")])
      expect(stopped_by?(st, "KILL")).to be(true), e
      expect(sha(path("dest.img"))).not_to eq(sha(path("before.img")))
      2.times do
        _o, err, st = run_exe("lvmsync", "--apply", path("changes"), path("dest.img"))
        expect(st.exitstatus).to eq(0), err
        expect(sha(path("dest.img"))).to eq(sha(path("origin.img")))
      end
    end
  end
end
