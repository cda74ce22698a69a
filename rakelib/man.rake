# frozen_string_literal: true

require_relative "man_page"

desc "Generate the man pages man/*.1 from their manuals in docs/ (needs pandoc)"
task :man do
  mkdir_p "man"
  ManPage::PAGES.each do |page, doc|
    File.write(page, ManPage.render(doc))
    puts "#{doc} -> #{page}"
  end
end
