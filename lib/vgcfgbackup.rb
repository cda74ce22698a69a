# frozen_string_literal: true

require_relative "lvm"

# The parse tree of LVM2 text metadata that the original lvmsync built with Treetop (its
# lib/vgcfgbackup.rb and vgcfgbackup.treetop), on the native parser:
#
#   root = VgCfgBackupParser.new.parse(File.read("/etc/lvm/backup/vg0"))
#   root.variable_value("version")                        # => 1
#   vg = root.groups["vg0"]
#   vg.variable_value("id")                               # => "GlXy2m-..."
#   vg.groups["logical_volumes"].groups.keys              # => ["root", "swap"]
#
# What Treetop added (elements, text_value) is not there. LVM::VGConfig is the richer API.
module VgCfgBackup
  # A `name = value` line.
  class Variable
    attr_reader :name, :value

    def initialize(name, value)
      @name = name
      @value = value
    end
  end

  # A section: `name { ... }`.
  class Group
    attr_reader :name

    def initialize(name, entries)
      @name = name
      @entries = entries
    end

    # The section's `name = value` lines, in order.
    def variables
      @entries.reject { |_, v| v.is_a?(Hash) }.map { |k, v| Variable.new(k, v) }
    end

    # The value of variable +name+, or nil.
    def variable_value(name)
      v = @entries[name]
      v.is_a?(Hash) ? nil : v
    end

    # The sub-sections by name.
    def groups
      @entries.select { |_, v| v.is_a?(Hash) }.to_h { |k, v| [k, Group.new(k, v)] }
    end
  end

  # The whole text: a group without a name.
  class Config < Group
    def initialize(entries)
      super(nil, entries)
    end
  end
end

# Parses metadata text into a VgCfgBackup::Config, as the parser the original generated from
# its grammar did: nil when the text cannot be parsed, with the reason in #failure_reason.
class VgCfgBackupParser
  # Why the last #parse returned nil ("line 3, column 1: expected a value for 'id'...").
  attr_reader :failure_reason

  def parse(text)
    @failure_reason = nil
    VgCfgBackup::Config.new(LVM::Native.parse_config(text.to_s, "(metadata text)"))
  rescue LVM::MetadataError => e
    @failure_reason = e.message
    nil
  end
end
