package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/xhit/go-str2duration/v2"
	"go.yaml.in/yaml/v3"
)

const day = 24 * time.Hour

// ParseDuration parses a Go duration extended with days ("d") and weeks
// ("w"), in any combination: "90d", "1d12h", "2w", "30s".
func ParseDuration(s string) (Duration, error) {
	d, err := str2duration.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 30s, 10m, 12h, 90d, 1d12h)", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML accepts a duration string such as "90d" or "1h30m". A bare
// 0 is zero; other numbers without a unit are errors.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as 30s or 90d, got %s", describe(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML prints d as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText parses like UnmarshalYAML, for flags and environment values.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText prints d as String does; JSON output uses it too.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String prints whole days as "d" and the rest as Go does, without zero
// trailing units: 90d, 1d12h, 1h30m, 30s, 500ms.
func (d Duration) String() string {
	v := time.Duration(d)
	if v == 0 {
		return "0s"
	}
	sign := ""
	if v < 0 {
		if v == -v { // math.MinInt64 has no positive counterpart
			return v.String()
		}
		sign, v = "-", -v
	}
	days := v / day
	rest := v % day
	out := sign
	if days > 0 {
		out += fmt.Sprintf("%dd", days)
	}
	if rest > 0 {
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
