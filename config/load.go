package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Flags are the configuration flags registered on one flag set.
type Flags struct {
	fs       *flag.FlagSet
	config   *string
	values   map[string]*string // by setting name
	defaults []override         // this command's own defaults, in order
	client   bool               // the command never talks to the gateway
}

type override struct{ name, value string }

// SetDefault gives a setting a different default for this command (jetsms run
// defaults gateway.url to sandbox). The file, the environment and the flags still
// override it. An unknown name or a value that does not parse is reported by Load.
func (f *Flags) SetDefault(name, value string) {
	f.defaults = append(f.defaults, override{name, value})
}

// Client marks the command as one that never talks to the gateway (jetsms send): Load
// then does not require gateway credentials.
func (f *Flags) Client() { f.client = true }

// RegisterFlags registers --config FILE and one string flag per setting, named as
// the setting (--gateway.url, --rate.per_second), on fs. Each flag's usage gives
// the setting's default and environment variable. Call Load after fs.Parse.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{
		fs:     fs,
		config: fs.String("config", "", "YAML configuration `file` (env "+ConfigEnv+")"),
		values: make(map[string]*string, len(settings)),
	}
	for _, s := range Settings() {
		usage := s.Help + " (env " + s.Env + ")"
		if s.Secret {
			usage += "; other users of this machine can see a flag's value, so prefer the environment variable"
		}
		f.values[s.Name] = fs.String(s.Name, s.Default, usage)
	}
	return f
}

// Load returns the configuration: the defaults, then the YAML file named by
// --config or else by the JETSMS_CONFIG environment variable, then JETSMS_*
// environment variables, then the flags that were set on the command line; a later
// source overrides an earlier one. An environment variable set to the empty string
// counts as unset; a flag set to the empty string sets the empty string.
//
// lookupEnv reads the environment (nil means os.LookupEnv). Load must be called
// after fs.Parse. Relative file paths in settings are relative to the working
// directory, not to the YAML file.
//
// The error names each problem's setting, its rule and where the value came from
// (the variable, the flag, or the file and line), joined with errors.Join: a value
// that does not parse, a setting the YAML file does not know, and every problem
// Validate finds. A missing file is an error naming its path. Secrets never appear
// in the error.
func (f *Flags) Load(lookupEnv func(string) (string, bool)) (Config, error) {
	if !f.fs.Parsed() {
		return Config{}, errors.New("config: Load needs a parsed flag set; call Parse first")
	}
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	l := newLoader()
	l.needGateway = !f.client
	for _, d := range f.defaults {
		e, ok := byName[d.name]
		if !ok {
			return Config{}, fmt.Errorf("config: SetDefault: unknown setting %q", d.name)
		}
		l.apply(e, d.value, "this command's default")
	}

	path, source := *f.config, "--config"
	if path == "" {
		path, _ = lookupEnv(ConfigEnv)
		source = ConfigEnv
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config file (from %s): %w", source, err)
		}
		l.readYAML(path, data)
	}

	for i := range settings {
		e := &settings[i]
		if v, ok := lookupEnv(e.Env); ok && v != "" {
			l.apply(e, v, e.Env)
		}
	}

	f.fs.Visit(func(fl *flag.Flag) {
		if v, ok := f.values[fl.Name]; ok {
			l.apply(byName[fl.Name], *v, "--"+fl.Name)
		}
	})
	return l.finish()
}

// loader builds a Config from its sources in order, remembering where each value
// came from and every problem met on the way.
type loader struct {
	needGateway bool
	cfg         Config
	from        map[string]origin
	failed      map[string]bool // settings whose last value did not parse
	errs        []error
}

func newLoader() *loader {
	return &loader{cfg: Default(), from: map[string]origin{}, failed: map[string]bool{}, needGateway: true}
}

// apply sets e from raw, read from source.
func (l *loader) apply(e *entry, raw, source string) {
	if err := e.set(&l.cfg, raw); err != nil {
		l.failed[e.Name] = true
		l.errs = append(l.errs, problem(e, raw, source, err))
		return
	}
	delete(l.failed, e.Name)
	l.from[e.Name] = origin{source: source, raw: raw}
}

// finish validates the result. Settings that failed to parse are not checked again.
func (l *loader) finish() (Config, error) {
	if _, set := l.from["gateway.url"]; !set && l.cfg.Gateway.API == APIv1 && l.cfg.Gateway.URL == GatewayURLDefault {
		// REST v1 has its own base URL.
		l.cfg.Gateway.URL = GatewayURLV1Default
	}
	errs := slices.Concat(l.errs, l.cfg.problems(l.from, l.failed, l.needGateway))
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return l.cfg, nil
}

// readYAML applies the settings of a YAML file. Every key must name a setting or a
// group of them; a null value (a key with nothing after it) leaves the setting as
// it was. The file is read through the settings table, not decoded into Config, so
// that each value is parsed as it would be from the environment and its line is
// known.
func (l *loader) readYAML(name string, data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) { // io.EOF: an empty file, which sets nothing
			l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
		}
		return
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		l.errs = append(l.errs, fmt.Errorf("%s: line %d: a second YAML document; the file must hold one", name, next.Line))
	case !errors.Is(err, io.EOF):
		l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(doc.Content) == 0 {
		return
	}
	y := yamlFile{l: l, name: name, seen: map[string]int{}}
	y.mapping("", doc.Content[0])
}

// yamlFile walks one file's tree.
type yamlFile struct {
	l    *loader
	name string
	seen map[string]int // the line of each setting or group already met
}

func (y *yamlFile) fail(line int, format string, args ...any) {
	y.l.errs = append(y.l.errs, fmt.Errorf("%s: line %d: "+format, append([]any{y.name, line}, args...)...))
}

// mapping applies the settings in m, a mapping of the group prefix ("" at the top).
func (y *yamlFile) mapping(prefix string, m *yaml.Node) {
	m = resolve(m)
	if isNull(m) {
		return
	}
	if m.Kind != yaml.MappingNode {
		if prefix == "" {
			y.fail(m.Line, "the file must be a mapping of settings, such as \"gateway:\" with \"url: sandbox\" beneath it")
		} else {
			y.fail(m.Line, "%s: is a group of settings; put them beneath it, such as %q", prefix, y.firstIn(prefix))
		}
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, value := resolve(m.Content[i]), m.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			y.fail(key.Line, "a setting's name must be a plain word")
			continue
		}
		path := key.Value
		if prefix != "" {
			path = prefix + "." + key.Value
		}
		if first, dup := y.seen[path]; dup {
			y.fail(key.Line, "%q appears twice (first on line %d)", path, first)
			continue
		}
		y.seen[path] = key.Line
		switch e := byName[path]; {
		case e != nil:
			y.value(e, value)
		case isGroup(path):
			y.mapping(path, value)
		default:
			y.fail(key.Line, "unknown setting %q", path)
		}
	}
}

// value applies one setting's value.
func (y *yamlFile) value(e *entry, v *yaml.Node) {
	v = resolve(v)
	source := fmt.Sprintf("%s line %d", y.name, v.Line)
	switch {
	case isNull(v):
		return
	case v.Kind == yaml.ScalarNode:
		y.l.apply(e, v.Value, source)
	case v.Kind == yaml.SequenceNode && e.setItems != nil:
		items := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				y.fail(item.Line, "%s: each item must be a single value", e.Name)
				return
			}
			items = append(items, item.Value)
		}
		e.setItems(&y.l.cfg, items)
		delete(y.l.failed, e.Name)
		y.l.from[e.Name] = origin{source: source, raw: strings.Join(items, ",")}
	case e.setItems != nil:
		y.fail(v.Line, "%s: must be a list or a comma-separated value", e.Name)
	default:
		y.fail(v.Line, "%s: must be a single value, not a list or a mapping", e.Name)
	}
}

// firstIn returns the first setting in a group, for messages.
func (y *yamlFile) firstIn(group string) string {
	for i := range settings {
		if name, ok := strings.CutPrefix(settings[i].Name, group+"."); ok {
			return name + ": ..."
		}
	}
	return ""
}

// resolve follows an alias to its anchored node. An alias cannot lead to an
// endless walk: each mapping level lengthens the path, and a path longer than a
// setting's name is an unknown setting.
func resolve(n *yaml.Node) *yaml.Node {
	for range 8 {
		if n.Kind != yaml.AliasNode || n.Alias == nil {
			return n
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
