package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotation"
)

func TestProgressOnTerminalAndPipe(t *testing.T) {
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	events := []rotation.Event{
		{Time: at, Credential: "prod", RotationID: "abcd1234", Phase: rotation.Deployed, Sink: "file:/etc/app.env#K", Msg: "written"},
		{Time: at, Credential: "prod", RotationID: "abcd1234", Phase: rotation.Monitoring, Probe: &rotation.Probe{Passed: 1, Left: 9*time.Minute + 30*time.Second}},
		{Time: at, Credential: "prod", RotationID: "abcd1234", Phase: rotation.Monitoring, Probe: &rotation.Probe{Passed: 1, Failed: 1, Left: 9 * time.Minute, Err: errors.New("503")}},
		{Time: at, Credential: "prod", RotationID: "abcd1234", Phase: rotation.Revoking, Transition: true},
	}
	for _, tty := range []bool{true, false} {
		var out bytes.Buffer
		a := &app{stdout: &out, terminal: &tty}
		p := a.progress(outputTable)
		for _, ev := range events {
			p(ev)
		}
		got := out.String()
		if !strings.Contains(got, "[file:/etc/app.env#K] written") || !strings.Contains(got, "abcd1234 revoking") {
			t.Errorf("tty=%v: missing per-sink or phase lines:\n%q", tty, got)
		}
		live := strings.Contains(got, "\r\033[K03:00:00 prod abcd1234 monitoring: 9m0s left, 1 passed, 1 failed")
		if live != tty {
			t.Errorf("tty=%v: live countdown shown=%v:\n%q", tty, live, got)
		}
		if !tty && strings.Contains(got, "\r") {
			t.Errorf("control characters on a pipe: %q", got)
		}
	}
}
