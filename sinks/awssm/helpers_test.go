package awssm_test

import (
	"encoding/json"
	"testing"
)

func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// field returns the string field key of the JSON object s.
func field(t *testing.T, s, key string) (string, bool) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("secret is not a JSON object: %v", err)
	}
	v, ok := m[key].(string)
	return v, ok
}
