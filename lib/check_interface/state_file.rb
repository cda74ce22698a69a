# frozen_string_literal: true

require "digest"
require "json"

module CheckInterface
  # Counter samples kept between runs, so that rates can be computed.
  #
  # Where: --state-file FILE; else --state-dir DIR (DIR/KEY.state); else $MP_STATE_PATH or
  # $NAGIOS_PLUGIN_STATE_DIRECTORY as the Monitoring Plugins use them
  # (PREFIX/EUID/check_interface/KEY.state); else /var/tmp/check_interface.EUID/KEY.state
  # ($CHECK_INTERFACE_STATE_DIR replacing /var/tmp). KEY names the namespace and interfaces.
  # A directory named by the user must exist and be writable; the directories made here are
  # private (0700) and refused when someone else owns them or others can write to them.
  #
  # Reading: the file is opened without following a symbolic link and without blocking, and
  # must be a regular file owned by the running user or root; at most MAX_SIZE bytes are
  # read, and nothing of its content is ever shown. Writing: a temporary file in the same
  # directory, then rename, so a crash or a concurrent run never leaves a half-written file.
  # Times are CLOCK_BOOTTIME seconds with the kernel's boot id: a reboot invalidates them.
  class StateFile
    VERSION = 1
    # A state file holds a few hundred bytes per interface.
    MAX_SIZE = 1 << 20
    PLUGIN = "check_interface"

    # The state file or its directory cannot be used: UNKNOWN, with this one-line message.
    class Error < StandardError; end

    # The path, and where it came from ("--state-dir", "MP_STATE_PATH", "default"...).
    attr_reader :path, :origin

    def initialize(path, origin)
      @path = path
      @origin = origin
    end

    # Finds (and makes, where it is ours to make) the state file's place; raises Error with
    # a one-line message naming a directory that is missing, not writable or not private.
    def self.locate(interfaces:, netns:, file: nil, dir: nil, env: ENV)
      if file
        usable_dir(File.dirname(file), "of --state-file")
        return new(file, "--state-file")
      end
      name = "#{key(interfaces, netns)}.state"
      if dir
        usable_dir(dir, "--state-dir")
        return new(File.join(dir, name), "--state-dir")
      end
      %w[MP_STATE_PATH NAGIOS_PLUGIN_STATE_DIRECTORY].each do |var|
        prefix = env[var]
        next if prefix.nil? || prefix.empty?

        usable_dir(prefix, "$#{var}")
        sub = private_dir(private_dir(prefix, Process.euid.to_s), PLUGIN)
        return new(File.join(sub, name), "$#{var}")
      end
      parent = env.fetch("CHECK_INTERFACE_STATE_DIR", "/var/tmp")
      usable_dir(parent, env.key?("CHECK_INTERFACE_STATE_DIR") ? "$CHECK_INTERFACE_STATE_DIR" : "default")
      new(File.join(private_dir(parent, "#{PLUGIN}.#{Process.euid}"), name), "default")
    end

    # The file name for a namespace and interface list.
    def self.key(interfaces, netns)
      key = [netns ? "netns-#{netns}" : nil, *interfaces].compact.join("+")
      safe = key.gsub(/[^A-Za-z0-9_.+@-]/, "_")
      safe = "#{safe[0, 80]}-#{Digest::SHA256.hexdigest(key)[0, 12]}" if safe != key || safe.size > 80
      safe
    end

    # Checks that +dir+ (given by the user) exists and this user can write there.
    def self.usable_dir(dir, origin)
      st = File.stat(dir)
      raise Error, "state directory #{dir} (#{origin}) is not a directory" unless st.directory?
      return if File.writable?(dir)

      raise Error, "state directory #{dir} (#{origin}) is not writable by uid #{Process.euid}"
    rescue Errno::ENOENT
      raise Error, "state directory #{dir} (#{origin}) does not exist"
    rescue SystemCallError => e
      raise Error, "state directory #{dir} (#{origin}): #{e.message}"
    end

    # Makes (or checks) the private directory +name+ in +parent+ and returns its path.
    def self.private_dir(parent, name)
      dir = File.join(parent, name)
      begin
        Dir.mkdir(dir, 0o700)
      rescue Errno::EEXIST
        nil
      rescue SystemCallError => e
        raise Error, "cannot create state directory #{dir}: #{e.message}"
      end
      st = File.lstat(dir)
      raise Error, "state directory #{dir}: not a directory" unless st.directory?
      unless st.uid == Process.euid
        raise Error, "state directory #{dir}: owned by uid #{st.uid}, not #{Process.euid}; refusing to use it"
      end
      raise Error, "state directory #{dir}: writable by group or others; refusing to use it" if st.mode.anybits?(0o022)

      dir
    end

    def self.boot_id
      File.read("/proc/sys/kernel/random/boot_id").strip
    rescue SystemCallError
      nil
    end

    def self.now
      Process.clock_gettime(Process::CLOCK_BOOTTIME)
    end

    # The saved samples ({"IF" => {"time"=>..., "ifindex"=>..., "counters"=>{...}}}) and why
    # there are none: nil (there are), :first_run (no file), :reboot (from another boot),
    # :damaged (not a state file of ours). Raises Error for a file that must not be used.
    def load
      data = parse(read_checked)
      return [{}, :first_run] if data.nil?
      return [{}, :damaged] unless data.is_a?(Hash) && data["version"] == VERSION && data["interfaces"].is_a?(Hash)
      return [{}, :reboot] if data["boot_id"] != self.class.boot_id

      [data["interfaces"], nil]
    end

    # Writes +samples+ atomically.
    def save(samples)
      dir = File.dirname(@path)
      data = JSON.generate("version" => VERSION, "boot_id" => self.class.boot_id, "interfaces" => samples)
      tmp = File.join(dir, ".#{File.basename(@path)}.#{Process.pid}.#{rand(1 << 32)}.tmp")
      begin
        File.open(tmp, File::WRONLY | File::CREAT | File::EXCL | File::NOFOLLOW, 0o600) do |f|
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
        raise Error, "cannot write state file #{@path}: #{reason(e)}"
      end
    end

    private

    # The file's bytes (at most MAX_SIZE + 1), or nil when there is no file.
    def read_checked
      flags = File::RDONLY | File::NOFOLLOW | File::NONBLOCK # (Ruby sets close-on-exec itself)
      File.open(@path, flags) do |f|
        st = f.stat
        raise Error, "state file #{@path} is not a regular file (#{st.ftype}); refusing to use it" unless st.file?
        unless st.uid == Process.euid || st.uid.zero?
          raise Error, "state file #{@path} is owned by uid #{st.uid}, not #{Process.euid} or root; refusing to use it"
        end

        f.read(MAX_SIZE + 1) || ""
      end
    rescue Errno::ENOENT
      nil
    rescue Errno::ELOOP
      raise Error, "state file #{@path} is a symbolic link; refusing to follow it"
    rescue SystemCallError => e
      raise Error, "cannot read state file #{@path}: #{reason(e)}"
    end

    # Parsed JSON; :damaged for anything else (the content is never repeated).
    def parse(text)
      return nil if text.nil?
      return :damaged if text.bytesize > MAX_SIZE

      JSON.parse(text)
    rescue JSON::ParserError, EncodingError
      :damaged
    end

    # "Permission denied" out of "Permission denied @ rb_sysopen - /path".
    def reason(error)
      error.message.sub(/ @ .*\z/, "").sub(/ - .*\z/, "")
    end
  end
end
