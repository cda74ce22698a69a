# frozen_string_literal: true

module CheckInterface
  # The plugin's output, escaped as the Monitoring Plugins guidelines require: "|" starts
  # the performance data, so it never appears in the text (interface and namespace names may
  # contain it); a line break would end the status line; perfdata labels are quoted and
  # contain neither "'" nor "=".
  module Output
    # What stands for "|" in the text.
    BAR = "\u00a6"

    module_function

    # +text+ made safe for the status line or a long-output line.
    def text(text)
      text.to_s.scrub("?").gsub("|", BAR).gsub(/[\r\n]+/, " ")
    end

    # A perfdata label: quoted, with "'" and "=" replaced by "_".
    def label(label)
      "'#{label.to_s.scrub('?').gsub(/['=|\s]/, '_')}'"
    end

    # Numbers as perfdata and messages print them: integers as they are, others with at most
    # three decimals.
    def num(x)
      return x.to_s if x.is_a?(Integer)

      s = format("%.3f", x).sub(/\.?0+\z/, "")
      s == "-0" ? "0" : s
    end

    # Prints "INTERFACE STATE - text | perfdata" and the long-output lines; returns +state+.
    def emit(io, state, text, perf = [], lines = [])
      line = "INTERFACE #{NAMES.fetch(state)} - #{text(text)}"
      line += " | #{perf.map { |l, v| "#{label(l)}=#{v}" }.join(' ')}" unless perf.empty?
      io.puts line
      lines.each { |d| io.puts text(d) }
      state
    end
  end
end
