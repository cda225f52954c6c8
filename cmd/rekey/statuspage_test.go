package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The daemon serves the status page on daemon.listen: the rotation in
// flight with its live monitoring countdown, then the finished rotation
// with the new key's ID and its age against rotate_every, and never a key
// value.
func TestDaemonStatusPage(t *testing.T) {
	d := newDaemonEnv(t)
	r := d.start()
	d.sleeping(1) // the first rotation, asleep in its monitoring window

	page := func() string {
		t.Helper()
		code, body := r.get("/")
		if code != 200 {
			t.Fatalf("GET /: %d %s", code, body)
		}
		if leaks := d.Seen.Leaks(body); len(leaks) > 0 {
			t.Fatalf("the status page holds %d key values", len(leaks))
		}
		return body
	}
	d.InFile() // the new key, now in the sink, is a value the page must not hold
	body := page()
	for _, want := range []string{
		`data-credential="prod"`,
		`<span class="badge phase monitoring">monitoring</span>`,
		`data-left-ms="60000" data-window-ms="60000"`, // the 1m window, the fake clock not yet moved
		`1 probe passed, 0 failed`,
		`not rotated by rekey yet`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page during monitoring lacks %q:\n%s", want, body)
		}
	}

	d.untilPhase("done", 1, 1)
	d.sleeping(1)
	newKey := d.KeyByPrefix(t, d.InFile())
	d.clock.Advance(9 * 24 * time.Hour) // a tenth of rotate_every 90d
	body = page()
	for _, want := range []string{
		`<code class="key-id">` + newKey.ID + `</code>`,
		`<span class="badge done">done</span>`,
		`data-percent="10.0"`,
		`<b>9d</b> of 90d`,
		`<code>` + d.First.ID + `</code> → <code>` + newKey.ID + `</code>`, // the timeline
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page after the rotation lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `class="countdown"`) {
		t.Error("a countdown after the rotation finished")
	}

	// A reload's rotate_every is the bar's new measure.
	cfg, err := os.ReadFile(d.Config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, d.Config, strings.Replace(string(cfg), "rotate_every: 90d", "rotate_every: 30d", 1))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return strings.Contains(page(), `<b>9d</b> of 30d · 30.0%`) }) {
		t.Errorf("page after reload to rotate_every 30d:\n%s", page())
	}
}
