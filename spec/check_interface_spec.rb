# frozen_string_literal: true

require_relative "rethtool_helper"

# check_interface run as Nagios runs it, on veth pairs in namespaces of the tests' own: status
# line, exit status and perfdata checked against the state of the pair (ethtool, ip -s link,
# and the frames the test sent).
RSpec.describe "check_interface", :tmpdir do
  def check(*args)
    out, err, st = run_exe("check_interface", *args)
    [st.exitstatus, out, err]
  end

  def state_file
    File.join(@dir, "ci.state")
  end

  def perfdata(out)
    out.lines.first.split(" | ", 2)[1].to_s.scan(/'([^']+)'=(\S+)/).to_h
  end

  it "--help documents every option and --version prints the version, both exiting 3" do
    rc, out, = check("--help")
    expect(rc).to eq(3)
    expect(out).to include("Usage: check_interface -i INTERFACE", "--netns", "--speed", "--duplex",
                           "--min-rx-rate", "--min-tx-rate", "--warning", "--critical", "--state-file",
                           "--timeout", "--verbose", "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
                           "Examples:")
    expect(check("-V")).to eq([3, "check_interface (ironshed) #{Ironshed::VERSION}\n", ""])
  end

  it "exits 3 (UNKNOWN) with the reason on usage errors" do
    {
      [] => "no interface given (-i IF)",
      %w[-i eth0 --bogus] => "invalid option: --bogus",
      %w[-i eth0 -w 5:1] => "start 5.0 is greater than end 1.0",
      %w[-i eth0 -c 1,2,3] => "expected ERRORS[,DROPS]",
      %w[-i eth0 --speed fast] => "is not a speed",
      %w[-i eth0 --duplex quarter] => "expected full or half",
      %w[-i eth0 --min-rx-rate 1x] => "is not a rate",
      %w[-i vethABCDEFGHIJKZ] => "16 bytes",
      %w[-i eth0 -i eth0] => "given twice",
      %w[eth0] => "unexpected argument"
    }.each do |args, msg|
      rc, out, = check(*args)
      expect(rc).to eq(3), args.inspect
      expect(out).to start_with("INTERFACE UNKNOWN - ").and include(msg)
    end
  end

  it "says OK for an interface that is up, with speed, duplex and perfdata counters matching ip -s link" do
    with_veth do |bed|
      send_frames(bed.ns, bed.a, count: 4, size: 200)
      rc, out, = check("-n", bed.ns, "-i", bed.b, "--speed", "10G", "--duplex", "full", "-s", state_file)
      expect(rc).to eq(0), out
      expect(out).to start_with("INTERFACE OK - #{bed.b} up, 10000Mb/s full, first run: counters saved, rates from the next run | ")
      e = ethtool_settings(bed.ns, bed.b)
      expect([e["Speed"], e["Duplex"], e["Link detected"]]).to eq(%w[10000Mb/s Full yes])
      pd = perfdata(out)
      ip = ip_counters(bed.ns, bed.b)
      expect(pd.fetch("rx_bytes")).to eq("#{ip[:rx_bytes]}c").and eq("800c")
      expect(pd.fetch("rx_packets")).to eq("#{ip[:rx_packets]}c").and eq("4c")
      expect(pd.fetch("tx_bytes")).to eq("#{ip[:tx_bytes]}c")
      expect(pd.values_at("link", "speed_mbps")).to eq(%w[1 10000])
    end
  end

  it "is CRITICAL when the link is down, saying whether it is the carrier or the admin state" do
    with_veth(b_up: false) do |bed|
      expect(ethtool_settings(bed.ns, bed.a).fetch("Link detected")).to eq("no")
      rc, out, = check("-n", bed.ns, "-i", bed.a, "-i", bed.b, "-s", state_file)
      expect(rc).to eq(2)
      expect(out).to start_with("INTERFACE CRITICAL - #{bed.a} down (no carrier), first run")
      expect(out).to include("; #{bed.b} down (administratively down), first run")
      pd = perfdata(out)
      expect(pd.values_at("#{bed.a}_link", "#{bed.b}_link")).to eq(%w[0 0])
      expect(pd).to include("#{bed.a}_rx_bytes", "#{bed.b}_tx_dropped")
    end
  end

  it "is WARNING when speed or duplex differ from what is expected" do
    with_veth do |bed|
      rc, out, = check("-n", bed.ns, "-i", bed.a, "--speed", "1000", "-s", state_file)
      expect([rc, out.lines.first]).to match([1, /\AINTERFACE WARNING - #{bed.a} up, 10000Mb\/s \(expected 1000Mb\/s\) full,/])
      rc, out, = check("-n", bed.ns, "-i", bed.a, "--duplex", "half", "-s", state_file)
      expect([rc, out.lines.first]).to match([1, /10000Mb\/s full \(expected half\)/])
    end
  end

  it "is CRITICAL for an interface that does not exist, UNKNOWN for a namespace that does not" do
    with_veth do |bed|
      rc, out, = check("-n", bed.ns, "-i", bed.a, "-i", "nosuch0", "-s", state_file)
      expect(rc).to eq(2)
      expect(out).to include("; nosuch0 does not exist")
      rc, out, = check("-n", "#{bed.ns}-gone", "-i", bed.a, "-s", state_file)
      expect([rc, out]).to eq([3, "INTERFACE UNKNOWN - network namespace #{bed.ns}-gone (/var/run/netns/#{bed.ns}-gone): " \
                                  "open: No such file or directory\n"])
    end
  end

  it "is UNKNOWN, with the reason, when the driver cannot report what was asked" do
    with_veth do |bed|
      rc, out, = check("-n", bed.ns, "-i", "lo", "--speed", "1000", "-s", state_file)
      expect(rc).to eq(3)
      expect(out).to start_with("INTERFACE UNKNOWN - lo up, speed/duplex not reported by the driver (cannot check 1000Mb/s)")
      expect(out).to include("lo: get link settings (ETHTOOL_GLINKSETTINGS, then ETHTOOL_GSET): Operation not supported")
      # Without --speed, lo is simply up.
      rc, out, = check("-n", bed.ns, "-i", "lo", "-s", state_file)
      expect([rc, out]).to match([0, /\AINTERFACE OK - lo up, rx /])
    end
  end

  it "computes traffic rates from the previous run's counters and checks the minimum rates" do
    with_veth do |bed|
      args = ["-n", bed.ns, "-i", bed.b, "-s", state_file]
      # First run with a rate check asked for: nothing to compare with yet, so UNKNOWN.
      rc, out, = check(*args, "--min-rx-rate", "1")
      expect([rc, out]).to match([3, /\AINTERFACE UNKNOWN - #{bed.b} up, 10000Mb\/s full, first run: counters saved/])
      saved = JSON.parse(File.read(state_file))
      expect(saved.dig("interfaces", bed.b, "counters", "rx_bytes")).to eq(0)

      send_frames(bed.ns, bed.a, count: 50, size: 1000)
      rc, out, = check(*args, "--min-rx-rate", "1", "--min-tx-rate", "0")
      expect(rc).to eq(0), out
      pd = perfdata(out)
      expect(pd.fetch("rx_bytes")).to eq("50000c")
      rate, _w, crit, min = pd.fetch("rx_rate").split(";")
      seconds = 50_000 / Float(rate)
      expect(seconds).to be_between(0.01, 60) # the time between the two runs
      expect([crit, min]).to eq(["1:", "0"])
      expect(out).to match(/rx [\d.]+ (B|KiB)\/s, tx 0 B\/s, errors 0\/s, drops 0\/s/)

      # No traffic since: below a minimum of 1 byte/s is CRITICAL ("not passing traffic").
      rc, out, = check(*args, "--min-rx-rate", "1")
      expect(rc).to eq(2)
      expect(out).to include("rx 0 B/s (minimum 1 B/s)")
    end
  end

  it "applies -w/-c ranges to the error and drop rates" do
    with_veth do |bed|
      args = ["-n", bed.ns, "-i", bed.b, "-s", state_file]
      check(*args)
      send_frames(bed.ns, bed.a, count: 20, size: 60, ethertype: "88b5") # dropped by vB: no handler
      rc, out, = check(*args, "-w", "100,0", "-c", "100,1000000")
      expect(rc).to eq(1), out
      expect(out).to match(%r{errors 0/s, drops [\d.]+/s \(warning 0\)})
      expect(perfdata(out).fetch("rx_dropped")).to eq("#{ip_counters(bed.ns, bed.b)[:rx_dropped]}c").and eq("20c")
      expect(perfdata(out).fetch("drop_rate")).to match(/\A[\d.]+;0;1000000;0\z/)

      send_frames(bed.ns, bed.a, count: 20, size: 60, ethertype: "88b5")
      rc, out, = check(*args, "-w", "100,0", "-c", "0")
      expect(rc).to eq(2)
      expect(out).to match(%r{drops [\d.]+/s \(critical 0\)})

      # A range alerting inside: errors are 0, "@0:0" alerts on exactly that.
      rc, out, = check(*args, "-w", "@0:0,1000000")
      expect(rc).to eq(1)
      expect(out).to include("errors 0/s (warning @0:0)")
    end
  end

  it "-t: UNKNOWN, saying so, when the check does not finish in time" do
    # A state file that blocks its reader: a FIFO nobody writes to.
    fifo = File.join(@dir, "blocking.state")
    File.mkfifo(fifo)
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    rc, out, = check("-i", "lo", "-s", fifo, "-t", "1.5")
    took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    expect([rc, out]).to eq([3, "INTERFACE UNKNOWN - timed out after 1.5 s\n"])
    expect(took).to be_between(1.4, 30)
  end

  it "keeps the state file atomic and private, and starts over when counters reset" do
    with_veth do |bed|
      args = ["-n", bed.ns, "-i", bed.a, "-s", state_file, "--min-tx-rate", "0"]
      check(*args)
      check(*args)
      expect(Dir.children(@dir)).to eq(["ci.state"]) # no temporary file left behind
      expect(File.stat(state_file).mode & 0o777).to eq(0o600)
      expect(JSON.parse(File.read(state_file))).to include("version" => 1, "boot_id" => File.read("/proc/sys/kernel/random/boot_id").strip)

      # Re-create the pair: new ifindex, counters from zero.
      sh!("ip", "-n", bed.ns, "link", "del", bed.a)
      sh!("ip", "-n", bed.ns, "link", "add", bed.a, "type", "veth", "peer", "name", bed.b)
      link_set(bed, bed.a, "up")
      link_set(bed, bed.b, "up")
      rc, out, = check(*args)
      expect([rc, out]).to match([3, /#{bed.a} up, 10000Mb\/s full, counters reset \(interface re-created or driver reloaded\)/])
      rc, = check(*args)
      expect(rc).to eq(0)

      File.write(state_file, "{not json")
      rc, out, = check("-n", bed.ns, "-i", bed.a, "-s", state_file)
      expect(rc).to eq(0)
      expect(out).to include("first run", "(state file #{state_file} unreadable")
      expect(JSON.parse(File.read(state_file))["interfaces"]).to include(bed.a)
    end
  end

  it "uses a private default state directory and refuses one that others control" do
    with_veth do |bed|
      env = { "CHECK_INTERFACE_STATE_DIR" => @dir }
      out, _e, st = Open3.capture3(env, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "check_interface"),
                                   "-n", bed.ns, "-i", bed.a, "-v")
      expect(st.exitstatus).to eq(0), out
      dir = File.join(@dir, "check_interface.#{Process.uid}")
      expect(File.stat(dir).mode & 0o777).to eq(0o700)
      expect(out).to include("state file: #{dir}/netns-#{bed.ns}+#{bed.a}.state")
      expect(out.lines[1]).to start_with("#{bed.a}: driver veth; advertised none, autoneg off; rx 0 bytes")

      File.chmod(0o777, dir)
      out, _e, st = Open3.capture3(env, RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "check_interface"),
                                   "-n", bed.ns, "-i", bed.a)
      expect([st.exitstatus, out]).to eq([3, "INTERFACE UNKNOWN - #{dir}: writable by group or others; refusing to use it\n"])
    end
  end

  it "runs as an unprivileged user inside the namespace, as NRPE would" do
    with_veth do |bed|
      FileUtils.chmod(0o777, @dir)
      out, err, st = Open3.capture3("ip", "netns", "exec", bed.ns, "setpriv", "--reuid=65534", "--regid=65534",
                                    "--clear-groups", RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "check_interface"),
                                    "-i", bed.a, "--speed", "10G", "-s", File.join(@dir, "nobody.state"))
      expect(st.exitstatus).to eq(0), out + err
      expect(out).to start_with("INTERFACE OK - #{bed.a} up, 10000Mb/s full")
      expect(File.stat(File.join(@dir, "nobody.state")).uid).to eq(65_534)
    end
  end
end
