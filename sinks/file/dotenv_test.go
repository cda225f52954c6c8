package file

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSetDotenv(t *testing.T) {
	const v = "avk_live_NEW123"
	cases := []struct {
		name, in, want string
	}{
		{"EmptyFile", "", "K=avk_live_NEW123\n"},
		{"Append", "A=1\n", "A=1\nK=avk_live_NEW123\n"},
		{"AppendNoFinalNewline", "A=1", "A=1\nK=avk_live_NEW123\n"},
		{"AppendAfterComment", "# only a comment", "# only a comment\nK=avk_live_NEW123\n"},
		{"AppendCRLF", "A=1\r\nB=2\r\n", "A=1\r\nB=2\r\nK=avk_live_NEW123\r\n"},
		{"AppendCRLFNoFinalNewline", "A=1\r\nB=2", "A=1\r\nB=2\r\nK=avk_live_NEW123\r\n"},
		{"AppendAfterBareCR", "A=1\r", "A=1\r\nK=avk_live_NEW123\n"},
		{"Replace", "A=1\nK=old\nB=2\n", "A=1\nK=avk_live_NEW123\nB=2\n"},
		{"ReplaceCRLF", "A=1\r\nK=old\r\nB=2\r\n", "A=1\r\nK=avk_live_NEW123\r\nB=2\r\n"},
		{"ReplaceNoFinalNewline", "A=1\nK=old", "A=1\nK=avk_live_NEW123"},
		{"KeepExport", "export K=old\n", "export K=avk_live_NEW123\n"},
		{"KeepExportAndIndent", "  export\tK=old # note\n", "  export\tK=avk_live_NEW123 # note\n"},
		{"KeepInlineComment", "K=old # rotated by rekey\n", "K=avk_live_NEW123 # rotated by rekey\n"},
		{"HashInsideUnquoted", "K=old#not-a-comment\n", "K=avk_live_NEW123\n"},
		{"KeepDoubleQuotes", "K=\"old\"\n", "K=\"avk_live_NEW123\"\n"},
		{"KeepSingleQuotes", "K='old' # c\n", "K='avk_live_NEW123' # c\n"},
		{"SpacesAroundEquals", "K = old\n", "K = avk_live_NEW123\n"},
		{"EmptyValue", "K=\nA=1\n", "K=avk_live_NEW123\nA=1\n"},
		{"EmptyValueThenComment", "K= # fill me\n", "K=avk_live_NEW123 # fill me\n"},
		{"EmptyValueCRLF", "K=\r\n", "K=avk_live_NEW123\r\n"},
		{"DuplicateSetsEvery", "K=first\nA=1\nexport K='second' # c\nB=2\nK=\"third\"", "K=avk_live_NEW123\nA=1\nexport K='avk_live_NEW123' # c\nB=2\nK=\"avk_live_NEW123\""},
		{"DuplicateMultiline", "K=\"a\nb\"\nK=x\n", "K=\"avk_live_NEW123\"\nK=avk_live_NEW123\n"},
		{"BOMKept", "\xEF\xBB\xBFK=old\nA=1\n", "\xEF\xBB\xBFK=avk_live_NEW123\nA=1\n"},
		{"BOMKeptCRLF", "\xEF\xBB\xBFexport K=old\r\n", "\xEF\xBB\xBFexport K=avk_live_NEW123\r\n"},
		{"BOMAppend", "\xEF\xBB\xBFA=1\n", "\xEF\xBB\xBFA=1\nK=avk_live_NEW123\n"},
		{"BOMOnly", "\xEF\xBB\xBF", "\xEF\xBB\xBFK=avk_live_NEW123\n"},
		{"CommentedOutIgnored", "# K=old\n", "# K=old\nK=avk_live_NEW123\n"},
		{"PrefixKeyIgnored", "KEY=1\nK_2=2\n", "KEY=1\nK_2=2\nK=avk_live_NEW123\n"},
		{"MultilineValueReplaced", "K=\"line1\nline2\"\nA=1\n", "K=\"avk_live_NEW123\"\nA=1\n"},
		{"AssignmentInsideOtherValue", "A='x\nK=inside\n'\n", "A='x\nK=inside\n'\nK=avk_live_NEW123\n"},
		{"OpaqueLinesKept", "[section]\nnot an assignment\nK\n", "[section]\nnot an assignment\nK\nK=avk_live_NEW123\n"},
		{"BlankLinesKept", "\n\nK=old\n\n", "\n\nK=avk_live_NEW123\n\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := setDotenv([]byte(tc.in), "K", v)
			if err != nil {
				t.Fatalf("setDotenv: %v", err)
			}
			if string(out) != tc.want {
				t.Fatalf("got  %q\nwant %q", out, tc.want)
			}
			as, err := parseDotenv(out)
			if err != nil {
				t.Fatalf("reparse: %v", err)
			}
			if got, ok, err := getDotenv(as, "K"); !ok || err != nil || got != v {
				t.Fatalf("reparsed K = %q (found %v, %v)", got, ok, err)
			}
		})
	}
}

func TestGetDotenvDuplicates(t *testing.T) {
	as, err := parseDotenv([]byte("K=same\nA=1\nexport K='same'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := getDotenv(as, "K"); v != "same" || !ok || err != nil {
		t.Errorf("agreeing duplicates: %q, %v, %v", v, ok, err)
	}
	as, err = parseDotenv([]byte("K=avk_live_one\nA=1\nK=avk_live_two\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = getDotenv(as, "K")
	if !errors.Is(err, errDisagree) || err.Error() != "K is assigned on lines 1, 3 and the assignments disagree; a Put sets them all" {
		t.Errorf("disagreeing duplicates: %v", err)
	}
}

func TestParseDotenvBOM(t *testing.T) {
	as, err := parseDotenv([]byte("\xEF\xBB\xBFK=v\nB=2\n"))
	if err != nil || len(as) != 2 || as[0].key != "K" || as[0].value != "v" || as[0].line != 1 {
		t.Fatalf("parsed %+v, %v; want K=v first, on line 1", as, err)
	}
}

func TestParseDotenv(t *testing.T) {
	in := strings.Join([]string{
		"# comment",
		"PLAIN=abc",
		"export EXPORTED=e1",
		"SPACED = s1   ",
		"COMMENTED=c1 # trailing",
		"HASH=a#b",
		"SINGLE='it''s'x",
	}, "\n")
	if _, err := parseDotenv([]byte(in)); err == nil {
		t.Fatalf("'it''s'x parsed: want an error for text after a quoted value")
	}
	in = strings.Join([]string{
		"# comment",
		"PLAIN=abc",
		"export EXPORTED=e1",
		"SPACED = s1   ",
		"COMMENTED=c1 # trailing",
		"HASH=a#b",
		`SINGLE='a "b" \n $c'`,
		`DOUBLE="q \"x\" \\ \$HOME \n\t \z"  # c`,
		"MULTI=\"one",
		"two\"",
		"CRLF=crlf\r",
		"export=notaprefix",
		"EMPTY=",
		"dotted.key=dk",
	}, "\n")
	as, err := parseDotenv([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PLAIN": "abc", "EXPORTED": "e1", "SPACED": "s1", "COMMENTED": "c1", "HASH": "a#b",
		"SINGLE": `a "b" \n $c`, "DOUBLE": "q \"x\" \\ $HOME \n\t \\z", "MULTI": "one\ntwo",
		"CRLF": "crlf", "export": "notaprefix", "EMPTY": "", "dotted.key": "dk",
	}
	got := map[string]string{}
	for _, a := range as {
		got[a.key] = a.value
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("parsed %d variables, want %d: %q", len(got), len(want), got)
	}
	if a, _ := lookupDotenv(as, "CRLF"); a.line != 11 {
		t.Errorf("CRLF is on line %d, want 11 (after a two-line value)", a.line)
	}
}

func TestQuoteDotenv(t *testing.T) {
	cases := []struct {
		value  string
		prefer byte
		want   string
	}{
		{"avk_live_abc", 0, "avk_live_abc"},
		{"a+b/c=", 0, "a+b/c="},
		{"has space", 0, `"has space"`},
		{"#lead", 0, `"#lead"`},
		{`q"$` + "`\\\n\r", 0, `"q\"\$` + "\\`" + `\\\n\r"`},
		{"it's", '\'', `"it's"`},
		{"plain", '\'', "'plain'"},
		{"plain", '"', `"plain"`},
		{"", 0, `""`},
	}
	for _, tc := range cases {
		if got := quoteDotenv(tc.value, tc.prefer); got != tc.want {
			t.Errorf("quoteDotenv(%q, %q) = %s, want %s", tc.value, tc.prefer, got, tc.want)
		}
		as, err := parseDotenv([]byte("K=" + quoteDotenv(tc.value, tc.prefer) + "\n"))
		if err != nil || len(as) != 1 || as[0].value != tc.value {
			t.Errorf("%q does not read back: %+v %v", tc.value, as, err)
		}
	}
}

func TestDotenvErrorsHoldNoText(t *testing.T) {
	_, err := parseDotenv([]byte("A=1\nB=\"avk_live_secret\n"))
	if err == nil || err.Error() != "line 2: unterminated quoted value" {
		t.Fatalf("err = %v", err)
	}
}

// FuzzDotenv: whatever file parses, setting a key yields a file that parses,
// holds the value set, and holds every other variable unchanged; setting the
// same value again changes nothing.
func FuzzDotenv(f *testing.F) {
	f.Add([]byte("A=1\nK=old\n"), 0, "avk_live_abc")
	f.Add([]byte("export K='x' # c\r\n"), 1, "with space")
	f.Add([]byte("K=\"a\nb\"\nB=2"), 0, "quote\"and$dollar\\")
	f.Add([]byte("\xEF\xBB\xBFK=1\nA=2\nK='3'\n"), 0, "dup")
	f.Fuzz(func(t *testing.T, data []byte, keyIdx int, value string) {
		keys := []string{"K", "A", "export", "KEY_2"}
		key := keys[(keyIdx%len(keys)+len(keys))%len(keys)]
		before, err := parseDotenv(data)
		if err != nil {
			return
		}
		out, err := setDotenv(data, key, value)
		if err != nil {
			t.Fatalf("set on a parsed file: %v", err)
		}
		after, err := parseDotenv(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		if got, ok, err := getDotenv(after, key); !ok || err != nil || got != value {
			t.Fatalf("%s = %q (found %v, %v), want %q at every assignment\n%q", key, got, ok, err, value, out)
		}
		if !bytes.Equal(bomOf(out), bomOf(data)) {
			t.Fatalf("byte order mark changed\n%q", out)
		}
		if b, a := others(before, key), others(after, key); !equalMaps(b, a) {
			t.Fatalf("other variables changed:\nbefore %q\nafter  %q\nfile %q", b, a, out)
		}
		again, err := setDotenv(out, key, value)
		if err != nil || string(again) != string(out) {
			t.Fatalf("setting the same value again changed the file: %v\n%q\n%q", err, out, again)
		}
	})
}

func others(as []assignment, skip string) map[string]string {
	m := map[string]string{}
	for _, a := range as {
		if a.key != skip {
			m[a.key] = a.value
		}
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
