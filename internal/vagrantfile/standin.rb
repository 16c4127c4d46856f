# den's stand-in for Vagrant's configuration API (den init --from Vagrantfile).
#
# Run as: ruby - VAGRANTFILE < standin.rb, with file descriptor 3 open for
# writing. It loads the Vagrantfile, which runs its Ruby code as vagrant
# would, against objects that record every setting they are given, with
# the Vagrantfile line that gave it (caller_locations), and writes what
# they recorded to fd 3 as one JSON document. It never loads Vagrant.
#
# Vagrant's own order is kept: the blocks of config.vm.define and
# config.vm.provider run after the whole Vagrantfile has run (Vagrant
# stores them and runs them when it loads a machine), so a `for` loop
# variable has its last value inside them, as in Vagrant.

require 'json'

module DenStandin
  SELF = __FILE__

  class V1Error < StandardError; end
  class ExecError < StandardError; end

  class << self
    attr_accessor :root, :vagrantfile, :version, :scope, :root_rec
    attr_reader :commands, :env, :plugins

    def init(vagrantfile)
      @vagrantfile = File.expand_path(vagrantfile)
      @root = File.dirname(@vagrantfile)
      @commands = []
      @env = []
      @plugins = []
      @scope = Scope.new
      @root_rec = Rec.new(@scope, [])
    end

    # where is the Vagrantfile line that called the stand-in: the first
    # frame in a file of the project, else the first frame that is not
    # the stand-in's.
    def where(locs = caller_locations(1))
      locs ||= []
      path = ->(l) { l.absolute_path || l.path || '' }
      loc = locs.find { |l| path.(l).start_with?(@root + '/') } ||
            locs.find { |l| p = path.(l); p != SELF && p != '-' && !p.start_with?('<internal:') }
      return [nil, 0] unless loc
      [rel(path.(loc)), loc.lineno]
    end

    def rel(p)
      p.start_with?(@root + '/') ? p[(@root.size + 1)..] : p
    end

    def note_command(cmd)
      file, line = where
      @commands << { 'command' => cmd, 'file' => file, 'line' => line } if file
    end

    def note_env(name, value)
      file, line = where
      @env << { 'name' => name.to_s, 'set' => !value.nil?, 'file' => file, 'line' => line } if file && file != '-'
    end

    # plain turns a Ruby value into JSON: hashes as ordered pairs, Ruby
    # objects JSON cannot hold as {"ruby": inspect}.
    def plain(v)
      case v
      when nil, true, false, Integer then v
      when Float then v.finite? ? v : { 'ruby' => v.to_s }
      when String then v.dup.force_encoding('UTF-8').scrub('?')
      when Symbol then v.to_s
      when Array then v.map { |e| plain(e) }
      when Hash then { 'hash' => v.map { |k, e| [plain(k), plain(e)] } }
      when Regexp then { 'regexp' => v.source }
      when Rec then { 'unset' => v.__den_path.join('.') }
      when Proc then { 'ruby' => 'a block of Ruby code' }
      else { 'ruby' => v.inspect }
      end
    end

    # run_block runs blk with a recorder for the object Vagrant yields and
    # one for the override config (provider blocks yield both), then the
    # blocks that Vagrant runs later.
    def run_block(event, blk)
      first = Scope.new
      second = Scope.new
      event['blocks'] = [first.events, second.events]
      blk.call(Rec.new(first, []), Rec.new(second, []))
      first.run_deferred
      second.run_deferred
    end
  end

  # Scope is one configuration object's record: its events, and the blocks
  # to run once its own code has run.
  class Scope
    attr_reader :events, :deferred

    def initialize
      @events = []
      @deferred = []
    end

    def run_deferred
      until @deferred.empty?
        event, blk = @deferred.shift
        DenStandin.run_block(event, blk)
      end
    end
  end

  # Rec records what a Vagrantfile does with a configuration object:
  # settings (x.name = value), index settings (x.vmx["k"] = v) and calls
  # (x.network "forwarded_port", guest: 80). Reading an attribute gives
  # the value set before, or a recorder for that namespace.
  class Rec < BasicObject
    LATER = %w[define provider].freeze # Vagrant runs these blocks later

    def initialize(scope, path)
      @scope = scope
      @path = path
      @values = {}
      @children = {}
    end

    def __den_path
      @path
    end

    def method_missing(name, *args, **kw, &blk)
      n = name.to_s
      # Conversions Ruby tries on any object (to_ary, to_str, ...) are not settings.
      ::Kernel.raise ::NoMethodError.new("undefined method `#{n}'", name) if n.start_with?('to_')
      file, line = ::DenStandin.where
      if n.end_with?('=') && n != '[]=' && args.size == 1 && kw.empty? && blk.nil? && n.match?(/\A[a-z_][a-z0-9_]*=\z/i)
        attr = n.chomp('=')
        @values[attr] = args[0]
        @scope.events << { 'op' => 'set', 'path' => @path, 'name' => attr, 'value' => ::DenStandin.plain(args[0]), 'file' => file, 'line' => line }
        return args[0]
      end
      if n == '[]='
        @values[args[0]] = args[1]
        @scope.events << { 'op' => 'index', 'path' => @path, 'key' => ::DenStandin.plain(args[0]), 'value' => ::DenStandin.plain(args[1]), 'file' => file, 'line' => line }
        return args[1]
      end
      return @values[args[0]] if n == '[]' && args.size == 1
      if args.empty? && kw.empty? && blk.nil?
        return @values[n] if @values.key?(n)
        return @children[n] ||= Rec.new(@scope, @path + [n])
      end
      opts = kw
      if opts.empty? && args.last.is_a?(::Hash)
        opts = args.pop
      end
      event = { 'op' => 'call', 'path' => @path, 'name' => n, 'args' => ::DenStandin.plain(args),
                'opts' => ::DenStandin.plain(opts)['hash'], 'file' => file, 'line' => line }
      @scope.events << event
      if blk
        event['blocks'] = []
        event['has_block'] = true
        if n == 'ruby'
          # A trigger's Ruby code runs when the trigger fires, never at load.
        elsif @path == ['vm'] && LATER.include?(n)
          @scope.deferred << [event, blk]
        else
          ::DenStandin.run_block(event, blk)
        end
      end
      nil
    end

    def respond_to_missing?(name, _private = false)
      !name.to_s.start_with?('to_')
    end

    def respond_to?(name, include_all = false)
      respond_to_missing?(name, include_all)
    end

    def to_s
      ''
    end

    def inspect
      "#<config #{@path.join('.')}>"
    end

    def nil?
      false
    end

    def is_a?(_klass)
      false
    end
    alias kind_of? is_a?
  end

  # Commands the Vagrantfile runs while it is read are recorded (den
  # reports them); exec would replace the stand-in, so it is refused.
  module Commands
    def `(cmd)
      ::DenStandin.note_command(cmd.to_s)
      super
    end

    def system(*args, **kw)
      ::DenStandin.note_command(args.map(&:to_s).join(' '))
      super
    end

    def spawn(*args, **kw)
      ::DenStandin.note_command(args.map(&:to_s).join(' '))
      super
    end

    def exec(*args, **kw)
      ::DenStandin.note_command(args.map(&:to_s).join(' '))
      ::Kernel.raise ::DenStandin::ExecError, "exec(#{args.map(&:to_s).join(' ').inspect}) would replace the program reading the Vagrantfile"
    end

    def open(name, *rest, **kw, &blk)
      ::DenStandin.note_command(name.to_s[1..]) if name.is_a?(::String) && name.start_with?('|')
      super
    end

    private :`, :system, :spawn, :exec, :open
  end
end

module Vagrant
  VERSION = '2.4.1'

  def self.configure(version)
    v = version.to_s
    raise DenStandin::V1Error, 'Vagrant.configure("1")' if v == '1'
    raise ArgumentError, "Vagrant.configure(#{version.inspect}): den reads configuration version \"2\"" unless v == '2'
    DenStandin.version = v
    yield DenStandin.root_rec if block_given?
    nil
  end

  def self.require_version(*)
    nil
  end

  def self.has_plugin?(name, *)
    file, line = DenStandin.where
    DenStandin.plugins << { 'name' => name.to_s, 'file' => file, 'line' => line }
    true
  end

  def self.plugin(*)
    raise NotImplementedError, 'Vagrant.plugin: a Vagrantfile that defines Vagrant plugins cannot be converted'
  end

  module Config
    def self.run(*)
      raise DenStandin::V1Error, 'Vagrant::Config.run'
    end
  end

  module Util
    module Platform
      def self.windows?
        false
      end

      def self.darwin?
        false
      end

      def self.linux?
        true
      end

      def self.wsl?
        false
      end
    end
  end

  module Errors
    class VagrantError < StandardError; end
  end
end

vagrantfile = ARGV.shift
DenStandin.init(vagrantfile)
ARGV.clear
out = IO.new(3, 'w')
out.close_on_exec = true
$stdin = File.open(File::NULL)

class << ENV
  alias_method :__den_get, :[]
  alias_method :__den_fetch, :fetch

  def [](name)
    v = __den_get(name)
    DenStandin.note_env(name, v)
    v
  end

  def fetch(name, *rest, &blk)
    DenStandin.note_env(name, __den_get(name))
    __den_fetch(name, *rest, &blk)
  end
end
Object.prepend(DenStandin::Commands)
IO.singleton_class.prepend(Module.new do
  def popen(*args, **kw, &blk)
    cmd = args.find { |a| a.is_a?(String) || a.is_a?(Array) }
    DenStandin.note_command(cmd.is_a?(Array) ? cmd.map(&:to_s).join(' ') : cmd.to_s)
    super
  end
end)

result = {}
begin
  load DenStandin.vagrantfile
  DenStandin.scope.run_deferred
  result['version'] = DenStandin.version
  result['events'] = DenStandin.scope.events
rescue DenStandin::V1Error => e
  file, line = DenStandin.where(e.backtrace_locations)
  result['error'] = { 'kind' => 'v1', 'message' => e.message, 'file' => file, 'line' => line }
rescue SystemExit => e
  file, line = DenStandin.where(e.backtrace_locations)
  result['error'] = { 'kind' => 'exit', 'message' => "the Vagrantfile called exit (status #{e.status})", 'file' => file, 'line' => line }
rescue ScriptError, StandardError => e
  file, line = DenStandin.where(e.backtrace_locations)
  msg = e.message.to_s.gsub(DenStandin.root + '/', '')
  if e.is_a?(SyntaxError)
    file, line = nil, 0
  end
  result['error'] = { 'kind' => 'raised', 'class' => e.class.name, 'message' => msg.dup.force_encoding('UTF-8').scrub('?'), 'file' => file, 'line' => line }
end
result['commands'] = DenStandin.commands
result['env'] = DenStandin.env
result['plugins'] = DenStandin.plugins
$stdout.flush
$stderr.flush
out.write(JSON.generate(result))
out.close
