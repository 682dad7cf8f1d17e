package report

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// The colours html.tmpl draws with, which the screenshot must show.
var (
	faultShade = color.RGBA{0xfc, 0xd9, 0xb6, 0xff} // svg .fault
	line0      = color.RGBA{0x1f, 0x5f, 0xa8, 0xff} // .s0: probes, first agent
	line1      = color.RGBA{0xc2, 0x18, 0x5b, 0xff} // .s1: second agent
)

// chromium returns the path of Debian's chromium. It skips the test
// when there is none, unless TURBULENCE_REQUIRE_PRIVILEGED=1 (CI, where
// make test installs it), which makes that a failure.
func chromium(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("/usr/bin/chromium"); err == nil {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "chromium not found (Debian's chromium package, which make test installs)"
	if os.Getenv(testutil.RequirePrivilegedEnv) == "1" {
		t.Fatal(msg + ", and " + testutil.RequirePrivilegedEnv + "=1 forbids skipping")
	}
	t.Skip(msg + " (set " + testutil.RequirePrivilegedEnv + "=1 to make this a failure)")
	return ""
}

// screenshot renders the page at htmlPath in headless Chromium into a
// 1280×2000 PNG. Chromium's home and caches are in dir, so it writes
// nothing outside the test's own directory, and every process it
// started is killed when it is done, whatever happened.
func screenshot(t *testing.T, bin, dir, htmlPath string) []byte {
	t.Helper()
	out := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+out, "--window-size=1280,2000",
		"file://"+htmlPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
	// Chromium forks helpers (zygote, renderer); its own process group
	// lets the test end all of them and nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	pgid := cmd.Process.Pid
	err := cmd.Wait()
	if kerr := syscall.Kill(-pgid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		t.Errorf("kill what is left of chromium's process group: %v", kerr)
	}
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, output.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v\n%s", err, output.String())
	}
	return b
}

// near reports whether c is within tol of want on every channel: lines
// are anti-aliased, so only their middle has the exact colour.
func near(c color.Color, want color.RGBA, tol int) bool {
	r, g, b, _ := c.RGBA()
	d := func(x uint32, y uint8) bool { v := int(x>>8) - int(y); return v >= -tol && v <= tol }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

// pixelCounts counts the screenshot's pixels of the fault shading (exact:
// an opaque fill), of each line colour, and of line pixels lying on
// the shading (a line drawn across a fault window).
type pixelCounts struct{ shade, line0, line1, line0OnShade int }

func countPixels(img image.Image) pixelCounts {
	var c pixelCounts
	b := img.Bounds()
	shadeAt := func(x, y int) bool {
		return image.Pt(x, y).In(b) && near(img.At(x, y), faultShade, 0)
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			px := img.At(x, y)
			switch {
			case near(px, faultShade, 0):
				c.shade++
			case near(px, line0, 16):
				c.line0++
				if shadeAt(x, y-4) || shadeAt(x, y+4) {
					c.line0OnShade++
				}
			case near(px, line1, 16):
				c.line1++
			}
		}
	}
	return c
}

// TestRender_Chromium renders the example report in headless Chromium
// and reads the screenshot back: the fault windows must be shaded over
// a large area, the probe and host lines drawn, and lines drawn across
// the shaded windows. With -update it also saves the screenshot as
// docs/experiment-report.png.
func TestRender_Chromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := HTML(f, Example()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	shot := screenshot(t, bin, dir, page)
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decode the screenshot: %v", err)
	}
	if got := img.Bounds().Size(); got != image.Pt(1280, 2000) {
		t.Errorf("screenshot is %v, want 1280×2000", got)
	}
	c := countPixels(img)
	t.Logf("pixels: fault shading %d, line s0 %d (on shading %d), line s1 %d", c.shade, c.line0, c.line0OnShade, c.line1)
	// The figures below are a fraction of what the example draws (about
	// 250 000 shaded pixels in five charts, lines over 1 000 pixels
	// long), and far above what the legends' swatches alone give.
	if c.shade < 50_000 {
		t.Errorf("%d pixels of fault shading, want at least 50 000: the windows are not drawn", c.shade)
	}
	if c.line0 < 2_000 {
		t.Errorf("%d pixels of the probe/first-agent line colour, want at least 2 000", c.line0)
	}
	if c.line0OnShade < 300 {
		t.Errorf("%d line pixels across the fault windows, want at least 300", c.line0OnShade)
	}
	if c.line1 < 600 {
		t.Errorf("%d pixels of the second agent's line colour, want at least 600", c.line1)
	}
	if *update && !t.Failed() {
		if err := os.WriteFile(filepath.Join("..", "..", "..", "docs", "experiment-report.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
