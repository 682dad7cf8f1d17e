package limits

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MaxSize returns the largest wire encoding of a message of type md that
// the bounds allow: every bounded field at its limit, every scalar at its
// widest varint, the largest member of each oneof. It panics when a field
// has no bound, which TestEveryFieldBounded rules out, and on recursive
// messages, which the API has none of.
func MaxSize(md protoreflect.MessageDescriptor) int {
	return maxSize(md, map[protoreflect.FullName]bool{})
}

func maxSize(md protoreflect.MessageDescriptor, onPath map[protoreflect.FullName]bool) int {
	if onPath[md.FullName()] {
		panic(fmt.Sprintf("limits: %s is recursive", md.FullName()))
	}
	onPath[md.FullName()] = true
	defer delete(onPath, md.FullName())
	total := 0
	oneofMax := map[protoreflect.FullName]int{}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		n := fieldSize(fd, onPath)
		if od := fd.ContainingOneof(); od != nil {
			oneofMax[od.FullName()] = max(oneofMax[od.FullName()], n)
			continue
		}
		total += n
	}
	for _, n := range oneofMax {
		total += n
	}
	return total
}

// lenField is the size of a length-delimited field holding n bytes.
func lenField(num protoreflect.FieldNumber, n int) int {
	return protowire.SizeTag(num) + protowire.SizeVarint(uint64(n)) + n
}

// scalarSize is the widest encoding of one scalar value of kind k
// (negative int32 and enum values take ten bytes as varints).
func scalarSize(k protoreflect.Kind) int {
	switch k {
	case protoreflect.BoolKind:
		return 1
	case protoreflect.Uint32Kind, protoreflect.Sint32Kind:
		return 5
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return 4
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return 8
	}
	return 10 // int32, int64, uint64, sint64, enum
}

// valueSize is the encoded size of one value without its tag.
func valueSize(fd protoreflect.FieldDescriptor, textMax int, onPath map[protoreflect.FullName]bool) int {
	switch k := fd.Kind(); {
	case isText(k):
		return protowire.SizeVarint(uint64(textMax)) + textMax
	case isMessage(k):
		n := maxSize(fd.Message(), onPath)
		return protowire.SizeVarint(uint64(n)) + n
	default:
		return scalarSize(k)
	}
}

func fieldSize(fd protoreflect.FieldDescriptor, onPath map[protoreflect.FullName]bool) int {
	b, ok := table[fd.FullName()]
	if !ok && needsBound(fd) {
		panic(fmt.Sprintf("limits: %s has no bound", fd.FullName()))
	}
	tag := protowire.SizeTag(fd.Number())
	switch {
	case fd.IsMap():
		entry := 1 + valueSize(fd.MapKey(), b.Key, onPath) + 1 + valueSize(fd.MapValue(), b.Value, onPath)
		return b.Max * lenField(fd.Number(), entry)
	case fd.IsList():
		k := fd.Kind()
		if !isText(k) && !isMessage(k) {
			// Packed: one tag and length for the whole list. An unpacked
			// list would cost a tag per element; count that, the larger.
			return max(lenField(fd.Number(), b.Max*scalarSize(k)), b.Max*(tag+scalarSize(k)))
		}
		return b.Max * (tag + valueSize(fd, b.Elem, onPath))
	}
	return tag + valueSize(fd, b.Max, onPath)
}
