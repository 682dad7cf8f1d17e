package limits

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Bound is the limit on one field. Which parts apply depends on the
// field's kind: Max for a string or bytes field (bytes) and for a
// repeated field or map (entries); Elem for each element of a repeated
// string or bytes field; Key and Value for a map's string keys and string
// values. Message-typed elements and values are bounded by their own
// fields' entries.
type Bound struct {
	Max        int
	Elem       int
	Key, Value int
}

// Violation is one field that breaks its bound.
type Violation struct {
	// Field is the field's path in the message, "facts.hostname",
	// "spec.network.target.cidrs[3]".
	Field string
	// Description says by how much, and names the limit.
	Description string
}

// Error lists the violations of one message (at most maxViolations, so
// that the refusal of a flood is not itself large).
type Error struct {
	Violations []Violation
}

// maxViolations caps the violations one Check reports.
const maxViolations = 8

func (e *Error) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return strings.Join(parts, "; ")
}

// Check walks m and returns an *Error when any field breaks its bound or
// has none declared, or when m carries more than MaxUnknownBytes of
// unknown fields. It reads only what is set, so it costs time in
// proportion to the message, and it builds field paths only for the
// violations it reports (it runs on every agent heartbeat).
func Check(m proto.Message) error {
	c := checker{}
	c.message(m.ProtoReflect())
	if len(c.violations) == 0 {
		return nil
	}
	return &Error{Violations: c.violations}
}

// checker walks one message. path is the stack of the current field's
// path segments, turned into text only for a violation.
type checker struct {
	path       []segment
	violations []Violation
}

// segment is a field name, a list index (index >= 0) or a map key.
type segment struct {
	name  string
	index int
	key   *string
}

func (c *checker) pathString() string {
	var b strings.Builder
	for i, sg := range c.path {
		switch {
		case sg.key != nil:
			b.WriteString("[" + strconv.Quote(*sg.key) + "]")
		case sg.index >= 0:
			b.WriteString("[" + strconv.Itoa(sg.index) + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(sg.name)
		}
	}
	return b.String()
}

func (c *checker) full() bool { return len(c.violations) >= maxViolations }

func (c *checker) add(format string, args ...any) {
	if c.full() {
		return
	}
	field := c.pathString()
	if field == "" {
		field = "(message)"
	}
	c.violations = append(c.violations, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// enterField, enterIndex and enterKey push a path segment.
func (c *checker) enterField(fd protoreflect.FieldDescriptor) {
	c.path = append(c.path, segment{name: string(fd.Name()), index: -1})
}

func (c *checker) enterIndex(i int) { c.path = append(c.path, segment{index: i}) }

func (c *checker) enterKey(k string) { c.path = append(c.path, segment{index: -1, key: &k}) }

func (c *checker) leave() { c.path = c.path[:len(c.path)-1] }

func (c *checker) message(m protoreflect.Message) {
	if n := len(m.GetUnknown()); n > MaxUnknownBytes {
		c.add("carries %d bytes of unknown fields, above the limit of %d bytes", n, MaxUnknownBytes)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		c.enterField(fd)
		c.field(fd, v)
		c.leave()
		return !c.full()
	})
}

// needsBound reports whether a field's size is up to the sender: strings,
// bytes, lists and maps. Scalars and enums have a fixed largest size;
// singular messages are bounded by their own fields.
func needsBound(fd protoreflect.FieldDescriptor) bool {
	if fd.IsList() || fd.IsMap() {
		return true
	}
	k := fd.Kind()
	return k == protoreflect.StringKind || k == protoreflect.BytesKind
}

func isText(k protoreflect.Kind) bool {
	return k == protoreflect.StringKind || k == protoreflect.BytesKind
}

func isMessage(k protoreflect.Kind) bool {
	return k == protoreflect.MessageKind || k == protoreflect.GroupKind
}

func textLen(v protoreflect.Value, k protoreflect.Kind) int {
	if k == protoreflect.BytesKind {
		return len(v.Bytes())
	}
	return len(v.String())
}

func (c *checker) field(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	b, ok := table[fd.FullName()]
	if !ok && needsBound(fd) {
		c.add("has no declared bound (internal/limits), so it is refused")
		return
	}
	switch {
	case fd.IsMap():
		c.mapField(fd, b, v.Map())
	case fd.IsList():
		l := v.List()
		if l.Len() > b.Max {
			c.add("has %d entries, above the limit of %d", l.Len(), b.Max)
			return
		}
		k := fd.Kind()
		if !isText(k) && !isMessage(k) {
			return
		}
		for i := 0; i < l.Len() && !c.full(); i++ {
			if isText(k) {
				if n := textLen(l.Get(i), k); n > b.Elem {
					c.enterIndex(i)
					c.add("is %d bytes long, above the limit of %d bytes", n, b.Elem)
					c.leave()
				}
				continue
			}
			c.enterIndex(i)
			c.message(l.Get(i).Message())
			c.leave()
		}
	case isText(fd.Kind()):
		if n := textLen(v, fd.Kind()); n > b.Max {
			c.add("is %d bytes long, above the limit of %d bytes", n, b.Max)
		}
	case isMessage(fd.Kind()):
		c.message(v.Message())
	}
}

func (c *checker) mapField(fd protoreflect.FieldDescriptor, b Bound, mp protoreflect.Map) {
	if mp.Len() > b.Max {
		c.add("has %d entries, above the limit of %d", mp.Len(), b.Max)
		return
	}
	kd, vd := fd.MapKey(), fd.MapValue()
	mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
		if isText(kd.Kind()) {
			if n := len(k.String()); n > b.Key {
				c.add("has a key of %d bytes, above the limit of %d bytes", n, b.Key)
				return !c.full()
			}
		}
		switch {
		case isText(vd.Kind()):
			if n := textLen(mv, vd.Kind()); n > b.Value {
				c.enterKey(k.String())
				c.add("is %d bytes long, above the limit of %d bytes", n, b.Value)
				c.leave()
			}
		case isMessage(vd.Kind()):
			c.enterKey(k.String())
			c.message(mv.Message())
			c.leave()
		}
		return !c.full()
	})
}

// Unbounded returns the full names of the fields reachable from md that
// need a bound and have none, sorted by first sight. The descriptor test
// calls it on every message of the API.
func Unbounded(md protoreflect.MessageDescriptor) []string {
	var out []string
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if _, ok := table[fd.FullName()]; !ok && needsBound(fd) {
				out = append(out, string(fd.FullName()))
			}
			if fd.IsMap() {
				if vd := fd.MapValue(); isMessage(vd.Kind()) {
					walk(vd.Message())
				}
				continue
			}
			if isMessage(fd.Kind()) {
				walk(fd.Message())
			}
		}
	}
	walk(md)
	return out
}
