# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/rootzone_env"

# check_rootzone run as Nagios runs it, against a real local tinydns and "live roots" of the
# test's own: a second tinydns and Knot DNS serving newer zones, and an address nobody
# answers on.
RSpec.describe "check_rootzone", :tmpdir do
  include RootZoneEnv

  LOCAL = "127.53.53.53"

  def check(*args)
    out, err, st = run_exe("check_rootzone", "-H", LOCAL, "-r", @root, *args)
    [st.exitstatus, out, err]
  end

  def perfdata(out)
    out.lines.first.split(" | ", 2)[1].to_s.scan(/'([^']+)'=(\S+)/).to_h
  end

  def install(zone, root)
    FileUtils.mkdir_p(root)
    _, err, st = run_exe("rootzone", "update", "-q", "--allow-older", "--source", zone,
                         "--trust-anchor", anchor_of(@keys), "--tinydns-root", root)
    raise err unless st.success?
  end

  before do
    @keys = keypair
    @root = File.join(@dir, "local")
    @zone = signed_zone(@keys, serial: 2024120600, tlds: 40)
    install(@zone, @root)
  end

  it "--help and --version exit 3; usage errors are UNKNOWN" do
    out, _, st = run_exe("check_rootzone", "--help")
    expect(st.exitstatus).to eq(3)
    expect(out).to include("Usage: check_rootzone", "--host", "--tinydns-root", "--compare", "--hints",
                           "--warning", "--critical", "--timeout", "serial_lag", "age", "sig_expiry",
                           "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    expect(out.lines.map { |l| l.chomp.length }.max).to be <= 80
    expect(run_exe("check_rootzone", "-V")[0]).to eq("check_rootzone (ironshed) #{Ironshed::VERSION}\n")
    {
      %w[-w 1,2,3,4] => "expected LAG,AGE,EXPIRY",
      %w[-c 5:1] => "start 5.0 is greater than end 1.0",
      %w[-C not-an-ip] => "is not an IP address",
      %w[-t -1] => "must be positive",
      %w[extra] => "unexpected argument"
    }.each do |args, msg|
      rc, out, = check(*args)
      expect(rc).to eq(3), args.inspect
      expect(out).to start_with("ROOTZONE UNKNOWN - ").and include(msg)
    end
  end

  it "is OK when current, and WARNING/CRITICAL as the live roots' serial moves ahead" do
    newer = signed_zone(@keys, serial: 2024120700, tlds: 40, seed: 2)
    live = File.join(@dir, "live")
    install(newer, live)
    with_tinydns(@root) do
      with_tinydns(live, ip: "127.53.53.54") do
        with_knot(newer, ip: "127.53.53.55") do
          rc, out, = check("-C", LOCAL)
          expect(rc).to eq(0)
          expect(out).to start_with("ROOTZONE OK - serial 2024120600 (live 2024120600 from 1/1 servers), age ")
          expect(perfdata(out)).to include("serial_lag" => "0;200;1000", "age" => match(/\A[\d.]+;36;96\z/),
                                           "sig_expiry" => match(/\A[\d.]+;168:;72:\z/))

          live3 = %w[-C 127.53.53.54 -C 127.53.53.55 -C 127.53.53.56 -t 4]
          rc, out, = check(*live3)
          expect(rc).to eq(0), out
          expect(out).to include("serial 2024120600 (live 2024120700 from 2/3 servers)")
          expect(perfdata(out)["serial_lag"]).to eq("100;200;1000")
          rc, out, = check(*live3, "-w", "50,,")
          expect(rc).to eq(1)
          expect(out).to start_with("ROOTZONE WARNING - serial 2024120600 (live 2024120700 from 2/3 servers) [WARNING]")
          expect(perfdata(out)).to include("serial_lag" => "100;50;1000", "age" => match(/;36;96\z/),
                                           "sig_expiry" => match(/;168:;72:\z/))
          # The live servers from a hints file (root.hints format), as by default.
          hints = File.join(@dir, "root.hints")
          File.write(hints, <<~HINTS)
            ;       This file holds the information on root name servers
            .                        3600000      NS    A.ROOT-SERVERS.NET.
            A.ROOT-SERVERS.NET.      3600000      A     127.53.53.54
            A.ROOT-SERVERS.NET.      3600000      AAAA  ::1
            .                        3600000      NS    B.ROOT-SERVERS.NET.
            B.ROOT-SERVERS.NET.      3600000      A     127.53.53.55
          HINTS
          expect(check("--hints", hints)[1]).to include("serial 2024120600 (live 2024120700 from 2/2 servers)")
          # A tie goes to the newer serial.
          expect(check("-C", LOCAL, "-C", "127.53.53.54")[1]).to include("(live 2024120700 from 1/2 servers)")
          # IPv6 addresses with a port are accepted (nobody answers there).
          rc, out, = check("-C", "[::1]:5354", "-t", "2", "-v")
          expect(rc).to eq(3)
          expect(out).to include("[::1]:5354: no SOA for . from [::1]:5354")
          rc, out, = check(*live3, "-w", "50", "-c", "80")
          expect(rc).to eq(2)
          expect(out).to include("[CRITICAL]")
          rc, out, = check(*live3, "-v")
          expect(out.lines.drop(1)).to include("127.53.53.55: serial 2024120700\n", "127.53.53.54: serial 2024120700\n")
          expect(out).to include("127.53.53.56: no SOA for . from 127.53.53.56 within 2 s")

          # The local copy catches up: OK again.
          install(newer, @root)
          expect(check(*live3)[0]).to eq(0)
        end
      end
    end
  end

  it "alarms on the age of data.cdb and on expiring signatures" do
    with_tinydns(@root) do
      File.utime(Time.now, Time.now - (40 * 3600), File.join(@root, "data.cdb"))
      rc, out, = check("-C", LOCAL)
      expect(rc).to eq(1)
      expect(out).to match(/age 40(\.\d+)? h \[WARNING\]/)
      # rootzone update confirms the copy current and renews the age.
      install(@zone, @root)
      expect(check("-C", LOCAL)[0]).to eq(0)

      expiry = (Time.now.utc + (50 * 3600)).strftime("%Y%m%d%H%M%S")
      short = signed_zone(@keys, serial: 2024120601, tlds: 40, seed: 3, extra: ["-e", expiry], name: "short")
      install(short, @root)
      rc, out, = check("-C", LOCAL)
      expect(rc).to eq(2)
      expect(out).to match(/signatures valid (49\.\d+|50) h \(until .*\) \[CRITICAL\]/)
      expect(perfdata(out)["sig_expiry"]).to match(/\A(49\.\d+|50);168:;72:\z/)
      expect(check("-C", LOCAL, "-c", ",,24:")[0]).to eq(1)
      expect(check("-C", LOCAL, "-w", ",,~:", "-c", ",,~:")[0]).to eq(0)

      # Without privileges, as NRPE runs it (the copy is world-readable, as installed).
      File.chmod(0o755, @dir)
      out, err, st = Open3.capture3("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                    RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "check_rootzone"),
                                    "-H", LOCAL, "-r", @root, "-C", LOCAL)
      expect([st.exitstatus, err]).to eq([2, ""])
      expect(out).to start_with("ROOTZONE CRITICAL - serial 2024120601 (live 2024120601 from 1/1 servers)")

      # data describing another serial than data.cdb: the expiry cannot be known.
      data = File.join(@root, "data")
      File.write(data, File.read(data).sub("# serial 2024120601", "# serial 2024120555"))
      rc, out, = check("-C", LOCAL)
      expect(rc).to eq(3)
      expect(out).to include("signature expiry unknown (", "describes serial 2024120555, data.cdb holds 2024120601")
    end
  end

  it "is CRITICAL when the local tinydns is down or data.cdb is missing, UNKNOWN without live answers" do
    rc, out, = check("-C", "127.53.53.56", "-t", "2")
    expect(rc).to eq(2)
    expect(out).to start_with("ROOTZONE CRITICAL - local tinydns: no SOA for . from #{LOCAL}")
    with_tinydns(@root) do
      rc, out, = check("-C", "127.53.53.56", "-t", "2")
      expect(rc).to eq(3)
      expect(out).to include("serial 2024120600 (no live root server answered)")
      fifo = File.join(@dir, "hints")
      File.mkfifo(fifo)
      rc, out, = check("--hints", fifo, "-t", "1")
      expect([rc, out]).to eq([3, "ROOTZONE UNKNOWN - timed out after 1 s\n"])
      other = File.join(@dir, "empty")
      Dir.mkdir(other)
      out, _, st = run_exe("check_rootzone", "-H", LOCAL, "-r", other, "-C", LOCAL)
      expect([st.exitstatus, out]).to eq([2, "ROOTZONE CRITICAL - #{other}/data.cdb: missing\n"])
    end
  end
end
