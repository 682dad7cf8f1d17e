package report

import (
	"math"
	"time"
)

// gantt is the fault timeline: a row per step with its planned window
// as an outline and its actual window as a bar.
type gantt struct {
	W, H  int
	Plot  box
	Rows  []ganttRow
	XGrid []tick
	Abort *point
}

type ganttRow struct {
	Label   string // step name
	LabelY  float64
	Planned *rect
	Actual  *rect
	Tip     string
}

func newGantt(r *Report, ax timeAxis) *gantt {
	h := padTop + padBottom + ganttRowH*max(1, len(r.Steps))
	g := &gantt{W: ganttW, H: h, Plot: box{X: 150, Y: padTop, W: float64(ganttW - 150 - padRight), H: float64(h - padTop - padBottom)}}
	x := func(t time.Time) float64 { return g.Plot.X + ax.frac(t)*g.Plot.W }
	for _, d := range ax.ticks() {
		g.XGrid = append(g.XGrid, tick{Pos: x(ax.t0.Add(d)), Label: "+" + d.String()})
	}
	faultsFrom := r.faultPhaseStart()
	for i, st := range r.Steps {
		y := g.Plot.Y + float64(i*ganttRowH)
		row := ganttRow{Label: st.Name, LabelY: y + ganttRowH/2 + 4}
		if !faultsFrom.IsZero() && st.PlannedDuration > 0 {
			p0 := faultsFrom.Add(st.PlannedStart)
			x0, x1 := x(p0), x(p0.Add(st.PlannedDuration))
			row.Planned = &rect{X: x0, Y: y + 3, W: math.Max(1, x1-x0), H: ganttRowH - 6}
		}
		row.Tip = st.Kind + ": " + oneLine(st.Fault)
		if !st.Start.IsZero() {
			end := st.End
			if end.IsZero() {
				end = ax.t1
			}
			x0, x1 := x(st.Start), x(end)
			row.Actual = &rect{X: x0, Y: y + 7, W: math.Max(1, x1-x0), H: ganttRowH - 14}
			row.Tip += "  " + window(r.StartedAt, st.Start, st.End)
		} else {
			row.Tip += "  (not run)"
		}
		g.Rows = append(g.Rows, row)
	}
	if a := r.Abort; a != nil && !a.Time().IsZero() {
		g.Abort = &point{X: x(a.Time()), Y: g.Plot.Y, Tip: "abort " + offset(r.StartedAt, a.Time())}
	}
	return g
}

// faultPhaseStart is where the planned timeline is counted from: the
// start of the earliest step that ran, less its planned offset. Zero
// when no step ran.
func (r *Report) faultPhaseStart() time.Time {
	var t time.Time
	for _, st := range r.Steps {
		if st.Start.IsZero() {
			continue
		}
		if s := st.Start.Add(-st.PlannedStart); t.IsZero() || s.Before(t) {
			t = s
		}
	}
	return t
}
