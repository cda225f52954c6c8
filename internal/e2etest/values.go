package e2etest

import (
	"strings"
	"sync"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Values is every key value a test has seen, safe for concurrent use. The
// leak rule (I4) is that none of them appears in anything rekey printed or
// wrote other than the sinks and the journal: Leaks finds those that do.
// The zero Values is empty and ready to use.
type Values struct {
	mu  sync.Mutex
	set map[string]secret.Value
}

// Add records vs; empty values, which every text contains, are skipped.
func (s *Values) Add(vs ...secret.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[string]secret.Value{}
	}
	for _, v := range vs {
		if !v.IsZero() {
			s.set[v.Reveal()] = v
		}
	}
}

// Len is the number of distinct values recorded.
func (s *Values) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.set)
}

// Leaks returns the recorded values that appear in text; print them by
// apexverify.Prefix or count them, never by Reveal.
func (s *Values) Leaks(text string) []secret.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	var leaked []secret.Value
	for raw, v := range s.set {
		if strings.Contains(text, raw) {
			leaked = append(leaked, v)
		}
	}
	return leaked
}
