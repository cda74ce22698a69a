# frozen_string_literal: true

require "shellwords"
require "lvmsync"

# lvmsync --apply and the files around a stream: a destination that is the stream itself
# (by name, by link, or as standard input) or a snapback file that is either is refused; a
# named pipe is read as a stream without blocking the open; --verify checks what was written
# against the stream itself; and a run that stops after its first write says in one line
# what it wrote and how to finish or go back (exit 3).
RSpec.describe "lvmsync --apply and the files around the stream", :tmpdir do
  def path(name)
    File.join(@dir, name)
  end

  # A PROTO[3] stream of [offset, data] records.
  def stream(records)
    records.reduce(+"lvmsync PROTO[3]\n") { |s, (off, data)| s << [off, data.bytesize].pack("Q>L>") << data }
  end

  def all_files = file_digests(@dir)

  # Runs lvmsync expecting a refusal: +status+, nothing on stdout, exactly +line+ on stderr,
  # no file changed.
  def refused(*args, line:, status: 1, **spawn)
    before = all_files
    err_file = path("stderr.txt")
    pid = Process.spawn(RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "lvmsync"), *args,
                        out: path("stdout.txt"), err: err_file, **spawn)
    st = wait_within(pid, 60)
    err = File.read(err_file)
    expect([st.exitstatus, File.read(path("stdout.txt"))]).to eq([status, ""]), err
    expect(err).to eq("lvmsync: #{line}\n")
    File.delete(err_file, path("stdout.txt"))
    expect(all_files).to eq(before)
  end

  def dest_of(size, byte = "D")
    File.binwrite(path("dest.img"), byte * size)
    path("dest.img")
  end

  describe "a destination that is the stream" do
    # A file whose first record lands inside the file itself: applied to itself, later reads
    # would take what was just written for records never checked.
    def self_rewriting
      f = path("changes")
      File.binwrite(f, stream([[17, [0, 4].pack("Q>L>")]]).ljust(4096, "x"))
      f
    end

    it "is refused by name, hard link and symbolic link" do
      f = self_rewriting
      File.link(f, path("hard"))
      File.symlink(f, path("soft"))
      [f, path("hard"), path("soft")].each do |dest|
        refused("--apply", f, dest,
                line: "#{dest}: the destination is the same file as #{f} (the input stream); refusing to write to it")
      end
    end

    it "is refused as standard input (--apply - F < F): the descriptor is compared" do
      f = self_rewriting
      refused("--apply", "-", f, in: f,
                                 line: "#{f}: the destination is the same file as standard input (the input " \
                                       "stream); refusing to write to it")
    end

    it "refuses a snapback file that is the destination or the stream" do
      f = self_rewriting
      dest = dest_of(8192)
      File.symlink(dest, path("sb-link"))
      refused("--apply", f, "--snapback", path("sb-link"), dest,
              line: "#{path('sb-link')}: the undo file is the same file as #{dest} (the destination); " \
                    "refusing to write to it")
      refused("--apply", f, "--snapback", f, dest,
              line: "#{f}: the undo file is the same file as #{f} (the input stream); refusing to write to it")
    end
  end

  it "refuses --snapback - (lvmsync --apply - reads standard input) as a usage error, creating nothing" do
    dest = dest_of(8192)
    File.binwrite(path("changes"), stream([[0, "ab"]]))
    expect_usage_errors("lvmsync", [[["--apply", path("changes"), "--snapback", "-", dest],
                                     "--snapback -: the snapback file needs a real name"],
                                    [["--apply", path("changes"), "--snapback", "", dest],
                                     "--snapback needs a file name"]], @dir)
  end

  describe "--apply FIFO: a named pipe is read as a stream" do
    it "applies what a writer sends later, as it arrives" do
      dest = dest_of(8192)
      File.mkfifo(path("pipe"))
      pid, err = spawn_exe("lvmsync", "--apply", path("pipe"), dest)
      sleep 0.5
      File.binwrite(path("pipe"), stream([[0, "hello"], [4096, "world"]]))
      st = wait_within(pid, 60)
      expect(st.exitstatus).to eq(0), err.read
      expect(File.binread(dest, 5)).to eq("hello")
      expect(File.binread(dest, 5, 4096)).to eq("world")
    ensure
      err&.close
    end

    { "INT" => 130, "TERM" => 143 }.each do |sig, code|
      it "waiting for a writer that never comes, stops on SIG#{sig} with one line; nothing written" do
        dest = dest_of(8192)
        File.mkfifo(path("pipe"))
        pid, err = spawn_exe("lvmsync", "--apply", path("pipe"), dest)
        sleep 1.5
        Process.kill(sig, pid)
        st = wait_within(pid, 10)
        expect(st.exitstatus || (128 + st.termsig)).to eq(code)
        reason = sig == "INT" ? "interrupted" : "stopped by SIGTERM"
        expect(err.read).to eq("lvmsync: #{reason}; nothing was written to #{dest}\n")
        expect(File.binread(dest)).to eq("D" * 8192)
      ensure
        err&.close
      end
    end

    it "LVMSync.apply waiting on a pipe stops on SIGINT, also once the threads there were at its start have ended" do
      # A Ruby thread must notice the signal for the native wait to be cancelled; this one
      # ends while the apply waits, leaving only the thread inside it.
      script = <<~RUBY
        require "lvmsync"
        r, w = IO.pipe
        w.write(#{stream([[0, 'first']]).dump})
        Thread.new { sleep 0.3 }
        job = Ironshed::Progress.new
        begin
          LVMSync.apply(r, ARGV[0], job: job)
          puts "finished"
        rescue Interrupt => e
          puts "Interrupt, cancelled: \#{job.cancelled?}, partly written: \#{e.is_a?(Ironshed::PartlyWritten)}"
        end
      RUBY
      dest = dest_of(8192)
      out_r, out_w = IO.pipe
      pid = Process.spawn(RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"), "-e", script, dest, out: out_w)
      out_w.close
      sleep 1.5
      Process.kill("INT", pid)
      st = wait_within(pid, 10)
      expect(st.exitstatus).to eq(0)
      # The record waits in the batch for more to come: nothing was written, and it says so.
      expect(out_r.read).to eq("Interrupt, cancelled: true, partly written: false\n")
      expect(File.binread(dest)).to eq("D" * 8192)
    ensure
      out_r&.close
    end

    it "--apply - from a pipe still works" do
      dest = dest_of(8192)
      _o, err, st = run_exe("lvmsync", "--apply", "-", dest, stdin_data: stream([[100, "piped"]]), binmode: true)
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(dest, 5, 100)).to eq("piped")
    end
  end

  describe "--apply --verify (the receiving end alone)" do
    it "re-reads what it wrote and compares it with the stream's own data" do
      dest = dest_of(65_536)
      recs = [[0, "a" * 8192], [16_384, "b" * 100], [4096, "c" * 10]] # the third overwrites part of the first
      File.binwrite(path("changes"), stream(recs))
      out, err, st = run_exe("lvmsync", "--apply", path("changes"), "--verify", dest)
      expect(st.exitstatus).to eq(0), err
      expect(err.lines.last).to eq("lvmsync: verify: all 2 records read back from #{dest} match the stream (XXH3) " \
                                   "(1 records overwritten by later ones not compared)\n")
      # The digests of what was read back, for a sender on the other end of `--apply -`.
      expect(out.lines.map { |l| l.split[1..2] }).to eq([%w[0 8192], %w[16384 100], %w[4096 10]])
    end
  end

  # The line of a run stopped after its first write.
  STOPPED_APPLY = /\Alvmsync: (?<reason>.*): (?<dest>.*) is partly updated; to finish, (?<finish>[^;]*); (?<back>.*)\n\z/

  it "a stream from a pipe cut after the first write: exit 3, and finishing means sending it again" do
    dest = dest_of(4 << 20)
    s = stream([[0, "x" * (1 << 20)], [2 << 20, "y" * (1 << 20)]])
    _o, err, st = run_exe("lvmsync", "--apply", "-", dest, stdin_data: s[0, s.bytesize - 1000], binmode: true)
    expect(st.exitstatus).to eq(3), err
    m = STOPPED_APPLY.match(err)
    expect(m).not_to be_nil, err
    expect(m[:reason]).to match(/\Astandard input: stream ends inside record 1 .*; by then 1 records were complete and \d+ bytes had been written\z/)
    expect(m[:finish]).to eq("send the whole stream again")
    expect(m[:back]).to eq("no undo file was kept to go back (--snapback FILE keeps one)")
  end

  describe "a full disk in mid-apply (tmpfs)" do
    def set_up
      @changes = path("changes")
      File.binwrite(@changes, stream((0...12).map { |i| [i << 20, (65 + i).chr * (1 << 20)] }))
      @dest = path("mnt/dest.img")
      File.write(@dest, "")
      File.truncate(@dest, 16 << 20)
    end

    it "exits 3 saying what was written; running the same command again finishes" do
      with_tmpfs(path("mnt"), "4M") do
        set_up
        out, err, st = run_exe_within(120, "lvmsync", "--apply", @changes, @dest)
        expect([st.exitstatus, out]).to eq([3, ""]), err
        m = STOPPED_APPLY.match(err)
        expect(m).not_to be_nil, err
        expect(m[:reason]).to match(/No space left on device; by then \d+ records were complete and \d+ bytes had been written\z/)
        expect(m[:finish]).to start_with("run the same command again: ")
        finish = Shellwords.split(m[:finish].delete_prefix("run the same command again: "))
        expect(finish).to eq(["lvmsync", "--apply", @changes, @dest])
        system("mount", "-o", "remount,size=64M", path("mnt"), exception: true)
        _o, err, st = run_exe("lvmsync", *finish.drop(1))
        expect(st.exitstatus).to eq(0), err
        (0...12).each { |i| expect(File.binread(@dest, 4, i << 20)).to eq((65 + i).chr * 4) }
      end
    end

    it "LVMSync.apply raises an Ironshed::PartlyWritten carrying what was written; a refusal is not one" do
      with_tmpfs(path("mnt"), "4M") do
        set_up
        job = Ironshed::Progress.new
        error = nil
        begin
          LVMSync.apply(@changes, @dest, job: job)
        rescue Ironshed::PartlyWritten => e
          error = e
        end
        expect(error).to be_a(Errno::ENOSPC)
        expect(error.written_bytes).to eq(job.written_bytes)
        # The bytes the destination's blocks now hold are at least what it says was written.
        expect(error.written_bytes).to be_between(1 << 20, File.stat(@dest).blocks * 512)
        # An exception that cannot be marked (frozen) leaves the block unchanged, never a FrozenError.
        frozen = RuntimeError.new("frozen").freeze
        expect { Ironshed.noting_writes(job) { raise frozen } }.to raise_error(frozen)
        refused = LVMSync.apply(@changes, @changes) rescue $! # rubocop:disable Style/RescueModifier
        expect(refused).to be_a(Ironshed::DestinationError)
        expect(refused).not_to be_a(Ironshed::PartlyWritten)
      end
    end

    it "with --snapback: the finishing command resumes the snapback file, the go-back command then restores" do
      with_tmpfs(path("mnt"), "4M") do
        set_up
        original = sha(@dest)
        sb = path("dest's snapback")
        _out, err, st = run_exe_within(120, "lvmsync", "--apply", @changes, "--snapback", sb, @dest)
        expect(st.exitstatus).to eq(3), err
        m = STOPPED_APPLY.match(err)
        expect(m).not_to be_nil, err
        prefix = "run the same command again (it resumes #{Shellwords.escape(sb)}): "
        expect(m[:finish]).to start_with(prefix)
        finish = Shellwords.split(m[:finish].delete_prefix(prefix))
        expect(finish).to eq(["lvmsync", "--apply", @changes, "--snapback", sb, @dest])
        back = Shellwords.split(m[:back].delete_prefix("to go back: "))
        expect(back).to eq(["lvmsync", "--apply", sb, @dest])
        system("mount", "-o", "remount,size=64M", path("mnt"), exception: true)
        _o, err, st = run_exe("lvmsync", *finish.drop(1))
        expect(st.exitstatus).to eq(0), err
        expect(err).to include("lvmsync: snapback: resumed #{sb}")
        (0...12).each { |i| expect(File.binread(@dest, 4, i << 20)).to eq((65 + i).chr * 4) }
        _o, err, st = run_exe("lvmsync", *back.drop(1))
        expect(st.exitstatus).to eq(0), err
        expect(sha(@dest)).to eq(original)
      end
    end
  end
end
