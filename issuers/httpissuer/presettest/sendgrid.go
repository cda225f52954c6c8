package presettest

import (
	"crypto/rand"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// SendGrid is a test server of Twilio SendGrid's API keys (v3), from
// https://www.twilio.com/docs/sendgrid/api-reference/api-keys and
// https://www.twilio.com/docs/sendgrid/api-reference/api-key-permissions:
//
//   - POST   /v3/api_keys               {"name", "scopes"?} → 201 {"api_key", "api_key_id", "name", "scopes"}
//   - GET    /v3/api_keys               ?limit= → {"result": [{"name", "api_key_id"}]}
//   - GET    /v3/api_keys/{api_key_id}  → {"result": [{"name", "api_key_id", "scopes"}]}
//   - DELETE /v3/api_keys/{api_key_id}  → 204
//   - GET    /v3/scopes                 → {"scopes": [...]}: the calling key's scopes
//
// Every call needs "Authorization: Bearer <API key>"; key management needs
// a key with the api_keys scopes (a Full Access key has them). A value is
// 69 characters, SG.<22-character api_key_id>.<43-character secret>. There
// is no creation or last-used time. Names need not be unique. The account
// holds at most 100 keys; a create beyond that is 403 "Cannot create more
// than 100 API Keys". Errors are {"errors": [{"field", "message"}]}: 400
// for a missing name, 401 "authorization required" for an unknown key,
// 403 "access forbidden" for a key without the scope, 404 "unable to find
// API Key". The list has no paging beyond limit; this server lists keys
// in creation order, which SendGrid does not document.
type SendGrid struct {
	*store
	server
	management string
	scopes     map[string][]string // by key ID
}

// sendgridFullAccess are the scopes of a key made without scopes; only
// the ones this server checks are listed.
var sendgridFullAccess = []string{"api_keys.create", "api_keys.delete", "api_keys.read", "api_keys.update", "mail.send"}

// NewSendGrid starts the server with one Full Access key named
// "management", made as in the SendGrid app. Close it when done.
func NewSendGrid() *SendGrid {
	s := &SendGrid{store: newStore(), scopes: map[string][]string{}}
	s.limit = 100
	s.management = s.Seed("management", nil)
	s.server = start(s.store, http.HandlerFunc(s.serve))
	return s
}

// ManagementKey is the Full Access key that manages the others.
func (s *SendGrid) ManagementKey() string { return s.management }

// Seed makes a key named name with scopes (nil: Full Access), as in the
// SendGrid app, and returns its value.
func (s *SendGrid) Seed(name string, scopes []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mint(name, scopes).Value
}

func (s *SendGrid) mint(name string, scopes []string) *key {
	id := randB64URL(22)
	k := s.add(name, "SG."+id+"."+randB64URL(43), id)
	if scopes == nil {
		scopes = sendgridFullAccess
	}
	s.scopes[id] = slices.Clone(scopes)
	return k
}

// randB64URL is n random characters of the URL-safe base64 alphabet.
func randB64URL(n int) string {
	const chars = alnum + "-_"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

func sgError(w http.ResponseWriter, status int, field any, msg string) {
	writeJSON(w, status, map[string]any{"errors": []any{map[string]any{"field": field, "message": msg}}})
}

func (s *SendGrid) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	caller := s.byValue(tok)
	if !ok || caller == nil {
		sgError(w, http.StatusUnauthorized, nil, "authorization required")
		return
	}
	if r.URL.Path == "/v3/scopes" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"scopes": s.scopes[caller.ID]})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v3/api_keys")
	if !ok || rest != "" && !strings.HasPrefix(rest, "/") {
		sgError(w, http.StatusNotFound, nil, "resource not found")
		return
	}
	id := strings.TrimPrefix(rest, "/")
	may := func(scope string) bool {
		if slices.Contains(s.scopes[caller.ID], scope) {
			return true
		}
		sgError(w, http.StatusForbidden, nil, "access forbidden")
		return false
	}
	switch {
	case rest == "" && r.Method == http.MethodPost:
		if may("api_keys.create") {
			s.create(w, r)
		}
	case rest == "" && r.Method == http.MethodGet:
		if may("api_keys.read") {
			s.list(w, r)
		}
	case id != "" && !strings.Contains(id, "/") && (r.Method == http.MethodGet || r.Method == http.MethodDelete):
		if !may(map[string]string{http.MethodGet: "api_keys.read", http.MethodDelete: "api_keys.delete"}[r.Method]) {
			return
		}
		k := s.find(id)
		switch {
		case k == nil:
			sgError(w, http.StatusNotFound, nil, "unable to find API Key")
		case r.Method == http.MethodGet:
			o := s.object(k)
			o["scopes"] = s.scopes[k.ID]
			writeJSON(w, http.StatusOK, map[string]any{"result": []any{o}})
		default:
			k.deleted = true
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		sgError(w, http.StatusNotFound, nil, "resource not found")
	}
}

func (s *SendGrid) object(k *key) map[string]any {
	return map[string]any{"name": k.Name, "api_key_id": k.ID}
}

func (s *SendGrid) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if !decodeBody(r, &req) {
		sgError(w, http.StatusBadRequest, nil, "invalid JSON")
		return
	}
	if req.Name == "" {
		sgError(w, http.StatusBadRequest, "name", "missing required argument")
		return
	}
	if len(s.live()) >= s.limit {
		sgError(w, http.StatusForbidden, nil, "Cannot create more than "+strconv.Itoa(s.limit)+" API Keys")
		return
	}
	f := s.nextFault()
	if f == RateLimited {
		w.Header().Set("Retry-After", "7")
		sgError(w, http.StatusTooManyRequests, nil, "too many requests")
		return
	}
	k := s.mint(req.Name, req.Scopes)
	o := s.object(k)
	o["api_key"], o["scopes"] = k.Value, s.scopes[k.ID]
	deliver(w, f, http.StatusCreated, o)
}

func (s *SendGrid) list(w http.ResponseWriter, r *http.Request) {
	limit := -1
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			sgError(w, http.StatusBadRequest, "limit", "limit must be a positive integer")
			return
		}
		limit = n
	}
	result := []any{}
	for _, k := range s.keys { // creation order
		if !k.deleted && limit != 0 {
			result = append(result, s.object(k))
			limit--
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}
