// Package presettest has protocol-faithful test servers of the vendor APIs
// that httpissuer's presets speak, each written from the vendor's public
// API reference (cited in its file), not from what the client sends: real
// paths, methods, field names, status codes, pagination, error bodies and
// auth checks. A request the vendor would refuse is refused with the
// vendor's error. Each server's clock is fake and moves only by Advance,
// unless SetClock gives it another (a harness that compares the server's
// times with other processes' needs the real one).
package presettest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"time"
)

// key is one key at a vendor.
type key struct {
	ID, Name, Value string
	Created         time.Time
	LastUsed        time.Time
	Status          string // vendor's, where it has one
	deleted         bool
	Deleted         time.Time // when deleted is set
}

// KeyRecord is a key as the server holds it, without its value: deleted
// keys stay, with the time they were deleted.
type KeyRecord struct {
	ID, Name          string
	Created, LastUsed time.Time
	Deleted           time.Time // zero while the key exists
	Status            string    // the vendor's, where it has one
}

// store holds one account's keys and the fault injection shared by the
// servers.
type store struct {
	mu       sync.Mutex
	now      time.Time
	clock    func() time.Time // nil: now, moved by Advance
	keys     []*key
	limit    int // 0: none
	faults   []Fault
	requests int
}

// Fault is what the server does to the next create request.
type Fault int

const (
	// CreateThen500 creates the key, then answers 500 (outcome unknown).
	CreateThen500 Fault = iota + 1
	// CreateThenHangUp creates the key, then closes the connection.
	CreateThenHangUp
	// RateLimited answers 429 with Retry-After: 7 without creating.
	RateLimited
)

func newStore() *store {
	return &store{now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
}

// Advance moves the server's fake clock forward; after SetClock it has
// no effect.
func (s *store) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
}

// SetClock makes the server read the time from now from here on. Keys
// are still created at least a second apart (creation times are whole
// seconds at most vendors, and newest-first must stay well defined), so
// more than one create a second runs ahead of now.
func (s *store) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = now
}

// time is the server's now (caller holds mu).
func (s *store) time() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return s.now
}

// Keys returns every key the server made, deleted ones included, in
// creation order.
func (s *store) Keys() []KeyRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]KeyRecord, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, KeyRecord{ID: k.ID, Name: k.Name, Created: k.Created, LastUsed: k.LastUsed, Deleted: k.Deleted, Status: k.Status})
	}
	return out
}

// KeyID returns the ID of the key whose value is v, deleted or not.
func (s *store) KeyID(v string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.Value == v && v != "" {
			return k.ID, true
		}
	}
	return "", false
}

// remove deletes k (caller holds mu).
func (s *store) remove(k *key) {
	k.deleted = true
	k.Deleted = s.time()
}

// InjectCreateFault queues a fault for the next create request.
func (s *store) InjectCreateFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// SetKeyLimit sets how many active keys the account may hold (0: none).
func (s *store) SetKeyLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
}

// ActiveCount is how many keys exist and are active.
func (s *store) ActiveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.keys {
		if !k.deleted && (k.Status == "" || k.Status == "active") {
			n++
		}
	}
	return n
}

// Requests counts the requests served.
func (s *store) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// live returns the existing keys, newest first (caller holds mu).
func (s *store) live() []*key {
	var out []*key
	for _, k := range s.keys {
		if !k.deleted {
			out = append(out, k)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Created.After(out[b].Created) })
	return out
}

func (s *store) find(id string) *key {
	for _, k := range s.keys {
		if k.ID == id && !k.deleted {
			return k
		}
	}
	return nil
}

func (s *store) byValue(v string) *key {
	for _, k := range s.keys {
		if k.Value == v && v != "" && !k.deleted {
			return k
		}
	}
	return nil
}

// add mints a key; each key is created a second after the last one, so
// that newest-first is well defined.
func (s *store) add(name, value, id string) *key {
	next := s.now.Add(time.Second)
	if s.clock != nil {
		if t := s.clock().Truncate(time.Second); t.After(next) {
			next = t
		}
	}
	s.now = next
	k := &key{ID: id, Name: name, Value: value, Created: s.now}
	s.keys = append(s.keys, k)
	return k
}

// nextFault pops the next create fault (caller holds mu).
func (s *store) nextFault() Fault {
	if len(s.faults) == 0 {
		return 0
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f
}

// deliver answers a create according to fault f, already applied.
func deliver(w http.ResponseWriter, f Fault, status int, body any) {
	switch f {
	case CreateThen500:
		w.WriteHeader(http.StatusInternalServerError)
		return
	case CreateThenHangUp:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randAlnum(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// server is the HTTP side shared by the vendors.
type server struct {
	*httptest.Server
}

func start(s *store, h http.Handler) server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(net.Conn, http.ConnState) {}
	srv.Start()
	return server{srv}
}

// decodeStrict decodes a JSON request body into v; unknown fields are
// allowed (vendors ignore or reject them case by case).
func decodeBody(r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return false
	}
	return json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(v) == nil
}
