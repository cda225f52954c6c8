// Package apexsim is an in-process ApexVerify API server speaking the
// key-management API v1 (the project's apexverify API.md), for `rekey demo`
// and for tests.
//
// Like the real API it never hands out a key value after creation: tests
// get values from the create response only. What it adds are knobs (latency,
// 5xx and 429 rates, an activation delay, the key limit), one-shot fault
// hooks, and a full history of keys and refusals for invariant checks. Every
// knob is off by default, may be changed at any time and is goroutine-safe.
package apexsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// DefaultMaxActiveKeys is the API's default max_active_keys.
const DefaultMaxActiveKeys = 10

// Options configure a Sim. The zero value is a well-behaved server.
type Options struct {
	// ManagementToken is the bearer token for /v1/api-keys; generated when empty.
	ManagementToken string
	// Clock stamps every time (created, used, revoked, refusals) and decides
	// when the activation delay has passed; real time when nil.
	Clock clockwork.Clock
	// MaxActiveKeys is the account's key limit; DefaultMaxActiveKeys when 0.
	MaxActiveKeys int
	// Latency is added, in real time, before every answer.
	Latency time.Duration
	// ErrorRate is the share of calls (0..1) answered 503 before acting.
	ErrorRate float64
	// RateLimitRate is the share of calls (0..1) answered 429 before acting.
	RateLimitRate float64
	// RetryAfter is the Retry-After sent with a 429, in whole seconds
	// rounded up; 1s when 0.
	RetryAfter time.Duration
	// ActivationDelay is how long a new key answers 401 after created_at.
	ActivationDelay time.Duration
	// Seed makes ErrorRate and RateLimitRate reproducible; random when 0.
	Seed uint64
	// AccountID and Credits are what /v1/account reports; "acct_sim" and
	// 100000 by default.
	AccountID string
	Credits   int
}

// Reason says why an API-key call was refused.
type Reason string

const (
	// RefusedUnknown: the bearer is no key this account ever issued.
	RefusedUnknown Reason = "unknown"
	// RefusedRevoked: the key was revoked.
	RefusedRevoked Reason = "revoked"
	// RefusedNotYetActive: the key is inside its activation delay.
	RefusedNotYetActive Reason = "not_yet_active"
)

// Refusal is one 401 given to a call made with an API key.
type Refusal struct {
	At   time.Time
	Path string
	// KeyID and Prefix are empty for an unknown bearer that does not look
	// like a key.
	KeyID  string
	Prefix string
	Reason Reason
}

// KeyRecord is a key's full history. It never holds the value.
type KeyRecord struct {
	ID       string
	Label    string
	Prefix   string
	Status   string // "active" or "revoked"
	Created  time.Time
	ActiveAt time.Time // Created plus the activation delay in force then
	// FirstUsed and LastUsed are zero if the key never authenticated.
	FirstUsed time.Time
	LastUsed  time.Time
	Uses      int
	// Revoked is zero while the key is active.
	Revoked time.Time
}

type key struct {
	KeyRecord
	hash [32]byte // sha256 of the value; the value itself is not kept
}

type fault struct {
	method, prefix string // empty: any
	n              int
	status         int
	after          bool // perform the call, then fail
	hangup         bool // close the connection instead of answering
}

// Sim is the simulated ApexVerify account.
type Sim struct {
	mu       sync.Mutex
	opts     Options
	clock    clockwork.Clock
	rnd      *mrand.Rand
	keys     []*key // creation order
	byHash   map[[32]byte]*key
	refusals []Refusal
	faults   []*fault
	credits  int
}

// New returns a simulator with no keys.
func New(o Options) *Sim {
	if o.ManagementToken == "" {
		o.ManagementToken = "avm_" + randomBase62(40)
	}
	if o.MaxActiveKeys <= 0 {
		o.MaxActiveKeys = DefaultMaxActiveKeys
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.AccountID == "" {
		o.AccountID = "acct_sim"
	}
	if o.Credits == 0 {
		o.Credits = 100000
	}
	clock := o.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	seed := o.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	return &Sim{
		opts:    o,
		clock:   clock,
		rnd:     mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		byHash:  map[[32]byte]*key{},
		credits: o.Credits,
	}
}

// ManagementToken returns the token management calls must carry.
func (s *Sim) ManagementToken() string { return s.opts.ManagementToken }

// Start serves the simulator on a fresh 127.0.0.1 port, reachable from
// child processes. stop closes it and waits for calls in flight.
func (s *Sim) Start() (url string, stop func()) {
	srv := httptest.NewServer(s.Handler())
	return srv.URL, srv.Close
}

// Serve serves the simulator on ln (which it takes over) until stop is called.
func (s *Sim) Serve(ln net.Listener) (url string, stop func()) {
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	return srv.URL, srv.Close
}

// SetLatency changes Options.Latency.
func (s *Sim) SetLatency(d time.Duration) { s.with(func() { s.opts.Latency = d }) }

// SetErrorRate changes Options.ErrorRate.
func (s *Sim) SetErrorRate(r float64) { s.with(func() { s.opts.ErrorRate = r }) }

// SetRateLimitRate changes Options.RateLimitRate.
func (s *Sim) SetRateLimitRate(r float64) { s.with(func() { s.opts.RateLimitRate = r }) }

// SetRetryAfter changes Options.RetryAfter.
func (s *Sim) SetRetryAfter(d time.Duration) { s.with(func() { s.opts.RetryAfter = d }) }

// SetActivationDelay changes Options.ActivationDelay for keys created from now on.
func (s *Sim) SetActivationDelay(d time.Duration) { s.with(func() { s.opts.ActivationDelay = d }) }

// SetMaxActiveKeys changes Options.MaxActiveKeys; n <= 0 restores the default.
func (s *Sim) SetMaxActiveKeys(n int) {
	if n <= 0 {
		n = DefaultMaxActiveKeys
	}
	s.with(func() { s.opts.MaxActiveKeys = n })
}

// FailNext answers the next n calls whose method and path start match
// (empty matches any) with status, without acting. A 429 carries Retry-After.
func (s *Sim) FailNext(method, pathPrefix string, n int, status int) {
	s.addFault(&fault{method: method, prefix: pathPrefix, n: n, status: status})
}

// FailAfterNext performs the next n matching calls (e.g. creates the key)
// and then answers status instead of the result, as a gateway that lost the
// response would.
func (s *Sim) FailAfterNext(method, pathPrefix string, n int, status int) {
	s.addFault(&fault{method: method, prefix: pathPrefix, n: n, status: status, after: true})
}

// DropResponseNext performs the next n calls of any kind and then hangs up
// without answering (502 where the connection cannot be taken over).
func (s *Sim) DropResponseNext(n int) {
	s.addFault(&fault{n: n, status: http.StatusBadGateway, after: true, hangup: true})
}

// ClearFaults drops every pending fault set by FailNext, FailAfterNext and
// DropResponseNext.
func (s *Sim) ClearFaults() { s.with(func() { s.faults = nil }) }

// Keys returns every key ever created, oldest first.
func (s *Sim) Keys() []KeyRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]KeyRecord, len(s.keys))
	for i, k := range s.keys {
		out[i] = k.KeyRecord
	}
	return out
}

// ActiveCount returns how many keys are active (including keys still inside
// their activation delay).
func (s *Sim) ActiveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activeLocked()
}

// Refusals returns every 401 given to a call made with an API key.
func (s *Sim) Refusals() []Refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refusals)
}

func (s *Sim) with(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *Sim) addFault(f *fault) {
	if f.n <= 0 {
		return
	}
	s.with(func() { s.faults = append(s.faults, f) })
}

// takeFault consumes the first fault matching r, if any.
func (s *Sim) takeFault(r *http.Request) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.method == "" || f.method == r.Method) && strings.HasPrefix(r.URL.Path, f.prefix) {
			f.n--
			if f.n == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
			c := *f
			return &c
		}
	}
	return nil
}

// Handler returns the API as an http.Handler.
func (s *Sim) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latency := s.opts.Latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client gave up: do not act
			t.Stop()
			return
		}
	}

	if f := s.takeFault(r); f != nil {
		if !f.after {
			s.writeFault(w, f.status)
			return
		}
		s.route(httptest.NewRecorder(), r) // act, then lose the answer
		if f.hangup {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		s.writeFault(w, f.status)
		return
	}

	s.mu.Lock()
	limited := s.opts.RateLimitRate > 0 && s.rnd.Float64() < s.opts.RateLimitRate
	failed := !limited && s.opts.ErrorRate > 0 && s.rnd.Float64() < s.opts.ErrorRate
	s.mu.Unlock()
	switch {
	case limited:
		s.writeFault(w, http.StatusTooManyRequests)
	case failed:
		s.writeFault(w, http.StatusServiceUnavailable)
	default:
		s.route(w, r)
	}
}

func (s *Sim) writeFault(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		s.mu.Lock()
		secs := int(math.Ceil(s.opts.RetryAfter.Seconds()))
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, status, "rate_limited", "too many requests")
	case status >= 500:
		writeError(w, status, "unavailable", "the service is temporarily unavailable")
	default:
		writeError(w, status, strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_"), "injected fault")
	}
}

const keysPath = "/v1/api-keys"

func (s *Sim) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == keysPath:
		if !s.management(w, r) {
			return
		}
		switch r.Method {
		case http.MethodPost:
			s.create(w, r)
		case http.MethodGet:
			s.list(w, r)
		default:
			methodNotAllowed(w, "GET, POST")
		}
	case strings.HasPrefix(p, keysPath+"/"):
		id := strings.TrimPrefix(p, keysPath+"/")
		if !s.management(w, r) {
			return
		}
		if id == "" || strings.Contains(id, "/") {
			writeError(w, http.StatusNotFound, "not_found", "no such key")
			return
		}
		switch r.Method {
		case http.MethodGet:
			s.get(w, id)
		case http.MethodDelete:
			s.revoke(w, id)
		default:
			methodNotAllowed(w, "GET, DELETE")
		}
	case p == "/v1/account":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		if s.apiKey(w, r) {
			s.mu.Lock()
			body := map[string]any{"account_id": s.opts.AccountID, "credits_remaining": s.credits}
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, body)
		}
	case p == "/v1/verify":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		if s.apiKey(w, r) {
			s.verify(w, r)
		}
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Sim) management(w http.ResponseWriter, r *http.Request) bool {
	if subtle.ConstantTimeCompare([]byte(bearer(r)), []byte(s.opts.ManagementToken)) == 1 {
		return true
	}
	writeError(w, http.StatusUnauthorized, "unauthorized", "invalid or missing management token")
	return false
}

// apiKey authenticates an API-key call, records its use or its refusal.
func (s *Sim) apiKey(w http.ResponseWriter, r *http.Request) bool {
	tok := bearer(r)
	s.mu.Lock()
	now := s.now()
	k := s.byHash[sha256.Sum256([]byte(tok))]
	var reason Reason
	switch {
	case tok == "" || k == nil:
		reason = RefusedUnknown
	case k.Status == "revoked":
		reason = RefusedRevoked
	case now.Before(k.ActiveAt):
		reason = RefusedNotYetActive
	}
	if reason != "" {
		ref := Refusal{At: now, Path: r.URL.Path, Reason: reason}
		if k != nil {
			ref.KeyID, ref.Prefix = k.ID, k.Prefix
		} else if strings.HasPrefix(tok, "avk_") && len(tok) > prefixLen {
			ref.Prefix = tok[:prefixLen]
		}
		s.refusals = append(s.refusals, ref)
		s.mu.Unlock()
		writeError(w, http.StatusUnauthorized, "unauthorized", "invalid or revoked API key")
		return false
	}
	if k.FirstUsed.IsZero() {
		k.FirstUsed = now
	}
	k.LastUsed = now
	k.Uses++
	s.mu.Unlock()
	return true
}

func (s *Sim) now() time.Time { return s.clock.Now().UTC() }

func (s *Sim) activeLocked() int {
	n := 0
	for _, k := range s.keys {
		if k.Status == "active" {
			n++
		}
	}
	return n
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (s *Sim) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Label *string `json:"label"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON object")
		return
	}
	if body.Label == nil || !labelRE.MatchString(*body.Label) {
		writeError(w, http.StatusBadRequest, "invalid_label", "label must be 1-64 characters of a-z A-Z 0-9 . _ -")
		return
	}
	value := "avk_live_" + randomBase62(40)
	s.mu.Lock()
	if s.activeLocked() >= s.opts.MaxActiveKeys {
		limit := s.opts.MaxActiveKeys
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "key_limit_reached", fmt.Sprintf("the account already holds %d active keys", limit))
		return
	}
	now := s.now()
	k := &key{
		KeyRecord: KeyRecord{
			ID:       newID(),
			Label:    *body.Label,
			Prefix:   value[:prefixLen],
			Status:   "active",
			Created:  now,
			ActiveAt: now.Add(s.opts.ActivationDelay),
		},
		hash: sha256.Sum256([]byte(value)),
	}
	s.keys = append(s.keys, k)
	s.byHash[k.hash] = k
	obj := keyObject(k)
	s.mu.Unlock()
	obj["key"] = value
	writeJSON(w, http.StatusCreated, obj)
}

func (s *Sim) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name := range q {
		if name != "label" && name != "status" {
			writeError(w, http.StatusBadRequest, "invalid_query", "unknown query parameter "+strconv.Quote(name))
			return
		}
	}
	if len(q["label"]) > 1 || len(q["status"]) > 1 || (q.Has("label") && q.Get("label") == "") {
		writeError(w, http.StatusBadRequest, "invalid_query", "label and status may be given once, label not empty")
		return
	}
	status := q.Get("status")
	switch status {
	case "":
		status = "active"
	case "active", "revoked", "all":
	default:
		writeError(w, http.StatusBadRequest, "invalid_query", "status must be active, revoked or all")
		return
	}
	label, byLabel := q.Get("label"), q.Has("label")
	s.mu.Lock()
	data := []map[string]any{}
	for i := len(s.keys) - 1; i >= 0; i-- { // newest first
		k := s.keys[i]
		if (byLabel && k.Label != label) || (status != "all" && k.Status != status) {
			continue
		}
		data = append(data, keyObject(k))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (s *Sim) find(id string) *key {
	for _, k := range s.keys {
		if k.ID == id {
			return k
		}
	}
	return nil
}

func (s *Sim) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	k := s.find(id)
	var obj map[string]any
	if k != nil {
		obj = keyObject(k)
	}
	s.mu.Unlock()
	if k == nil {
		writeError(w, http.StatusNotFound, "not_found", "no such key")
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

func (s *Sim) revoke(w http.ResponseWriter, id string) {
	s.mu.Lock()
	k := s.find(id)
	var obj map[string]any
	if k != nil {
		if k.Status != "revoked" {
			k.Status = "revoked"
			k.Revoked = s.now()
		}
		obj = keyObject(k)
	}
	s.mu.Unlock()
	if k == nil {
		writeError(w, http.StatusNotFound, "not_found", "no such key")
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

var results = []string{"deliverable", "undeliverable", "risky", "unknown"}

func (s *Sim) verify(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Email *string `json:"email"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil || body.Email == nil {
		writeError(w, http.StatusBadRequest, "invalid_request", `the body must be {"email": "..."}`)
		return
	}
	if !strings.Contains(*body.Email, "@") {
		writeError(w, http.StatusBadRequest, "invalid_email", "not an email address")
		return
	}
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(*body.Email)))
	s.mu.Lock()
	if s.credits > 0 {
		s.credits--
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"email": *body.Email, "result": results[h.Sum32()%uint32(len(results))]})
}

func keyObject(k *key) map[string]any {
	return map[string]any{
		"id":           k.ID,
		"label":        k.Label,
		"prefix":       k.Prefix,
		"status":       k.Status,
		"created_at":   stamp(k.Created),
		"last_used_at": stamp(k.LastUsed),
		"revoked_at":   stamp(k.Revoked),
	}
}

// stamp formats t as RFC 3339 in UTC, or null when zero.
func stamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

const prefixLen = 12

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns "key_" and 24 lowercase base32 characters.
func newID() string {
	b := make([]byte, 15) // 15 bytes = 24 base32 characters
	rand.Read(b)
	return "key_" + strings.ToLower(idEncoding.EncodeToString(b))
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomBase62(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		x, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("apexsim: crypto/rand: " + err.Error())
		}
		b[i] = base62[x.Int64()]
	}
	return string(b)
}
