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
	tty := true
	var out bytes.Buffer
	a := &app{stdout: &out, terminal: &tty}
	p := a.progress(outputTable)
	for _, ev := range events {
		p(ev)
	}
	got := out.String()
	if !strings.Contains(got, "[file:/etc/app.env#K] written") || !strings.Contains(got, "abcd1234 revoking") {
		t.Errorf("missing per-sink or phase lines:\n%q", got)
	}
	if !strings.Contains(got, "\r\033[K03:00:00 prod abcd1234 monitoring: 9m left, 1 passed, 1 failed\r\033[K03:00:00 prod abcd1234 revoking\n") {
		t.Errorf("live countdown not shown, or not cleared before the next line:\n%q", got)
	}
	// Off a terminal, and with -o json, the log reports each event: no
	// progress lines at all.
	notty := false
	if (&app{stdout: &out, terminal: &notty}).progress(outputTable) != nil || a.progress(outputJSON) != nil {
		t.Error("progress lines off a terminal or with -o json")
	}
}

// TestConsoleKeepsLogLinesOffTheLiveLine: a log line written while the
// live line is shown erases it first and draws it again below.
func TestConsoleKeepsLogLinesOffTheLiveLine(t *testing.T) {
	var out bytes.Buffer
	c := &console{out: &out}
	log := c.logs(&out) // stdout and stderr on one terminal
	c.setLive("monitoring: 9s left")
	log.Write([]byte("WARN health check failed\n"))
	c.println("done")
	log.Write([]byte("INFO after\n"))
	want := "\r\033[Kmonitoring: 9s left" + "\r\033[KWARN health check failed\n" + "monitoring: 9s left" + "\r\033[Kdone\n" + "INFO after\n"
	if got := out.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
