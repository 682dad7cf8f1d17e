package limits

import (
	"fmt"
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
// proportion to the message, and it allocates only for violations.
func Check(m proto.Message) error {
	c := checker{}
	c.message("", m.ProtoReflect())
	if len(c.violations) == 0 {
		return nil
	}
	return &Error{Violations: c.violations}
}

type checker struct {
	violations []Violation
}

func (c *checker) add(field, format string, args ...any) {
	if len(c.violations) < maxViolations {
		c.violations = append(c.violations, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
}

func join(prefix string, fd protoreflect.FieldDescriptor) string {
	if prefix == "" {
		return string(fd.Name())
	}
	return prefix + "." + string(fd.Name())
}

func (c *checker) message(prefix string, m protoreflect.Message) {
	if n := len(m.GetUnknown()); n > MaxUnknownBytes {
		field := prefix
		if field == "" {
			field = "(message)"
		}
		c.add(field, "carries %d bytes of unknown fields, above the limit of %d bytes", n, MaxUnknownBytes)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		c.field(join(prefix, fd), fd, v)
		return len(c.violations) < maxViolations
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

func (c *checker) field(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	b, ok := table[fd.FullName()]
	if !ok && needsBound(fd) {
		c.add(path, "has no declared bound (internal/limits), so it is refused")
		return
	}
	switch {
	case fd.IsMap():
		mp := v.Map()
		if mp.Len() > b.Max {
			c.add(path, "has %d entries, above the limit of %d", mp.Len(), b.Max)
			return
		}
		kd, vd := fd.MapKey(), fd.MapValue()
		mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			if isText(kd.Kind()) {
				if n := len(k.String()); n > b.Key {
					c.add(path, "has a key of %d bytes, above the limit of %d bytes", n, b.Key)
					return len(c.violations) < maxViolations
				}
			}
			switch {
			case isText(vd.Kind()):
				if n := textLen(mv, vd.Kind()); n > b.Value {
					c.add(fmt.Sprintf("%s[%q]", path, k.String()), "is %d bytes long, above the limit of %d bytes", n, b.Value)
				}
			case isMessage(vd.Kind()):
				c.message(fmt.Sprintf("%s[%q]", path, k.String()), mv.Message())
			}
			return len(c.violations) < maxViolations
		})
	case fd.IsList():
		l := v.List()
		if l.Len() > b.Max {
			c.add(path, "has %d entries, above the limit of %d", l.Len(), b.Max)
			return
		}
		for i := 0; i < l.Len() && len(c.violations) < maxViolations; i++ {
			switch {
			case isText(fd.Kind()):
				if n := textLen(l.Get(i), fd.Kind()); n > b.Elem {
					c.add(fmt.Sprintf("%s[%d]", path, i), "is %d bytes long, above the limit of %d bytes", n, b.Elem)
				}
			case isMessage(fd.Kind()):
				c.message(fmt.Sprintf("%s[%d]", path, i), l.Get(i).Message())
			}
		}
	case isText(fd.Kind()):
		if n := textLen(v, fd.Kind()); n > b.Max {
			c.add(path, "is %d bytes long, above the limit of %d bytes", n, b.Max)
		}
	case isMessage(fd.Kind()):
		c.message(path, v.Message())
	}
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
