package apexverify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// keyJSON is the wire form of a key object. Times are strings so that a
// malformed one is reported without echoing it.
type keyJSON struct {
	ID         string  `json:"id"`
	Label      string  `json:"label"`
	Prefix     string  `json:"prefix"`
	Status     string  `json:"status"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	RevokedAt  *string `json:"revoked_at"`
	Key        *string `json:"key"`
}

// decodeKey parses one key object. The value is returned only when the
// object carries one (the create response). Unknown fields are ignored;
// anything malformed is an error that quotes nothing from the input.
func decodeKey(data []byte) (issuers.Key, secret.Value, error) {
	var j keyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return issuers.Key{}, secret.Value{}, fmt.Errorf("decode key: %s", jsonProblem(err))
	}
	k, err := j.key()
	if err != nil {
		return issuers.Key{}, secret.Value{}, err
	}
	var v secret.Value
	if j.Key != nil {
		v = secret.New(*j.Key)
	}
	return k, v, nil
}

func (j keyJSON) key() (issuers.Key, error) {
	k := issuers.Key{ID: j.ID, Label: j.Label, Prefix: j.Prefix, Status: issuers.Status(j.Status)}
	if j.ID == "" {
		return issuers.Key{}, errors.New("decode key: missing id")
	}
	if k.Status != issuers.Active && k.Status != issuers.Revoked {
		return issuers.Key{}, fmt.Errorf("decode key %s: unknown status", safeID(j.ID))
	}
	var err error
	if k.CreatedAt, err = parseTime(&j.CreatedAt, true); err != nil {
		return issuers.Key{}, fmt.Errorf("decode key %s: created_at: %w", safeID(j.ID), err)
	}
	if k.LastUsedAt, err = parseTime(j.LastUsedAt, false); err != nil {
		return issuers.Key{}, fmt.Errorf("decode key %s: last_used_at: %w", safeID(j.ID), err)
	}
	if k.RevokedAt, err = parseTime(j.RevokedAt, false); err != nil {
		return issuers.Key{}, fmt.Errorf("decode key %s: revoked_at: %w", safeID(j.ID), err)
	}
	return k, nil
}

// decodeList parses {"data": [key object, ...]}.
func decodeList(data []byte) ([]issuers.Key, error) {
	var l struct {
		Data *[]keyJSON `json:"data"`
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("decode key list: %s", jsonProblem(err))
	}
	if l.Data == nil {
		return nil, errors.New("decode key list: missing data")
	}
	keys := make([]issuers.Key, 0, len(*l.Data))
	for _, j := range *l.Data {
		if j.Key != nil {
			return nil, errors.New("decode key list: a listed key carries its value")
		}
		k, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("decode key list: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func parseTime(s *string, required bool) (time.Time, error) {
	if s == nil || *s == "" {
		if required {
			return time.Time{}, errors.New("missing")
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time")
	}
	return t.UTC(), nil
}

// jsonProblem describes a JSON error without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "malformed JSON at offset " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", safeText(typ.Field, 64))
	default:
		return "malformed JSON"
	}
}

// safeID keeps an ID printable in an error only if it looks like an ID.
func safeID(id string) string {
	if len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool {
		return !(r == '_' || r == '-' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) {
		return "(malformed id)"
	}
	return id
}

// safeText trims s to n runes of printable text.
func safeText(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			b.WriteRune('?')
		}
		n--
	}
	return b.String()
}

// apiError is a non-2xx answer. It unwraps to the issuers sentinel its
// status and code stand for, if any.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // from a 429's Retry-After; 0 if none
	sentinel   error
}

func (e *apiError) Error() string {
	s := "status " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *apiError) Unwrap() error { return e.sentinel }

// retryable reports whether the call was certainly not acted upon and may
// be repeated (429), or may have been acted upon but is safe to repeat for
// GET and DELETE (5xx).
func (e *apiError) retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// decodeError builds the error for a non-2xx answer from its status and
// body. A malformed body still yields an error naming the status.
func decodeError(status int, body []byte) *apiError {
	e := &apiError{Status: status}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil {
		e.Code = safeText(env.Error.Code, 40)
		e.Message = safeText(env.Error.Message, 200)
	}
	switch {
	case status == http.StatusUnauthorized:
		e.sentinel = issuers.ErrUnauthorized
	case status == http.StatusNotFound:
		e.sentinel = issuers.ErrNotFound
	case status == http.StatusConflict:
		e.sentinel = issuers.ErrKeyLimit
	case status == http.StatusBadRequest && env.Error.Code == "invalid_label":
		e.sentinel = issuers.ErrInvalidLabel
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 3600)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}
