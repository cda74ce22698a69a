# frozen_string_literal: true

require "lvmsync"
require "open3"
require "timeout"

# LVMSync.send_changes and LVMSync.apply run natively without holding the GVL, and stop
# between two writes on Thread#kill or Ctrl-C (raising Interrupt), as docs/lvmsync.md says.
# Each loop is caught waiting on a pipe that another thread feeds or drains by halves.
RSpec.describe "LVMSync loops: Thread#kill and Ctrl-C", :tmpdir do
  def path(name)
    File.join(@dir, name)
  end

  before do
    testkit("cow", "--dir", @dir, "--origin-size", "16M", "--chunk-size", "4K", "--cow-size", "12M",
            "--write", "0:8M")
    @store = LVM::CowStore.open(path("cow.img"))
    File.open(path("stream"), "wb") { |f| LVMSync.send_changes(@store, path("origin.img"), f) }
    @stream = File.binread(path("stream"))
    FileUtils.cp(path("before.img"), path("dest"))
  end

  it "apply: other threads run meanwhile, and Thread#kill stops it while it waits for the rest of the stream" do
    r, w = IO.pipe
    job = Ironshed::Progress.new
    worker = Thread.new { LVMSync.apply(r, path("dest"), job: job) }
    # Half the stream: more than the pipe holds, so this write returns only because the
    # worker read it meanwhile, outside the GVL; then the worker waits for the rest.
    w.write(@stream.byteslice(0, @stream.bytesize / 2))
    Thread.pass until job.done.positive?
    worker.kill
    expect(worker.join(5)).not_to be_nil
    expect(job.cancelled?).to be(true) # the unblock function ran
    expect(job.done).to be < (8 << 20)
    expect(sha(path("dest"))).not_to eq(sha(path("before.img")))
  ensure
    [r, w].each { |io| io&.close unless io&.closed? }
  end

  it "send_changes: Thread#kill stops it while the reader of the stream reads nothing" do
    r, w = IO.pipe
    job = Ironshed::Progress.new
    worker = Thread.new { LVMSync.send_changes(@store, path("origin.img"), w, job: job) }
    got = r.read(@stream.bytesize / 2) # read outside the GVL: the sender wrote it meanwhile
    expect(got == @stream.byteslice(0, got.bytesize)).to be(true)
    worker.kill
    expect(worker.join(5)).not_to be_nil
    expect(job.cancelled?).to be(true)
  ensure
    [r, w].each { |io| io&.close unless io&.closed? }
  end

  it "apply: Ctrl-C (SIGINT) while it runs raises Interrupt out of it" do
    script = <<~RUBY
      require "lvmsync"
      r, w = IO.pipe
      job = Ironshed::Progress.new
      Thread.new { w.write(File.binread(ARGV[0]).byteslice(0, 2 << 20)) }
      Thread.new do
        Thread.pass until job.done.positive?
        $stdout.puts "applying"
        $stdout.flush
      end
      begin
        LVMSync.apply(r, ARGV[1], job: job)
        puts "finished"
      rescue Interrupt
        puts "Interrupt after \#{job.done} bytes, cancelled: \#{job.cancelled?}"
      end
    RUBY
    Open3.popen2(RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"), "-e", script, path("stream"),
                 path("dest")) do |_in, out, wait|
      expect(out.gets).to eq("applying\n")
      Process.kill("INT", wait.pid)
      # A loop that did not stop would wait for the rest of the stream for ever.
      rest = Timeout.timeout(30) { out.read }
      expect(rest).to match(/\AInterrupt after \d+ bytes, cancelled: true\n\z/)
      expect(wait.value.exitstatus).to eq(0)
    rescue Timeout::Error
      Process.kill("KILL", wait.pid)
      raise "LVMSync.apply did not stop on SIGINT"
    end
  end
end
