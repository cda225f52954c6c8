package main

import (
	"io"
	"sync"
)

// clearLine returns a terminal's cursor to the start of the line and
// erases it.
const clearLine = "\r\033[K"

// console is a terminal that rekey writes to from two places: the live
// progress line on stdout (a countdown rewritten in place) and log lines
// on stderr. Under one mutex it keeps them on separate lines: a log line
// first erases the live line, and the live line is drawn again below it.
// Its methods are safe for concurrent use.
type console struct {
	mu   sync.Mutex
	out  io.Writer // stdout, a terminal
	live string    // the live line on screen; "" if none
}

// setLive shows line as the live line, replacing the one shown.
func (c *console) setLive(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(c.out, clearLine+line)
	c.live = line
}

// println ends the live line, if any, and writes line on a line of its own.
func (c *console) println(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live != "" {
		io.WriteString(c.out, clearLine)
		c.live = ""
	}
	io.WriteString(c.out, line+"\n")
}

// logs wraps w (stderr) so that each write, one log entry, lands on a line
// of its own above the live line.
func (c *console) logs(w io.Writer) *consoleLog { return &consoleLog{c: c, w: w} }

type consoleLog struct {
	c *console
	w io.Writer
}

func (l *consoleLog) Write(p []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.live != "" {
		io.WriteString(l.c.out, clearLine)
	}
	n, err := l.w.Write(p)
	if l.c.live != "" {
		io.WriteString(l.c.out, l.c.live)
	}
	return n, err
}

// Sync is a no-op: a terminal needs no flush.
func (l *consoleLog) Sync() error { return nil }
