package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// percentiles are the curves of the chart.
var percentiles = []struct{ name, key string }{{"p50", "p50_ms"}, {"p90", "p90_ms"}, {"p99", "p99_ms"}}

// writeChart draws the two sweeps side by side into one PNG: p50, p90 and
// p99 end-to-end latency against offered load, and against Subscriptions,
// both axes logarithmic, the same latency scale on both, with the 50 ms p99
// target of issue 6.
func writeChart(path string, load, subs sweep) error {
	lo, hi := math.Inf(1), float64(targetDeliveryP99)
	for _, s := range []sweep{load, subs} {
		for _, pt := range s.points {
			for _, q := range percentiles {
				if v, ok := pt.line.num(q.key); ok {
					v = math.Max(v, floorMS)
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo = 1
	}
	// Headroom above the highest curve for the legend.
	yMin, yMax := lo/1.5, hi*5
	var plots []*plot.Plot
	if len(load.points) > 0 {
		p, err := sweepPlot(load, fmt.Sprintf("Against offered load (%s Subscriptions)", num(load.fixed, 0)),
			"offered load (writes/s, open loop; log scale)", yMin, yMax)
		if err != nil {
			return err
		}
		plots = append(plots, p)
	}
	if len(subs.points) > 0 {
		p, err := sweepPlot(subs, fmt.Sprintf("Against Subscriptions (%s writes/s)", num(subs.fixed, 0)),
			"Subscriptions (each write matches one; log scale)", yMin, yMax)
		if err != nil {
			return err
		}
		plots = append(plots, p)
	}
	const panelW, h = 6.5 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(panelW*vg.Length(len(plots)), h), vgimg.UseDPI(110))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(24),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(14)}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// floorMS keeps a zero latency (every event early) drawable on a log scale.
const floorMS = 0.01

func sweepPlot(s sweep, title, xLabel string, yMin, yMax float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "End-to-end latency, write accepted → notification received\n" + title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "latency (ms, log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(30)
	p.Add(plotter.NewGrid())

	var xTicks plot.ConstantTicks
	for _, pt := range s.points {
		xTicks = append(xTicks, plot.Tick{Value: pt.x, Label: strconv.FormatFloat(pt.x, 'f', -1, 64)})
	}
	for i, q := range percentiles {
		var xys plotter.XYs
		for _, pt := range s.points {
			v, ok := pt.line.num(q.key)
			if !ok {
				continue
			}
			xys = append(xys, plotter.XY{X: pt.x, Y: math.Max(v, floorMS)})
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(q.name, line, points)
	}
	x0, x1 := s.points[0].x, s.points[len(s.points)-1].x
	p.X.Min, p.X.Max = x0/1.25, x1*1.25
	p.X.Tick.Marker = xTicks
	p.Y.Min, p.Y.Max = yMin, yMax
	p.Y.Tick.Marker = ticks125{}

	target, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: targetDeliveryP99}, {X: p.X.Max, Y: targetDeliveryP99}})
	if err != nil {
		return nil, err
	}
	target.Color = color.Gray{Y: 110}
	target.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	p.Add(target)
	p.Legend.Add(fmt.Sprintf("issue 6 p99 target, %d ms (200 writes/s, 100 Subscriptions)", targetDeliveryP99), target)
	return p, nil
}

// ticks125 labels 1, 2 and 5 times the powers of ten on a log axis, with
// unlabelled ticks at the other multiples.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		base := math.Pow(10, e)
		for m := 1; m < 10; m++ {
			v := math.Round(float64(m)*base*1e6) / 1e6 // 3 × 0.1 is 0.30000000000000004
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ts = append(ts, t)
		}
	}
	return ts
}
