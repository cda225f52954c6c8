package config

import (
	"encoding/json"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"30s", 30 * time.Second},
		{"10m", 10 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"90d", 90 * day},
		{"1d12h", 36 * time.Hour},
		{"2w", 14 * day},
		{"1w2d", 9 * day},
		{"500ms", 500 * time.Millisecond},
		{"0", 0},
		{"1.5h", 90 * time.Minute},
	} {
		var d Duration
		if err := yaml.Unmarshal([]byte("v: "+tc.in), &struct {
			V *Duration `yaml:"v"`
		}{&d}); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if d.Std() != tc.want {
			t.Errorf("%q = %v, want %v", tc.in, d.Std(), tc.want)
		}
	}
	for _, in := range []string{"90", "90x", "d", "", "1y", "ten minutes", "9999999999999w"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{90 * day, "90d"},
		{36 * time.Hour, "1d12h"},
		{90 * time.Minute, "1h30m"},
		{2 * time.Hour, "2h"},
		{30 * time.Second, "30s"},
		{day + time.Minute, "1d1m"},
		{500 * time.Millisecond, "500ms"},
		{-36 * time.Hour, "-1d12h"},
	} {
		got := Duration(tc.d).String()
		if got != tc.want {
			t.Errorf("String(%v) = %q, want %q", tc.d, got, tc.want)
		}
		// Every printed form parses back to the same duration.
		back, err := ParseDuration(got)
		if err != nil || back.Std() != tc.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back.Std(), err, tc.d)
		}
	}
}

func TestDurationMarshal(t *testing.T) {
	v := struct {
		D Duration `yaml:"d" json:"d"`
	}{Duration(36 * time.Hour)}
	y, err := yaml.Marshal(v)
	if err != nil || string(y) != "d: 1d12h\n" {
		t.Errorf("yaml = %q, %v", y, err)
	}
	j, err := json.Marshal(v)
	if err != nil || string(j) != `{"d":"1d12h"}` {
		t.Errorf("json = %s, %v", j, err)
	}
	var back struct {
		D Duration `json:"d"`
	}
	if err := json.Unmarshal(j, &back); err != nil || back.D != v.D {
		t.Errorf("json round trip = %v, %v", back.D, err)
	}
}
