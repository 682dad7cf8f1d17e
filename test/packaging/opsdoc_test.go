package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// goFlag is a flag line of Go's flag package in a help text ("  -name
// type"); cobraFlag one of cobra's ("  -o, --output string").
var (
	goFlag    = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)
	cobraFlag = regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z][a-z0-9-]*)`)
)

// TestOperationsDoc_ListsEveryFlag: the configuration reference in
// docs/operations.md names, in each binary's own section, every flag of
// `turbulence-agent run`, of turbulence-controller and every global flag
// of turbctl, as the built binaries print them in their help; and a
// section's table lists no flag its binary does not have. A flag added
// without its line, or a line left or pasted under the wrong binary,
// fails here.
func TestOperationsDoc_ListsEveryFlag(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	bins := testbuild.BuildBinaries(t, t.TempDir(), "./agent/cmd/turbulence-agent", "./controller/cmd/turbulence-controller", "./controller/cmd/turbctl")
	for _, c := range []struct {
		bin     string
		args    []string
		re      *regexp.Regexp
		min     int
		section string
	}{
		{bins[0], []string{"run", "--help"}, goFlag, 10, "### turbulence-agent run"},
		{bins[1], []string{"--help"}, goFlag, 15, "### turbulence-controller"},
		{bins[2], []string{"--help"}, cobraFlag, 7, "### turbctl (global flags)"},
	} {
		section := docSection(t, string(doc), c.section)
		// Go's flag package exits 0 on --help with the text on stderr;
		// the exit status does not matter here, the text does.
		out, _ := exec.Command(c.bin, c.args...).CombinedOutput()
		help := string(out)
		if i := strings.Index(help, "Flags of run:"); i >= 0 {
			help = help[i:] // the agent's usage lists other subcommands' flags above
		}
		var flags []string
		for _, m := range c.re.FindAllStringSubmatch(help, -1) {
			if m[1] != "help" {
				flags = append(flags, m[1])
			}
		}
		if len(flags) < c.min {
			t.Fatalf("%s %s: found %d flags in its help, want at least %d (did the help format change?):\n%s",
				filepath.Base(c.bin), strings.Join(c.args, " "), len(flags), c.min, out)
		}
		has := map[string]bool{}
		for _, f := range flags {
			has[f] = true
			if f == "version" && c.bin == bins[2] {
				continue // cobra's own
			}
			if !strings.Contains(section, "`--"+f+"`") {
				t.Errorf("docs/operations.md, %q, does not list --%s of %s", c.section, f, filepath.Base(c.bin))
			}
		}
		for _, m := range docFlagRow.FindAllStringSubmatch(section, -1) {
			if !has[m[1]] {
				t.Errorf("docs/operations.md, %q, lists --%s, which %s does not have", c.section, m[1], filepath.Base(c.bin))
			}
		}
	}
}

// docFlagRow is the first cell of a flag's row in a reference table.
var docFlagRow = regexp.MustCompile("(?m)^\\| `--([a-z][a-z0-9-]*)`")

// docSection returns the text of doc from heading to the next heading of
// the same or a higher level.
func docSection(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/operations.md has no section %q", heading)
	}
	rest := doc[i+1+len(heading):]
	level := heading[:strings.Index(heading, " ")+1]
	for j := 0; j < len(rest); j++ {
		if rest[j] == '\n' && strings.HasPrefix(rest[j+1:], "#") {
			h := rest[j+1:]
			if k := strings.Index(h, " "); k > 0 && k <= len(level)-1 {
				return rest[:j]
			}
		}
	}
	return rest
}
