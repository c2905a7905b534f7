package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ErrNothingToPlot is returned when a report has no measured row.
var ErrNothingToPlot = errors.New("no measured row to plot")

// WritePlot draws the report into path (.png or .svg, by extension): on
// the left items/s against batch size, one line per device; on the right
// each row's batch time split by stage, in percent.
func WritePlot(path string, r *Report) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "png" && format != "svg" {
		return fmt.Errorf("plot %s: want a .png or .svg file name", path)
	}
	var measured []Row
	for _, row := range r.Rows {
		if row.Missing == "" {
			measured = append(measured, row)
		}
	}
	if len(measured) == 0 {
		return fmt.Errorf("plot %s: %w", path, ErrNothingToPlot)
	}
	left, err := throughputPlot(r, measured)
	if err == nil {
		for _, dev := range missingDevices(r) {
			left.Legend.Add(dev + ": not measured (see report)")
		}
	}
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	right, err := stagePlot(measured)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	c, err := draw.NewFormattedCanvas(28*vg.Centimeter, 11*vg.Centimeter, format)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}

func throughputPlot(r *Report, rows []Row) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s pipeline: items/s by batch size", r.Pipeline)
	p.X.Label.Text = "batch size (items)"
	p.Y.Label.Text = "items/s (median of windows)"
	p.X.Scale = plot.LogScale{}
	p.Y.Min = 0
	p.Legend.Top = false // bottom right: lines rise with batch size, so it is usually free
	p.Legend.Left = false
	p.Legend.YOffs = vg.Millimeter * 3
	var devices []string
	var batches []int
	for _, row := range rows {
		if !slices.Contains(devices, row.Device) {
			devices = append(devices, row.Device)
		}
		if !slices.Contains(batches, row.Batch) {
			batches = append(batches, row.Batch)
		}
	}
	slices.Sort(batches)
	var ticks plot.ConstantTicks
	for _, b := range batches {
		ticks = append(ticks, plot.Tick{Value: float64(b), Label: strconv.Itoa(b)})
	}
	p.X.Tick.Marker = ticks
	if len(batches) == 1 { // a log axis needs a range
		p.X.Min, p.X.Max = float64(batches[0])/2, float64(batches[0])*2
	}
	for i, dev := range devices {
		var pts plotter.XYs
		var errs plotter.YErrors
		for _, row := range rows {
			if row.Device == dev {
				pts = append(pts, plotter.XY{X: float64(row.Batch), Y: row.ItemsPerS})
				s := row.ItemsPerSStats
				errs = append(errs, struct{ Low, High float64 }{s.Median - s.Min, s.Max - s.Median})
			}
		}
		line, scatter, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		scatter.Color = plotutil.Color(i)
		scatter.Shape = plotutil.Shape(i)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.Color(i)
		p.Add(line, scatter, bars)
		p.Legend.Add(dev, line, scatter)
	}
	return p, nil
}

func stagePlot(rows []Row) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "where a batch's time goes"
	p.Y.Label.Text = "share of batch time (%)"
	p.Y.Min, p.Y.Max = 0, 125 // room above the bars for the legend
	p.Legend.Top = true
	p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 25, Label: "25"}, {Value: 50, Label: "50"}, {Value: 75, Label: "75"}, {Value: 100, Label: "100"}}
	var names []string
	var labels []string
	for _, row := range rows {
		labels = append(labels, fmt.Sprintf("%s\n%d", row.Device, row.Batch))
		for _, s := range row.Stages {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	width := vg.Points(max(6, 200/float64(len(rows))))
	var below *plotter.BarChart
	for i, name := range names {
		vals := make(plotter.Values, len(rows))
		for j, row := range rows {
			for _, s := range row.Stages {
				if s.Name == name {
					vals[j] = s.Share
				}
			}
		}
		bc, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		bc.Color = plotutil.Color(i + 2)
		bc.LineStyle.Width = 0
		if below != nil {
			bc.StackOn(below)
		}
		below = bc
		p.Add(bc)
		p.Legend.Add(name, bc)
	}
	p.NominalX(labels...)
	return p, nil
}

// missingDevices are the devices with no measured row.
func missingDevices(r *Report) []string {
	var out []string
	for _, row := range r.Rows {
		if row.Missing != "" && !slices.Contains(out, row.Device) && !slices.ContainsFunc(r.Rows, func(o Row) bool { return o.Device == row.Device && o.Missing == "" }) {
			out = append(out, row.Device)
		}
	}
	return out
}
