# frozen_string_literal: true

module RootZone
  # Reading a zone or signature: over HTTPS (or HTTP) with the system's CA store, from a
  # file or FIFO, or from stdin ("-"). The bytes are returned as downloaded; gzip is undone
  # later, by the native code, from the magic number.
  module Fetch
    # The most bytes read from any source (the root zone is about 2 MB, gzip about 1 MB).
    LIMIT = 64 << 20
    # Redirects followed (HTTPS to plain HTTP is refused).
    MAX_REDIRECTS = 5

    module_function

    def url?(source)
      source.is_a?(String) && source.match?(%r{\Ahttps?://}i)
    end

    # How messages name +source+.
    def name(source)
      return source.path.to_s if source.respond_to?(:path) && source.respond_to?(:read)
      return "(stream)" if source.respond_to?(:read)

      source.to_s
    end

    # The bytes of +source+ (binary String). Raises RootZone::SourceError for a download
    # that fails or anything larger than LIMIT; SystemCallError for local files.
    def read(source, timeout: 60)
      data = if source.respond_to?(:read)
               source.read(LIMIT + 1)
             elsif source.to_s == "-"
               $stdin.binmode.read(LIMIT + 1)
             elsif url?(source)
               download(source, timeout)
             elsif File.directory?(source.to_s)
               raise SourceError, "#{source}: is a directory, not a zone file"
             else
               File.open(source.to_s, "rb") { |f| f.read(LIMIT + 1) }
             end.to_s.b
      raise SourceError, "#{name(source)}: larger than #{LIMIT >> 20} MiB: not a root zone" if data.bytesize > LIMIT

      data
    end

    # Yields a path holding +source+'s bytes: the file itself, or a temporary copy of a URL or
    # stdin (removed afterwards); yields nil for a nil +source+.
    def local_copy(source, timeout: 60)
      return yield(nil) if source.nil?
      return yield(source.to_s) unless url?(source) || source.to_s == "-" || source.respond_to?(:read)

      require "tempfile"
      Tempfile.create("rootzone-") do |f|
        f.binmode
        f.write(read(source, timeout: timeout))
        f.flush
        yield f.path
      end
    end

    def download(url, timeout, redirects = MAX_REDIRECTS)
      # Loaded here: they double the start-up time of a run that reads a file.
      require "net/http"
      require "openssl"
      require "uri"
      uri = URI(url)
      http = Net::HTTP.new(uri.host, uri.port)
      http.use_ssl = uri.scheme.casecmp?("https")
      http.verify_mode = OpenSSL::SSL::VERIFY_PEER
      http.open_timeout = http.read_timeout = http.ssl_timeout = timeout
      http.start do
        req = Net::HTTP::Get.new(uri)
        req["User-Agent"] = "rootzone (ironshed #{Ironshed::VERSION})"
        http.request(req) do |res|
          case res
          when Net::HTTPSuccess
            return body(url, res)
          when Net::HTTPRedirection
            return redirect(url, uri, res["location"], timeout, redirects)
          else
            raise SourceError, "#{url}: HTTP #{res.code} #{res.message.to_s.strip}"
          end
        end
      end
    rescue OpenSSL::SSL::SSLError => e
      raise SourceError, "#{url}: TLS: #{e.message}"
    rescue Net::OpenTimeout, Net::ReadTimeout
      raise SourceError, "#{url}: no answer within #{timeout} s"
    rescue SocketError, SystemCallError, IOError, Net::HTTPBadResponse, Zlib::Error => e
      raise SourceError, "#{url}: #{e.message}"
    end

    def body(url, res)
      data = +""
      res.read_body do |chunk|
        data << chunk
        raise SourceError, "#{url}: larger than #{LIMIT >> 20} MiB: not a root zone" if data.bytesize > LIMIT
      end
      data
    end

    def redirect(url, uri, location, timeout, left)
      raise SourceError, "#{url}: too many redirects" if left.zero?
      raise SourceError, "#{url}: redirect without a Location" if location.to_s.empty?

      target = uri + location
      if uri.scheme.casecmp?("https") && !target.scheme.casecmp?("https")
        raise SourceError, "#{url}: refusing a redirect from HTTPS to #{target}"
      end

      download(target.to_s, timeout, left - 1)
    end
  end
end
