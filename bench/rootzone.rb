# frozen_string_literal: true

# bin/bench rootzone: a verified root zone update against the original recipe and against
# ldns-verify-zone, on a zone of the real root's size (1,500 TLDs, about 21,000 records,
# 2 MB, RSASHA256 KSK and ZSK of 2048 bits as the real root; signed with ldns-signzone -z).
# Prints a markdown section.
#
# Rows (medians of interleaved runs, so every side sees the same load):
#   * `rootzone update` from root.zone.gz into an empty instance root: the whole command
#     (Ruby start, gunzip, parse, DNSSEC and ZONEMD verification, conversion, data.cdb,
#     fsyncs and renames);
#   * the same work in-process (RootZone.update from Ruby, no process start);
#   * the original pipeline: gunzip | egrep -v (drop DNSSEC records) | awk (a minimal
#     converter standing in for bind-to-tinydns: SOA, NS, A) > data; tinydns-data — which
#     verifies nothing;
#   * ldns-verify-zone -Z (DNSSEC and ZONEMD verification alone, no conversion).
require "rootzone"
require_relative "bench_helper"

RUNS = 7

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def fmt(sec)
  sec < 1 ? format("%.0f ms", sec * 1e3) : format("%.2f s", sec)
end

dir = Bench.workdir("rootzone")
File.write(File.join(dir, "root.unsigned"),
           Bench.run!(Bench::TESTKIT, "rootzone", "--tlds", 1500, "--serial", 2024120600, "--seed", 1))
ksk = Bench.run!("ldns-keygen", "-a", "RSASHA256", "-b", "2048", "-k", ".", chdir: dir).strip
zsk = Bench.run!("ldns-keygen", "-a", "RSASHA256", "-b", "2048", ".", chdir: dir).strip
Bench.run!("ldns-signzone", "-z", "1:1", "-o", ".", "-f", "root.zone", "root.unsigned", ksk, zsk, chdir: dir)
zone = File.join(dir, "root.zone")
Bench.run!("gzip", "-k", "-9", zone)
gz = "#{zone}.gz"
anchor = File.join(dir, "#{ksk}.key")
records = File.foreach(zone).count
root = File.join(dir, "instance")
FileUtils.mkdir_p(root)
empty_root = -> { FileUtils.rm_f(%w[data data.cdb].map { |f| File.join(root, f) }) }

awk = <<~'AWK'
  $4 == "SOA" { printf "Z%s:%s:%s:%s:%s:%s:%s:%s:%s\n", $1, $5, $6, $7, $8, $9, $10, $11, $2 }
  $4 == "NS"  { printf "&%s::%s:%s\n", $1, $5, $2 }
  $4 == "A"   { printf "+%s:%s:%s\n", $1, $5, $2 }
AWK
File.write(File.join(dir, "convert.awk"), awk)
pipeline_dir = File.join(dir, "pipeline")
FileUtils.mkdir_p(pipeline_dir)
pipeline = "gunzip -c #{gz} | egrep -v '[[:space:]](RRSIG|NSEC|DNSKEY|DS|ZONEMD)[[:space:]]' | " \
           "awk -f #{dir}/convert.awk > data && tinydns-data"

exe = [File.join(Bench::ROOT, "exe", "rootzone"), "update", "-q", "--source", gz,
       "--trust-anchor", anchor, "--tinydns-root", root]
ldns = ["ldns-verify-zone", "-Z", "-k", anchor, zone]

# A first run of each, checked: the update must install, ldns must agree the zone is valid,
# the pipeline must give tinydns a data.cdb with the same delegations.
Bench.run!(*exe)
Bench.run!(*ldns)
Bench.run!("sh", "-c", pipeline, chdir: pipeline_dir)
ours = Bench.run!("tinydns-get", "ns", "com", chdir: root)
theirs = Bench.run!("tinydns-get", "ns", "com", chdir: pipeline_dir)
raise "the pipeline and rootzone serve different NS sets" unless ours.lines.grep(/authority/).sort == theirs.lines.grep(/authority/).sort

times = Hash.new { |h, k| h[k] = [] }
rss = Hash.new(0)
RUNS.times do
  w, r = Bench.measure(*exe, setup: empty_root)
  times[:exe] << w
  rss[:exe] = [rss[:exe], r].max
  empty_root.call
  t = now
  RootZone.update(source: gz, trust_anchor: anchor, tinydns_root: root)
  times[:inproc] << now - t
  w, r = Bench.measure("sh", "-c", "cd #{pipeline_dir} && #{pipeline}")
  times[:pipeline] << w
  rss[:pipeline] = [rss[:pipeline], r].max
  w, r = Bench.measure(*ldns)
  times[:ldns] << w
  rss[:ldns] = [rss[:ldns], r].max
end
med = times.transform_values { |v| v.sort[v.size / 2] }
ratio = ->(k) { format("%.2f×", med[k] / med[:exe]) }
load = File.read("/proc/loadavg").split.first(3).join(" ")

puts "## rootzone"
puts
puts "Machine: #{Bench.machine}; load average #{load} at the end of the run (a shared machine: " \
     "compare ratios rather than absolute times)."
puts "Reproduce: `bin/bench rootzone`. A root-like zone from `ironshed-testkit rootzone --tlds 1500` " \
     "(#{records} records, #{format('%.1f', Bench.mib(File.size(zone)))} MiB, " \
     "#{format('%.1f', Bench.mib(File.size(gz)))} MiB gzipped), signed with `ldns-signzone -z 1:1` by a " \
     "2048-bit RSASHA256 KSK and ZSK, as the real root. Medians of #{RUNS} interleaved runs."
puts
puts Bench.table(
  %w[what verifies time ratio peak\ RSS],
  [
    ["`rootzone update` from root.zone.gz into an empty instance (whole command: Ruby start, gunzip, parse, " \
     "DNSSEC + ZONEMD, conversion, data.cdb, fsync, rename)", "DNSSEC, ZONEMD", fmt(med[:exe]), "1×",
     "#{rss[:exe] / 1024} MiB"],
    ["the same in-process (`RootZone.update`)", "DNSSEC, ZONEMD", fmt(med[:inproc]), ratio.call(:inproc), "–"],
    ["the original pipeline: gunzip, egrep, awk converter (SOA, NS, A), tinydns-data", "nothing",
     fmt(med[:pipeline]), ratio.call(:pipeline), "#{rss[:pipeline] / 1024} MiB"],
    ["`ldns-verify-zone -Z` alone (verification, no conversion)", "DNSSEC, ZONEMD", fmt(med[:ldns]),
     ratio.call(:ldns), "#{rss[:ldns] / 1024} MiB"]
  ]
)
faster = med[:exe] < med[:ldns]
puts
puts "Targets: the whole verified update faster than `ldns-verify-zone` alone: " \
     "#{faster ? 'met' : 'NOT met'} (#{fmt(med[:exe])} vs #{fmt(med[:ldns])}); under 0.5 s: " \
     "#{med[:exe] < 0.5 ? 'met' : 'NOT met'} (#{fmt(med[:exe])})."
