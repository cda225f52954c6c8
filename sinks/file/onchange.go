package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
)

const (
	// outputCapture is how much of on_change's output is kept for scrubbing;
	// outputShown is how much of it an error quotes.
	outputCapture = 64 << 10
	outputShown   = 2 << 10
	// waitDelay bounds the wait for on_change's output after it was killed
	// (a child it left behind may hold the pipe open).
	waitDelay = 2 * time.Second
)

// runOnChange runs the on_change command, if any. The command gets rekey's
// environment without the variables WithoutEnv named, and no argument or
// variable holding a value; its
// combined output, with every given value redacted, is quoted in the error
// when it fails.
//
// Its error is never permanent, even for a command that has gone missing:
// the file has been written by then, and sinks.Sink says a permanent error
// means Put changed nothing. Undoing the write instead would need a second
// write that can fail too, and the engine already rolls a sink back by a
// Put of the old value. Put checks that the command exists before it
// writes, so a missing command is caught, permanently, with nothing changed.
func (s *Sink) runOnChange(ctx context.Context, values ...secret.Value) error {
	if len(s.onChange) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.onChange[0], s.onChange[1:]...)
	cmd.WaitDelay = waitDelay
	cmd.Env = s.childEnv()
	out := &capped{max: outputCapture}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	if err == nil {
		s.logger().Info("on_change ran", zap.Strings("command", s.onChange), zap.Duration("took", time.Since(start)))
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s", s.timeout)
	}
	err = fmt.Errorf("file: %s: on_change %q (the file was written): %w", s.name, s.onChange[0], err)
	if shown := shownOutput(out.Bytes(), values); shown != "" {
		err = fmt.Errorf("%w; output: %q", err, shown)
	}
	return err
}

// childEnv is rekey's environment without the hidden variables; nil (the
// whole environment) when none are hidden.
func (s *Sink) childEnv() []string {
	if len(s.hideEnv) == 0 {
		return nil
	}
	env := []string{}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(s.hideEnv, name) {
			env = append(env, kv)
		}
	}
	return env
}

// shownOutput redacts values from out, then cuts it to outputShown bytes.
func shownOutput(out []byte, values []secret.Value) string {
	s := string(bytes.TrimSpace(out))
	for _, v := range secret.Parts(values...) {
		if !v.IsZero() {
			s = string(bytes.ReplaceAll([]byte(s), []byte(v.Reveal()), []byte(secret.Redacted)))
		}
	}
	if len(s) > outputShown {
		s = s[:outputShown] + "…(truncated)"
	}
	return s
}

// capped is an io.Writer that keeps the first max bytes written to it.
// The buffer is a field, not embedded: an embedded bytes.Buffer's ReadFrom
// would let io.Copy (which os/exec uses for a child's output) read past
// the cap.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Bytes returns what was kept.
func (c *capped) Bytes() []byte { return c.buf.Bytes() }
