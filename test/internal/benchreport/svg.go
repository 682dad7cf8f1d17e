package benchreport

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH                       = 640.0, 360.0
	marginL, marginR, marginT, marginB = 70.0, 45.0, 40.0, 50.0
)

// Plot draws one figure of a family against its x as an SVG line chart:
// the medians joined, each labelled, and the p99 over the runs as a
// whisker when there were several. A target, when not nil, is a dashed
// line. The x axis is logarithmic when the points span a factor of 10
// or more (100 to 10,000 agents).
func Plot(f Family, unit string, target *Target) []byte {
	var xs, ys, p99 []float64
	for _, p := range f.Points {
		if fig, ok := p.Figures[unit]; ok {
			xs, ys, p99 = append(xs, p.X), append(ys, fig.Median), append(p99, fig.P99)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", marginL, html.EscapeString(unit+" — "+f.Name))
	if len(xs) == 0 {
		b.WriteString("</svg>\n")
		return []byte(b.String())
	}
	top := 0.0
	for i := range ys {
		top = max(top, ys[i], p99[i])
	}
	if target != nil {
		top = max(top, target.Max)
	}
	top = niceCeil(top * 1.1)
	lo, hi := slicesMin(xs), slicesMax(xs)
	logX := lo > 0 && hi/lo >= 10
	fx := func(x float64) float64 {
		w := plotW - marginL - marginR
		switch {
		case hi == lo:
			return marginL + w/2
		case logX:
			return marginL + w*(math.Log10(x)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
		default:
			return marginL + w*(x-lo)/(hi-lo)
		}
	}
	fy := func(y float64) float64 { return plotH - marginB - (plotH-marginT-marginB)*y/top }
	// Axes, y grid and ticks.
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", marginL, fy(0), plotW-marginR, fy(0))
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", marginL, fy(0), marginL, fy(top))
	for i := 0; i <= 5; i++ {
		y := top * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", marginL, fy(y), plotW-marginR, fy(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", marginL-6, fy(y)+4, num(y))
	}
	for _, x := range xs {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", fx(x), fy(0)+18, num(x))
	}
	xlabel := f.XKey
	if logX {
		xlabel += " (log scale)"
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (marginL+plotW-marginR)/2, plotH-10, html.EscapeString(xlabel))
	if target != nil {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="6 4"/>`+"\n", marginL, fy(target.Max), plotW-marginR, fy(target.Max))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#c00">target at %s: %s</text>`+"\n", marginL+6, fy(target.Max)-5, num(target.X), html.EscapeString(target.TargetText()))
	}
	// The medians, joined; the p99 whiskers; the labels.
	var pts []string
	for i := range xs {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", fx(xs[i]), fy(ys[i])))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#1f5fa8" stroke-width="2"/>`+"\n", strings.Join(pts, " "))
	for i := range xs {
		if p99[i] > ys[i] {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#1f5fa8"/>`+"\n", fx(xs[i]), fy(ys[i]), fx(xs[i]), fy(p99[i]))
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#1f5fa8"/>`+"\n", fx(xs[i]), fy(ys[i]))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", fx(xs[i]), fy(ys[i])-9, num(ys[i]))
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func slicesMin(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func slicesMax(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
