package presettest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// OpenAI is a test server of OpenAI's organization admin API keys, from
// https://platform.openai.com/docs/api-reference/admin-api-keys:
//
//   - POST   /v1/organization/admin_api_keys           {"name", "expires_in_seconds"?} → 200 key object with "value"
//   - GET    /v1/organization/admin_api_keys           ?after=&limit=1..100 (default 20)&order=asc|desc → list object
//   - GET    /v1/organization/admin_api_keys/{key_id}  → key object (no value)
//   - DELETE /v1/organization/admin_api_keys/{key_id}  → {"id", "object": "organization.admin_api_key.deleted", "deleted": true}
//
// Every call needs "Authorization: Bearer <admin key>"; any active admin
// key of the organization will do, including keys made through the API,
// and each use moves its last_used_at. Errors are
// {"error": {"message", "type", "param", "code"}}: 401 invalid_api_key,
// 404 for an unknown key or URL, 400 invalid_request_error. A key object
// is {"object": "organization.admin_api_key", "id", "name",
// "redacted_value", "created_at", "last_used_at", "owner"} with Unix-second
// times; keys are deleted, never shown revoked.
type OpenAI struct {
	*store
	server
	admin string // the management key, made in the dashboard
}

const openAIPath = "/v1/organization/admin_api_keys"

// NewOpenAI starts the server with one admin key, named "management",
// made as an owner would in the dashboard. Close it when done.
func NewOpenAI() *OpenAI {
	o := &OpenAI{store: newStore()}
	o.admin = o.Seed("management")
	o.server = start(o.store, http.HandlerFunc(o.serve))
	return o
}

// ManagementKey is the admin key that manages the others.
func (o *OpenAI) ManagementKey() string { return o.admin }

// Seed makes an admin key named name, as in the dashboard, and returns
// its value.
func (o *OpenAI) Seed(name string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mint(name).Value
}

func (o *OpenAI) mint(name string) *key {
	// Redacted forms are kept distinct (OpenAI does not promise it), so
	// that tests of adoption by them are deterministic.
	value := "sk-admin-" + randAlnum(58)
	for o.redactedTaken(value) {
		value = "sk-admin-" + randAlnum(58)
	}
	return o.add(name, value, "key_"+randHex(8))
}

func (o *OpenAI) redactedTaken(v string) bool {
	for _, k := range o.live() {
		if redacted(k.Value) == redacted(v) {
			return true
		}
	}
	return false
}

// redacted is the listed form of a value: "sk-admin...def".
func redacted(v string) string { return v[:8] + "..." + v[len(v)-3:] }

func (o *OpenAI) object(k *key) map[string]any {
	var last any
	if !k.LastUsed.IsZero() {
		last = k.LastUsed.Unix()
	}
	return map[string]any{
		"object": "organization.admin_api_key", "id": k.ID, "name": k.Name,
		"redacted_value": redacted(k.Value), "created_at": k.Created.Unix(), "last_used_at": last,
		"owner": map[string]any{"type": "user", "object": "organization.user", "id": "user_abc", "name": "Owner", "created_at": 1711471533, "role": "owner"},
	}
}

func openAIError(w http.ResponseWriter, status int, typ, code, msg string) {
	var c any
	if code != "" {
		c = code
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
}

func (o *OpenAI) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	caller := o.byValue(tok)
	if !ok || caller == nil {
		openAIError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.")
		return
	}
	caller.LastUsed = o.time()
	id, hasID := strings.CutPrefix(r.URL.Path, openAIPath+"/")
	switch {
	case r.URL.Path == openAIPath && r.Method == http.MethodPost:
		o.create(w, r)
	case r.URL.Path == openAIPath && r.Method == http.MethodGet:
		o.list(w, r)
	case hasID && id != "" && !strings.Contains(id, "/") && r.Method == http.MethodGet:
		k := o.find(id)
		if k == nil {
			openAIError(w, http.StatusNotFound, "invalid_request_error", "", "No such admin API key: "+id)
			return
		}
		writeJSON(w, http.StatusOK, o.object(k))
	case hasID && id != "" && !strings.Contains(id, "/") && r.Method == http.MethodDelete:
		k := o.find(id)
		if k == nil {
			openAIError(w, http.StatusNotFound, "invalid_request_error", "", "No such admin API key: "+id)
			return
		}
		o.remove(k)
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "organization.admin_api_key.deleted", "deleted": true})
	default:
		openAIError(w, http.StatusNotFound, "invalid_request_error", "", fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
	}
}

func (o *OpenAI) create(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if !decodeBody(r, &req) {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "We could not parse the JSON body of your request.")
		return
	}
	for f := range req {
		if f != "name" && f != "expires_in_seconds" {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "unknown_parameter", "Unknown parameter: '"+f+"'.")
			return
		}
	}
	name, ok := req["name"].(string)
	if !ok || name == "" {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "Missing required parameter: 'name'.")
		return
	}
	f := o.nextFault()
	if f == RateLimited {
		w.Header().Set("Retry-After", "7")
		openAIError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached for requests")
		return
	}
	k := o.mint(name)
	obj := o.object(k)
	obj["value"] = k.Value
	deliver(w, f, http.StatusOK, obj)
}

func (o *OpenAI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "Invalid 'limit': must be between 1 and 100.")
			return
		}
		limit = n
	}
	keys := o.live() // newest first
	switch q.Get("order") {
	case "", "asc":
		for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
			keys[i], keys[j] = keys[j], keys[i]
		}
	case "desc":
	default:
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "Invalid 'order': must be 'asc' or 'desc'.")
		return
	}
	if after := q.Get("after"); after != "" {
		at := -1
		for i, k := range keys {
			if k.ID == after {
				at = i
			}
		}
		if at < 0 {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "Invalid 'after': no such admin API key.")
			return
		}
		keys = keys[at+1:]
	}
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	data := make([]any, 0, len(keys))
	for _, k := range keys {
		data = append(data, o.object(k))
	}
	var firstID, lastID any
	if len(keys) > 0 {
		firstID, lastID = keys[0].ID, keys[len(keys)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "first_id": firstID, "last_id": lastID, "has_more": more})
}
