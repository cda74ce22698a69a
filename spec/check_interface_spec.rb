# frozen_string_literal: true

require "timeout"
require_relative "rethtool_helper"

# check_interface run as Nagios runs it, on veth pairs (and ifb devices) in namespaces of the
# tests' own: status line, exit status and perfdata checked against the state of the
# interfaces (ethtool, ip -s link, and the frames the test sent).
RSpec.describe "check_interface", :tmpdir do
  let(:plugin) { File.join(SpecHelpers::ROOT, "exe", "check_interface") }

  # Runs the plugin; a run that has not ended after +limit+ seconds is killed and fails the
  # example (the plugin must never hang, whatever it is given).
  def check(*args, env: {}, limit: 30)
    out = err = st = nil
    Open3.popen3(env, RbConfig.ruby, plugin, *args.map(&:to_s)) do |i, o, e, w|
      i.close
      reader = Thread.new { [o.read, e.read] }
      unless w.join(limit)
        Process.kill(:KILL, w.pid)
        raise "check_interface #{args.join(' ')} still running after #{limit} s"
      end
      out, err = reader.value
      st = w.value
    end
    [st.exitstatus, out, err]
  end

  def state_file
    File.join(@dir, "ci.state")
  end

  def perfdata(out)
    out.lines.first.split(" | ", 2)[1].to_s.scan(/'([^']+)'=(\S+)/).to_h
  end

  # A namespace of the example's own with an ifb device (no ETHTOOL_GLINK: its link state
  # comes from IFF_RUNNING).
  def with_ifb
    with_netns do |ns, tag|
      sh!("ip", "-n", ns, "link", "add", "ifb#{tag}", "type", "ifb")
      yield ns, "ifb#{tag}"
    end
  end

  it "--help documents every option and --version prints the version, both exiting 3" do
    rc, out, = check("--help")
    expect(rc).to eq(3)
    expect(out).to include("Usage: check_interface -i INTERFACE", "--netns", "--speed", "--duplex",
                           "--min-rx-rate", "--min-tx-rate", "--warning", "--critical", "--state-file",
                           "--state-dir", "--timeout", "--verbose", "MP_STATE_PATH", "NAGIOS_PLUGIN_STATE_DIRECTORY",
                           "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", "Examples:")
    expect(check("-V")).to eq([3, "check_interface (ironshed) #{Ironshed::VERSION}\n", ""])
  end

  it "exits 3 (UNKNOWN) with the reason on usage errors, numbers out of range included" do
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
      %w[eth0] => "unexpected argument",
      %w[-i eth0 -t 1e19] => '--timeout: "1e19" is out of range (more than 0, at most 3600 s)',
      %w[-i eth0 -t 0] => '--timeout: "0" is out of range',
      %w[-i eth0 -t -1] => '--timeout: "-1" is not a number of seconds',
      %w[-i eth0 -t inf] => '--timeout: "inf" is not a number of seconds',
      %w[-i eth0 --speed 0] => '--speed: "0" is out of range (1 to 4294967294 Mb/s)',
      %w[-i eth0 --speed 5000T] => '--speed: "5000T" is out of range',
      %w[-i eth0 --min-rx-rate 2000T] => '--min-rx-rate: "2000T" is out of range (0 to 1000000000000000 bytes/s)',
      %w[-i eth0 --min-tx-rate] + ["9" * 400] => "--min-tx-rate: \"#{'9' * 400}\" is out of range",
      %w[-i eth0 -w] + ["9" * 400] => "is out of range (-10^15 to 10^15)",
      %w[-i eth0 -c 1,2e3] => '"2e3" is not a number',
      %w[-i eth0 -s /tmp/x --state-dir /tmp] => "--state-file and --state-dir exclude each other"
    }.each do |args, msg|
      rc, out, = check(*args)
      expect(rc).to eq(3), args.inspect
      expect(out).to start_with("INTERFACE UNKNOWN - ").and include(msg)
      expect(out).not_to include("Error)") # no backtrace, no exception class
    end
  end

  it "says OK for an interface that is up, with speed, duplex and perfdata counters matching ip -s link" do
    with_veth do |bed|
      send_frames(bed.ns, bed.a, count: 4, size: 200)
      rc, out, = check("-n", bed.ns, "-i", bed.b, "--speed", "10G", "--duplex", "full", "-s", state_file)
      expect(rc).to eq(0), out
      expect(out).to start_with("INTERFACE OK - #{bed.b} up, 10000Mb/s full, " \
                                "first run: baseline saved, rates from the next run | ")
      expect(out.lines.size).to eq(1) # -v not given: one line
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

  it "reads the link state from IFF_RUNNING when the driver has no ETHTOOL_GLINK (ifb)" do
    with_ifb do |ns, ifb|
      # The oracle: ethtool finds no link state for ifb either, and ip says the device is down.
      out, = ethtool_run(ns, ifb)
      expect(out).not_to include("Link detected")
      rc, out, = check("-n", ns, "-i", ifb, "-s", state_file)
      expect([rc, out.lines.first]).to match([2, /\AINTERFACE CRITICAL - #{ifb} down \(administratively down\), first run/])
      expect(out).not_to match(/unknown|up,|not supported/i)
      expect(perfdata(out)["link"]).to eq("0")

      sh!("ip", "-n", ns, "link", "set", ifb, "up")
      flags = JSON.parse(sh!("ip", "-n", ns, "-j", "link", "show", ifb)).first.fetch("flags")
      expect(flags).to include("UP", "LOWER_UP")
      rc, out, = check("-n", ns, "-i", ifb, "-s", state_file, "--min-rx-rate", "0", "-v")
      expect(rc).to eq(0), out
      expect(out).to start_with("INTERFACE OK - #{ifb} up, rx ")
      expect(out).to match(%r{, tx 0 B/s, errors 0/s, drops [\d.]+/s \(driver ifb; link from IFF_RUNNING \(no ETHTOOL_GLINK\); rates over })
      expect(out).not_to match(/unknown|down|not supported/i)
      expect(perfdata(out)["link"]).to eq("1")

      rc, out, = check("-n", ns, "-i", ifb, "-s", state_file, "-vvv")
      expect(rc).to eq(0)
      expect(out).to include("#{ifb}: ETHTOOL_GLINK not supported (#{ifb}: get link status (ETHTOOL_GLINK): " \
                             "Operation not supported); link state from IFF_RUNNING")
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

  it "-n with a FIFO, a plain file or a device is UNKNOWN at once, never a hang" do
    fifo = File.join(@dir, "ns-fifo")
    File.mkfifo(fifo) # nobody ever writes to it
    plain = File.join(@dir, "ns-plain")
    File.write(plain, "")
    {
      fifo => "not a network namespace file: a FIFO",
      plain => "not a network namespace file: a file outside the namespace filesystem (nsfs)",
      "/dev/zero" => "not a network namespace file: a character device"
    }.each do |path, why|
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      rc, out, = check("-n", path, "-i", "lo", "-s", state_file, limit: 20)
      expect([rc, out]).to eq([3, "INTERFACE UNKNOWN - network namespace #{path}: open: #{why}\n"])
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0).to be < 10 # well inside the default -t
    end
  end

  it "is UNKNOWN, with the reason, when the driver cannot report what was asked" do
    with_veth do |bed|
      rc, out, = check("-n", bed.ns, "-i", "lo", "--speed", "1000", "-s", state_file)
      expect([rc, out.lines.size]).to eq([3, 1])
      expect(out).to start_with("INTERFACE UNKNOWN - lo up, speed/duplex not reported by the driver (cannot check 1000Mb/s)")
      rc, out, = check("-n", bed.ns, "-i", "lo", "--speed", "1000", "-s", state_file, "-vvv")
      expect(rc).to eq(3)
      expect(out).to include("lo: link settings not reported (lo: get link settings " \
                             "(ETHTOOL_GLINKSETTINGS, then ETHTOOL_GSET): Operation not supported)")
      # Without --speed, lo is simply up.
      rc, out, = check("-n", bed.ns, "-i", "lo", "-s", state_file)
      expect([rc, out]).to match([0, /\AINTERFACE OK - lo up, rx /])
    end
  end

  it "computes traffic rates from the previous run's counters and checks the minimum rates" do
    with_veth do |bed|
      args = ["-n", bed.ns, "-i", bed.b, "-s", state_file]
      # First run with a rate check asked for: nothing to compare with yet. The rest is
      # checked; the rate is not, and that is no reason for UNKNOWN.
      rc, out, = check(*args, "--min-rx-rate", "1")
      expect([rc, out]).to match([0, /\AINTERFACE OK - #{bed.b} up, 10000Mb\/s full, first run: baseline saved, rates from the next run \| /])
      expect(perfdata(out)).not_to include("rx_rate")
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

  it "shows rates in the units the threshold was written in; perfdata stays in bytes/s" do
    with_veth do |bed|
      args = ["-n", bed.ns, "-i", bed.b, "-s", state_file]
      check(*args)
      send_frames(bed.ns, bed.a, count: 10, size: 1000)
      rc, out, = check(*args, "--min-rx-rate", "2.5M")
      expect(rc).to eq(2)
      expect(out).to match(%r{\AINTERFACE CRITICAL - #{bed.b} up, 10000Mb/s full, rx [\d.]+ (B|kB|MB)/s \(minimum 2\.5 MB/s\), tx 0 B/s})
      expect(perfdata(out).fetch("rx_rate")).to match(/\A[\d.]+;;2500000:;0\z/)
      rc, out, = check(*args, "--min-rx-rate", "2Mi", "--min-tx-rate", "1.5k")
      expect(rc).to eq(2)
      expect(out).to include("rx 0 B/s (minimum 2.0 MiB/s), tx 0 B/s (minimum 1.5 kB/s)")
      expect(perfdata(out).values_at("rx_rate", "tx_rate")).to eq(["0;;2097152:;0", "0;;1500:;0"])
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
    # Nothing the plugin opens can block any more (that is tested above and below), so a
    # check that hangs is simulated: the plugin's own code, with the state lookup replaced
    # by a sleep. The timeout must end it.
    script = <<~RUBY
      require "check_interface/cli"
      CheckInterface::StateFile.singleton_class.prepend(Module.new { def locate(**) = sleep(60) })
      exit CheckInterface::CLI.new(ARGV).run
    RUBY
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    out, _err, st = Open3.capture3(RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"), "-e", script,
                                   "--", "-i", "lo", "-t", "1.5")
    took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    expect([st.exitstatus, out]).to eq([3, "INTERFACE UNKNOWN - timed out after 1.5 s\n"])
    expect(took).to be_between(1.4, 30)
  end

  it "keeps the state file atomic and private, and starts over after a counter reset or a reboot, OK" do
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
      expect([rc, out]).to match([0, /\AINTERFACE OK - #{bed.a} up, 10000Mb\/s full, counters reset \(interface re-created or driver reloaded\): baseline saved, rates from the next run \| /])
      rc, out, = check(*args)
      expect([rc, out]).to match([0, /, rx 0 B\/s, tx 0 B\/s, errors/])

      # A state file from another boot (the boot id differs) is a baseline too.
      data = JSON.parse(File.read(state_file))
      File.write(state_file, JSON.generate(data.merge("boot_id" => "00000000-0000-0000-0000-000000000000")))
      rc, out, = check(*args)
      expect([rc, out]).to match([0, /up, 10000Mb\/s full, first run since a reboot: baseline saved, rates from the next run \| /])
    end
  end

  it "treats a damaged or oversized state file as a baseline, never showing its content" do
    with_veth do |bed|
      args = ["-n", bed.ns, "-i", bed.a, "-s", state_file]
      File.write(state_file, "root:$6$secretsalt$hash:19000:0:99999:7:::\n")
      rc, out, = check(*args)
      expect([rc, out]).to match([0, /\AINTERFACE OK - #{bed.a} up, 10000Mb\/s full, state file was damaged: baseline saved/])
      expect(out).not_to include("secret")
      expect(JSON.parse(File.read(state_file))["interfaces"]).to include(bed.a)

      # Larger than any state file: read up to the cap only, then replaced.
      File.write(state_file, "{\"version\":1,\"pad\":\"#{'x' * (2 << 20)}\"}")
      rc, out, = check(*args)
      expect([rc, out]).to match([0, /state file was damaged: baseline saved/])
      expect(File.size(state_file)).to be < 4096
    end
  end

  it "refuses a state file that is a symbolic link, not a regular file, or someone else's" do
    secret = File.join(@dir, "secret")
    File.write(secret, "root:$6$secretsalt$hash:19000:0:99999:7:::\n")
    link = File.join(@dir, "link.state")
    File.symlink(secret, link)
    zero = File.join(@dir, "zero.state")
    File.symlink("/dev/zero", zero)
    fifo = File.join(@dir, "fifo.state")
    File.mkfifo(fifo)
    foreign = File.join(@dir, "foreign.state")
    File.write(foreign, "{}")
    File.chown(65_534, 65_534, foreign)
    {
      link => "state file #{link} is a symbolic link; refusing to follow it",
      zero => "state file #{zero} is a symbolic link; refusing to follow it",
      fifo => "state file #{fifo} is not a regular file (fifo); refusing to use it",
      "/dev/zero" => "state file /dev/zero is not a regular file (characterSpecial); refusing to use it",
      foreign => "state file #{foreign} is owned by uid 65534, not 0 or root; refusing to use it"
    }.each do |path, msg|
      rc, out, = check("-i", "lo", "-s", path, limit: 20)
      expect([rc, out]).to eq([3, "INTERFACE UNKNOWN - #{msg}\n"])
    end
    expect(File.read(secret)).to start_with("root:") # left alone
    expect(File.symlink?(link)).to be(true)
  end

  it "finds its state directory in --state-dir, MP_STATE_PATH, NAGIOS_PLUGIN_STATE_DIRECTORY, then the default" do
    with_veth do |bed|
      uid = Process.euid
      key = Regexp.escape("netns-#{bed.ns}+#{bed.a}.state")
      mp = File.join(@dir, "mp")
      nagios = File.join(@dir, "nagios")
      mine = File.join(@dir, "mine")
      [mp, nagios, mine].each { |d| Dir.mkdir(d) }
      args = ["-n", bed.ns, "-i", bed.a, "-vv"]

      rc, out, = check(*args, env: { "NAGIOS_PLUGIN_STATE_DIRECTORY" => nagios })
      expect([rc, out]).to match([0, %r{^state file: #{nagios}/#{uid}/check_interface/#{key} \(\$NAGIOS_PLUGIN_STATE_DIRECTORY\)$}])
      expect(File.stat(File.join(nagios, uid.to_s)).mode & 0o777).to eq(0o700)
      expect(File.stat(File.join(nagios, uid.to_s, "check_interface")).mode & 0o777).to eq(0o700)
      expect(Dir.children(File.join(nagios, uid.to_s, "check_interface"))).to eq(["netns-#{bed.ns}+#{bed.a}.state"])

      both = { "MP_STATE_PATH" => mp, "NAGIOS_PLUGIN_STATE_DIRECTORY" => nagios }
      rc, out, = check(*args, env: both)
      expect([rc, out]).to match([0, %r{^state file: #{mp}/#{uid}/check_interface/#{key} \(\$MP_STATE_PATH\)$}])
      rc, out, = check(*args, "--state-dir", mine, env: both)
      expect([rc, out]).to match([0, %r{^state file: #{mine}/#{key} \(--state-dir\)$}])
      expect(Dir.children(mine)).to eq(["netns-#{bed.ns}+#{bed.a}.state"])
      # An empty variable counts as unset, as in the Monitoring Plugins.
      rc, out, = check(*args, env: both.merge("MP_STATE_PATH" => ""))
      expect([rc, out]).to match([0, %r{^state file: #{nagios}/#{uid}/check_interface/#{key} }])

      # A directory that is not there: one line, naming it.
      gone = File.join(@dir, "gone")
      expect(check("-n", bed.ns, "-i", bed.a, "--state-dir", gone)).to eq(
        [3, "INTERFACE UNKNOWN - state directory #{gone} (--state-dir) does not exist\n", ""]
      )
      expect(check("-n", bed.ns, "-i", bed.a, env: { "MP_STATE_PATH" => gone })).to eq(
        [3, "INTERFACE UNKNOWN - state directory #{gone} ($MP_STATE_PATH) does not exist\n", ""]
      )
      expect(check("-n", bed.ns, "-i", bed.a, "-s", File.join(gone, "x.state"))).to eq(
        [3, "INTERFACE UNKNOWN - state directory #{gone} (of --state-file) does not exist\n", ""]
      )
      expect(Dir.exist?(gone)).to be(false) # not created
    end
  end

  it "uses a private default state directory and refuses one that others control" do
    with_veth do |bed|
      env = { "CHECK_INTERFACE_STATE_DIR" => @dir }
      rc, out, = check("-n", bed.ns, "-i", bed.a, "-vv", env: env)
      expect(rc).to eq(0), out
      dir = File.join(@dir, "check_interface.#{Process.euid}")
      expect(File.stat(dir).mode & 0o777).to eq(0o700)
      expect(out).to include("state file: #{dir}/netns-#{bed.ns}+#{bed.a}.state (default)")
      expect(out.lines[1]).to start_with("#{bed.a}: driver veth; advertised none, autoneg off; rx 0 bytes")

      File.chmod(0o777, dir)
      rc, out, = check("-n", bed.ns, "-i", bed.a, env: env)
      expect([rc, out]).to eq([3, "INTERFACE UNKNOWN - state directory #{dir}: writable by group or others; refusing to use it\n"])
    end
  end

  it "gives -v one line, -vv a line per interface and the state file, -vvv the diagnosis" do
    with_veth do |bed|
      args = ["-n", bed.ns, "-i", bed.a, "-i", bed.b, "-s", state_file]
      check(*args)
      rc, out, = check(*args, "-v")
      expect([rc, out.lines.size]).to eq([0, 1])
      expect(out).to match(/\AINTERFACE OK - #{bed.a} up, .* \(driver veth; link from ETHTOOL_GLINK; rates over [\d.]+ s\); #{bed.b} up, /)
      rc, out, = check(*args, "-vv")
      expect([rc, out.lines.size]).to eq([0, 4])
      expect(out.lines[1..].map { |l| l.split(/[: ]/).first }).to eq([bed.a, bed.b, "state"])
      rc, out, = check(*args, "-vvv")
      expect(rc).to eq(0)
      index = JSON.parse(sh!("ip", "-n", bed.ns, "-j", "link", "show", bed.a)).first.fetch("ifindex")
      expect(out).to include("#{bed.a}: ifindex #{index}, flags 0x", "(IFF_UP on, IFF_RUNNING on)",
                             "#{bed.a}: previous sample: ifindex #{index}, rx_bytes ", "boot id ")
      expect(perfdata(out).keys).to eq(perfdata(check(*args).fetch(1)).keys) # perfdata as without -v
    end
  end

  it "escapes its output: no '|' in the text, perfdata labels quoted and without '=' or quotes" do
    with_netns do |ns, tag|
      a = "v|#{tag}"
      b = "v='#{tag}"
      sh!("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
      sh!("ip", "-n", ns, "link", "set", a, "up")
      sh!("ip", "-n", ns, "link", "set", b, "up")
      rc, out, = check("-n", ns, "-i", a, "-i", b, "-s", state_file, "-vv")
      expect(rc).to eq(0), out
      status, perf = out.lines.first.chomp.split(" | ", 2)
      expect(status).to start_with("INTERFACE OK - v\u00a6#{tag} up, ")
      expect(status).to include("; v='#{tag} up, ")
      expect(status).not_to include("|")
      labels = perf.scan(/(\S+)=\S+/).flatten
      expect(labels).to include("'v_#{tag}_rx_bytes'", "'v__#{tag}_rx_bytes'")
      expect(labels).to all(match(/\A'[^'=|]+'\z/))
      expect(out.lines.drop(1).join).not_to include("|") # long output too
    end
    rc, out, = check("-n", "no|such", "-i", "lo", "-s", state_file)
    expect([rc, out]).to eq([3, "INTERFACE UNKNOWN - network namespace no\u00a6such (/var/run/netns/no\u00a6such): " \
                                "open: No such file or directory\n"])
  end

  it "runs as an unprivileged user inside the namespace, as NRPE would, and names a state directory it cannot write" do
    with_veth do |bed|
      FileUtils.chmod(0o777, @dir)
      # A copy of the plugin nobody can read wherever the checkout is (/root is 0700).
      app = File.join(@dir, "app")
      FileUtils.mkdir_p(File.join(app, "exe"))
      FileUtils.cp_r(File.join(SpecHelpers::ROOT, "lib"), app)
      FileUtils.cp(plugin, File.join(app, "exe"))
      FileUtils.chmod_R("go+rX", app)
      nobody = ["ip", "netns", "exec", bed.ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                RbConfig.ruby, File.join(app, "exe", "check_interface"), "-i", bed.a]
      clean = { "RUBYOPT" => nil, "RUBYLIB" => nil, "BUNDLE_GEMFILE" => nil } # nothing from bundle exec
      out, err, st = Open3.capture3(clean, *nobody, "--speed", "10G", "-s", File.join(@dir, "nobody.state"))
      expect(st.exitstatus).to eq(0), out + err
      expect(out).to start_with("INTERFACE OK - #{bed.a} up, 10000Mb/s full")
      expect(File.stat(File.join(@dir, "nobody.state")).uid).to eq(65_534)

      closed = File.join(@dir, "closed")
      Dir.mkdir(closed, 0o755) # root's
      out, _err, st = Open3.capture3(clean, *nobody, "--state-dir", closed)
      expect([st.exitstatus, out]).to eq([3, "INTERFACE UNKNOWN - state directory #{closed} (--state-dir) " \
                                             "is not writable by uid 65534\n"])
    end
  end
end
