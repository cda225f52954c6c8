package httpissuer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

// generic is an API with no preset, the kind a user describes in YAML:
// basic auth, keys that are revoked (not deleted) with a status string,
// Link-header pagination of 2 keys a page, label filtering done by the
// client. Its contract, enforced: POST /api/keys {"description"} → 201
// {"key": {...}, "secret"}; GET /api/keys?page=N → {"keys": [...]} with
// Link: <…?page=N+1>; rel="next"; GET /api/keys/{id}; POST
// /api/keys/{id}/revoke → 200; GET /api/whoami with X-Api-Key.
type generic struct {
	*httptest.Server
	mu       sync.Mutex
	now      time.Time
	keys     []*gkey
	limit    int
	onCreate func(w http.ResponseWriter) bool // a fault: true if it answered
	onList   func(w http.ResponseWriter) bool
	linkHost string // another host for the next link, if set
}

type gkey struct {
	ID, Desc, Secret, Status string
	Created, Revoked         time.Time
}

const genericUser, genericPass = "ops", "hunter2-management"

func newGeneric(t *testing.T) *generic {
	g := &generic{now: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *generic) obj(k *gkey) map[string]any {
	o := map[string]any{"id": k.ID, "description": k.Desc, "state": k.Status, "created": k.Created.Format(time.RFC3339), "hint": k.Secret[:12]}
	if !k.Revoked.IsZero() {
		o["revoked"] = k.Revoked.Format(time.RFC3339)
	}
	return o
}

func (g *generic) active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, k := range g.keys {
		if k.Status == "ENABLED" {
			n++
		}
	}
	return n
}

func (g *generic) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.URL.Path == "/api/whoami" && r.Method == http.MethodGet {
		for _, k := range g.keys {
			if k.Secret == r.Header.Get("X-Api-Key") && k.Status == "ENABLED" {
				fmt.Fprint(w, `{"ok": true}`)
				return
			}
		}
		http.Error(w, `{"error": {"detail": "bad key"}}`, http.StatusUnauthorized)
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != genericUser || p != genericPass {
		http.Error(w, `{"error": {"detail": "who are you"}}`, http.StatusUnauthorized)
		return
	}
	id, _ := strings.CutPrefix(r.URL.Path, "/api/keys/")
	switch {
	case r.URL.Path == "/api/keys" && r.Method == http.MethodPost:
		if g.onCreate != nil && g.onCreate(w) {
			return
		}
		var req struct{ Description string }
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Description == "" {
			http.Error(w, `{"error": {"detail": "description required"}}`, http.StatusBadRequest)
			return
		}
		if g.limit > 0 && g.activeLocked() >= g.limit {
			http.Error(w, `{"error": {"detail": "too many keys"}}`, http.StatusUnprocessableEntity)
			return
		}
		g.now = g.now.Add(time.Second)
		k := &gkey{ID: "k" + strconv.Itoa(len(g.keys)+1), Desc: req.Description, Secret: "gen_" + randSecret(), Status: "ENABLED", Created: g.now}
		g.keys = append(g.keys, k)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"key": g.obj(k), "secret": k.Secret})
	case r.URL.Path == "/api/keys" && r.Method == http.MethodGet:
		if g.onList != nil && g.onList(w) {
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		from, to := min(page*2, len(g.keys)), min(page*2+2, len(g.keys))
		var out []any
		for _, k := range g.keys[from:to] {
			out = append(out, g.obj(k))
		}
		if to < len(g.keys) {
			host := ""
			if g.linkHost != "" {
				host = g.linkHost
			}
			w.Header().Set("Link", fmt.Sprintf(`<%s/api/keys?page=%d>; rel="next", </api/keys?page=0>; rel="first"`, host, page+1))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": out})
	case strings.HasSuffix(id, "/revoke") && r.Method == http.MethodPost:
		k := g.find(strings.TrimSuffix(id, "/revoke"))
		if k == nil {
			http.Error(w, `{"error": {"detail": "no such key"}}`, http.StatusNotFound)
			return
		}
		if k.Status == "ENABLED" {
			k.Status, k.Revoked = "DISABLED", g.now
		}
		fmt.Fprint(w, `{}`)
	case id != "" && r.Method == http.MethodGet:
		k := g.find(id)
		if k == nil {
			http.Error(w, `{"error": {"detail": "no such key"}}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(g.obj(k))
	default:
		http.Error(w, `{"error": {"detail": "no route"}}`, http.StatusNotFound)
	}
}

func (g *generic) activeLocked() int {
	n := 0
	for _, k := range g.keys {
		if k.Status == "ENABLED" {
			n++
		}
	}
	return n
}

func (g *generic) find(id string) *gkey {
	for _, k := range g.keys {
		if k.ID == id {
			return k
		}
	}
	return nil
}

// genericEntry describes generic in YAML, the way README's "no preset"
// section does.
func genericEntry(t *testing.T, g *generic) string {
	t.Setenv("REKEY_TEST_GEN_USER", genericUser)
	t.Setenv("REKEY_TEST_GEN_PASS", genericPass)
	return `    type: http
    base_url: ` + g.URL + `/api
    max_active_keys: 3
    auth:
      basic: {username: env:REKEY_TEST_GEN_USER, password: env:REKEY_TEST_GEN_PASS}
    create: {path: /keys, body: '{"description": "{{label}}"}', expect_status: [201]}
    get: {path: "/keys/{{id}}"}
    list:
      path: /keys
      items: $.keys[*]
      pagination: {type: link}
    revoke: {method: POST, path: "/keys/{{id}}/revoke"}
    verify: {path: /whoami, header: X-Api-Key, value: "{{key}}", refused_status: [401]}
    # Create answers {"key": {...}, "secret"}: the value sits beside the
    # key object, so the fields are found at any depth ($..).
    key:
      id: $..id
      value: $.secret
      label: $..description
      created_at: $..created
      revoked_at: $..revoked
      prefix: $..hint
      status: $..state
      status_map: {active: [ENABLED], revoked: [DISABLED]}
    identify: {match: prefix, field: $.hint, length: 12}
    errors: {key_limit_status: [422], message: $.error.detail}
`
}

func TestGenericContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		g := newGeneric(t)
		iss, logs, _ := build(t, genericEntry(t, g))
		return issuertest.Fixture{Issuer: iss, ActiveCount: g.active, UnknownID: "k999", Logs: logs.String}
	})
}

func TestGenericAbilities(t *testing.T) {
	g := newGeneric(t)
	iss, _, _ := build(t, genericEntry(t, g))
	if l, ok := iss.(issuers.KeyLimiter); !ok || l.MaxActiveKeys() != 3 {
		t.Errorf("not a KeyLimiter of 3 (max_active_keys)")
	}
	if _, ok := iss.(issuers.UsageReporter); ok {
		t.Errorf("a UsageReporter without last_used_at mapped")
	}
	if _, ok := iss.(issuers.Identifier); !ok {
		t.Errorf("not an Identifier with identify set")
	}
}

func TestGenericKeyLimit(t *testing.T) {
	g := newGeneric(t)
	g.limit = 1
	iss, _, _ := build(t, genericEntry(t, g))
	if _, _, err := iss.Create(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	_, _, err := iss.Create(context.Background(), "b")
	if !errors.Is(err, issuers.ErrKeyLimit) || !errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), "too many keys") {
		t.Fatalf("Create past the limit = %v, want a permanent ErrKeyLimit with the API's message", err)
	}
	if errors.Is(err, issuers.ErrMaybeCreated) {
		t.Errorf("a refused create claims a key may exist")
	}
}

// TestGenericCreateUnanswered: the gateway answers 502 after the API made
// the key, every time. Each attempt's orphan is revoked; the final error
// wraps ErrMaybeCreated (a request whose answer was lost may still land),
// and no active key is left.
func TestGenericCreateUnanswered(t *testing.T) {
	g := newGeneric(t)
	iss, _, auto := build(t, genericEntry(t, g))
	g.onCreate = func(w http.ResponseWriter) bool {
		g.now = g.now.Add(time.Second)
		g.keys = append(g.keys, &gkey{ID: "k" + strconv.Itoa(len(g.keys)+1), Desc: "lost", Secret: "gen_" + randSecret(), Status: "ENABLED", Created: g.now})
		w.WriteHeader(http.StatusBadGateway)
		return true
	}
	_, _, err := iss.Create(context.Background(), "lost")
	if !errors.Is(err, issuers.ErrMaybeCreated) {
		t.Fatalf("Create after only 502s = %v, want ErrMaybeCreated", err)
	}
	if n := g.active(); n != 0 {
		t.Errorf("%d active keys left, want 0: every orphan revoked", n)
	}
	if len(g.keys) != 4 || len(auto.Waits()) != 3 {
		t.Errorf("%d creates, %d waits; want 4 attempts with 3 backoffs", len(g.keys), len(auto.Waits()))
	}
}

// TestGenericCleanupFails: the answer is lost and listing fails too: the
// error wraps ErrMaybeCreated and nothing is tried again.
func TestGenericCleanupFails(t *testing.T) {
	g := newGeneric(t)
	iss, _, _ := build(t, genericEntry(t, g))
	creates := 0
	g.onCreate = func(w http.ResponseWriter) bool {
		creates++
		w.WriteHeader(http.StatusInternalServerError)
		return true
	}
	g.onList = func(w http.ResponseWriter) bool {
		http.Error(w, `{"error": {"detail": "nope"}}`, http.StatusBadRequest)
		return true
	}
	_, _, err := iss.Create(context.Background(), "x")
	if !errors.Is(err, issuers.ErrMaybeCreated) || creates != 1 {
		t.Fatalf("Create = %v after %d creates; want ErrMaybeCreated after 1", err, creates)
	}
}

// TestGenericLinkToOtherHostRefused: the management credentials never
// follow a next link to another host.
func TestGenericLinkToOtherHostRefused(t *testing.T) {
	g := newGeneric(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the other host got a request (Authorization set: %v)", r.Header.Get("Authorization") != "")
	}))
	defer other.Close()
	g.linkHost = other.URL
	iss, _, _ := build(t, genericEntry(t, g))
	for range 3 {
		if _, _, err := iss.Create(context.Background(), "l"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := iss.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another host") {
		t.Fatalf("List = %v, want a refusal of the foreign next link", err)
	}
}

// TestGenericPageCap: a list longer than max_pages is an error, never a
// short list.
func TestGenericPageCap(t *testing.T) {
	g := newGeneric(t)
	e := strings.Replace(genericEntry(t, g), "pagination: {type: link}", "pagination: {type: link, max_pages: 2}", 1)
	iss, _, _ := build(t, e)
	for range 5 {
		if _, _, err := iss.Create(context.Background(), "p"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := iss.List(context.Background()); err == nil || !strings.Contains(err.Error(), "more than 2 pages") {
		t.Fatalf("List of 3 pages with max_pages 2 = %v", err)
	}
}

// TestGenericLabelEscaped: a label with JSON and path metacharacters
// reaches the API intact.
func TestGenericLabelEscaped(t *testing.T) {
	g := newGeneric(t)
	iss, _, _ := build(t, genericEntry(t, g))
	label := `a"b\c/d e`
	k, _, err := iss.Create(context.Background(), label)
	if err != nil || k.Label != label {
		t.Fatalf("Create(%q) = %q, %v", label, k.Label, err)
	}
	if _, err := iss.Get(context.Background(), "../keys"); !errors.Is(err, issuers.ErrNotFound) {
		t.Errorf("Get of a malformed ID = %v, want ErrNotFound without a request", err)
	}
}

// TestGenericManagementRefusedLeaksNothing: wrong basic credentials are
// the management-auth error; neither password nor header appears.
func TestGenericManagementRefusedLeaksNothing(t *testing.T) {
	g := newGeneric(t)
	e := genericEntry(t, g)
	t.Setenv("REKEY_TEST_GEN_PASS", "wrong-password-1234")
	iss, logs, _ := build(t, e)
	_, err := iss.List(context.Background())
	if !errors.Is(err, issuers.ErrUnauthorized) || !strings.Contains(err.Error(), "management credentials refused") {
		t.Fatalf("List = %v", err)
	}
	issuertest.AssertNoLeak(t, fmt.Sprintf("%v %+v %#v %s %v", err, err, err, logs.String(), iss), secret.New("wrong-password-1234"))
}

// TestBodyCap: an answer past the cap is an error, not a partial read.
func TestBodyCap(t *testing.T) {
	g := newGeneric(t)
	iss, _, _ := build(t, genericEntry(t, g))
	g.onList = func(w http.ResponseWriter) bool {
		fmt.Fprint(w, `{"keys": [], "pad": "`+strings.Repeat("x", 5<<20)+`"}`)
		return true
	}
	if _, err := iss.List(context.Background()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("List of a 5 MiB answer = %v", err)
	}
}

func randSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestGenericLabelInPath: a label in a path template is escaped once.
func TestGenericLabelInPath(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		w.WriteHeader(http.StatusTeapot)
	}))
	defer srv.Close()
	t.Setenv("T", "tok")
	iss, _, _ := build(t, "    type: http\n    preset: openai-admin\n    base_url: "+srv.URL+"/v%20x\n    auth: {token: env:T}\n    create: {path: \"/keys/{{label}}\", body: \"\"}\n")
	_, _, _ = iss.Create(context.Background(), "a b/c")
	if got != "/v%20x/keys/a%20b%2Fc" {
		t.Errorf("the server saw %q, want /v%%20x/keys/a%%20b%%2Fc", got)
	}
}

// TestGenericCreateLabelChanged: the API makes the key but not with the
// label asked for; that key is revoked at once, not left behind for a
// clean-up by label that would never find it.
func TestGenericCreateLabelChanged(t *testing.T) {
	g := newGeneric(t)
	iss, _, _ := build(t, genericEntry(t, g))
	_, _, err := iss.Create(context.Background(), "Upper")
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.onCreate = func(w http.ResponseWriter) bool {
		g.now = g.now.Add(time.Second)
		k := &gkey{ID: "k" + strconv.Itoa(len(g.keys)+1), Desc: "lowered", Secret: "gen_" + randSecret(), Status: "ENABLED", Created: g.now}
		g.keys = append(g.keys, k)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"key": g.obj(k), "secret": k.Secret})
		return true
	}
	g.mu.Unlock()
	_, _, err = iss.Create(context.Background(), "Other")
	if err == nil || errors.Is(err, issuers.ErrMaybeCreated) || !strings.Contains(err.Error(), "does not carry the label") {
		t.Fatalf("Create = %v", err)
	}
	if n := g.active(); n != 1 {
		t.Errorf("%d active keys, want 1: the relabelled key revoked", n)
	}
}

// TestKeyLimitStatusWinsOver403: an API that answers a full account with
// 403 is a key limit when the entry says so, not refused credentials.
func TestKeyLimitStatusWinsOver403(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error": {"message": "limit of 100 keys"}}`, http.StatusForbidden)
	}))
	defer srv.Close()
	t.Setenv("T", "tok")
	iss, _, _ := build(t, "    type: http\n    preset: openai-admin\n    base_url: "+srv.URL+"\n    auth: {token: env:T}\n    errors: {key_limit_status: [403]}\n")
	_, _, err := iss.Create(context.Background(), "x")
	if !errors.Is(err, issuers.ErrKeyLimit) || errors.Is(err, issuers.ErrUnauthorized) {
		t.Fatalf("Create = %v, want ErrKeyLimit only", err)
	}
}

// TestGenericListRetries: a 503 and a 429 with Retry-After on a list are
// retried, waiting on the issuer's clock; then the list is whole.
func TestGenericListRetries(t *testing.T) {
	g := newGeneric(t)
	iss, _, auto := build(t, genericEntry(t, g))
	if _, _, err := iss.Create(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	faults := []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}
	g.mu.Lock()
	g.onList = func(w http.ResponseWriter) bool {
		if len(faults) == 0 {
			return false
		}
		if faults[0] == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3")
		}
		w.WriteHeader(faults[0])
		faults = faults[1:]
		return true
	}
	g.mu.Unlock()
	keys, err := iss.List(context.Background())
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %d keys, %v", len(keys), err)
	}
	if w := auto.Waits(); len(w) != 2 || w[1] != 3*time.Second {
		t.Errorf("waits %v, want a backoff then Retry-After's 3s", w)
	}
}
