# frozen_string_literal: true

# What one lvmsync round sends, decided before anything is sent: the snapshot (or the pair of
# snapshots given with --from) is resolved through LVM, the round planned from the volume
# group's metadata by the core (a snapshot, of one origin, in the right order, not being
# merged, both classic or both thin; whether discard records may go; an origin's new part:
# LVM::Metadata#plan_round), its devices checked (present,
# active), and its change list read — from the exception store of a classic snapshot, or
# from thin_delta for thin ones; for a whole-volume copy (--full), from thin_dump for a thin
# LV, or by reading the device for zeros. Every refusal here comes before the first byte of
# output.
require "lvmsync"

module LVMSync
  # What to send: +changes+ (an LVM::ChangeSet, made once from the snapshot's change list)
  # read from +source+; +devices+ the paths a destination must not be (description => path);
  # +summary+ describes the changes; +discards+ is true when the unmapped ranges are to go as discard
  # records (if the receiver can apply them); +older+ is the device of --from's OLDER
  # snapshot, read for the destination check (nil without --from, or with
  # --no-destination-check).
  Plan = Struct.new(:changes, :source, :devices, :summary, :discards, :older, keyword_init: true)

  # Makes the Plan of a round. +options+ are the command line's (LVMSync::Options: from,
  # data_source, discards, thin_delta, dmsetup); +console+ gets the -v and -d descriptions.
  class Planner
    def initialize(options, console)
      @options = options
      @console = console
    end

    # Resolves the snapshot +name+ (and --from's) and reads the change list: every check
    # before any output. The round itself (which snapshots, which store or thin ids, which LV
    # to read) is planned by the core (LVM::Metadata#plan_round); what needs the running
    # system (devices present and active) is checked here. Raises LVM::Error (or a subclass)
    # naming what is wrong.
    def prepare(name)
      lv = LVM::LogicalVolume.new(name)
      older = from && LVM::LogicalVolume.new(from)
      round = lv.vg_config.metadata.plan_round([name, lv.vg_name, lv.lv_name],
                                               older && [from, older.vg_name, older.lv_name],
                                               data_source: !@options.data_source.nil?,
                                               full: @options.full ? true : false,
                                               discards: @options.discards ? true : false,
                                               plain: @options.plain ? true : false)
      plan = if round[:full]
               prepare_full(round, lv)
             else
               round[:thin] ? prepare_thin(round, lv, older) : prepare_classic(round, lv, older)
             end
      verbose "lvmsync: data source: #{plan.source}"
      round[:notes].each { |note| @console.info "lvmsync: note: #{note}" }
      # The set sent, made once: the checks below and the sender share it.
      plan.changes = plan.changes.change_set
      # Discard records only where the core's round says they may go, and there is any.
      plan.discards = round[:discards] && plan.changes.discard_bytes.positive?
      add_new_part(plan, round[:new_part]) if round[:new_part]
      plan.changes.extents.each { |off, len| @console.debug "lvmsync: changed: #{off}+#{len}" } if @console.debug?
      plan.older = older_device(round, older) if older && !@options.no_destination_check
      plan
    end

    private

    def from = @options.from
    def u = Ironshed::Units

    def verbose(line)
      @console.verbose(line)
    end

    def prepare_classic(round, lv, older)
      vg, listed = round.values_at(:vg, :store)
      cow = LVM::Helpers.dm_path(vg, listed, "cow")
      unless File.exist?(cow)
        raise LVM::Error, "#{vg}/#{listed}: #{cow} does not exist: is the snapshot active? " \
                          "(lvchange -ay #{vg}/#{listed})"
      end
      store = LVM::CowStore.open(cow)
      source = data_source(round, lv, "lvchange -ay #{lv.vg_name}/#{lv.lv_name}")
      if older
        verbose "lvmsync: changes since #{older.vg_name}/#{older.lv_name} (its exception store #{cow}, " \
                "read #{store.read_mode}); data read from snapshot #{lv.vg_name}/#{lv.lv_name}, as it was taken"
      else
        verbose "lvmsync: snapshot #{lv.vg_name}/#{lv.lv_name} of #{round[:origin]}, exception store #{cow} " \
                "(read #{store.read_mode})"
      end
      verbose "lvmsync: chunk size #{u.bytes(store.chunk_size)}; #{store.exception_count} exceptions in " \
              "#{store.area_count} metadata areas; #{store.chunk_count} chunks changed " \
              "(#{u.bytes(store.changed_bytes)}) in #{store.extents.size} ranges, " \
              "#{store.record_count(LVMSync::MAX_RECORD)} records of at most #{u.bytes(LVMSync::MAX_RECORD)}"
      Plan.new(changes: store, source: source,
               devices: { "the data source" => source, "the snapshot" => lv.path, "the exception store" => store.path },
               summary: "#{store.chunk_count} changed chunks")
    end

    def prepare_thin(round, lv, older)
      left, right = round.values_at(:left, :right)
      source = data_source(round, lv, "thin snapshots are skipped at activation by default: " \
                                      "lvchange -ay -K #{lv.vg_name}/#{lv.lv_name}")
      what = if older
               "changes from #{older.vg_name}/#{older.lv_name} (thin id #{left[:device_id]}) to #{lv.vg_name}/" \
                 "#{lv.lv_name} (thin id #{right[:device_id]}), data read from #{lv.lv_name}"
             else
               "thin snapshot #{lv.vg_name}/#{lv.lv_name} (thin id #{left[:device_id]}) of #{round[:origin]} " \
                 "(thin id #{right[:device_id]})"
             end
      verbose "lvmsync: #{what}, pool #{lv.vg_name}/#{round[:pool]}"
      pool = LVM::ThinPool.new(round[:vg], round[:pool], dmsetup: @options.dmsetup)
      delta = pool.with_metadata_snapshot do |meta|
        LVM::ThinDelta.run(meta, left[:device_id], right[:device_id], thin_delta: @options.thin_delta)
      end
      counts = delta.block_counts
      verbose "lvmsync: #{delta.command}: pool block #{u.bytes(delta.block_size)}; #{counts[:different]} blocks " \
              "rewritten, #{counts[:right_only]} newly mapped, #{counts[:left_only]} unmapped, " \
              "#{counts[:same]} shared; metadata snapshot released"
      changed = counts[:different] + counts[:right_only]
      Plan.new(changes: delta, source: source,
               devices: { "the data source" => source, "the snapshot" => lv.path,
                          "the pool's metadata" => pool.metadata_device },
               summary: "#{changed} changed and #{counts[:left_only]} unmapped blocks of #{u.bytes(delta.block_size)}")
    end

    # A whole-volume copy: a thin LV's mapped blocks (thin_dump), or the device read whole
    # for its all-zero parts; the rest of the volume goes as discards (or zeros).
    def prepare_full(round, lv)
      name = "#{lv.vg_name}/#{lv.lv_name}"
      how = round[:thin] ? "thin snapshots are skipped at activation by default: lvchange -ay -K #{name}" : "lvchange -ay #{name}"
      source = data_source(round, lv, how)
      active!(lv, how) if round[:data_lv] && !@options.data_source
      if round[:live]
        @console.info "lvmsync: note: #{name} is no snapshot: nothing may write to it while it is copied, " \
                      "or the copy mixes old and new data (copy a snapshot of it instead while it is in use)"
      end
      devices = { "the data source" => source }
      mapping = round[:thin] ? thin_mapping(round, name, devices) : nil
      verbose "lvmsync: whole #{name}: reading #{source} for its all-zero parts" unless mapping
      set = LVM::ChangeSet.full(source, mapping: mapping, progress: mapping ? nil : @console.meter)
      @console.finish_meter
      size = set.data_bytes + set.discard_bytes
      summary = "whole #{name}: #{u.bytes(set.data_bytes)} of data, #{u.bytes(set.discard_bytes)} " \
                "#{mapping ? 'unmapped' : 'of zeros'} of #{u.bytes(size)}"
      # The range lists are built only for -v: at a million ranges they are large.
      if @console.verbose?
        verbose "lvmsync: #{summary}, in #{set.data_extents.size} data and #{set.discard_extents.size} zero ranges"
      end
      Plan.new(changes: set, source: source, devices: devices, summary: summary)
    end

    # The mapping of the thin LV of a whole-volume copy (thin_dump on a reserved metadata
    # snapshot); adds the pool's metadata device to +devices+.
    def thin_mapping(round, name, devices)
      id = round[:device][:device_id] or raise LVM::Error, "#{name}: the metadata records no thin device id"
      pool = LVM::ThinPool.new(round[:vg], round[:pool], dmsetup: @options.dmsetup)
      devices["the pool's metadata"] = pool.metadata_device
      mapping = pool.with_metadata_snapshot do |meta|
        LVM::ThinMapping.run(meta, id, thin_dump: @options.thin_dump)
      end
      verbose "lvmsync: #{mapping.command}: pool block #{u.bytes(mapping.block_size)}; #{mapping.mapped_blocks} " \
              "blocks mapped (#{u.bytes(mapping.mapped_bytes)}); metadata snapshot released"
      mapping
    end

    # Where the changed data is read from: --data-source, or the LV the round names (the
    # newer snapshot of a --from round, whose device must be active: +how+ says how to
    # activate it; else the origin).
    def data_source(round, lv, how)
      return @options.data_source if @options.data_source

      active!(lv, how) if round[:data_lv_is_snapshot]
      LVM::Helpers.dm_path(round[:vg], round[:data_lv])
    end

    # The newer snapshot of a --from round is read: its device must exist.
    def active!(lv, how)
      return if File.exist?(lv.path)

      raise LVM::Error, "#{lv.path} does not exist: #{lv.vg_name}/#{lv.lv_name} is not active (#{how})"
    end

    # The device of OLDER, read for the destination check: it must be active (a thin
    # snapshot skips activation by default).
    def older_device(round, older)
      path = LVM::Helpers.dm_path(round[:vg], older.lv_name)
      return path if File.exist?(path)

      how = round[:thin] ? "lvchange -ay -K" : "lvchange -ay"
      raise LVM::Error, "#{path} does not exist: #{older.vg_name}/#{older.lv_name} is not active, and the " \
                        "destination check reads it (#{how} #{older.vg_name}/#{older.lv_name}; or " \
                        "--no-destination-check)"
    end

    # The origin grew after the snapshot was taken (the core's round names the part past the
    # snapshot's end, which nothing records): that part is sent whole, as data read from the
    # origin, with the snapshot's changes.
    def add_new_part(plan, part)
      @console.info "lvmsync: note: #{part[:note]}"
      plan.changes = plan.changes.with_new_part(part[:offset], part[:end], plan.source)
      size = u.bytes(part[:end] - part[:offset])
      plan.summary += " and the origin's new #{size}"
      verbose "lvmsync: and the origin's new part: bytes #{part[:offset]} to #{part[:end]} (#{size}), read from " \
              "#{plan.source}"
    end
  end
end
