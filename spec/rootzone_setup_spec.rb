# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/rootzone_env"

# `rootzone setup` in a sandbox of the test's own: the real tinydns-conf and dnscache-conf
# make the instances, the instance's own run script serves the zone (dig checks it), and a
# second --apply changes nothing.
RSpec.describe "rootzone setup", :tmpdir do
  include RootZoneEnv

  def setup(*args)
    out, err, st = run_exe("rootzone", "setup", *sandbox, *args)
    [st.exitstatus, out, err]
  end

  before do
    @keys = keypair
    @zone = signed_zone(@keys, serial: 2024120600, tlds: 60)
    @inst = File.join(@dir, "etc", "tinydns-root")
    @service = File.join(@dir, "service")
    @dnscache = File.join(@dir, "dnscache")
    @cron = File.join(@dir, "cron.d", "rootzone")
    Dir.mkdir(@service)
    run!("dnscache-conf", "dnscache", "nobody", @dnscache, "127.0.0.1")
    @original_servers = File.read(File.join(@dnscache, "root", "servers", "@"))
  end

  def sandbox
    ["--instance", @inst, "--service-dir", @service, "--dnscache", @dnscache, "--log-user", "nobody",
     "--schedule", "cron", "--cron-file", @cron, "--source", @zone, "--trust-anchor", anchor_of(@keys),
     "--rootzone", File.join(SpecHelpers::ROOT, "exe", "rootzone")]
  end

  def snapshot
    Dir.glob("#{@dir}/{etc,service,dnscache,cron.d}/**/*", File::FNM_DOTMATCH)
       .reject { |f| File.directory?(f) && !File.symlink?(f) }
       .to_h { |f| [f, File.symlink?(f) ? File.readlink(f) : [File.mtime(f), File.binread(f)]] }
  end

  it "shows every change without --apply and makes none" do
    before = snapshot
    rc, out, err = setup
    expect([rc, err]).to eq([0, ""])
    expect(out.lines.first).to include("dry run: nothing is changed")
    expect(out).to include("ok:     log account nobody",
                           "change: tinydns instance #{@inst} on 127.53.53.53: tinydns-conf tinydns nobody #{@inst} 127.53.53.53",
                           "change: daemontools service #{@service}/tinydns-root -> #{@inst}: ln -s",
                           "change: root zone installed in #{@inst}/root: rootzone update --tinydns-root #{@inst}/root",
                           "change: dnscache #{@dnscache} asks 127.53.53.53 for the root: write 127.53.53.53",
                           "change: daily update (cron): write #{@cron}")
    expect(snapshot).to eq(before)
    expect(File.exist?(@inst)).to be(false)
    expect(setup("--apply", "--dry-run")[1]).to include("dry run")
    expect(snapshot).to eq(before)

    # The defaults it finds: Debian's dnscache (installed by bin/setup test), the scheduler
    # of this machine; a missing service directory and --schedule none skip their steps.
    out, err, st = run_exe("rootzone", "setup", "--instance", @inst, "--service-dir", File.join(@dir, "none"))
    expect([st.exitstatus, err]).to eq([0, ""])
    expect(out).to include("dnscache /etc/sv/dnscache asks 127.53.53.53 for the root",
                           "skip:   daemontools service #{@dir}/none/tinydns-root -> #{@inst}: #{@dir}/none does not exist",
                           "daily update (#{File.directory?('/run/systemd/system') ? 'systemd' : 'cron'})")
    expect(setup("--schedule", "none")[1]).to include("skip:   daily update: --schedule none")
    units = File.join(@dir, "units")
    rc, out, = setup("--schedule", "systemd", "--unit-dir", units)
    expect(rc).to eq(0)
    expect(out).to include("change: daily update (systemd): write #{units}/rootzone-update.service and " \
                           "#{units}/rootzone-update.timer, enable rootzone-update.timer")
    expect(snapshot).to eq(before)
  end

  it "--apply wires tinydns, dnscache and cron; a second run changes nothing; the instance serves" do
    rc, out, err = setup("--apply")
    expect([rc, err]).to eq([0, ""]), out
    expect(out).to include("done:   tinydns instance", "done:   daemontools service",
                           "installed root zone serial 2024120600", "done:   dnscache", "done:   daily update (cron)")
    expect(File.read(File.join(@inst, "env", "IP"))).to eq("127.53.53.53\n")
    expect(File.readlink(File.join(@service, "tinydns-root"))).to eq(@inst)
    expect(RootZone::Installed.read(File.join(@inst, "root")).serial).to eq(2024120600)
    servers = File.join(@dnscache, "root", "servers", "@")
    expect(File.read(servers)).to eq("127.53.53.53\n")
    expect(File.read("#{servers}.rootzone-orig")).to eq(@original_servers)
    line = File.read(@cron).lines.last
    expect(line).to match(/\A\d+ \d+ \* \* \* root \S+rootzone update -q --tinydns-root #{Regexp.escape(@inst)}\/root --source /)

    before = snapshot
    rc, out, = setup("--apply")
    expect(rc).to eq(0)
    expect(out.lines.drop(1)).to all(start_with("  ok:     "))
    expect(snapshot).to eq(before)

    # The scheduled command, as cron runs it: already current, silent.
    command = line.split(" root ", 2).last
    out, err, st = Open3.capture3("sh", "-c", command)
    expect([st.exitstatus, out, err]).to eq([0, "", ""])

    # The instance tinydns-conf made, started by its own run script (as svscan would).
    pid = Process.spawn("sh", "run", chdir: @inst, out: File::NULL, err: File::NULL, pgroup: true)
    begin
      wait_for_dns("127.53.53.53")
      answer = dig_batch("127.53.53.53", [[".", "SOA"]])
      expect(answer).to include("a.root-servers.net. nstld.verisign-grs.com. 2024120600 1800 900 604800 86400")
    ensure
      Process.kill("TERM", -pid)
      Process.wait(pid)
    end
  end

  it "makes a supervised dnscache resolve through the local root (svc -t restarts it)" do
    # A root zone with one TLD whose server is a tinydns of the test's own on 127.53.53.61,
    # so that every query dnscache sends stays on the loopback.
    unsigned = File.join(@dir, "e2e.unsigned")
    File.write(unsigned, testkit("rootzone", "--tlds", 20, "--serial", 2024120600) +
                         "test.\t172800\tIN\tNS\tns.test.\nns.test.\t172800\tIN\tA\t127.53.53.61\n")
    zone = File.join(@dir, "e2e.zone")
    run!("ldns-signzone", "-z", "1:1", "-o", ".", "-f", zone, unsigned, *@keys)
    tld = File.join(@dir, "tld")
    Dir.mkdir(tld)
    File.write(File.join(tld, "data"), ".test:127.53.53.61:ns.test.:3600\n+www.test:192.0.2.80:300\n")
    run!("tinydns-data", chdir: tld)
    FileUtils.rm_rf(@dnscache)
    run!("dnscache-conf", "dnscache", "nobody", @dnscache, "127.53.53.60")
    pids = []
    pids << Process.spawn("supervise", @dnscache, out: File::NULL, err: File::NULL, pgroup: true)
    Timeout.timeout(10) { sleep 0.05 until system("svok", @dnscache) }
    with_tinydns(tld, ip: "127.53.53.61", zone: "test") do
      out, err, st = run_exe("rootzone", "setup", *sandbox, "--apply", "--source", zone)
      expect([st.exitstatus, err]).to eq([0, ""]), out
      expect(out).to include("then svc -t #{@dnscache}")
      pids << Process.spawn("sh", "run", chdir: @inst, out: File::NULL, err: File::NULL, pgroup: true)
      wait_for_dns("127.53.53.53")
      # dnscache may still be starting (connection refused) or still resolving (timed out, or
      # no answer yet): ask until an address comes back, for at most 30 s.
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
      answer = nil
      loop do
        answer, = Open3.capture2("dig", "+time=2", "+tries=1", "+short", "@127.53.53.60", "www.test", "A")
        break if answer.match?(/\A\d+(\.\d+){3}\n\z/) || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.2
      end
      expect(answer).to eq("192.0.2.80\n")
    end
  ensure
    system("svc", "-dx", @dnscache, out: File::NULL, err: File::NULL) if @dnscache
    pids.to_a.each do |pid|
      Process.kill("TERM", -pid)
      Process.wait(pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
  end

  it "stops before dnscache when the first update is refused" do
    other = keypair(File.join(@dir, "k2").tap { |d| Dir.mkdir(d) })
    out, err, st = run_exe("rootzone", "setup", *sandbox, "--apply", "--trust-anchor", anchor_of(other))
    expect(st.exitstatus).to eq(1)
    expect(out).to include("done:   tinydns instance")
    expect(err).to include("matches the trust anchor", "the steps after this one were not made")
    expect(File.read(File.join(@dnscache, "root", "servers", "@"))).to eq(@original_servers)
    expect(File.exist?(@cron)).to be(false)
  end

  it "changes only what differs, and refuses a service link it did not make" do
    expect(setup("--apply")[0]).to eq(0)
    rc, out, = setup("--apply", "--address", "127.53.53.54")
    expect(rc).to eq(0)
    expect(out).to include("done:   tinydns instance #{@inst} on 127.53.53.54: set #{@inst}/env/IP to 127.53.53.54 (was 127.53.53.53)",
                           "done:   dnscache", "ok:     root zone installed")
    expect(File.read(File.join(@dnscache, "root", "servers", "@"))).to eq("127.53.53.54\n")

    File.unlink(File.join(@service, "tinydns-root"))
    File.symlink("/elsewhere", File.join(@service, "tinydns-root"))
    rc, _, err = setup("--apply")
    expect(rc).to eq(1)
    expect(err).to include("#{@service}/tinydns-root exists and points to /elsewhere")
    expect(setup("--address", "300.1.1.1")[0]).to eq(2)
  end
end
