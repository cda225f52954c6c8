package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole benchmark at 5 credentials with a 1 s idle and
// 20 rotations of history: every figure must complete and be reported.
func TestSmoke(t *testing.T) {
	o := defaultOptions()
	o.ns = []int{5}
	o.idle = time.Second
	o.history = 20
	o.reps = 1
	o.rotations = 2
	o.dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	rows, err := run(ctx, o, &out, &progress)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, progress.String(), out.String())
	}
	t.Log("\n" + out.String())
	want := []string{
		"rekey rotate, first rotation",
		"rekey rotate, later rotation",
		"rekey run, 5 credentials all due",
		"rekey run, 5 credentials: peak RSS",
		"rekey run, 5 credentials: TCP connections",
		"rekey daemon, 5 credentials all due: until all done",
		"rekey daemon, 5 credentials, idle 1s: CPU",
		"rekey history c00000, 1 credential with 22 rotations",
	}
	for _, w := range want {
		found := false
		for _, r := range rows {
			if strings.HasPrefix(r.figure, w) {
				found = true
				if r.measured == "" || r.measured == "did not complete" {
					t.Errorf("%s: %q", r.figure, r.measured)
				}
			}
		}
		if !found {
			t.Errorf("no figure %q in the report", w)
		}
	}
}
