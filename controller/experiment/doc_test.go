package experiment

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestDocListsEveryField: docs/experiments.md names every field of the
// file (every json tag of spec.go, written as `tag`), so that a field
// added without its documentation fails here.
func TestDocListsEveryField(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/experiments.md")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "spec.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		field, ok := node.(*ast.Field)
		if !ok || field.Tag == nil {
			return true
		}
		tag, err := strconv.Unquote(field.Tag.Value)
		if err != nil {
			t.Fatal(err)
		}
		name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
		if name == "" || name == "-" {
			return true
		}
		n++
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/experiments.md does not name field `%s` (spec.go)", name)
		}
		return true
	})
	if n < 30 {
		t.Errorf("found %d json tags in spec.go; the walk is broken", n)
	}
}
