package clocktest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/internal/retry"
)

func TestWaitsPassAtOnce(t *testing.T) {
	fake := clockwork.NewFakeClock()
	start := fake.Now()
	c := clocktest.New(fake)
	for _, d := range []time.Duration{time.Second, time.Hour} {
		if err := retry.Sleep(context.Background(), c, d); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.Since(start); got != time.Hour+time.Second {
		t.Errorf("time moved %v, want 1h0m1s", got)
	}
	if got := fmt.Sprint(c.Waits()); got != "[1s 1h0m0s]" {
		t.Errorf("waits %s, want [1s 1h0m0s]", got)
	}
}
