# frozen_string_literal: true

require "json"
require "digest"
require "open3"
require "shellwords"
require "lvmsync"
require "lvmsync/cli"
require_relative "support/lvm_env"
require_relative "support/proto3"

# The destination check of a --from round, on files: the sender's EXPECT item (read here with
# the independent codec of spec/support/proto3.rb and the reference XXH3), the receiver's
# refusal of a destination that holds something else (exit 1, nothing written, the first
# differing ranges named), --no-destination-check, and the command line's refusals before
# anything is sent (--plain, a receiver without 'destcheck', an inactive OLDER). The real
# snapshots, LVs and ssh are in spec/lvmsync_destcheck_vm_spec.rb.
RSpec.describe "lvmsync --from: the destination check", :tmpdir do
  def path(name) = File.join(@dir, name)
  def sha(file) = Digest::SHA256.file(file).hexdigest
  def lvmsync(*args, stdin_data: "", binmode: false) = run_exe("lvmsync", *args, env: @env, stdin_data: stdin_data,
                                                                                  binmode: binmode)

  # OLDER is src-snap (its exception store lists the changes; its view is before.img), NEWER
  # is tiny (here: the origin now); the destination holds OLDER unless a test changes it.
  before do
    layout = JSON.parse(testkit("cow", "--dir", @dir, "--origin-size", "6M", "--chunk-size", "4K", "--cow-size",
                                "2M", "--write", "0:8K", "--write", "1M:300K", "--random-writes", "60:4K"))
    @chunks = layout["exceptions"]
    FileUtils.cp(path("before.img"), path("older.img"))
    FileUtils.cp(path("origin.img"), path("newer.img"))
    FileUtils.cp(path("before.img"), path("dest.img"))
    @env = LvmEnv.build(@dir, vgs: { "vg-sync" => LvmEnv.classic_metadata },
                              lvs: { "vg-sync/src-snap" => %w[vg-sync src-snap], "vg-sync/tiny" => %w[vg-sync tiny] },
                              nodes: { "vg--sync-src--lv" => path("origin.img"), "vg--sync-src--snap" => path("older.img"),
                                       "vg--sync-src--snap-cow" => path("cow.img"), "vg--sync-tiny" => path("newer.img") })
  end

  let(:from) { ["--from", "vg-sync/src-snap", "vg-sync/tiny"] }
  let(:older) { File.binread(path("older.img")) }
  let(:newer) { File.binread(path("newer.img")) }

  # The stream of the round, as --stdout writes it.
  def stream
    out, err, st = lvmsync("--stdout", *from, binmode: true)
    expect(st.exitstatus).to eq(0), err
    out
  end

  # A destination that differs from OLDER inside the first and third changed records (and in
  # a byte no record touches).
  def spoil(recs)
    bytes = older.dup
    [recs[0], recs[2]].each { |off, _| bytes.setbyte(off + 1, bytes.getbyte(off + 1) ^ 0xff) }
    File.binwrite(path("dest.img"), bytes)
    bytes
  end

  it "puts an EXPECT item after BEGIN: OLDER's and NEWER's XXH3 of every record's range, ascending" do
    s = stream
    _hs, items, = Proto3.items(s)
    expect(items[0][0]).to eq(Proto3.tag("BEGIN"))
    expect(items[1][0]).to eq(Proto3.tag("EXPECT"))
    recs = items[2...-1].map { |off, len, _, _| [off, len] }
    entries = items[1][2].unpack("Q>*").each_slice(4).to_a
    expect(entries.map { |o, l, _, _| [o, l] }).to eq(recs.sort)
    entries.each do |o, l, old_hash, new_hash|
      expect(old_hash).to eq(Proto3.xxh3(older.byteslice(o, l)))
      expect(new_hash).to eq(Proto3.xxh3(newer.byteslice(o, l)))
    end
    # BEGIN counts the item; END's digest covers it.
    expect(items[0][2].unpack("Q>3")[0]).to eq(items.size - 2)
    expect(items[-1][2].unpack("Q>3")[0..1]).to eq([items.size - 1, recs.sum { |_, l| l }])
    expect(items[-1][2].unpack("Q>3")[2]).to eq(Proto3.xxh3(s.byteslice(0, items[-1][3])))
  end

  it "a round onto a destination holding OLDER proceeds and leaves NEWER; locally, from a stream file and a pipe" do
    _o, err, st = lvmsync("-v", *from, path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(path("dest.img")) == newer).to be(true)
    expect(err).to match(/destination check: \d+ ranges of .* hold what the round starts from/)
    s = stream
    File.binwrite(path("stream"), s)
    [["--apply", path("stream")], ["--apply", "-"]].each do |apply|
      FileUtils.cp(path("older.img"), path("dest.img"))
      _o, err, st = lvmsync(*apply, path("dest.img"), stdin_data: s, binmode: true)
      expect(st.exitstatus).to eq(0), err
      expect(File.binread(path("dest.img")) == newer).to be(true)
    end
  end

  it "a destination holding something else is refused (exit 1, one line naming the first ranges), unchanged" do
    recs = Proto3.items(stream)[1][2...-1].map { |off, len, _, _| [off, len] }.sort
    bad = spoil(recs)
    want = "bytes #{recs[0][0]}..#{recs[0].sum - 1}, bytes #{recs[2][0]}..#{recs[2].sum - 1}; nothing was written"
    File.binwrite(path("stream"), stream)
    [[*from, path("dest.img")], ["--apply", path("stream"), path("dest.img")], ["--apply", "-", path("dest.img")],
     [*from, "-b", path("sb"), path("dest.img")]].each do |args|
      before = sha(path("dest.img"))
      _o, err, st = lvmsync(*args, stdin_data: File.binread(path("stream")), binmode: true)
      expect(st.exitstatus).to eq(1), "#{args}: #{err}"
      expect(err.lines.size).to eq(1), err
      expect(err).to include("lvmsync: #{path('dest.img')}: the destination does not hold what this round starts " \
                             "from: 2 of the #{recs.size} ranges it changes hold neither", want,
                             "finish it with --no-destination-check")
      expect(sha(path("dest.img"))).to eq(before)
      expect(File.exist?(path("sb"))).to be(false)
    end
    expect(File.binread(path("dest.img")) == bad).to be(true)
    # --no-destination-check: sent and applied unchecked.
    _o, err, st = lvmsync("--no-destination-check", *from, path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(path("dest.img")) == newer).to be(true)
    spoil(recs)
    _o, err, st = lvmsync("--apply", path("stream"), "--no-destination-check", path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("lvmsync: note: --no-destination-check: #{path('dest.img')} was not checked")
    expect(File.binread(path("dest.img")) == newer).to be(true)
  end

  it "a stream built from the format description is checked the same way" do
    recs = [[4096, "n" * 4096], [65_536, "m" * 512]]
    base = ("o" * 131_072).b
    expect_item = lambda do |old|
      payload = recs.map { |o, d| [o, d.bytesize, Proto3.xxh3(old.byteslice(o, d.bytesize)), Proto3.xxh3(d)] }
      Proto3.item(Proto3.tag("EXPECT"), payload.flatten.pack("Q>*"))
    end
    build = lambda do |old|
      s = Proto3.encode_marked(recs)
      _hs, items, = Proto3.items(s)
      begin_at = Proto3::HANDSHAKE.bytesize
      body = s.byteslice(begin_at + 12 + 24, items[-1][3] - begin_at - 36)
      layout = Proto3::HANDSHAKE + recs.map { |o, d| Proto3.header(o, d.bytesize) }.join
      out = Proto3::HANDSHAKE + Proto3.item(Proto3.tag("BEGIN"), [recs.size + 1, 4608, Proto3.xxh3(layout)].pack("Q>3"))
      out << expect_item.call(old) << body
      out << Proto3.item(Proto3.tag("END"), [recs.size + 2, 4608, Proto3.xxh3(out)].pack("Q>3"))
    end
    File.binwrite(path("d"), base)
    File.binwrite(path("s"), build.call(base))
    _o, err, st = lvmsync("--apply", path("s"), path("d"))
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(path("d"), 8, 4096)).to eq("nnnnnnnn")
    # Made for another destination: refused, nothing written.
    File.binwrite(path("d"), base)
    File.binwrite(path("s"), build.call("x" * 131_072))
    _o, err, st = lvmsync("--apply", path("s"), path("d"))
    expect(st.exitstatus).to eq(1)
    expect(err).to include("2 of the 2 ranges it changes hold neither", "bytes 4096..8191, bytes 65536..66047")
    expect(File.binread(path("d")) == base).to be(true)
  end

  it "is refused before anything is sent where it cannot be done: --plain, a receiver without 'destcheck', " \
     "an inactive OLDER" do
    _o, err, st = lvmsync("--plain", "--stdout", *from, binmode: true)
    expect(st.exitstatus).to eq(1)
    expect(err).to include("--from: the destination check needs a marked stream, which --plain does not send",
                           "give --no-destination-check")
    out, err, st = lvmsync("--plain", "--no-destination-check", "--stdout", *from, binmode: true)
    expect(st.exitstatus).to eq(0), err
    expect(Proto3.marked?(out)).to be(false)
    # An older receiver (it lists everything but destcheck): nothing sent.
    older_receiver = path("older-receiver")
    File.write(older_receiver, "#!/bin/sh\ncase \"$*\" in *--capabilities*) " \
                               "echo 'lvmsync capabilities: discards verify endmark' ;; " \
                               "*) cat > #{path('received')} ;; esac\n")
    File.chmod(0o755, older_receiver)
    rsh = ["--rsh", "sh -c 'shift; exec sh -c \"$*\"' rsh", "--remote-lvmsync", older_receiver]
    _o, err, st = lvmsync(*rsh, *from, "somehost:#{path('dest.img')}")
    expect(st.exitstatus).to eq(1)
    expect(err).to include("the lvmsync on somehost cannot check that its destination holds the older snapshot's " \
                           "content (it does not list 'destcheck' in --capabilities")
    expect(File.exist?(path("received"))).to be(false)
    _o, err, st = lvmsync(*rsh, "--no-destination-check", *from, "somehost:#{path('dest.img')}")
    expect(st.exitstatus).to eq(0), err
    expect(Proto3.items(File.binread(path("received")))[1].map(&:first)).not_to include(Proto3.tag("EXPECT"))
    # OLDER's device missing (not active): named, with both ways on.
    File.unlink(File.join(@dir, "dev", "mapper", "vg--sync-src--snap"))
    _o, err, st = lvmsync(*from, path("dest.img"))
    expect(st.exitstatus).to eq(1)
    expect(err).to include("vg--sync-src--snap does not exist: vg-sync/src-snap is not active, and the destination " \
                           "check reads it (lvchange -ay vg-sync/src-snap; or --no-destination-check)")
    expect(File.binread(path("dest.img")) == older).to be(true)
  end

  it "an interrupted round's rerun finishes it: ranges already at NEWER pass, and the finishing command skips " \
     "the check" do
    s = stream
    recs = Proto3.items(s)[1][2...-1].map { |off, len, _, _| [off, len] }.sort
    # A run that wrote the first half of the records, whole, then stopped.
    half = older.dup
    recs.first(recs.size / 2).each { |o, l| half[o, l] = newer.byteslice(o, l) }
    File.binwrite(path("dest.img"), half)
    _o, err, st = lvmsync(*from, path("dest.img"))
    expect(st.exitstatus).to eq(0), err
    expect(err).to include("lvmsync: note: #{recs.size / 2} of the #{recs.size} ranges of #{path('dest.img')} " \
                           "already hold the newer snapshot's data")
    expect(File.binread(path("dest.img")) == newer).to be(true)
    # A run stopped by SIGINT at its third write to the destination (strace fault injection):
    # the command it names to finish skips the check, which a record it left partly written
    # would fail; that command finishes the round.
    FileUtils.cp(path("older.img"), path("dest.img"))
    _o, err, st = Open3.capture3(@env, "strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=pwrite64,pwritev",
                                 "-e", "inject=pwrite64,pwritev:signal=INT:when=3", RbConfig.ruby,
                                 File.join(SpecHelpers::ROOT, "exe", "lvmsync"), *from, path("dest.img"))
    expect(st.exitstatus).to eq(130), err
    finish = err[/to finish, run the same command again: lvmsync (.*?); no undo file/, 1]
    expect(finish).to eq(Shellwords.join([*from, path("dest.img"), "--no-destination-check"])), err
    _o, err, st = lvmsync(*Shellwords.split(finish))
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(path("dest.img")) == newer).to be(true)
  end

  it "a stopped round is told to skip the check only when it had written (so had passed the check)" do
    dest = path("dest.img")
    cli = LVMSync::CLI.new([*from, dest], err: StringIO.new)
    cli.send(:parser).parse([*from, dest])
    wrote = Interrupt.new.extend(Ironshed::PartlyWritten)
    wrote.written_bytes = 4096
    expect(cli.send(:rerun, wrote)).to end_with(Shellwords.join(["lvmsync", *from, dest, "--no-destination-check"]))
    # Stopped before its first write (while checking, say), or a remote receiver that may not
    # have written: the rerun keeps the check.
    [Interrupt.new, SignalException.new("TERM"), nil].each do |err|
      expect(cli.send(:rerun, err)).to end_with(Shellwords.join(["lvmsync", *from, dest])), err.inspect
    end
  end
end
