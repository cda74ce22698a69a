# frozen_string_literal: true

require "json"
require "tempfile"

# The table "Promises and the tests behind them" in docs/development.md: every sentence of the
# README, the vmdksync and lvmsync manuals and their --help that speaks of interruption,
# reruns, idempotence, truncation or compatibility, with the tests that back it. Checked here
# both ways: each row quotes its document and names tests that exist, and each such sentence
# of those documents has a row.

# The audit's pieces: the documents, their sentences, the table.
module ClaimsAudit
  ROOT = SpecHelpers::ROOT

  # What makes a sentence such a promise.
  KEYWORDS = /interrupt|\brerun|\bagain\b|twice|idempot|truncat|\bcut\b|compatib|resum|crash|power loss|
              sigkill|sigterm|ctrl-c|partly|original|end-of-stream|plain stream|same result/ix

  # Sentences the keywords find that promise nothing of the kind, and why.
  NOT_PROMISES = {
    "README.md" => [
      [/Both are idempotent: a second run installs nothing/, "bin/demo and bin/test, not the tools"],
      [/rerun one with `bin\/bench NAME`/, "how to rerun a benchmark"],
      [/the original's Ruby loop|× the original/, "benchmark figures, measured by bin/bench"]
    ],
    "docs/vmdksync.md" => [
      [/no unknown incompatible flag/, "a check of the KDMV header's incompatible-flags field"]
    ],
    "docs/lvmsync.md" => [
      [/\A`ext\/ironshed-core\/src\/lvm\/` parses/, "where the code is (How it works)"]
    ]
  }.freeze

  def self.squeeze(text)
    text.gsub(/\s+/, " ").strip
  end

  # A markdown document as units of prose (paragraphs, list items, table cells), code left out.
  def self.markdown_units(text)
    text.gsub(/^```.*?^```\n/m, "").split(/\n\s*\n/).flat_map do |block|
      units = [[]]
      block.each_line do |l|
        if l.start_with?("|")
          units.concat(l.split(/(?<!\\)\|/).map { |c| [c] } + [[]])
        elsif l =~ /\A\s*(- |\d+\. )/
          units << [l]
        else
          units.last << l
        end
      end
      units.map(&:join)
    end
  end

  # --help output as units: each paragraph, argument and option (continuation lines are
  # indented further).
  def self.help_units(text)
    text.split(/\n\s*\n/).flat_map do |block|
      units = [[]]
      block.each_line { |l| l =~ /\A( {2}\S| {6}--)/ ? units << [l] : units.last << l }
      units.map(&:join)
    end
  end

  def self.sentences(units)
    units.map { |u| squeeze(u) }.reject(&:empty?).flat_map { |u| u.split(/(?<=[.!?])\s+(?=[A-Z`"(\[*])/) }
  end

  def self.help(tool)
    out, st = Open3.capture2(RbConfig.ruby, "-I", File.join(ROOT, "lib"), File.join(ROOT, "exe", tool), "--help")
    raise "#{tool} --help failed" unless st.success?

    out
  end

  SOURCES = {
    "README.md" => markdown_units(File.read(File.join(ROOT, "README.md"))),
    "docs/vmdksync.md" => markdown_units(File.read(File.join(ROOT, "docs/vmdksync.md"))),
    "docs/lvmsync.md" => markdown_units(File.read(File.join(ROOT, "docs/lvmsync.md"))),
    "vmdksync --help" => help_units(help("vmdksync")),
    "lvmsync --help" => help_units(help("lvmsync"))
  }.freeze

  # The table's rows: [where, promise, [[file, test], ...]].
  section = File.read(File.join(ROOT, "docs/development.md"))[/^## Promises and the tests behind them\n(.*?)(?=^## |\z)/m, 1]
  ROWS = section.to_s.lines.grep(/\A\| (?!where |---)/).map do |line|
    where, promise, tests = line.strip.delete_prefix("|").delete_suffix("|").split(" | ", 3).map(&:strip)
    file = nil
    refs = []
    tests.to_s.scan(/`([^`]+\.(?:rb|rs))`|"([^"]+)"|([a-z0-9_]+)\(\)/) do |path, example, function|
      path ? file = path : refs << [file, example || function]
    end
    [where, promise, refs]
  end.freeze
end

RSpec.describe "promises about interruption, reruns, truncation and compatibility" do
  audit = ClaimsAudit
  root = audit::ROOT

  it "has a row for each document, each naming tests" do
    expect(audit::ROWS.size).to be > 60
    expect(audit::ROWS.map(&:first).uniq).to match_array(audit::SOURCES.keys)
    audit::ROWS.each { |where, promise, refs| expect(refs).not_to be_empty, "#{where}: #{promise}" }
  end

  it "quotes each promise as its document says it" do
    texts = audit::SOURCES.transform_values { |units| audit.squeeze(units.join(" ")) }
    missing = audit::ROWS.reject { |where, promise, _| texts.fetch(where).include?(promise) }
    expect(missing.map { |w, p, _| "#{w}: #{p}" }).to eq([])
  end

  it "names tests that exist" do
    specs = audit::ROWS.flat_map(&:last).select { |file, _| file.end_with?(".rb") }
    out = Tempfile.new(["examples", ".json"])
    _o, err, st = Open3.capture3(RbConfig.ruby, "-S", "rspec", "--dry-run", "--format", "json", "--out", out.path,
                                 *specs.map(&:first).uniq, chdir: root)
    expect(st.success?).to be(true), err
    examples = JSON.parse(File.read(out.path))["examples"].map { |e| [e["file_path"].delete_prefix("./"), e["description"]] }
    missing = specs.uniq.reject { |ref| examples.include?(ref) }
    audit::ROWS.flat_map(&:last).select { |file, _| file.end_with?(".rs") }.uniq.each do |file, function|
      source = File.read(File.join(root, file))
      missing << [file, function] unless source.match?(/^\s*fn #{function}\(\)/)
    end
    expect(missing).to eq([])
  end

  it "has a row for every sentence of the documents that makes such a promise" do
    unlisted = audit::SOURCES.flat_map do |where, units|
      phrases = audit::ROWS.select { |w, _, _| w == where }.map { |_, promise, _| promise }
      audit.sentences(units).grep(audit::KEYWORDS).reject do |s|
        phrases.any? { |p| s.include?(p) || p.include?(s) } ||
          audit::NOT_PROMISES.fetch(where, []).any? { |re, _why| s.match?(re) }
      end.map { |s| "#{where}: #{s}" }
    end
    expect(unlisted).to eq([])
  end
end
