package sqlite

import (
	"testing"

	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/storetest"
)

// TestContract runs the Store contract suite: every Store of one backend
// opens the same state file, as two processes on one machine would.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		path := statePath(t)
		return func(t *testing.T) rotation.Store { return openTest(t, path) }
	})
}
