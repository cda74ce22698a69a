# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/rootzone_env"

# `rootzone update` as cron runs it: zones signed by ldns-signzone, installed into a tinydns
# instance root, and every refusal of the --help text leaving data.cdb byte for byte as it
# was.
RSpec.describe "rootzone update", :tmpdir do
  include RootZoneEnv

  def rootzone(*args, **kw)
    out, err, st = run_exe("rootzone", *args, **kw)
    [st.exitstatus, out, err]
  end

  before do
    @keys = keypair
    @anchor = anchor_of(@keys)
    @root = File.join(@dir, "root")
    Dir.mkdir(@root)
  end

  def update(source, *more, anchor: @anchor, **kw)
    rootzone("update", "--source", source, "--trust-anchor", anchor, "--tinydns-root", @root, *more, **kw)
  end

  def install_first
    zone = signed_zone(@keys, serial: 2024120600)
    rc, out, err = update(zone)
    expect([rc, err]).to eq([0, ""])
    expect(out).to include("installed root zone serial 2024120600")
    File.binread(File.join(@root, "data.cdb"))
  end

  it "--help fits 80 columns and names every option; --version; usage errors exit 2" do
    [%w[--help], %w[update --help], %w[setup --help]].each do |args|
      rc, out, = rootzone(*args)
      expect(rc).to eq(0)
      long = out.lines.select { |l| l.chomp.length > 80 }
      expect(long).to be_empty, "#{args.join(' ')}: #{long.inspect}"
    end
    _, out, = rootzone("update", "--help")
    expect(out).to include("--source URL|FILE", "--trust-anchor FILE", "--tinydns-root DIR", "--dry-run",
                           "--signature FILE|URL", "--keyring FILE", "--allow-older", "--timeout",
                           "--quiet", "--verbose", "Exit status: 0 installed or already current")
    expect(rootzone("--version")).to eq([0, "rootzone (ironshed) #{Ironshed::VERSION}\n", ""])
    expect(rootzone("update", "-V")[1]).to eq("rootzone (ironshed) #{Ironshed::VERSION}\n")
    {
      [] => "a command is needed",
      %w[frobnicate] => "unknown command",
      %w[update --bogus] => "invalid option: --bogus",
      %w[update extra] => "unexpected argument",
      %w[update --signature x.sig] => "--signature needs --keyring",
      %w[update --keyring k.gpg] => "--keyring is only used with --signature",
      %w[update -q -v] => "contradict",
      %w[update --timeout 0] => "--timeout must be positive"
    }.each do |args, msg|
      rc, out, err = rootzone(*args)
      expect([rc, out]).to eq([2, ""]), args.inspect
      expect(err).to start_with("rootzone: ").and include(msg)
    end
  end

  it "installs from a file, gzip, stdin and a FIFO; says when already current; -q and -v" do
    zone = signed_zone(@keys, serial: 2024120600)
    rc, out, err = update(zone, "-v")
    expect([rc, err]).to eq([0, ""])
    expect(out).to include("DNSKEY RRset is signed by key #{File.basename(@keys[0])[/\d+\z/].to_i}",
                           "ZONEMD: SHA-384 ", "matches the zone", "signatures valid until ",
                           "not served (DNSSEC records: tinydns cannot sign answers): ",
                           "RRSIG", "NSEC", "DNSKEY", "ZONEMD", "delegations)")
    expect(out.lines.last).to start_with("rootzone: installed root zone serial 2024120600 in #{@root} (nothing installed before)")
    expect(File.stat(File.join(@root, "data.cdb")).mode & 0o777).to eq(0o644)

    expect(update(zone)).to match([0, /serial 2024120600 is already installed in #{Regexp.escape(@root)}; nothing to do/, ""])
    expect(update(zone, "-q")).to eq([0, "", ""])

    newer = signed_zone(@keys, serial: 2024120601, seed: 2)
    expect(update(gzip(newer), "-q")).to eq([0, "", ""])
    newest = signed_zone(@keys, serial: 2024120602, seed: 3)
    rc, out, = update("-", stdin_data: File.binread(gzip(newest)), binmode: true)
    expect([rc, out]).to match([0, /installed root zone serial 2024120602 .*\(was 2024120601\)/])
    fifo = File.join(@dir, "fifo")
    File.mkfifo(fifo)
    fourth = signed_zone(@keys, serial: 2024120603, seed: 4)
    writer = Thread.new { File.binwrite(fifo, File.binread(fourth)) }
    expect(update(fifo)).to match([0, /serial 2024120603/, ""])
    writer.join
    expect(Dir.children(@root).sort).to eq(%w[data data.cdb])
  end

  it "--dry-run verifies and writes nothing" do
    zone = signed_zone(@keys, serial: 2024120600)
    rc, out, = update(zone, "--dry-run")
    expect([rc, out]).to eq([0, "rootzone: dry run: serial 2024120600 verified; would install it in #{@root} (nothing installed before)\n"])
    expect(Dir.children(@root)).to be_empty
  end

  it "refuses, naming the cause, and leaves data.cdb as it was" do
    before = install_first
    text = File.read(signed_zone(@keys, serial: 2024120601, seed: 5))
    write = ->(name, content) { File.join(@dir, name).tap { |p| File.binwrite(p, content) } }
    glue = text.lines.find { |l| l.start_with?("ns0.nic.") && l.include?("\tA\t") }
    tld = glue.split(".")[2]
    zmd = text.lines.find { |l| l.include?("\tZONEMD\t") }
    other = keypair(File.join(@dir, "other").tap { |d| Dir.mkdir(d) })
    gz = File.binread(gzip(write.call("ok.zone", text)))
    cases = {
      "glue altered after signing" =>
        [write.call("glue", text.sub(glue, glue.sub(/\t[\d.]+$/, "\t192.0.2.99"))), "ZONEMD SHA-384 digest does not match the zone"],
      "ZONEMD altered" =>
        [write.call("zmd", text.sub(zmd, zmd.sub(/[0-9a-f]\n\z/) { |c| (c.to_i(16) ^ 1).to_s(16) + "\n" })),
         ". ZONEMD: RRSIG by key "],
      "ZONEMD missing" =>
        [signed_zone(@keys, serial: 2024120601, seed: 5, zonemd: false, name: "nozonemd"), "no ZONEMD record at ."],
      "signatures expired" =>
        [signed_zone(@keys, serial: 2024120601, seed: 5, extra: %w[-i 20200101000000 -e 20200201000000], name: "exp"),
         "expired at 2020-02-01 00:00:00 UTC"],
      "not yet valid" =>
        [signed_zone(@keys, serial: 2024120601, seed: 5, extra: %w[-i 20300101000000 -e 20300201000000], name: "fut"),
         "not valid before 2030-01-01 00:00:00 UTC"],
      "signed by another key" =>
        [signed_zone(other, serial: 2024120601, seed: 5, name: "other.zone"), "matches the trust anchor"],
      "a delegation removed" =>
        [write.call("deleg", text.lines.reject { |l| l.start_with?("#{tld}.\t") && l.include?("\tNS\t") }.join),
         "ZONEMD SHA-384 digest does not match the zone"],
      "truncated file" => [write.call("cut", text[0, text.size / 2]), nil],
      "truncated gzip" => [write.call("cut.gz", gz[0, gz.size * 3 / 4]), "truncated gzip stream"],
      "garbage" => [write.call("garbage", "<html>404 Not Found</html>\n"), "line 1"],
      "binary garbage" => [write.call("random", Random.new(1).bytes(5000)), nil],
      "serial older than installed" =>
        [signed_zone(@keys, serial: 2024120500, seed: 5, name: "older"),
         "serial 2024120500 is older than the installed 2024120600"]
    }
    cases.each do |what, (file, msg)|
      rc, out, err = update(file)
      expect([rc, out]).to eq([1, ""]), "#{what}: #{err}"
      expect(err.lines.size).to eq(1), "#{what}: #{err}"
      expect(err).to start_with("rootzone: "), what
      expect(err).to include(msg), "#{what}: #{err}" if msg
      expect(File.binread(File.join(@root, "data.cdb"))).to eq(before), what
      expect(Dir.children(@root).sort).to eq(%w[data data.cdb]), what
    end
    # The older zone goes in with --allow-older.
    expect(update(cases["serial older than installed"][0], "--allow-older")).to match([0, /serial 2024120500/, ""])
  end

  it "refuses an algorithm it cannot check, by name" do
    keys = keypair(File.join(@dir, "ed448").tap { |d| Dir.mkdir(d) }, alg: "ED448")
    zone = signed_zone(keys, serial: 7, tlds: 20)
    rc, _, err = update(zone, anchor: anchor_of(keys))
    expect(rc).to eq(1)
    expect(err).to include("algorithm 16 (ED448)", "does not verify")
    expect(Dir.children(@root)).to be_empty
  end

  it "checks a detached OpenPGP signature with gpgv when asked" do
    zone = gzip(signed_zone(@keys, serial: 2024120600))
    gnupg = File.join(@dir, "gnupg")
    Dir.mkdir(gnupg, 0o700)
    env = { "GNUPGHOME" => gnupg }
    run!("gpg", "--batch", "--passphrase", "", "--quick-gen-key", "zone signer <zones@example.org>",
        "ed25519", "sign", "never", env: env)
    run!("gpg", "--batch", "--detach-sign", "-o", "#{zone}.sig", zone, env: env)
    keyring = File.join(@dir, "signer.gpg")
    run!("gpg", "--batch", "--export", "-o", keyring, env: env)
    rc, out, err = update(zone, "--signature", "#{zone}.sig", "--keyring", keyring, "-v")
    expect([rc, err]).to eq([0, ""])
    expect(out).to include("good signature from ", "zone signer <zones@example.org>")
    # Both downloaded, as the original recipe fetched root.zone.gz and its .sig.
    with_http_server(@dir) do |base|
      name = File.basename(zone)
      rc, out, err = update("#{base}/#{name}", "--signature", "#{base}/#{name}.sig", "--keyring", keyring, "-v")
      expect([rc, err]).to eq([0, ""])
      expect(out).to include("note: OpenPGP signature #{base}/#{name}.sig: good signature from ")
    end

    # The same bytes with another signature: refused before anything else.
    File.binwrite("#{zone}.sig", File.binread("#{zone}.sig").tap { |s| s.setbyte(s.bytesize - 3, s.getbyte(s.bytesize - 3) ^ 0xff) })
    cdb = File.binread(File.join(@root, "data.cdb"))
    rc, _, err = update(zone, "--signature", "#{zone}.sig", "--keyring", keyring)
    expect(rc).to eq(1)
    expect(err).to include("gpgv refused the signature")
    expect(File.binread(File.join(@root, "data.cdb"))).to eq(cdb)
  end

  it "downloads over HTTPS with the system's CA store, and over HTTP" do
    zone = signed_zone(@keys, serial: 2024120600)
    www = File.join(@dir, "www")
    Dir.mkdir(www)
    FileUtils.cp(gzip(zone), File.join(www, "root.zone.gz"))
    ca, cert, key = test_ca
    with_http_server(www, tls: [cert, key]) do |base|
      url = "#{base}/root.zone.gz"
      # Not in the CA store: refused.
      rc, _, err = update(url)
      expect(rc).to eq(1)
      expect(err).to include("#{url}: TLS: ", "certificate verify failed")
      expect(Dir.children(@root)).to be_empty
      # OpenSSL's store, pointed at the test CA as an administrator would add one.
      rc, out, err = rootzone("update", "--source", url, "--trust-anchor", @anchor, "--tinydns-root", @root,
                              env: { "SSL_CERT_FILE" => ca })
      expect([rc, err]).to eq([0, ""])
      expect(out).to include("installed root zone serial 2024120600")
      rc, _, err = rootzone("update", "--source", "#{base}/missing.gz", "--trust-anchor", @anchor,
                            "--tinydns-root", @root, env: { "SSL_CERT_FILE" => ca })
      expect(rc).to eq(1)
      expect(err).to include("missing.gz: HTTP 404")
    end
    newer = signed_zone(@keys, serial: 2024120601, seed: 2)
    FileUtils.cp(newer, File.join(www, "root.zone"))
    with_http_server(www) do |plain|
      # A redirect is followed...
      expect(update("#{plain}/to?/root.zone")).to match([0, /serial 2024120601/, ""])
      with_http_server(www, tls: [cert, key]) do |base|
        # ...but not from HTTPS to plain HTTP.
        rc, _, err = rootzone("update", "--source", "#{base}/to?#{plain}/root.zone", "--trust-anchor", @anchor,
                              "--tinydns-root", @root, env: { "SSL_CERT_FILE" => ca })
        expect(rc).to eq(1)
        expect(err).to include("refusing a redirect from HTTPS to #{plain}/root.zone")
      end
    end
    rc, _, err = update("http://127.0.0.1:1/root.zone", "--timeout", "2")
    expect(rc).to eq(1)
    expect(err).to include("http://127.0.0.1:1/root.zone: ")
    # A server that accepts and never answers: --timeout.
    silent = TCPServer.new("127.0.0.1", 0)
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    rc, _, err = update("http://127.0.0.1:#{silent.addr[1]}/root.zone", "--timeout", "1")
    expect([rc, err]).to eq([1, "rootzone: http://127.0.0.1:#{silent.addr[1]}/root.zone: no answer within 1.0 s\n"])
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0).to be < 30
    silent.close
  end

  it "refuses a second update of the same instance at once, and removes what a killed one left" do
    zone = signed_zone(@keys, serial: 2024120600)
    File.open(@root) do |d|
      d.flock(File::LOCK_EX)
      rc, _, err = update(zone)
      expect([rc, err]).to eq([1, "rootzone: #{@root}: another rootzone update is running on this directory\n"])
    end
    File.write(File.join(@root, ".rootzone-tmp-data.cdb.4242"), "partial")
    expect(update(zone)[0]).to eq(0)
    expect(Dir.children(@root).sort).to eq(%w[data data.cdb])
    expect(File.stat(File.join(@root, "data")).mode & 0o777).to eq(0o644)
  end

  it "exits 130 on SIGINT and dies of SIGTERM (143 in a shell), the instance untouched" do
    before = install_first
    fifo = File.join(@dir, "never")
    File.mkfifo(fifo)
    { "INT" => [130, nil, "rootzone: interrupted; the installed copy is unchanged"],
      "TERM" => [nil, 15, "rootzone: stopped by SIGTERM; the installed copy is unchanged"] }.each do |sig, (rc, termsig, msg)|
      err_r, err_w = IO.pipe
      pid = Process.spawn(File.join(SpecHelpers::ROOT, "exe", "rootzone"), "update", "--source", fifo,
                          "--trust-anchor", @anchor, "--tinydns-root", @root, err: err_w)
      err_w.close
      sleep 1 # blocked opening the FIFO: nobody writes it
      Process.kill(sig, pid)
      _, st = Process.wait2(pid)
      expect([st.exitstatus, st.termsig]).to eq([rc, termsig])
      expect(err_r.read).to start_with(msg)
      expect(File.binread(File.join(@root, "data.cdb"))).to eq(before)
    end
  end

  it "refuses an instance root that is not a directory, and a missing trust anchor" do
    zone = signed_zone(@keys, serial: 2024120600)
    file = File.join(@dir, "plain")
    File.write(file, "")
    rc, _, err = rootzone("update", "--source", zone, "--trust-anchor", @anchor, "--tinydns-root", file)
    expect([rc, err]).to eq([1, "rootzone: #{file}: not a directory (give the tinydns instance's root directory)\n"])
    rc, _, err = update(zone, anchor: File.join(@dir, "nope.key"))
    expect(rc).to eq(1)
    expect(err).to include("nope.key: open", "No such file or directory")
    rc, _, err = update(@dir)
    expect([rc, err]).to eq([1, "rootzone: #{@dir}: is a directory, not a zone file\n"])
  end
end
