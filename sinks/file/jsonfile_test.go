package file

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestSetJSON(t *testing.T) {
	const v = "avk_live_NEW<&>"
	cases := []struct{ name, in, want string }{
		{"Blank", "", "{\n  \"K\": \"avk_live_NEW<&>\"\n}\n"},
		{"EmptyObject", "{}", "{\n  \"K\": \"avk_live_NEW<&>\"\n}"},
		{"ReplaceKeepsOrderAndFormat",
			"{\n  \"z\": 1,\n  \"K\": \"old\",\n  \"a\": [1, 2]\n}\n",
			"{\n  \"z\": 1,\n  \"K\": \"avk_live_NEW<&>\",\n  \"a\": [1, 2]\n}\n"},
		{"ReplaceCompact", `{"z":1,"K":"old","a":{"b":"c"}}`, `{"z":1,"K":"avk_live_NEW<&>","a":{"b":"c"}}`},
		{"ReplaceNonString", `{"K": null, "n": 1e3}`, `{"K": "avk_live_NEW<&>", "n": 1e3}`},
		{"ReplaceNumberLast", `{"K": 12 }`, `{"K": "avk_live_NEW<&>" }`},
		{"AppendIndented",
			"{\n    \"z\": 1,\n    \"a\": {\"K\": \"nested\"}\n}\n",
			"{\n    \"z\": 1,\n    \"a\": {\"K\": \"nested\"},\n    \"K\": \"avk_live_NEW<&>\"\n}\n"},
		{"AppendCompact", `{"z":1}`, `{"z":1,"K":"avk_live_NEW<&>"}`},
		{"DuplicateReplacesLast", `{"K":"a","x":0,"K":"b"}`, `{"K":"a","x":0,"K":"avk_live_NEW<&>"}`},
		{"EscapedKeyMatches", `{"\u004b":"old"}`, `{"\u004b":"avk_live_NEW<&>"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := setJSON([]byte(tc.in), "K", v)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Fatalf("got  %q\nwant %q", out, tc.want)
			}
			if !json.Valid(out) {
				t.Fatalf("output is not valid JSON")
			}
			got, ok, err := getJSON(out, "K")
			if err != nil || !ok || got != v {
				t.Fatalf("read back %q %v %v", got, ok, err)
			}
		})
	}
}

func TestJSONKeepsOtherFieldsInOrder(t *testing.T) {
	in := `{"b": 1, "a": "x", "c": {"d": [true, null]}, "K": "old", "e": "\u00e9"}`
	out, err := setJSON([]byte(in), "K", "new")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var order []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, _ := dec.Token()
		order = append(order, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(order, ","); got != "b,a,c,K,e" {
		t.Errorf("field order %s, want b,a,c,K,e", got)
	}
}

func TestParseJSONRejects(t *testing.T) {
	for _, in := range []string{`[]`, `"s"`, `1`, `null`, `{"a":}`, `{"a":1`, `{"a":1} x`, `{`} {
		if _, err := parseJSON([]byte(in)); err == nil {
			t.Errorf("parseJSON(%q) succeeded", in)
		}
	}
}
