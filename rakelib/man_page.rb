# frozen_string_literal: true

require "open3"
require_relative "../lib/ironshed/version"

# Man pages from the manuals in docs/: the part of docs/TOOL.md meant for the man page,
# shaped the way man pages are (NAME, then the sections in upper case), rendered by pandoc.
#
# A manual starts with "# TOOL — one-line summary"; its "## " sections become the man page's
# sections, except those whose heading is followed by "<!-- not in the man page -->" (the
# Ruby API, internals). Links to other manuals keep only their text.
module ManPage
  PAGES = {
    "man/vmdksync.1" => "docs/vmdksync.md",
    "man/lvmsync.1" => "docs/lvmsync.md",
    "man/check_interface.1" => "docs/check_interface.md",
    "man/rootzone.1" => "docs/rootzone.md",
    "man/check_rootzone.1" => "docs/check_rootzone.md"
  }.freeze
  SKIP = "<!-- not in the man page -->"

  module_function

  # The Markdown pandoc renders for +doc+.
  def markdown(doc)
    text = File.read(doc)
    m = /\A# (\S+) — (.+)\n/.match(text) or raise "#{doc}: must start with '# TOOL — summary'"
    name, summary = m.captures
    sections = text[m.end(0)..].split(/^(?=## )/).drop(1) # the text before the first section is the intro
    intro = text[m.end(0)..].split(/^(?=## )/).first.strip
    body = sections.reject { |s| s.lines[1].to_s.strip == SKIP }.map do |s|
      s.sub(/\A## (.+)$/) { "# #{Regexp.last_match(1).upcase}" }.gsub(/^### /, "## ")
    end
    raise "#{doc}: the first section must be Synopsis" unless body.first&.start_with?("# SYNOPSIS")

    # The introduction opens DESCRIPTION (the manual's own Description section, if it has one).
    if body[1]&.start_with?("# DESCRIPTION\n")
      body[1] = body[1].sub("# DESCRIPTION\n", "# DESCRIPTION\n\n#{intro}\n")
    else
      body.insert(1, "# DESCRIPTION\n\n#{intro}\n\n")
    end
    md = "# NAME\n\n#{name} - #{summary}\n\n#{body.join}"
    md = md.gsub(/<!--.*?-->\n?/m, "").gsub(/\[([^\]]+)\]\((?!https?:)[^)]*\)/, '\1')
    md.gsub(/^\|.*\|\n(?:\|.*\|\n)+/) { |table| definition_list(table) || table }
  end

  # A two-column table (options, exit statuses) as a definition list, which man pages show
  # as tagged paragraphs; nil for other tables.
  def definition_list(table)
    rows = table.lines.map { |l| l.strip.delete_prefix("|").delete_suffix("|").split(/(?<!\\)\|/).map(&:strip) }
    return nil unless rows.all? { |r| r.size == 2 }

    rows.drop(2).map { |term, text| "#{term.gsub("\\|", "|")}\n:   #{text.gsub("\\|", "|")}\n\n" }.join
  end

  # The roff page for +doc+ (pandoc, standalone, section 1).
  def render(doc)
    name = /\A# (\S+)/.match(File.read(doc))[1]
    cmd = ["pandoc", "--from", "markdown-smart-subscript-superscript-tex_math_dollars", "--to", "man", "--standalone",
           "--metadata", "title=#{name.upcase}", "--metadata", "section=1",
           "--metadata", "header=ironshed manual", "--metadata", "footer=ironshed #{Ironshed::VERSION}"]
    out, err, st = Open3.capture3(*cmd, stdin_data: markdown(doc))
    raise "pandoc failed for #{doc}: #{err}" unless st.success?

    out
  end
end
