package report

import (
	"math"
	"slices"
	"strings"
)

// pathBuilder collects polyline points, starting a new path at a gap.
// It keeps at most four points per pixel column (the first, the lowest,
// the highest and the last, in their order): an hour of one-second
// samples across a 1 100-pixel chart draws the same picture, spikes
// included, from a tenth of the points, and the page stays small.
type pathBuilder struct {
	paths []string
	cur   strings.Builder
	// The column being collected: its x, and its points.
	col                 int
	inCol               bool
	first, lo, hi, last xy
}

// xy is a point with its order of arrival.
type xy struct {
	x, y float64
	seq  int
}

func (p *pathBuilder) add(x, y float64) {
	c := int(math.Floor(x))
	pt := xy{x: x, y: y}
	if p.inCol && c == p.col {
		pt.seq = p.last.seq + 1
		// SVG y grows downwards: the lowest value is the largest y.
		if y > p.lo.y {
			p.lo = pt
		}
		if y < p.hi.y {
			p.hi = pt
		}
		p.last = pt
		return
	}
	p.flushColumn()
	p.col, p.inCol = c, true
	p.first, p.lo, p.hi, p.last = pt, pt, pt, pt
}

// flushColumn writes the kept points of the column, each once, in the
// order they came.
func (p *pathBuilder) flushColumn() {
	if !p.inCol {
		return
	}
	p.inCol = false
	pts := []xy{p.first, p.lo, p.hi, p.last}
	slices.SortStableFunc(pts, func(a, b xy) int { return a.seq - b.seq })
	for i, pt := range pts {
		if i > 0 && pt.seq == pts[i-1].seq {
			continue
		}
		if p.cur.Len() > 0 {
			p.cur.WriteByte(' ')
		}
		p.cur.WriteString(coord(pt.x))
		p.cur.WriteByte(',')
		p.cur.WriteString(coord(pt.y))
	}
}

func (p *pathBuilder) gap() {
	p.flushColumn()
	if p.cur.Len() > 0 {
		p.paths = append(p.paths, p.cur.String())
		p.cur.Reset()
	}
}

func (p *pathBuilder) done() []string {
	p.gap()
	return p.paths
}

// markers keeps point markers (failing samples, samples without a
// value) one per pixel: a thousand failures on the same spot are one
// dot to the eye and a thousand elements to the browser.
type markers struct {
	pts  []point
	seen map[[2]int]bool
}

func (m *markers) add(p point) {
	k := [2]int{int(math.Round(p.X)), int(math.Round(p.Y))}
	if m.seen[k] {
		return
	}
	if m.seen == nil {
		m.seen = map[[2]int]bool{}
	}
	m.seen[k] = true
	m.pts = append(m.pts, p)
}
