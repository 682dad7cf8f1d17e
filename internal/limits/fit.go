package limits

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Fit cuts m, in place, to the bounds Check enforces: a text field longer
// than its bound is truncated (Truncate), a list with more entries than its
// bound loses its last ones. A sender calls it on what it composes from
// text it does not control (an agent's error messages, a kernel's), so
// that the receiver never refuses the whole message for one long reason.
// Maps and fields with no declared bound are left as they are: Check
// still refuses those.
func Fit(m proto.Message) {
	fitMessage(m.ProtoReflect())
}

func fitMessage(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		b, bounded := table[fd.FullName()]
		k := fd.Kind()
		switch {
		case fd.IsMap():
		case fd.IsList():
			l := v.List()
			if bounded && l.Len() > b.Max {
				l.Truncate(b.Max)
			}
			for i := 0; i < l.Len(); i++ {
				switch {
				case isMessage(k):
					fitMessage(l.Get(i).Message())
				case k == protoreflect.StringKind && bounded && len(l.Get(i).String()) > b.Elem:
					l.Set(i, protoreflect.ValueOfString(Truncate(l.Get(i).String(), b.Elem)))
				}
			}
		case isMessage(k):
			fitMessage(v.Message())
		case k == protoreflect.StringKind && bounded && len(v.String()) > b.Max:
			m.Set(fd, protoreflect.ValueOfString(Truncate(v.String(), b.Max)))
		}
		return true
	})
}
