package experiment

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/turbulence-sre/turbulence/internal/config"
)

// MaxFileBytes bounds an experiment file. The controller records the
// file's text as it was sent, within the same bound; a real file is a few
// KiB, and a mistaken path (a log file) is refused before it is read into
// a tree.
const MaxFileBytes = 64 << 10

// Parse reads an experiment file strictly and fills in the defaults. Every
// problem of form is reported at once, each with its path in the file: an
// unknown field ("steps[1].durration: unknown field"), a value of the wrong
// type, a duplicate key, and a blast-radius cap written as 0 (see
// Target). Parse does not check the rules of a valid experiment; call
// Validate on the result.
//
// encoding/json alone reports an unknown field without saying where it
// is, so the YAML is first turned into a tree and walked against the
// Spec's types: each leaf is decoded by its own type's JSON decoder, and
// each error is named by its path.
func Parse(data []byte) (*Spec, error) {
	var c collector
	if len(data) > MaxFileBytes {
		c.addf("file", "is %d bytes, above the limit of %d bytes", len(data), MaxFileBytes)
		return nil, c.err()
	}
	// YAMLToJSONStrict refuses duplicate keys; the JSON it returns is then
	// read with numbers kept as written, so that a leaf re-encodes exactly.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		c.addf("file", "is not YAML: %s", oneLine(err.Error()))
		return nil, c.err()
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		c.addf("file", "is not YAML: %s", oneLine(err.Error()))
		return nil, c.err()
	}
	if tree == nil {
		c.addf("file", "is empty")
		return nil, c.err()
	}
	var s Spec
	decode(&c, "", tree, reflect.ValueOf(&s).Elem())
	checkZeroCaps(&c, tree)
	if err := c.err(); err != nil {
		return nil, err
	}
	s.Default()
	return &s, nil
}

// Default fills in every default the file left out (zero means absent):
// Recovery 30s; each probe's Interval 1s; an HTTP probe's ExpectStatus 200
// and Timeout 5s.
func (s *Spec) Default() {
	if s.Recovery == 0 {
		s.Recovery = config.Duration(DefaultRecovery)
	}
	for i := range s.Probes {
		p := &s.Probes[i]
		if p.Interval == 0 {
			p.Interval = config.Duration(DefaultInterval)
		}
		if p.HTTP != nil {
			if p.HTTP.ExpectStatus == 0 {
				p.HTTP.ExpectStatus = DefaultExpectStatus
			}
			if p.HTTP.Timeout == 0 {
				p.HTTP.Timeout = config.Duration(DefaultHTTPTimeout)
			}
		}
	}
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	durationType    = reflect.TypeFor[config.Duration]()
)

// decode stores the tree node in v, reporting each problem under path.
func decode(c *collector, path string, node any, v reflect.Value) {
	if node == nil {
		return // null leaves the zero value, as encoding/json does
	}
	t := v.Type()
	switch {
	case t == rawMessageType:
		b, err := json.Marshal(node)
		if err != nil {
			c.addf(fieldName(path), "%s", oneLine(err.Error()))
			return
		}
		v.SetBytes(b)
		return
	case reflect.PointerTo(t).Implements(unmarshalerType):
		leaf(c, path, node, v)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		decode(c, path, node, p.Elem())
		v.Set(p)
	case reflect.Struct:
		m, ok := node.(map[string]any)
		if !ok {
			c.addf(fieldName(path), "must be a mapping, got %s", typeName(node))
			return
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			i, ok := fields[k]
			if !ok {
				c.addf(join(path, k), "unknown field")
				continue
			}
			decode(c, join(path, k), m[k], v.Field(i))
		}
	case reflect.Slice:
		l, ok := node.([]any)
		if !ok {
			c.addf(fieldName(path), "must be a list, got %s", typeName(node))
			return
		}
		s := reflect.MakeSlice(t, len(l), len(l))
		for i, e := range l {
			decode(c, path+"["+strconv.Itoa(i)+"]", e, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m, ok := node.(map[string]any)
		if !ok {
			c.addf(fieldName(path), "must be a mapping, got %s", typeName(node))
			return
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for _, k := range sortedKeys(m) {
			e := reflect.New(t.Elem()).Elem()
			decode(c, join(path, k), m[k], e)
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
		}
		v.Set(out)
	default:
		leaf(c, path, node, v)
	}
}

// leaf decodes a scalar (or a type with its own JSON decoder) through
// encoding/json, which knows the numeric ranges and the types' own rules.
func leaf(c *collector, path string, node any, v reflect.Value) {
	b, err := json.Marshal(node)
	if err == nil {
		err = json.Unmarshal(b, v.Addr().Interface())
	}
	if err != nil {
		if _, isText := node.(string); v.Type() == durationType && !isText {
			c.addf(fieldName(path), "must be a duration such as \"30s\" or \"1m30s\", got %s", typeName(node))
			return
		}
		c.addf(fieldName(path), "%s", leafReason(err, node))
	}
}

// leafReason words a leaf's decoding error without encoding/json's Go
// type names where a plainer word exists.
func leafReason(err error, node any) string {
	if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) {
		return "must be " + kindWord(te.Type) + ", got " + typeName(node)
	}
	return oneLine(err.Error())
}

func kindWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number from 0 to " + strconv.FormatUint(1<<(t.Bits())-1, 10)
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

func typeName(node any) string {
	switch n := node.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + n.String()
	}
	return "null"
}

// jsonFields maps each field's JSON name to its index.
func jsonFields(t reflect.Type) map[string]int {
	out := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = i
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func fieldName(path string) string {
	if path == "" {
		return "file"
	}
	return path
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// checkZeroCaps refuses a blast-radius cap written as 0. In the types, 0
// means "not set" (neither count nor percent takes every eligible agent,
// as a fault group does), so a written 0 would silently become the
// whole selection: the opposite of what whoever wrote it meant.
func checkZeroCaps(c *collector, tree any) {
	root, _ := tree.(map[string]any)
	targets, _ := root["targets"].(map[string]any)
	for _, name := range sortedKeys(targets) {
		t, _ := targets[name].(map[string]any)
		for _, f := range []struct{ name, bound string }{{"count", "at least 1"}, {"percent", "above 0"}} {
			if n, ok := t[f.name].(json.Number); ok {
				if v, err := n.Float64(); err == nil && v == 0 {
					c.addf("targets."+name+"."+f.name, "must be %s: a cap of 0 chooses no agent (omit count and percent to take every eligible agent, within the controller's caps)", f.bound)
				}
			}
		}
	}
}
