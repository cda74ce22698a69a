# frozen_string_literal: true

require "fileutils"
require "tmpdir"

# Runs one spec/guest script in one boot of the real-kernel VM before an example group, into a
# fresh directory under tmp/ (which the guest shares), and gives the examples its KEY=VALUE
# lines (#kv) and the stderr files it wrote (#err_of). Include it in a :vm example group and
# call `run_guest_script "NAME.sh", timeout: SECONDS` at the top.
module GuestScript
  def self.included(group)
    group.extend(ClassMethods)
  end

  module ClassMethods
    def run_guest_script(script, timeout:)
      before(:context) do
        FileUtils.mkdir_p(File.join(SpecHelpers::ROOT, "tmp"))
        @out = Dir.mktmpdir(File.basename(script, ".sh"), File.join(SpecHelpers::ROOT, "tmp"))
        @log, @err, @status = vm_run(File.join(SpecHelpers::ROOT, "spec", "guest", script), @out, timeout: timeout)
        @kv = @log.lines.grep(/\A\w+=/).to_h { |l| l.chomp.split("=", 2) }
      end

      after(:context) do
        FileUtils.rm_rf(@out)
      end
    end
  end

  def kv(key)
    expect(@kv).to have_key(key), "no #{key} from the guest; stdout:\n#{@log}\nstderr:\n#{@err}"
    @kv[key]
  end

  def err_of(name)
    File.read(File.join(@out, "#{name}.err"))
  end
end
