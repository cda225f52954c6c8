// Package human formats durations and times as a person reads them in
// rekey's output: durations as a config writes them (90d, 1h30m, not
// 2160h0m0s) and times in UTC to the minute.
package human

import (
	"fmt"
	"strings"
	"time"
)

const day = 24 * time.Hour

// Duration prints d as a config would write it: whole days as "d", the
// rest as Go does without zero trailing units: 90d, 1d12h, 1h30m, 30s,
// 500ms. It is exact (config.Duration prints the same).
func Duration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	if d < 0 {
		if d == -d { // math.MinInt64 has no positive counterpart
			return d.String()
		}
		sign, d = "-", -d
	}
	out := sign
	if days := d / day; days > 0 {
		out += fmt.Sprintf("%dd", days)
	}
	if rest := d % day; rest > 0 {
		r := rest.String()
		if strings.HasSuffix(r, "m0s") {
			r = strings.TrimSuffix(r, "0s")
		}
		if strings.HasSuffix(r, "h0m") {
			r = strings.TrimSuffix(r, "0m")
		}
		out += r
	}
	return out
}

// About prints d rounded to what matters at its size: whole days from two
// days up (89d), hours and minutes from an hour (5h30m), minutes from a
// minute (12m), else seconds (42s).
func About(d time.Duration) string {
	if d < 0 {
		return "-" + About(-d)
	}
	switch {
	case d >= 2*day:
		return Duration(d.Round(day))
	case d >= time.Hour:
		return Duration(d.Round(time.Minute))
	case d >= time.Minute:
		return Duration(d.Round(time.Minute))
	}
	return Duration(d.Round(time.Second))
}

// Time prints t in UTC to the minute: 2027-03-01 03:04 UTC.
func Time(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
