# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/rootzone_env"
require "rootzone"

# The Ruby API of README and docs/rootzone.md, on zones signed by ldns-signzone.
RSpec.describe "RootZone (Ruby API)", :tmpdir do
  include RootZoneEnv

  before do
    @keys = keypair
    @zone = signed_zone(@keys, serial: 2024120600, tlds: 80, seed: 3)
  end

  it "loads from a path or an IO, verifies, and lists delegations as generated" do
    z = RootZone::Zone.load(@zone, trust_anchor: anchor_of(@keys))
    expect(z.serial).to eq(2024120600)
    expect(z.apex).to eq(".")
    from_io = File.open(gzip(@zone), "rb") { |f| RootZone::Zone.load(f, trust_anchor: anchor_of(@keys)) }
    expect(from_io.serial).to eq(2024120600)
    expect(from_io.size).to eq(z.size)

    v = z.verify!
    expect(v).to be_a(RootZone::Verification)
    expect(v.serial).to eq(2024120600)
    expect(v.anchor_keys).to eq([File.basename(@keys[0])[/\d+\z/].to_i])
    expect(v.zonemd.map(&:first)).to eq(["SHA-384"])
    expect(v.valid_until).to be > Time.now + (20 * 86_400)

    generated = Hash.new { |h, k| h[k] = [] }
    File.foreach(File.join(@dir, "root-2024120600-3.unsigned")) do |l|
      owner, _, _, type, data = l.chomp.split("\t")
      generated[owner] << data if type == "NS" && owner != "."
    end
    d = z.delegations
    expect(d.map(&:name).sort).to eq(generated.keys.sort)
    d.each { |del| expect(del.nameservers.sort).to eq(generated[del.name].sort) }
    com = d.find { |x| x.name == "com." }
    expect(com.ttl).to eq(172_800)
    expect(com.glue["a.gtld-servers.net."]).to include(match(/\A\d+\.\d+\.\d+\.\d+\z/))
    expect(d.count { |x| !x.ds.empty? }).to be > 0
    expect(d.flat_map(&:ds)).to all(match(/\A\d+ (8|13) 2 [0-9A-F]{64}\z/))

    data = z.to_tinydns
    expect(data.lines.first).to eq("Z.:a.root-servers.net.:nstld.verisign-grs.com.:2024120600:1800:900:604800:86400:86400\n")
    # tinydns-data accepts it as is.
    File.write(File.join(@dir, "data"), data)
    run!("tinydns-data")
    expect(run!("tinydns-get", "ns", "com")).to include("authority: com 172800 NS a.gtld-servers.net")
  end

  it "raises the VerificationError subclasses and SourceError" do
    other = keypair(File.join(@dir, "o").tap { |x| Dir.mkdir(x) })
    expect { RootZone::Zone.load(@zone, trust_anchor: anchor_of(other)).verify! }
      .to raise_error(RootZone::TrustAnchorError, /matches the trust anchor/)
    expect { RootZone::Zone.load(@zone, trust_anchor: anchor_of(@keys)).verify!(now: Time.utc(2040)) }
      .to raise_error(RootZone::SignatureExpired, /expired at/)
    plain = signed_zone(@keys, serial: 2024120600, tlds: 80, seed: 3, zonemd: false, name: "plain")
    expect { RootZone::Zone.load(plain, trust_anchor: anchor_of(@keys)).verify! }
      .to raise_error(RootZone::DigestError, /no ZONEMD/)
    expect { RootZone::Zone.load(StringIO.new("bogus line\n")) }.to raise_error(RootZone::SourceError)
    expect(RootZone::SignatureExpired.ancestors).to include(RootZone::SignatureError, RootZone::VerificationError,
                                                            RootZone::Error, Ironshed::Error)
  end

  it "RootZone.update mirrors the command and checks its keyword arguments" do
    root = File.join(@dir, "root")
    Dir.mkdir(root)
    r = RootZone.update(source: @zone, trust_anchor: anchor_of(@keys), tinydns_root: root)
    expect([r.outcome, r.serial, r.previous_serial, r.delegations]).to eq([:installed, 2024120600, nil, 82])
    soa, ns, = r.served
    expect(soa).to eq(1)
    expect(ns).to be > 82
    expect(r.not_served).to include("RRSIG", "NSEC", "DNSKEY", "ZONEMD")
    expect(RootZone.update(source: @zone, trust_anchor: anchor_of(@keys), tinydns_root: root).outcome).to eq(:current)
    inst = RootZone::Installed.read(root)
    expect(inst.serial).to eq(2024120600)
    expect(inst.valid_until).to eq(r.verification.valid_until)
    expect(inst.cdb_mtime).to be_within(60).of(Time.now)
    expect { RootZone.update(source: @zone, tinydns_root: root, bogus: 1) }.to raise_error(ArgumentError)
    expect { RootZone::UpdateReport._run("", source: "x", trust_anchor: "y", tinydns_root: root, bogus: 1) }
      .to raise_error(ArgumentError, /bogus/)
    expect { RootZone.update(source: @zone, signature: "x.sig") }.to raise_error(ArgumentError, /keyring/)
  end
end
