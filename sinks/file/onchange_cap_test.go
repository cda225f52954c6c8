package file

import (
	"bytes"
	"io"
	"testing"
)

// capped keeps at most max bytes even through io.Copy, which is how
// os/exec hands a child's output to it.
func TestCappedThroughCopy(t *testing.T) {
	c := &capped{max: 64 << 10}
	pipe := struct{ io.Reader }{bytes.NewReader(make([]byte, 4<<20))} // as os/exec reads a pipe: no WriteTo
	if _, err := io.Copy(c, pipe); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Bytes()); n != 64<<10 {
		t.Errorf("kept %d bytes of 4 MiB, want the cap, %d", n, 64<<10)
	}
}
