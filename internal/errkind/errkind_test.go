package errkind

import (
	"errors"
	"testing"
)

func TestErrorf_ReadsAsMessageMatchesKind(t *testing.T) {
	kind := errors.New("not found")
	err := Errorf(kind, "fault %q does not exist", "f1")
	if err.Error() != `fault "f1" does not exist` {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, kind) || errors.Is(err, errors.New("not found")) {
		t.Error("errors.Is does not match exactly the kind")
	}
}
