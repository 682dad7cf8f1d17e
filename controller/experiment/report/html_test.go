package report

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// render returns r's HTML page, parsed.
func render(t *testing.T, r *Report) (*html.Node, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := HTML(&buf, r); err != nil {
		t.Fatalf("HTML: %v", err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("parse the page: %v", err)
	}
	return doc, buf.String()
}

// walk calls f on every node under n, depth first.
func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// captionName is the text of the name in a figure's caption.
func captionName(fig *html.Node) string {
	for _, n := range find(fig, "span", "name") {
		if n.FirstChild != nil {
			return n.FirstChild.Data
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	return slices.Contains(strings.Fields(v), class)
}

// find returns the elements under n named tag with class (any class
// when class is empty).
func find(n *html.Node, tag, class string) []*html.Node {
	var out []*html.Node
	walk(n, func(m *html.Node) {
		if m.Type == html.ElementNode && m.Data == tag && (class == "" || hasClass(m, class)) {
			out = append(out, m)
		}
	})
	return out
}

// forbiddenElements are the elements that load or run something.
var forbiddenElements = []string{"script", "link", "img", "iframe", "frame", "object", "embed", "base", "image", "use", "video", "audio", "source", "foreignObject", "form", "a"}

// selfContained checks the page fetches nothing: no element that loads
// or runs something, no attribute that names a resource or a handler,
// and no CSS that imports or points anywhere. Text may name URLs (a
// probe's URL is shown); it is never fetched.
func selfContained(t *testing.T, doc *html.Node) {
	t.Helper()
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		if slices.Contains(forbiddenElements, n.Data) {
			t.Errorf("the page has a <%s> element", n.Data)
		}
		for _, a := range n.Attr {
			v := strings.ToLower(a.Val)
			switch {
			case a.Key == "src" || a.Key == "href" || a.Key == "xlink:href" || a.Key == "srcset" || a.Key == "action":
				t.Errorf("<%s> has a %s attribute %q", n.Data, a.Key, a.Val)
			case strings.HasPrefix(a.Key, "on"):
				t.Errorf("<%s> has an event handler %s=%q", n.Data, a.Key, a.Val)
			case strings.Contains(v, "http:") || strings.Contains(v, "https:") || strings.Contains(v, "//") || strings.Contains(v, "url("):
				t.Errorf("<%s %s=%q> names something outside the page", n.Data, a.Key, a.Val)
			}
		}
		if n.Data == "style" {
			css := strings.ToLower(n.FirstChild.Data)
			for _, bad := range []string{"url(", "@import", "http:", "https:", "//", "@font-face"} {
				if strings.Contains(css, bad) {
					t.Errorf("the inline CSS contains %q", bad)
				}
			}
		}
	})
}

// TestHTML_Example checks the page of the example report: it is self
// contained, it has a chart per probe and per host metric, with the
// fault windows shaded, the thresholds drawn and the abort marked.
func TestHTML_Example(t *testing.T) {
	t.Parallel()
	r := Example()
	doc, _ := render(t, r)
	selfContained(t, doc)

	figs := find(doc, "figure", "probe")
	if len(figs) != len(r.Probes) {
		t.Fatalf("%d probe figures, want one per probe (%d)", len(figs), len(r.Probes))
	}
	for i, fig := range figs {
		p := r.Probes[i]
		if name := captionName(fig); name != p.Name {
			t.Errorf("probe figure %d is for %q, want %q", i, name, p.Name)
		}
		svgs := find(fig, "svg", "chart")
		if len(svgs) != 1 {
			t.Errorf("probe %s: %d <svg> charts, want 1", p.Name, len(svgs))
			continue
		}
		svg := svgs[0]
		// Both steps ran: each shades its window in every probe chart.
		if n := len(find(svg, "rect", "fault")); n != len(r.Steps) {
			t.Errorf("probe %s: %d shaded fault windows, want %d", p.Name, n, len(r.Steps))
		}
		if n := len(find(svg, "line", "thr")); n != 1 {
			t.Errorf("probe %s: %d threshold lines, want 1 (max)", p.Name, n)
		}
		lines := find(svg, "polyline", "")
		if len(lines) == 0 {
			t.Errorf("probe %s: no line drawn", p.Name)
		}
		points := 0
		for _, l := range lines {
			v, _ := attr(l, "points")
			points += len(strings.Fields(v))
		}
		withValue := 0
		for _, s := range p.Samples {
			if !math.IsNaN(float64(s.Value)) {
				withValue++
			}
		}
		if points != withValue {
			t.Errorf("probe %s: %d points drawn, want one per sample with a value (%d)", p.Name, points, withValue)
		}
		// Only the probe that caused the abort carries its marker.
		wantAbort := 0
		if p.Name == r.Abort.Probe {
			wantAbort = 1
		}
		if n := len(find(svg, "circle", "abort-dot")); n != wantAbort {
			t.Errorf("probe %s: %d abort markers, want %d", p.Name, n, wantAbort)
		}
	}
	// checkout-http: two failing samples with a value (the abort one is
	// the abort marker), one without.
	if n := len(find(figs[0], "circle", "fail")); n != 1 {
		t.Errorf("checkout-http: %d failing-sample dots, want 1", n)
	}
	if n := len(find(figs[0], "path", "err")); n != 1 {
		t.Errorf("checkout-http: %d no-value marks, want 1", n)
	}

	hosts := find(doc, "figure", "host")
	var metrics []string
	for _, h := range hosts {
		m := captionName(h)
		metrics = append(metrics, m)
		svg := find(h, "svg", "chart")
		if len(svg) != 1 {
			t.Errorf("host metric %s: %d charts, want 1", m, len(svg))
			continue
		}
		if n := len(find(svg[0], "polyline", "")); n != 2 {
			t.Errorf("host metric %s: %d lines, want one per agent (2)", m, n)
		}
		if n := len(find(svg[0], "rect", "fault")); n != 2 {
			t.Errorf("host metric %s: %d shaded windows, want 2", m, n)
		}
	}
	if want := []string{"cpu_percent", "load1", "memory_used_percent"}; !slices.Equal(metrics, want) {
		t.Errorf("host metric charts %q, want %q", metrics, want)
	}
	if n := len(find(doc, "svg", "timeline")); n != 1 {
		t.Errorf("%d fault timelines, want 1", n)
	}
	if n := len(find(doc, "table", "events")); n != 1 {
		t.Errorf("%d event tables, want 1", n)
	} else if rows := len(find(find(doc, "table", "events")[0], "tr", "")); rows != len(r.Events) {
		t.Errorf("%d event rows, want %d", rows, len(r.Events))
	}
}

// TestHTML_EscapesEverything puts markup, quotes and URLs in every
// string of a report: the page must still have no element, attribute or
// reference it did not write, and must show the strings as text.
func TestHTML_EscapesEverything(t *testing.T) {
	t.Parallel()
	const evil = `"><script>alert(1)</script><img src=https://evil.example/x onerror=alert(2)><a href="javascript:x">`
	r := Example()
	r.Name, r.ID, r.Owner, r.Hypothesis = evil, evil, evil, evil
	r.State = State(evil)
	r.Before.Reason, r.Before.Outcome = evil, Outcome(evil)
	r.Abort.Reason, r.Abort.Probe = evil, evil
	r.Targets[0].Name, r.Targets[0].Selector, r.Targets[0].Agents = evil, evil, []string{evil}
	r.Steps[0].Name, r.Steps[0].Kind, r.Steps[0].Fault, r.Steps[0].GroupID = evil, evil, evil, evil
	r.Steps[0].Agents[0].Agent, r.Steps[0].Agents[0].State, r.Steps[0].Agents[0].Err = evil, evil, evil
	r.Probes[0].Name, r.Probes[0].Kind, r.Probes[0].Subject, r.Probes[0].Unit = evil, evil, evil, evil
	r.Probes[0].Samples[3].Err, r.Probes[0].Samples[3].Pass = evil, false
	r.Hosts[0].Agent, r.Hosts[0].Target = evil, evil
	r.Hosts[0].Metrics[evil] = r.Hosts[0].Metrics["load1"]
	r.Events[0].Text = evil

	doc, raw := render(t, r)
	selfContained(t, doc)
	if strings.Contains(raw, "<script") || strings.Contains(raw, "<img") {
		t.Error("the raw page contains <script or <img")
	}
	var text strings.Builder
	walk(doc, func(n *html.Node) {
		if n.Type == html.TextNode {
			text.WriteString(n.Data)
		}
	})
	if !strings.Contains(text.String(), evil) {
		t.Error("the page does not show the strings as text")
	}
}

// TestHTML_Degenerate renders reports with nothing measured, values
// that are not numbers, a step still running and times out of order:
// the page is still made, self-contained, with no NaN in the geometry.
func TestHTML_Degenerate(t *testing.T) {
	t.Parallel()
	running := Example()
	running.State, running.EndedAt, running.Abort = StateRunning, time.Time{}, nil
	running.Steps[1].End = time.Time{}
	running.Probes[1].Samples[2].Value = Float(math.NaN())
	running.Probes[1].Samples[3].Value = Float(math.Inf(1))
	running.Probes[1].Samples[4].At = ExampleStart.Add(-time.Hour)
	flat := Example()
	for i := range flat.Probes[0].Samples {
		flat.Probes[0].Samples[i] = Sample{At: flat.Probes[0].Samples[i].At, Value: 0.1, Pass: true}
	}
	for name, r := range map[string]*Report{
		"empty":   {},
		"refused": refused(),
		"running": running,
		"flat":    flat,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc, raw := render(t, r)
			selfContained(t, doc)
			for _, bad := range []string{"NaN", "Inf", "ZgotmplZ"} {
				for _, svg := range find(doc, "svg", "") {
					var b bytes.Buffer
					if err := html.Render(&b, svg); err != nil {
						t.Fatal(err)
					}
					if strings.Contains(b.String(), `"`+bad) || strings.Contains(b.String(), " "+bad) || strings.Contains(b.String(), ","+bad) {
						t.Errorf("an <svg> has %s in its geometry:\n%s", bad, b.String())
					}
				}
			}
			if strings.Contains(raw, "ZgotmplZ") {
				t.Error("html/template refused a value (ZgotmplZ in the page)")
			}
			if got := len(find(doc, "figure", "probe")); got != len(r.Probes) {
				t.Errorf("%d probe figures, want %d", got, len(r.Probes))
			}
		})
	}
}
