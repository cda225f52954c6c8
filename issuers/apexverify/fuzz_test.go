package apexverify

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/rekeyhq/rekey/issuers"
)

// FuzzDecodeKey: decoding never panics, accepts only complete keys, and an
// error never quotes the value the input carried.
func FuzzDecodeKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		k, v, err := decodeKey(data)
		if err == nil {
			if k.ID == "" || (k.Status != issuers.Active && k.Status != issuers.Revoked) || k.CreatedAt.IsZero() {
				t.Fatalf("accepted an incomplete key %+v", k)
			}
			var raw map[string]json.RawMessage
			if json.Unmarshal(data, &raw) == nil && raw["key"] == nil && !v.IsZero() {
				t.Fatalf("a value appeared from an input without one")
			}
			return
		}
		var loose struct {
			Key string `json:"key"`
		}
		_ = json.Unmarshal(data, &loose)
		if len(loose.Key) >= 4 && strings.Contains(err.Error(), loose.Key) {
			t.Fatalf("error quotes the key value: %q", err.Error())
		}
		if len(err.Error()) > 300 {
			t.Fatalf("error is %d bytes long", len(err.Error()))
		}
	})
}

// FuzzDecodeError: any status and body give a short, printable error that
// names the status and unwraps to the right sentinel.
func FuzzDecodeError(f *testing.F) {
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := decodeError(status, body)
		msg := e.Error()
		if !strings.HasPrefix(msg, "status "+strconv.Itoa(status)) {
			t.Fatalf("error %q does not name status %d", msg, status)
		}
		if len(msg) > 400 || strings.ContainsFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Fatalf("error is too long or not printable: %q", msg)
		}
		want := map[int]error{
			http.StatusUnauthorized: issuers.ErrUnauthorized,
			http.StatusNotFound:     issuers.ErrNotFound,
			http.StatusConflict:     issuers.ErrKeyLimit,
		}[status]
		if want != nil && !errors.Is(e, want) {
			t.Fatalf("status %d does not unwrap to %v", status, want)
		}
		if errors.Is(e, issuers.ErrInvalidLabel) != (status == http.StatusBadRequest && e.Code == "invalid_label") {
			t.Fatalf("status %d code %q: ErrInvalidLabel mismatch", status, e.Code)
		}
	})
}
