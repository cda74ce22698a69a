# frozen_string_literal: true

# What one lvmsync round sends, decided before anything is sent: the snapshot (or the pair of
# snapshots given with --from) is resolved through LVM, checked (a snapshot, of one origin,
# in the right order, active, not being merged, both classic or both thin), and its change
# list read — from the exception store of a classic snapshot, or from thin_delta for thin
# ones. Every refusal here comes before the first byte of output.
require "lvmsync"

module LVMSync
  # What to send: +changes+ (an LVM::CowStore or LVM::ThinDelta) read from +source+;
  # +devices+ the paths a destination must not be (description => path); +summary+
  # describes the changes; +discards+ is true when the unmapped ranges are to go as discard
  # records (if the receiver can apply them).
  Plan = Struct.new(:changes, :source, :devices, :summary, :discards, keyword_init: true)

  # Makes the Plan of a round. +options+ are the command line's (LVMSync::Options: from,
  # data_source, discards, thin_delta, dmsetup); +console+ gets the -v and -d descriptions.
  class Planner
    def initialize(options, console)
      @options = options
      @console = console
    end

    # Resolves the snapshot +name+ (and --from's) and reads the change list: every check
    # before any output. Raises LVM::Error (or a subclass) naming what is wrong.
    def prepare(name)
      lv = LVM::LogicalVolume.new(name)
      older = from && LVM::LogicalVolume.new(from)
      if older && older.vg_name != lv.vg_name
        raise LVM::Error, "--from #{from} is in volume group #{older.vg_name}, #{name} in " \
                          "#{lv.vg_name}: both must be snapshots of one origin"
      end
      plan = lv.thin? || older&.thin? ? prepare_thin(name, lv, older) : prepare_classic(name, lv, older)
      verbose "lvmsync: data source: #{plan.source}"
      plan.changes.extents.each { |off, len| @console.debug "lvmsync: changed: #{off}+#{len}" } if @console.debug?
      plan.discards = discards?(plan.changes)
      plan
    end

    private

    def from = @options.from
    def u = Ironshed::Units

    def verbose(line)
      @console.verbose(line)
    end

    def prepare_classic(name, lv, older)
      raise not_a_snapshot(name, lv) unless lv.snapshot?

      info = lv.config.classic_snapshot
      listed = older || lv
      if older
        raise LVM::Error, "--from #{from}: not a classic snapshot, and #{name} is one" unless older.snapshot? && !older.thin?

        oinfo = older.config.classic_snapshot
        unless oinfo[:origin] == info[:origin]
          raise LVM::Error, "--from #{from} is a snapshot of #{oinfo[:origin]}, #{name} of " \
                            "#{info[:origin]}: both must be snapshots of one origin"
        end
        check_order(older, lv)
        info = oinfo
      end
      if info[:merging]
        raise LVM::SnapshotError, "#{listed.vg_name}/#{listed.lv_name}: the snapshot is being merged into " \
                                  "its origin; its exception store is in flux and cannot be used"
      end
      cow = listed.snapshot.metadata_device
      unless File.exist?(cow)
        raise LVM::Error, "#{listed.vg_name}/#{listed.lv_name}: #{cow} does not exist: is the snapshot active? " \
                          "(lvchange -ay #{listed.vg_name}/#{listed.lv_name})"
      end
      store = LVM::CowStore.open(cow)
      source = @options.data_source
      if older
        active!(lv, "lvchange -ay #{lv.vg_name}/#{lv.lv_name}") unless source
        source ||= lv.path
        verbose "lvmsync: changes since #{older.vg_name}/#{older.lv_name} (its exception store #{cow}, " \
                "read #{store.read_mode}); data read from snapshot #{lv.vg_name}/#{lv.lv_name}, as it was taken"
      else
        source ||= lv.origin.path
        verbose "lvmsync: snapshot #{lv.vg_name}/#{lv.lv_name} of #{info[:origin]}, exception store #{cow} " \
                "(read #{store.read_mode})"
      end
      verbose "lvmsync: chunk size #{u.bytes(store.chunk_size)}; #{store.exception_count} exceptions in " \
              "#{store.area_count} metadata areas; #{store.chunk_count} chunks changed " \
              "(#{u.bytes(store.changed_bytes)}) in #{store.extents.size} ranges, sent as " \
              "#{store.record_count(LVMSync::MAX_RECORD)} records of at most #{u.bytes(LVMSync::MAX_RECORD)}"
      Plan.new(changes: store, source: source,
               devices: { "the data source" => source, "the snapshot" => lv.path, "the exception store" => store.path },
               summary: "#{store.chunk_count} changed chunks")
    end

    def prepare_thin(name, lv, older)
      unless lv.thin? && (older.nil? || older.thin?)
        raise LVM::Error, "--from #{from} and #{name}: one is a thin LV and the other is not; " \
                          "both must be snapshots of one origin"
      end
      snap = thin_snapshot(lv)
      source = @options.data_source
      if older
        old = thin_snapshot(older)
        raise not_a_snapshot(from, older) unless old.origin

        unless snap.origin == old.origin || lv.lv_name == old.origin
          raise LVM::Error, "--from #{from} is a snapshot of #{old.origin}, #{name} " \
                            "#{snap.origin ? "of #{snap.origin}" : 'is not its origin'}: both must be snapshots of one origin"
        end
        check_order(older, lv)
        unless source
          active!(lv, "thin snapshots are skipped at activation by default: lvchange -ay -K #{lv.vg_name}/#{lv.lv_name}")
        end
        source ||= lv.path
        left = old
        what = "changes from #{older.vg_name}/#{older.lv_name} (thin id #{old.device_id}) to #{lv.vg_name}/" \
               "#{lv.lv_name} (thin id #{snap.device_id}), data read from #{lv.lv_name}"
      else
        raise not_a_snapshot(name, lv) unless snap.origin

        source ||= lv.origin.path
        left = nil
        what = "thin snapshot #{lv.vg_name}/#{lv.lv_name} (thin id #{snap.device_id}) of #{snap.origin} " \
               "(thin id #{snap.origin_snapshot.device_id})"
      end
      verbose "lvmsync: #{what}, pool #{lv.vg_name}/#{snap.config.thin_pool}"
      delta = left ? snap.delta(from: left) : snap.delta
      counts = delta.block_counts
      verbose "lvmsync: #{delta.command}: pool block #{u.bytes(delta.block_size)}; #{counts[:different]} blocks " \
              "rewritten, #{counts[:right_only]} newly mapped, #{counts[:left_only]} unmapped, " \
              "#{counts[:same]} shared; metadata snapshot released"
      changed = counts[:different] + counts[:right_only]
      Plan.new(changes: delta, source: source,
               devices: { "the data source" => source, "the snapshot" => lv.path,
                          "the pool's metadata" => snap.pool.metadata_device },
               summary: "#{changed} changed and #{counts[:left_only]} unmapped blocks of #{u.bytes(delta.block_size)}")
    end

    def thin_snapshot(lv)
      LVM::ThinSnapshot.new(lv.vg_name, lv.lv_name, vgcfg: lv.vg_config, thin_delta: @options.thin_delta,
                                                    dmsetup: @options.dmsetup)
    end

    def not_a_snapshot(name, lv)
      LVM::Error.new("#{name}: not a snapshot (#{lv.vg_name}/#{lv.lv_name} is a #{lv.config.type || 'plain'} LV)")
    end

    # --from must name the snapshot taken first.
    def check_order(older, newer)
      t0 = older.config.creation_time
      t1 = newer.config.creation_time
      return unless t0 && t1 && t0 > t1

      raise LVM::Error, "--from #{from} was created after #{newer.vg_name}/#{newer.lv_name} " \
                        "(#{Time.at(t0).utc} > #{Time.at(t1).utc}): give the older snapshot to --from"
    end

    # The newer snapshot of a --from round is read: its device must exist.
    def active!(lv, how)
      return if File.exist?(lv.path)

      raise LVM::Error, "#{lv.path} does not exist: #{lv.vg_name}/#{lv.lv_name} is not active (#{how})"
    end

    # True when unmapped (discarded) ranges should go as discard records.
    def discards?(changes)
      return false unless @options.discards

      unless changes.respond_to?(:unmapped_bytes)
        @console.info "lvmsync: note: --discards: a classic snapshot has no unmapped ranges; nothing to discard"
        return false
      end
      changes.unmapped_bytes.positive?
    end
  end
end
