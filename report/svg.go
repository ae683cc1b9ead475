package report

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The page's plots are drawn here as inline SVG: horizontal bar charts,
// histograms, stacked bars and the timeline. Text is measured by an
// estimate of 7 pixels a character at 12px, enough to lay out labels.
//
// Not gonum.org/v1/plot: a program drawing one bar chart to SVG with it
// (v0.17.0) is 11.2 MB against 2.1 MB without, and it brings eight more
// modules (fonts, LaTeX, PDF, freetype, image); it has no timeline plot, so
// that one would be drawn by hand anyway.

// palette holds the colours of series, stages and outcomes.
var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

const (
	colorKept     = "#59a14f"
	colorRejected = "#e15759"
	colorSkipped  = "#bab0ac"
	colorBar      = "#4e79a7"
	plotWidth     = 520
	// timelineWidth is the timeline's width: the page's.
	timelineWidth = 1060
	charWidth     = 7
)

func esc(s string) string { return html.EscapeString(s) }

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// svgOpen starts an SVG element named plot (data-plot, for tests and
// style) with a title.
func svgOpen(b *strings.Builder, plot, title string, w, h int) {
	fmt.Fprintf(b, `<svg class="plot" data-plot="%s" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`,
		esc(plot), esc(title), w, h, w, h)
	fmt.Fprintf(b, `<text x="4" y="16" font-weight="bold" font-size="13">%s</text>`, esc(title))
}

// labelWidth is the pixels the longest label takes (capped).
func labelWidth(labels []string) int {
	w := 40
	for _, l := range labels {
		w = max(w, len([]rune(l))*charWidth+10)
	}
	return min(w, 260)
}

func clip(s string, px int) string {
	r := []rune(s)
	if n := px / charWidth; len(r) > n && n > 1 {
		return string(r[:n-1]) + "…"
	}
	return s
}

// barChart draws one horizontal bar per counter, its value after it.
func barChart(plot, title string, bars []Counter) string {
	labels := make([]string, len(bars))
	var top float64
	for i, c := range bars {
		labels[i] = c.Name
		top = max(top, c.Value)
	}
	lw := labelWidth(labels)
	const row = 22
	h := 30 + row*len(bars) + 8
	var b strings.Builder
	svgOpen(&b, plot, title, plotWidth, h)
	avail := float64(plotWidth - lw - 60)
	for i, c := range bars {
		y := 28 + i*row
		w := 0.0
		if top > 0 {
			w = avail * c.Value / top
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, lw-6, y+14, esc(clip(c.Name, lw-10)))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`, lw, y+2, max(w, 1), row-6, colorBar, esc(c.Name), num(c.Value))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`, float64(lw)+w+4, y+14, num(c.Value))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// Segment is one part of a stacked bar.
type Segment struct {
	Label string
	Value float64
	Color string
}

// StackedBar is one row of a stacked bar chart.
type StackedBar struct {
	Label    string
	Segments []Segment
}

// stackedChart draws one horizontal bar per row made of its segments, with
// a legend of the segment labels.
func stackedChart(plot, title string, rows []StackedBar) string {
	labels := make([]string, len(rows))
	var top float64
	legend := []Segment{}
	for i, r := range rows {
		labels[i] = r.Label
		var sum float64
		for _, s := range r.Segments {
			sum += s.Value
			if !slices.ContainsFunc(legend, func(l Segment) bool { return l.Label == s.Label }) {
				legend = append(legend, s)
			}
		}
		top = max(top, sum)
	}
	lw := labelWidth(labels)
	const row = 22
	h := 30 + row*len(rows) + 30
	var b strings.Builder
	svgOpen(&b, plot, title, plotWidth, h)
	avail := float64(plotWidth - lw - 90)
	for i, r := range rows {
		y := 28 + i*row
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, lw-6, y+14, esc(clip(r.Label, lw-10)))
		x := float64(lw)
		var parts []string
		for _, s := range r.Segments {
			if s.Value <= 0 || top == 0 {
				continue
			}
			w := avail * s.Value / top
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %s</title></rect>`, x, y+2, w, row-6, s.Color, esc(r.Label), esc(s.Label), num(s.Value))
			x += w
			parts = append(parts, num(s.Value))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`, x+4, y+14, esc(strings.Join(parts, " / ")))
	}
	x := lw
	ly := 28 + row*len(rows) + 12
	for _, s := range legend {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`, x, ly, s.Color, x+16, ly+10, esc(s.Label))
		x += 16 + len([]rune(s.Label))*charWidth + 14
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// histogram draws the distribution of values: one bin per integer when
// they span at most 25, else 20 bins of equal width.
func histogram(plot, title, unit string, values []int64) string {
	var b strings.Builder
	const h = 200
	svgOpen(&b, plot, title, plotWidth, h)
	if len(values) == 0 {
		b.WriteString(`<text x="4" y="40">no values</text></svg>`)
		return b.String()
	}
	lo, hi := slices.Min(values), slices.Max(values)
	width := int64(1)
	if hi-lo+1 > 25 {
		width = (hi - lo + 20) / 20
	}
	nbins := int((hi-lo)/width) + 1
	bins := make([]int, nbins)
	for _, v := range values {
		bins[(v-lo)/width]++
	}
	top := slices.Max(bins)
	const left, bottom, topPad = 40, 36, 40
	plotH := float64(h - bottom - topPad)
	bw := float64(plotWidth-left-10) / float64(nbins)
	for i, n := range bins {
		x := float64(left) + float64(i)*bw
		bh := plotH * float64(n) / float64(top)
		from := lo + int64(i)*width
		label := strconv.FormatInt(from, 10)
		if width > 1 {
			label += "–" + strconv.FormatInt(from+width-1, 10)
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
			x+1, float64(h-bottom)-bh, max(bw-2, 1), bh, colorBar, esc(label), esc(unit), n)
		if n > 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%d</text>`, x+bw/2, float64(h-bottom)-bh-3, n)
		}
		if nbins <= 12 || i%((nbins+9)/10) == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>`, x+bw/2, h-bottom+14, esc(label))
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, left, h-bottom, plotWidth-10, h-bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">%s (n=%d)</text>`, plotWidth/2, h-4, esc(unit), len(values))
	b.WriteString(`</svg>`)
	return b.String()
}

// rateChart draws one bar per rate on a 0–100% scale.
func rateChart(plot, title string, rates []Rate) string {
	labels := make([]string, len(rates))
	for i, r := range rates {
		labels[i] = r.Name
	}
	lw := labelWidth(labels)
	const row = 22
	h := 30 + row*len(rates) + 8
	var b strings.Builder
	svgOpen(&b, plot, title, plotWidth, h)
	avail := float64(plotWidth - lw - 130)
	for i, r := range rates {
		y := 28 + i*row
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, lw-6, y+14, esc(clip(r.Name, lw-10)))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#eee"/>`, lw, y+2, avail, row-6)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, lw, y+2, avail*r.Percent()/100, row-6, colorKept)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%d of %d (%.0f%%)</text>`, float64(lw)+avail+6, y+14, r.Part, r.Of, r.Percent())
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// timelineChart draws the nodes that ran as bars over time, one band per
// pool, each band as many rows as nodes ran side by side in it, coloured
// by stage.
func timelineChart(plot, title string, nodes []TimedNode, stageOrder []string, seconds float64) string {
	color := map[string]string{}
	for i, s := range stageOrder {
		color[s] = palette[i%len(palette)]
	}
	var pools []string
	for _, n := range nodes {
		if !slices.Contains(pools, n.Pool) {
			pools = append(pools, n.Pool)
		}
	}
	slices.Sort(pools)
	// Rows per pool: a node goes in the first row free at its start.
	type placed struct {
		n   TimedNode
		row int
	}
	var bands [][]placed
	rowsOf := make([]int, len(pools))
	for pi, pool := range pools {
		var ends []float64
		var band []placed
		for _, n := range nodes {
			if n.Pool != pool {
				continue
			}
			row := slices.IndexFunc(ends, func(e float64) bool { return e <= n.Start+1e-9 })
			if row < 0 {
				row = len(ends)
				ends = append(ends, 0)
			}
			ends[row] = n.Start + n.Seconds
			band = append(band, placed{n, row})
		}
		bands = append(bands, band)
		rowsOf[pi] = len(ends)
	}
	end := seconds
	for _, n := range nodes {
		end = max(end, n.Start+n.Seconds)
	}
	if end <= 0 {
		end = 1
	}
	lw := labelWidth(pools)
	rowH := 10.0
	total := 0
	for _, r := range rowsOf {
		total += r
	}
	if total > 60 {
		rowH = max(2, 600/float64(total))
	}
	const top = 30
	bandGap := 8.0
	plotH := float64(total)*rowH + float64(len(pools))*bandGap
	h := int(float64(top)+plotH) + 40 + 20*((len(stageOrder)+5)/6)
	var b strings.Builder
	svgOpen(&b, plot, title, timelineWidth, h)
	width := float64(timelineWidth - lw - 10)
	scale := width / end
	// Axis ticks.
	step := niceStep(end / 8)
	axisY := float64(top) + plotH
	for t := 0.0; t <= end+1e-9; t += step {
		x := float64(lw) + t*scale
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x, top, x, axisY)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%ss</text>`, x, axisY+12, num(math.Round(t*100)/100))
	}
	y := float64(top)
	for pi, pool := range pools {
		bandH := float64(rowsOf[pi]) * rowH
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, lw-6, y+min(bandH, 14)-2, esc(pool))
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#ccc"/>`, lw, y, width, bandH)
		for _, p := range bands[pi] {
			fill := color[p.n.Stage]
			if p.n.State == "failed" {
				fill = colorRejected
			}
			fmt.Fprintf(&b, `<rect class="node" x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="%s"><title>%s (%s) %ss from %ss</title></rect>`,
				float64(lw)+p.n.Start*scale, y+float64(p.row)*rowH+0.5, max(p.n.Seconds*scale, 0.8), max(rowH-1, 1), fill,
				esc(p.n.ID), esc(p.n.State), num(math.Round(p.n.Seconds*100)/100), num(math.Round(p.n.Start*100)/100))
		}
		y += bandH + bandGap
	}
	// Legend: stages.
	ly := axisY + 24
	for i, s := range stageOrder {
		x := float64(lw) + float64(i%6)*140
		yy := ly + float64(i/6)*20
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`, x, yy, color[s], x+16, yy+10, esc(clip(s, 120)))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
