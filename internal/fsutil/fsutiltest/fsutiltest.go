// Package fsutiltest has helpers for tests of code that reads files rekey
// does not control: FIFOs, devices and huge files must never block it.
package fsutiltest

import (
	"testing"
	"time"
)

// Within returns f's result, failing the test if f has not returned after
// 10 s: the code under test must never block on what it finds at a path.
func Within[T any](t testing.TB, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("blocked")
		panic("unreachable")
	}
}
