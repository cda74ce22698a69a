# frozen_string_literal: true

require_relative "../lvm"

module LVM
  # A physical volume of a volume group's metadata (`pv0`, `pv1`...).
  class PVConfig
    def initialize(data)
      @data = data
    end

    # The name segments refer to ("pv0").
    def name = @data[:name]
    # PV UUID.
    def id = @data[:id]
    # Last known device path (a hint only).
    def device = @data[:device]
    # Status flags (["ALLOCATABLE"]).
    def status = @data[:status]
    # Other flags (["MISSING"]).
    def flags = @data[:flags]
    # Device size in sectors.
    def dev_size = @data[:dev_size]
    # Sector of the first extent.
    def pe_start = @data[:pe_start]
    # Number of extents.
    def pe_count = @data[:pe_count]
    # Every key of the PV section, as in the file.
    def raw = @data[:raw]

    # A key of the PV section as in the file.
    def [](key)
      raw[key.to_s]
    end

    def inspect
      "#<LVM::PVConfig #{name} #{device}>"
    end
  end
end
