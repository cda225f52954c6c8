package human

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * day: "90d", 36 * time.Hour: "1d12h", 90 * time.Minute: "1h30m", 10 * time.Minute: "10m", 30 * time.Second: "30s",
		500 * time.Millisecond: "500ms", 0: "0s", 2 * time.Hour: "2h", -time.Minute: "-1m",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestAbout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		89*day + 5*time.Hour: "89d", 2*day + 13*time.Hour: "3d", 36*time.Hour + 20*time.Second: "1d12h",
		5*time.Hour + 29*time.Minute + 40*time.Second: "5h30m", 12*time.Minute + 10*time.Second: "12m", 42 * time.Second: "42s",
		-3 * day: "-3d",
	} {
		if got := About(d); got != want {
			t.Errorf("About(%v) = %q, want %q", d, got, want)
		}
	}
}
