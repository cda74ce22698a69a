# frozen_string_literal: true

require_relative "../lvm"
require "open3"
require "shellwords"
require "tmpdir"

module LVM
  # A thin pool, for reading its metadata safely while it is in use.
  #
  #   pool = LVM::ThinPool.new("vg0", "pool")
  #   pool.with_metadata_snapshot do |metadata_device|
  #     LVM::ThinDelta.run(metadata_device, 2, 1)
  #   end
  #
  # The kernel keeps changing a live pool's metadata, so thin_delta must read a metadata
  # snapshot: `dmsetup message VG-POOL-tpool 0 reserve_metadata_snap` before, and
  # `release_metadata_snap` after. A held metadata snapshot pins metadata blocks until it is
  # released, so #with_metadata_snapshot always releases it: on success, on any error, on
  # Ctrl-C, SIGTERM or Thread#kill. Users of one pool are serialised by a lock file.
  class ThinPool
    include Helpers

    # The lock file directory.
    LOCK_DIR = File.directory?("/run/lock") && File.writable?("/run/lock") ? "/run/lock" : Dir.tmpdir
    # Seconds to wait for another lvmsync holding the same pool's lock.
    LOCK_WAIT = 300

    attr_reader :vg_name, :name

    # +dmsetup+: the dmsetup command (split into words, never run through a shell).
    def initialize(vg_name, name, dmsetup: "dmsetup")
      @vg_name = vg_name.to_s
      @name = name.to_s
      @dmsetup = Shellwords.split(dmsetup.to_s)
    end

    # The pool's kernel target (VG-POOL-tpool).
    def target_name = dm_name(@vg_name, @name, "tpool")
    # /dev/mapper/VG-POOL_tmeta, which thin_delta reads.
    def metadata_device = dm_path(@vg_name, "#{@name}_tmeta")
    # The lock file serialising this tool's users of the pool.
    def lock_path = File.join(LOCK_DIR, "ironshed-thin-#{target_name}.lock")

    # The pool's status (`dmsetup status VG-POOL-tpool`) as a Hash: :transaction_id,
    # :metadata_used, :metadata_total, :data_used, :data_total, :held_root (nil when no
    # metadata snapshot is held), :mode ("rw", "ro", "out_of_data_space", "Fail"...), :needs_check;
    # only :mode for a pool that has failed. Raises LVM::MetadataSnapshotError for a line that
    # is not a thin pool's (naming the malformed field).
    def status
      Native.pool_status(dmsetup("status", target_name), describe)
    end

    # Reserves a metadata snapshot, yields the metadata device, and releases the snapshot
    # whatever happens in the block. Raises LVM::MetadataSnapshotError when the pool is not
    # active, has failed, or already has a metadata snapshot (held by another tool, or left
    # behind by one that crashed: the message says how to release it).
    def with_metadata_snapshot
      check_active
      with_lock do
        reserved = false
        # Signals (Ctrl-C, SIGTERM) and Thread#raise wait until the reservation is recorded,
        # so that a reserved snapshot can never go unnoticed by the release below.
        Thread.handle_interrupt(Object => :never) do
          reserve
          reserved = true
        end
        begin
          Thread.handle_interrupt(Object => :immediate) { yield metadata_device }
        ensure
          Thread.handle_interrupt(Object => :never) { release if reserved }
        end
      end
    end

    def inspect
      "#<LVM::ThinPool #{@vg_name}/#{@name}>"
    end

    private

    def describe = "thin pool #{@vg_name}/#{@name}"

    def release_command = "dmsetup message #{target_name} 0 release_metadata_snap"

    def check_active
      return if File.exist?(dm_path(@vg_name, @name, "tpool"))

      raise MetadataSnapshotError, "#{describe} is not active (no #{dm_path(@vg_name, @name, 'tpool')}): " \
                                   "activate it, or a thin LV in it (lvchange -ay #{@vg_name}/#{@name})"
    end

    def reserve
      st = status
      raise MetadataSnapshotError, "#{describe} has failed (status Fail): its metadata cannot be read" if st[:mode] == "Fail"

      already_held(st[:held_root]) if st[:held_root]
      dmsetup("message", target_name, "0", "reserve_metadata_snap")
    rescue MetadataSnapshotError => e
      raise unless e.message.include?("Device or resource busy")

      held = begin
        status[:held_root]
      rescue MetadataSnapshotError
        nil
      end
      held ? already_held(held) : raise
    end

    def already_held(root)
      raise MetadataSnapshotError,
            "#{describe}: a metadata snapshot is already reserved (held root #{root}): another tool " \
            "(thin_send, a backup script, another lvmsync without this lock) is reading the pool's " \
            "metadata, or one crashed and left it behind. If nothing is using it, release it with: " \
            "#{release_command}"
    end

    def release
      dmsetup("message", target_name, "0", "release_metadata_snap")
    rescue MetadataSnapshotError => e
      raise MetadataSnapshotError, "#{describe}: could not release the metadata snapshot (#{e.message}); " \
                                   "it pins metadata blocks until released: #{release_command}"
    end

    def with_lock
      File.open(lock_path, File::RDWR | File::CREAT, 0o600) do |f|
        unless f.flock(File::LOCK_EX | File::LOCK_NB)
          deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + LOCK_WAIT
          until f.flock(File::LOCK_EX | File::LOCK_NB)
            if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
              raise MetadataSnapshotError, "#{describe}: another lvmsync has been reading this pool's " \
                                           "metadata for #{LOCK_WAIT} s (lock #{lock_path} is held); try again later"
            end
            sleep 0.2
          end
        end
        yield
      end
    end

    def dmsetup(*args)
      out, err, st = Open3.capture3(*@dmsetup, *args)
      return out if st.success?

      why = err.strip.lines.map(&:strip).reject(&:empty?).join("; ")
      raise MetadataSnapshotError, "#{describe}: `#{(@dmsetup + args).join(' ')}` failed" \
                                   "#{why.empty? ? " (#{st})" : ": #{why}"}"
    rescue Errno::ENOENT => e
      raise MetadataSnapshotError, "#{describe}: cannot run #{@dmsetup.first}: #{e.message} (install dmsetup)"
    end
  end
end
