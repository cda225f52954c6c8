// Command rekey rotates API keys without downtime. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run()) }

// run wires signals to a context: the first INT or TERM cancels it (the
// current step finishes and is journaled), a second exits at once.
func run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		os.Exit(130)
	}()
	return execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
