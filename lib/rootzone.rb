# frozen_string_literal: true

require "ironshed"
require_relative "rootzone/fetch"

# A local, verified copy of the DNS root zone for djbdns's tinydns (RFC 8806).
#
#   zone = RootZone::Zone.load("root.zone", trust_anchor: "/usr/share/dns/root.key")
#   zone.serial                        # => 2024120600
#   zone.verify!                       # => #<RootZone::Verification>, or raises
#   zone.delegations.first.nameservers # => ["a.nic.aaa.", ...]
#   zone.to_tinydns                    # => "Z.:a.root-servers.net.:...\n&.::a.root-servers.net.:518400\n..."
#
#   RootZone.update(tinydns_root: "/etc/tinydns-root/root")   # what `rootzone update` does
#
# Refusals raise RootZone::VerificationError subclasses (TrustAnchorError, SignatureError,
# SignatureExpired, UnsupportedAlgorithm, DigestError, ZoneError, OpenPGPError), or
# RootZone::SourceError, RollbackError, InstallError (see lib/ironshed/errors.rb); system
# call failures raise SystemCallError.
module RootZone
  # Where `rootzone update` downloads the zone by default.
  DEFAULT_SOURCE = "https://www.internic.net/domain/root.zone"

  # A delegation: +name+ ("com."), +ttl+ of its NS RRset, +nameservers+ (names), +glue+
  # (name server => [addresses] found in the zone, A and AAAA), +ds+ ("tag alg type DIGEST").
  Delegation = Struct.new(:name, :ttl, :nameservers, :glue, :ds, keyword_init: true)

  # A zone file, parsed (native class). Nothing about it is trusted until #verify! passes.
  class Zone
    # Reads +path_or_io+: a path (a file, a FIFO, or "-" for stdin) or an IO; gzip is
    # recognised by its magic number. +trust_anchor+ is the file #verify! checks against
    # (DNSKEY or DS records).
    def self.load(path_or_io, trust_anchor: DEFAULT_TRUST_ANCHOR)
      zone = if path_or_io.respond_to?(:read)
               _parse(Fetch.read(path_or_io), Fetch.name(path_or_io))
             else
               _open(path_or_io.to_s)
             end
      zone.instance_variable_set(:@trust_anchor, trust_anchor.to_s)
      zone
    end

    # The trust-anchor file #verify! uses.
    attr_reader :trust_anchor

    # Proves the zone complete and authentic at time +now+: the apex DNSKEY RRset signed by
    # a trust-anchor key, every authoritative RRset signed by a zone key inside its validity
    # window, the ZONEMD digest matching. Returns a RootZone::Verification; raises a
    # RootZone::VerificationError subclass naming the RRset, key tag, digest or serial.
    def verify!(now: Time.now)
      _verify(@trust_anchor, now.to_i)
    end

    # The zone's delegations (RootZone::Delegation), in canonical order.
    def delegations
      _delegations.map do |name, ttl, ns, glue, ds|
        addrs = Hash.new { |h, k| h[k] = [] }
        glue.each { |n, a| addrs[n] << a }
        Delegation.new(name: name, ttl: ttl, nameservers: ns, glue: addrs.to_h, ds: ds)
      end
    end

    def inspect
      "#<RootZone::Zone #{source} serial #{serial}, #{size} records>"
    end
  end

  # What #verify! (or an update) established (native class).
  class Verification
    # When the first RRset of the zone loses its last valid signature.
    def valid_until
      Time.at(valid_until_epoch).utc
    end
  end

  # What a tinydns instance root holds (native class): #serial from data.cdb, #cdb_mtime,
  # #valid_until from data's header (nil when it does not describe data.cdb's serial).
  class Installed
    def cdb_mtime
      cdb_mtime_epoch && Time.at(cdb_mtime_epoch)
    end

    def valid_until
      valid_until_epoch && Time.at(valid_until_epoch).utc
    end
  end

  # What `rootzone update` does: fetch +source+ (an http(s) URL, a path, "-" for stdin, or an
  # IO), check +signature+ (URL or path of a detached OpenPGP signature) with gpgv against
  # +keyring+ when given, verify the zone against +trust_anchor+, refuse a serial older than
  # the installed one unless +allow_older+, and install data and data.cdb into
  # +tinydns_root+ atomically (nothing is written with +dry_run+). +timeout+ bounds each
  # download's connect and reads (seconds). Returns a RootZone::UpdateReport (#outcome is
  # :installed, :current, :would_install or :would_keep_current).
  def self.update(source: DEFAULT_SOURCE, trust_anchor: DEFAULT_TRUST_ANCHOR,
                  tinydns_root: DEFAULT_TINYDNS_ROOT, dry_run: false, allow_older: false,
                  signature: nil, keyring: nil, timeout: 60)
    raise ArgumentError, "signature: needs keyring:" if signature && !keyring

    zone = Fetch.read(source, timeout: timeout)
    Fetch.local_copy(signature, timeout: timeout) do |sig_path|
      UpdateReport._run(zone, **{ source: Fetch.name(source), trust_anchor: trust_anchor.to_s,
                                  tinydns_root: tinydns_root.to_s, dry_run: dry_run ? true : false,
                                  allow_older: allow_older ? true : false, signature: sig_path,
                                  signature_name: signature && Fetch.name(signature),
                                  keyring: keyring&.to_s }.compact)
    end
  end
end
