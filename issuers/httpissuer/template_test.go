package httpissuer

import (
	"encoding/json"
	"net/url"
	"testing"
	"unicode/utf8"
)

// FuzzTemplates: whatever the label, a body carries it intact as one JSON
// string (no injection of fields), and a path carries it as one segment.
func FuzzTemplates(f *testing.F) {
	for _, s := range []string{"plain", `a"b`, `\`, "{{label}}", "a/b?c#d", "\u2028", "x\", \"admin\": true, \"y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, label string) {
		if !utf8.ValidString(label) {
			return
		}
		b, err := renderBody(`{"name": "{{label}}"}`, map[string]string{"label": label})
		if err != nil {
			t.Fatalf("renderBody: %v", err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil || len(got) != 1 || got["name"] != label {
			t.Fatalf("body %s does not carry the label alone (%v)", b, err)
		}
		p := renderPath("/keys/{{label}}", map[string]string{"label": label})
		seg, err := url.PathUnescape(p[len("/keys/"):])
		if err != nil || seg != label {
			t.Fatalf("path %q does not carry the label as one segment", p)
		}
	})
}
