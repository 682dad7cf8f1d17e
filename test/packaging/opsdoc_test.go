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
// docs/operations.md names every flag of `turbulence-agent run`, of
// turbulence-controller and every global flag of turbctl, as the built
// binaries print them in their help. A flag added without its line in
// the reference fails here.
func TestOperationsDoc_ListsEveryFlag(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	bins := testbuild.BuildBinaries(t, t.TempDir(), "./agent/cmd/turbulence-agent", "./controller/cmd/turbulence-controller", "./controller/cmd/turbctl")
	for _, c := range []struct {
		bin  string
		args []string
		re   *regexp.Regexp
		min  int
	}{
		{bins[0], []string{"run", "--help"}, goFlag, 10},
		{bins[1], []string{"--help"}, goFlag, 15},
		{bins[2], []string{"--help"}, cobraFlag, 7},
	} {
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
		for _, f := range flags {
			if f == "version" && c.bin == bins[2] {
				continue // cobra's own
			}
			if !strings.Contains(string(doc), "`--"+f+"`") {
				t.Errorf("docs/operations.md does not list --%s of %s", f, filepath.Base(c.bin))
			}
		}
	}
}
