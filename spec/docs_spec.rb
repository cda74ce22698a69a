# frozen_string_literal: true

require_relative "../rakelib/man_page"

# The documentation kept true to the code: the man pages are what `rake man` makes of the
# manuals, each manual lists exactly the options its tool accepts, and links lead somewhere.
RSpec.describe "the documentation" do
  root = SpecHelpers::ROOT
  # Manuals the README links to that are written alongside, not in this tree yet.
  expected_elsewhere = %w[docs/architecture.md]

  ManPage::PAGES.each do |page, doc|
    it "#{page} is up to date with #{doc} (rake man)" do
      Dir.chdir(root) do
        expect(File.read(page)).to eq(ManPage.render(doc)), "#{page} is stale: run `rake man` and commit it"
      end
    end

    it "#{page} is a man page man(1) formats without errors" do
      out, err, st = Open3.capture3({ "MANWIDTH" => "80" }, "man", "--warnings=mac", "-l", File.join(root, page))
      expect(st.success?).to be(true), err
      tool = File.basename(page, ".1")
      expect(out).to start_with("#{tool.upcase}(1)")
      expect(out).to match(/^NAME\n {7}#{tool} +- /)
      expect(out).to include("SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO")
      expect(out).not_to include("RUBY API", "HOW IT WORKS", "<!--") # sections kept to docs/
    end
  end

  { "vmdksync" => 0, "lvmsync" => 0, "check_interface" => 3, "check_rootzone" => 3 }.each do |tool, status|
    it "docs/#{tool}.md lists exactly the options of #{tool} --help" do
      out, _err, st = run_exe(tool, "--help")
      expect(st.exitstatus).to eq(status)
      listing = out[/^Options:\n(.*?)(?:\n\n|\z)/m, 1]
      from_help = listing.scan(/^ {2}(?:-\w, | {4})(--(?:\[no-\])?[\w-]+)/).flatten
      doc = File.read(File.join(root, "docs", "#{tool}.md"))
      options = doc[/^## Options\n(.*?)(?=^## )/m, 1]
      from_doc = options.scan(/^\| (?:`-\w`, )?`(--(?:\[no-\])?[\w-]+)/).flatten
      expect(from_doc).to match_array(from_help)
      expect(from_help.size).to be >= 10
    end
  end

  { "vmdksync" => "VMDKSync::CLI", "lvmsync" => "LVMSync::CLI", "check_interface" => "CheckInterface::CLI",
    "check_rootzone" => "CheckRootZone::CLI" }.each do |tool, cli|
    it "#{tool} accepts exactly the long options docs/#{tool}.md lists, no others" do
      # OptionParser takes a description line that starts with "-" for one more switch of
      # the option: such a line would make an undocumented option work.
      require "#{tool}/cli"
      accepted = Object.const_get(cli).new([]).send(:parser).top.list
                       .select { |s| s.respond_to?(:long) }.flat_map(&:long)
      doc = File.read(File.join(root, "docs", "#{tool}.md"))[/^## Options\n(.*?)(?=^## )/m, 1]
      expect(accepted).to match_array(doc.scan(/^\| (?:`-\w`, )?`(--(?:\[no-\])?[\w-]+)/).flatten)
    end
  end

  %w[update setup].each do |command|
    it "docs/rootzone.md lists exactly the options of rootzone #{command} --help" do
      out, _err, st = run_exe("rootzone", command, "--help")
      expect(st.exitstatus).to eq(0)
      listing = out[/^Options:\n(.*?)(?:\n\n|\z)/m, 1]
      from_help = listing.scan(/^ {2}(?:-\w, | {4})(--[\w-]+)/).flatten
      doc = File.read(File.join(root, "docs", "rootzone.md"))
      options = doc[/^### rootzone #{command}\n(.*?)(?=^##)/m, 1]
      from_doc = options.scan(/^\| (?:`-\w`, )?`(--[\w-]+)/).flatten
      expect(from_doc).to match_array(from_help)
      expect(from_help.size).to be > 10
    end
  end

  it "keeps the README short: at most 400 lines" do
    expect(File.readlines(File.join(root, "README.md")).size).to be <= 400
  end

  it "links only to files that exist" do
    files = [File.join(root, "README.md"), *Dir[File.join(root, "docs", "*.md")]]
    missing = files.flat_map do |f|
      File.read(f).scan(/\]\(([^)#\s]+)(?:#[^)]*)?\)/).flatten.reject { |l| l.match?(%r{\A[a-z]+://}) }.filter_map do |l|
        target = File.expand_path(l, File.dirname(f))
        rel = target.delete_prefix("#{root}/")
        "#{File.basename(f)} -> #{l}" unless File.exist?(target) || expected_elsewhere.include?(rel)
      end
    end
    expect(missing).to eq([])
  end
end
