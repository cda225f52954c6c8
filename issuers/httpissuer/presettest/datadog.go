package presettest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Datadog is a test server of Datadog's API key management (v2, JSON:API)
// and key validation, from
// https://docs.datadoghq.com/api/latest/key-management/ and
// https://docs.datadoghq.com/api/latest/authentication/:
//
//   - POST   /api/v2/api_keys            {"data": {"type": "api_keys", "attributes": {"name"}}} → 201 {"data": {…, "attributes": {"key", "last4", …}}}
//   - GET    /api/v2/api_keys            ?page[size]=1..100 (default 10)&page[number]=0..&sort= → {"data": [...], "meta": {"page": {"total_filtered_count"}}}
//   - GET    /api/v2/api_keys/{api_key_id} → {"data": {…}}
//   - DELETE /api/v2/api_keys/{api_key_id} → 204
//   - GET    /api/v1/validate            with DD-API-KEY → 200 {"valid": true}
//
// Key management needs DD-API-KEY (any API key of the organization) and
// DD-APPLICATION-KEY (an application key with api_keys_write); otherwise
// 403 {"errors": ["Forbidden"]}. Other errors are {"errors": ["..."]}:
// 400 for a malformed body, 404 for an unknown key.
type Datadog struct {
	*store
	server
	appKey string
	apiKey string // the organization's API key used for management
}

// NewDatadog starts the server with one API key, named "management", and
// one application key. Close it when done.
func NewDatadog() *Datadog {
	d := &Datadog{store: newStore(), appKey: randHex(20)}
	d.apiKey = d.Seed("management")
	d.server = start(d.store, http.HandlerFunc(d.serve))
	return d
}

// ManagementAPIKey and ApplicationKey authorize key management.
func (d *Datadog) ManagementAPIKey() string { return d.apiKey }
func (d *Datadog) ApplicationKey() string   { return d.appKey }

// Seed makes an API key named name, as in the dashboard, and returns its
// value.
func (d *Datadog) Seed(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mint(name).Value
}

func (d *Datadog) mint(name string) *key {
	id := randHex(16)
	uuid := id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
	// Datadog does not promise distinct last4; this server does, so that
	// tests of adoption by last4 are deterministic.
	value := randHex(16)
	for d.lastFourTaken(value) {
		value = randHex(16)
	}
	return d.add(name, value, uuid)
}

func (d *Datadog) lastFourTaken(v string) bool {
	for _, k := range d.live() {
		if k.Value[len(k.Value)-4:] == v[len(v)-4:] {
			return true
		}
	}
	return false
}

func ddTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000-07:00") }

func (d *Datadog) object(k *key, full bool) map[string]any {
	attrs := map[string]any{
		"created_at": ddTime(k.Created), "modified_at": ddTime(k.Created), "last4": k.Value[len(k.Value)-4:],
		"name": k.Name, "category": "default", "remote_config_read_enabled": true,
	}
	if full {
		attrs["key"] = k.Value
	}
	return map[string]any{"type": "api_keys", "id": k.ID, "attributes": attrs,
		"relationships": map[string]any{"created_by": map[string]any{"data": map[string]any{"type": "users", "id": "00000000-0000-1234-0000-000000000000"}}}}
}

func ddError(w http.ResponseWriter, status int, msgs ...string) {
	writeJSON(w, status, map[string]any{"errors": msgs})
}

func (d *Datadog) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.URL.Path == "/api/v1/validate" && r.Method == http.MethodGet {
		if d.byValue(r.Header.Get("DD-API-KEY")) == nil {
			ddError(w, http.StatusForbidden, "Forbidden")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"valid": true})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v2/api_keys")
	if !ok || rest != "" && !strings.HasPrefix(rest, "/") {
		ddError(w, http.StatusNotFound, "Not found")
		return
	}
	if d.byValue(r.Header.Get("DD-API-KEY")) == nil || r.Header.Get("DD-APPLICATION-KEY") != d.appKey {
		ddError(w, http.StatusForbidden, "Forbidden")
		return
	}
	id := strings.TrimPrefix(rest, "/")
	switch {
	case rest == "" && r.Method == http.MethodPost:
		d.create(w, r)
	case rest == "" && r.Method == http.MethodGet:
		d.list(w, r)
	case id != "" && !strings.Contains(id, "/") && r.Method == http.MethodGet:
		k := d.find(id)
		if k == nil {
			ddError(w, http.StatusNotFound, "API key not found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": d.object(k, true)})
	case id != "" && !strings.Contains(id, "/") && r.Method == http.MethodDelete:
		k := d.find(id)
		if k == nil {
			ddError(w, http.StatusNotFound, "API key not found")
			return
		}
		d.remove(k)
		w.WriteHeader(http.StatusNoContent)
	default:
		ddError(w, http.StatusNotFound, "Not found")
	}
}

func (d *Datadog) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Data *struct {
			Type       string `json:"type"`
			Attributes *struct {
				Name string `json:"name"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if !decodeBody(r, &req) || req.Data == nil {
		ddError(w, http.StatusBadRequest, "Invalid JSON: missing data")
		return
	}
	if req.Data.Type != "api_keys" {
		ddError(w, http.StatusBadRequest, "Invalid type: must be api_keys")
		return
	}
	if req.Data.Attributes == nil || req.Data.Attributes.Name == "" {
		ddError(w, http.StatusBadRequest, "Missing required attribute in body: name")
		return
	}
	f := d.nextFault()
	if f == RateLimited {
		w.Header().Set("Retry-After", "7")
		ddError(w, http.StatusTooManyRequests, "Too many requests")
		return
	}
	k := d.mint(req.Data.Attributes.Name)
	deliver(w, f, http.StatusCreated, map[string]any{"data": d.object(k, true)})
}

func (d *Datadog) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, number := 10, 0
	if s := q.Get("page[size]"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			ddError(w, http.StatusBadRequest, "page[size] must be between 1 and 100")
			return
		}
		size = n
	}
	if s := q.Get("page[number]"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			ddError(w, http.StatusBadRequest, "page[number] must not be negative")
			return
		}
		number = n
	}
	all := d.live() // newest first: sort=-created_at
	switch q.Get("sort") {
	case "-created_at":
	case "", "created_at":
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	default:
		ddError(w, http.StatusBadRequest, "Invalid sort")
		return
	}
	from := min(number*size, len(all))
	to := min(from+size, len(all))
	data := []any{}
	for _, k := range all[from:to] {
		data = append(data, d.object(k, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": map[string]any{"page": map[string]any{"total_filtered_count": len(all)}}})
}
