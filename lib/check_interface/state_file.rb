# frozen_string_literal: true

require "digest"
require "json"

module CheckInterface
  # Counter samples kept between runs, so that rates can be computed. Written atomically
  # (a temporary file in the same directory, then rename), so a crash or a concurrent run
  # never leaves a half-written file. Times are CLOCK_BOOTTIME seconds with the kernel's
  # boot id: a reboot (or a clock that went backwards) invalidates a sample.
  class StateFile
    VERSION = 1

    class Error < StandardError; end

    attr_reader :path

    # The default location: /var/tmp/check_interface.UID/KEY.state, KEY naming the namespace
    # and the interfaces.
    def self.default_path(interfaces, netns)
      dir = File.join(ENV.fetch("CHECK_INTERFACE_STATE_DIR", "/var/tmp"), "check_interface.#{Process.uid}")
      key = [netns ? "netns-#{netns}" : nil, *interfaces].compact.join("+")
      safe = key.gsub(/[^A-Za-z0-9_.+@-]/, "_")
      safe = "#{safe[0, 80]}-#{Digest::SHA256.hexdigest(key)[0, 12]}" if safe != key || safe.size > 80
      File.join(dir, "#{safe}.state")
    end

    # Makes a private directory for the default location, refusing one that someone else
    # owns or that others can write (the default lives under the world-writable /var/tmp).
    def self.ensure_private_dir(dir)
      begin
        Dir.mkdir(dir, 0o700)
      rescue Errno::EEXIST
        nil
      end
      st = File.lstat(dir)
      raise Error, "#{dir}: not a directory" unless st.directory?
      raise Error, "#{dir}: owned by uid #{st.uid}, not #{Process.uid}; refusing to use it" unless st.uid == Process.uid
      raise Error, "#{dir}: writable by group or others; refusing to use it" if st.mode.anybits?(0o022)
    end

    def initialize(path)
      @path = path
    end

    def self.boot_id
      File.read("/proc/sys/kernel/random/boot_id").strip
    rescue SystemCallError
      nil
    end

    def self.now
      Process.clock_gettime(Process::CLOCK_BOOTTIME)
    end

    # The saved samples ({"IF" => {"time"=>..., "ifindex"=>..., "counters"=>{...}}}) and a
    # note when they cannot be used (missing, damaged, from another boot).
    def load
      text = File.read(@path)
      data = JSON.parse(text)
      raise JSON::ParserError, "not a state file" unless data.is_a?(Hash) && data["version"] == VERSION

      return [{}, "state from a previous boot"] if data["boot_id"] != self.class.boot_id

      samples = data["interfaces"]
      raise JSON::ParserError, "no interfaces" unless samples.is_a?(Hash)

      [samples, nil]
    rescue Errno::ENOENT
      [{}, nil]
    rescue JSON::ParserError, EncodingError => e
      [{}, "state file #{@path} unreadable (#{e.message.lines.first.strip}); starting over"]
    rescue SystemCallError => e
      raise Error, "#{@path}: #{e.message}"
    end

    # Writes +samples+ atomically.
    def save(samples)
      dir = File.dirname(@path)
      data = JSON.generate("version" => VERSION, "boot_id" => self.class.boot_id, "interfaces" => samples)
      tmp = File.join(dir, ".#{File.basename(@path)}.#{Process.pid}.#{rand(1 << 32)}.tmp")
      begin
        File.open(tmp, File::WRONLY | File::CREAT | File::EXCL, 0o600) do |f|
          f.write(data)
          f.flush
        end
        File.rename(tmp, @path)
      rescue SystemCallError => e
        begin
          File.delete(tmp)
        rescue SystemCallError
          nil
        end
        raise Error, "cannot write state file #{@path}: #{e.message}"
      end
    end
  end
end
