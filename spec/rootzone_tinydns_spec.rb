# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/rootzone_env"

# What a resolver sees: a real tinydns on 127.53.53.53 serving the installed data.cdb,
# queried with dig, while updates run and are killed.
RSpec.describe "rootzone update with a live tinydns", :tmpdir do
  include RootZoneEnv

  before do
    @keys = keypair
    @root = File.join(@dir, "root")
    Dir.mkdir(@root)
  end

  def update(zone, *more)
    out, err, st = run_exe("rootzone", "update", "--source", zone, "--trust-anchor", anchor_of(@keys),
                           "--tinydns-root", @root, *more)
    [st.exitstatus, out, err]
  end

  # NS targets and A addresses as the generator wrote them (not as rootzone parsed them).
  def generated(serial, seed)
    ns = Hash.new { |h, k| h[k] = [] }
    a = Hash.new { |h, k| h[k] = [] }
    File.foreach(File.join(@dir, "root-#{serial}-#{seed}.unsigned")) do |l|
      owner, _, _, type, data = l.chomp.split("\t")
      ns[owner] << data if type == "NS" && owner != "."
      a[owner] << data if type == "A"
    end
    [ns, a]
  end

  it "serves every delegation's NS set and A glue, and the zone's SOA serial" do
    zone = signed_zone(@keys, serial: 2024120600, tlds: 500, seed: 7)
    expect(update(zone)).to match([0, /installed root zone serial 2024120600/, ""])
    ns, a = generated(2024120600, 7)
    expect(ns.size).to eq(502)
    with_tinydns(@root) do |ip|
      answers = dig_batch(ip, ns.keys.map { |tld| [tld, "NS"] })
      got_ns = Hash.new { |h, k| h[k] = [] }
      got_a = Hash.new { |h, k| h[k] = [] }
      answers.each_line do |l|
        owner, ttl, _, type, data = l.split
        case type
        when "NS"
          expect(ttl).to eq("172800")
          got_ns[owner] << data
        when "A" then got_a[owner] |= [data]
        end
      end
      expect(got_ns.transform_values(&:sort)).to eq(ns.transform_values(&:sort))
      # tinydns 1.05 puts only A records into the glue of its referrals (docs/rootzone.md).
      expect(answers.lines.grep(/\sAAAA\s/)).to be_empty
      expect(got_a.transform_values(&:sort)).to eq(a.slice(*got_a.keys).transform_values(&:sort))
      expect(got_a.keys.sort).to eq(ns.values.flatten.uniq.select { |n| a.key?(n) }.sort)
      soa = dig_batch(ip, [[".", "SOA"]])
      expect(soa).to match(/^\.\s+86400\s+IN\s+SOA\s+a\.root-servers\.net\. nstld\.verisign-grs\.com\. 2024120600 1800 900 604800 86400$/)
      expect(Open3.capture2("dig", "+norec", "@#{ip}", ".", "SOA")[0]).to include("flags: qr aa")
    end
  end

  it "never leaves tinydns without a valid data.cdb when killed (SIGKILL) at random points" do
    old_zone = signed_zone(@keys, serial: 2024120600, tlds: 400, seed: 8)
    new_zone = signed_zone(@keys, serial: 2024120601, tlds: 400, seed: 9)
    good = {}
    [[old_zone, 2024120600], [new_zone, 2024120601]].each do |z, serial|
      expect(update(z, "--allow-older")[0]).to eq(0)
      good[serial] = File.binread(File.join(@root, "data.cdb"))
    end
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(update(old_zone, "--allow-older")[0]).to eq(0)
    duration = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0

    rng = Random.new(20_241_206)
    outcomes = Hash.new(0)
    with_tinydns(@root) do |ip|
      40.times do |i|
        zone = i.even? ? new_zone : old_zone
        before = File.binread(File.join(@root, "data.cdb"))
        pid = Process.spawn(RbConfig.ruby, File.join(SpecHelpers::ROOT, "exe", "rootzone"), "update", "-q",
                            "--allow-older", "--source", zone, "--trust-anchor", anchor_of(@keys),
                            "--tinydns-root", @root, out: File::NULL, err: File::NULL)
        sleep(rng.rand * duration * 1.6)
        begin
          Process.kill("KILL", pid)
        rescue Errno::ESRCH
          nil
        end
        Process.wait(pid)
        after = File.binread(File.join(@root, "data.cdb"))
        serial = good.key(after)
        expect(serial).not_to be_nil, "run #{i}: data.cdb is neither complete copy (#{after.bytesize} bytes)"
        outcomes[after == before ? :unchanged : :replaced] += 1
        soa = dig_batch(ip, [[".", "SOA"]])
        expect(soa).to include(" #{serial} 1800 900 604800 86400"), "run #{i}: tinydns answered #{soa.inspect}"
      end
    end
    # Both outcomes happened: some kills came before the rename, some after.
    expect(outcomes[:unchanged]).to be > 0
    expect(outcomes[:replaced]).to be > 0
    # Temporary files a killed run left are removed by the next run, which completes.
    expect(update(new_zone, "--allow-older")[0]).to eq(0)
    expect(Dir.children(@root).sort).to eq(%w[data data.cdb])
  end
end
