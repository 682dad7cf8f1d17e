package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// module is this repository's module path.
const module = "github.com/turbulence-sre/turbulence"

// listed is the part of `go list -json` output the rules read.
type listed struct {
	ImportPath string
	Name       string
	Doc        string
	ForTest    string
	Imports    []string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

// pkg is one package (or test variant) of this module.
type pkg struct {
	// rel is the package path relative to the module root ("agent/worker").
	rel string
	// test is true for test variants: the package compiled with its
	// _test.go files, its external _test package, and the test main.
	test bool
	// imports are the direct imports, ours as rel paths.
	imports []imp
	name    string
	doc     string
	err     string
}

type imp struct {
	path string // rel path for ours, import path for the rest
	ours bool
}

// goList runs `go list -e -json args...` from the module root with extra
// environment and returns this module's packages.
func goList(t *testing.T, extraEnv []string, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-json"}, args...)...)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var l listed
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if l.Module == nil || l.Module.Path != module {
			continue
		}
		p := pkg{name: l.Name, doc: l.Doc}
		p.rel, p.test = classify(l.ImportPath)
		if l.Error != nil {
			p.err = l.Error.Err
		}
		for _, i := range l.Imports {
			i = stripVariant(i)
			if r, ok := ours(i); ok {
				p.imports = append(p.imports, imp{r, true})
			} else {
				p.imports = append(p.imports, imp{i, false})
			}
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no package of this module")
	}
	return pkgs
}

// classify turns a go list import path into a rel path and whether it is
// a test variant: "p [p.test]", "p_test [p.test]" and "p.test".
func classify(importPath string) (rel string, test bool) {
	path := stripVariant(importPath)
	test = path != importPath
	if strings.HasSuffix(path, ".test") {
		path, test = strings.TrimSuffix(path, ".test"), true
	}
	if strings.HasSuffix(path, "_test") && test {
		path = strings.TrimSuffix(path, "_test")
	}
	rel, _ = ours(path)
	return rel, test
}

// stripVariant drops the " [p.test]" suffix of a test variant.
func stripVariant(path string) string {
	if i := strings.Index(path, " ["); i >= 0 {
		return path[:i]
	}
	return path
}

// ours reports whether path is in this module and returns it relative.
func ours(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r, true
	}
	return "", false
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the module")
	}
	return filepath.Dir(gomod)
}

// under reports whether rel is dir or below it.
func under(rel string, dirs ...string) bool {
	for _, d := range dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// external reports whether an import is the external package path or
// below it.
func external(i imp, paths ...string) bool {
	return !i.ours && under(i.path, paths...)
}

// rule is one dependency-direction rule of docs/style.md, dependency rules.
type rule struct {
	name string
	// applies selects the importing packages the rule constrains.
	applies func(p pkg) bool
	// forbidden reports whether p may not import i.
	forbidden func(p pkg, i imp) bool
}

// nonTest selects packages as compiled without their _test.go files.
func nonTest(p pkg) bool { return !p.test }

// cliLibrary reports whether path (relative to the module) is one of the controller's packages
// that turbctl may import: the experiment file, its probes and its report.
func cliLibrary(path string) bool {
	for _, lib := range []string{"controller/experiment", "controller/experiment/probe", "controller/experiment/report"} {
		if path == lib {
			return true
		}
	}
	return false
}

var rules = []rule{
	{
		name:    "agent/... imports nothing under controller/...",
		applies: func(p pkg) bool { return under(p.rel, "agent") },
		forbidden: func(_ pkg, i imp) bool {
			return i.ours && under(i.path, "controller")
		},
	},
	{
		name:    "controller/... imports nothing under agent/...",
		applies: func(p pkg) bool { return under(p.rel, "controller") },
		forbidden: func(_ pkg, i imp) bool {
			return i.ours && under(i.path, "agent")
		},
	},
	{
		// The experiment file's packages are libraries with no server in
		// them: turbctl validates, plans and renders with the same code as
		// the controller (docs/experiments.md). Not their subpackages: the
		// runner lives on the leader.
		name:    "controller/cli imports no controller/... package but itself and the experiment file's",
		applies: func(p pkg) bool { return under(p.rel, "controller/cli") },
		forbidden: func(_ pkg, i imp) bool {
			return i.ours && under(i.path, "controller") && !under(i.path, "controller/cli") && !cliLibrary(i.path)
		},
	},
	{
		name:    "controller/fsm and controller/state import neither google.golang.org/grpc, net nor os/exec",
		applies: func(p pkg) bool { return under(p.rel, "controller/fsm", "controller/state") },
		forbidden: func(_ pkg, i imp) bool {
			return external(i, "google.golang.org/grpc") || (!i.ours && (i.path == "net" || i.path == "os/exec"))
		},
	},
	{
		name:    "internal/... imports nothing under agent/ or controller/",
		applies: func(p pkg) bool { return under(p.rel, "internal") },
		forbidden: func(_ pkg, i imp) bool {
			return i.ours && under(i.path, "agent", "controller")
		},
	},
	{
		name:    "proto/... imports none of ours but proto/",
		applies: func(p pkg) bool { return under(p.rel, "proto") },
		forbidden: func(_ pkg, i imp) bool {
			return i.ours && !under(i.path, "proto")
		},
	},
	{
		name: "os/exec only in agent/worker and agent/guardian, which re-execute the agent (tests, test/ and internal/testutil, which serves tests only, may use it)",
		applies: func(p pkg) bool {
			return nonTest(p) && p.rel != "agent/worker" && p.rel != "agent/guardian" && !under(p.rel, "test", "internal/testutil")
		},
		forbidden: func(_ pkg, i imp) bool { return !i.ours && i.path == "os/exec" },
	},
	{
		name: "internal/testutil and internal/linearize only from tests",
		applies: func(p pkg) bool {
			return nonTest(p) && !under(p.rel, "internal/testutil", "internal/linearize", "test")
		},
		forbidden: func(_ pkg, i imp) bool { return i.ours && under(i.path, "internal/testutil", "internal/linearize") },
	},
}

// TestDependencyRules checks docs/style.md, dependency rules over
// `go list -deps -test -json ./...`, on the direct imports of every
// package of this module and of its test variants.
func TestDependencyRules(t *testing.T) {
	t.Parallel()
	pkgs := goList(t, nil, "-deps", "-test", "./...")
	for _, p := range pkgs {
		if p.err != "" {
			t.Errorf("go list: package %s: %s", p.rel, p.err)
		}
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			seen := map[string]bool{} // test variants repeat their package's imports
			for _, p := range pkgs {
				if !r.applies(p) {
					continue
				}
				for _, i := range p.imports {
					msg := p.rel + testSuffix(p) + " imports " + i.path
					if r.forbidden(p, i) && !seen[msg] {
						seen[msg] = true
						t.Error(msg)
					}
				}
			}
		})
	}
}

func testSuffix(p pkg) string {
	if p.test {
		return " (test files)"
	}
	return ""
}

// linuxOnly are the packages that only *_linux.go files (or files with a
// linux build constraint) may import.
var linuxOnly = []string{
	"golang.org/x/sys/unix",
	"github.com/vishvananda/netlink",
	"github.com/google/nftables",
}

// TestLinuxOnlyImports lists the module for darwin: a linux-only import
// that is still there came from a file that is not linux-only.
func TestLinuxOnlyImports(t *testing.T) {
	t.Parallel()
	pkgs := goList(t, []string{"GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0"}, "-deps", "./...")
	for _, p := range pkgs {
		if p.test || !under(p.rel, "agent", "controller", "internal") {
			continue
		}
		if p.err != "" {
			t.Logf("GOOS=darwin: package %s: %s", p.rel, p.err)
		}
		for _, i := range p.imports {
			if external(i, linuxOnly...) {
				t.Errorf("%s imports %s in a file built for darwin; only *_linux.go or //go:build linux files may", p.rel, i.path)
			}
		}
	}
}

// TestPackageDocs checks that every package under agent/, controller/,
// internal/ and proto/ has a package comment, and that it is not a
// license header that became the doc by accident.
func TestPackageDocs(t *testing.T) {
	t.Parallel()
	for _, p := range goList(t, nil, "./...") {
		if !under(p.rel, "agent", "controller", "internal", "proto") {
			continue
		}
		switch doc := strings.TrimSpace(p.doc); {
		case doc == "":
			t.Errorf("package %s (%s) has no package doc comment", p.rel, p.name)
		case strings.HasPrefix(doc, "Copyright") || strings.HasPrefix(doc, "SPDX"):
			t.Errorf("package %s: the package doc is a license header: %q", p.rel, doc)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		wantRel  string
		wantTest bool
	}{
		{module + "/agent/worker", "agent/worker", false},
		{module + "/agent/worker [" + module + "/agent/worker.test]", "agent/worker", true},
		{module + "/agent/worker_test [" + module + "/agent/worker.test]", "agent/worker", true},
		{module + "/agent/worker.test", "agent/worker", true},
		{module + "/internal/faultspec [" + module + "/agent/worker.test]", "internal/faultspec", true},
	}
	for _, tt := range tests {
		rel, test := classify(tt.in)
		if rel != tt.wantRel || test != tt.wantTest {
			t.Errorf("classify(%q) = %q, %v, want %q, %v", tt.in, rel, test, tt.wantRel, tt.wantTest)
		}
	}
}
