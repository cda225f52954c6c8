package statuspage

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"time"
)

var (
	//go:embed page.html.tmpl
	pageHTML string
	//go:embed style.css
	styleCSS string
	//go:embed countdown.js
	countdownJS string
)

// csp allows the one embedded script by its hash, inline styles (the
// bars' widths), and nothing else: no request leaves the page.
var csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-" + hash(countdownJS) +
	"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"dur":       human,
	"countdown": countdown,
	"ts":        stamp,
	"clock":     func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"pct":       func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"ms":        func(d time.Duration) int64 { return d.Milliseconds() },
	"seconds":   func(d time.Duration) int64 { return int64(d.Round(time.Second) / time.Second) },
	"until":     func(now, t time.Time) time.Duration { return t.Sub(now) },
	"since":     func(now, t time.Time) time.Duration { return now.Sub(t) },
	"plural": func(n int, word string) string {
		if n == 1 {
			return "1 " + word
		}
		return strconv.Itoa(n) + " " + word + "s"
	},
	"css": func() template.CSS { return template.CSS(styleCSS) },
	"js":  func() template.JS { return template.JS(countdownJS) },
}).Parse(pageHTML))

// Render writes v as the page's HTML.
func Render(w io.Writer, v View) error {
	return page.Execute(w, v)
}

// stamp formats t in UTC to the second; "—" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// human formats d by its two largest units: 90d, 12d 3h, 3h 5m, 4m 5s, 12s.
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	if d < time.Second {
		return "0s"
	}
	d = d.Round(time.Second)
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	hours, d := d/time.Hour, d%time.Hour
	mins, d := d/time.Minute, d%time.Minute
	secs := d / time.Second
	units := []struct {
		n    time.Duration
		unit string
	}{{days, "d"}, {hours, "h"}, {mins, "m"}, {secs, "s"}}
	for i, u := range units {
		if u.n == 0 {
			continue
		}
		s := fmt.Sprintf("%d%s", u.n, u.unit)
		if i+1 < len(units) && units[i+1].n != 0 {
			s += fmt.Sprintf(" %d%s", units[i+1].n, units[i+1].unit)
		}
		return s
	}
	return "0s"
}

// countdown formats what is left of a monitoring window as countdown.js
// does: 1h 02m 03s, 9m 05s, 42s.
func countdown(d time.Duration) string {
	s := int64(max(d, 0)+time.Second-1) / int64(time.Second) // round up, as the script does
	h, m := s/3600, s/60%60
	s %= 60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh %02dm %02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm %02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}
