package presettest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cloudflare is a test server of Cloudflare's account-owned API tokens,
// from https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/
// (and .../methods/verify, .../subresources/value/methods/update):
//
//   - POST   /client/v4/accounts/{account_id}/tokens             {"name", "policies": [{"effect", "permission_groups": [{"id"}], "resources": {…}}], …} → result with "value"
//   - GET    /client/v4/accounts/{account_id}/tokens             ?page=1..&per_page=5..50 (default 20) → result [] and result_info
//   - GET    /client/v4/accounts/{account_id}/tokens/{token_id}  → result (no value)
//   - DELETE /client/v4/accounts/{account_id}/tokens/{token_id}  → result {"id"}
//   - GET    /client/v4/accounts/{account_id}/tokens/verify      with the token itself → result {"id", "status"}
//   - PUT    /client/v4/accounts/{account_id}/tokens/{token_id}/value → "Roll Token": a new value, the old one dead at once
//
// Management calls need "Authorization: Bearer <user token>" of a user
// with the Account API Tokens Edit permission; others get 403 code 10000
// "Authentication error". Verify with an unknown or deleted token is 401
// code 1000 "Invalid API Token". Every answer is the envelope {"success",
// "errors": [{"code", "message"}], "messages", "result"}; a token is
// {"id", "name", "status": "active"|"disabled"|"expired", "issued_on",
// "modified_on", "last_used_on", "policies", "condition"} with RFC 3339
// times. Each verify moves the token's last_used_on.
type Cloudflare struct {
	*store
	server
	account string
	admin   string // the user token that manages account tokens
}

// NewCloudflare starts the server for one account. Close it when done.
func NewCloudflare() *Cloudflare {
	c := &Cloudflare{store: newStore(), account: randHex(16), admin: randToken()}
	c.server = start(c.store, http.HandlerFunc(c.serve))
	return c
}

// BaseURL is the account's API root, the preset's base_url.
func (c *Cloudflare) BaseURL() string { return c.URL + "/client/v4/accounts/" + c.account }

// ManagementToken is the user token allowed to manage the account's tokens.
func (c *Cloudflare) ManagementToken() string { return c.admin }

// Seed makes an account token named name, as in the dashboard, and
// returns its ID and value.
func (c *Cloudflare) Seed(name string) (id, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.mint(name)
	return k.ID, k.Value
}

func randToken() string { return randAlnum(40) }

func (c *Cloudflare) mint(name string) *key {
	k := c.add(name, randToken(), randHex(16))
	k.Status = "active"
	return k
}

func cfTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func (c *Cloudflare) object(k *key) map[string]any {
	o := map[string]any{
		"id": k.ID, "name": k.Name, "status": k.Status,
		"issued_on": cfTime(k.Created), "modified_on": cfTime(k.Created),
		"policies":  []any{map[string]any{"id": "f267e341f3dd4697bd3b9f71dd96247f", "effect": "allow", "resources": map[string]any{"com.cloudflare.api.account." + c.account: "*"}, "permission_groups": []any{map[string]any{"id": "c8fed203ed3043cba015a93ad1616f1f", "name": "Zone Read"}}}},
		"condition": map[string]any{},
	}
	if !k.LastUsed.IsZero() {
		o["last_used_on"] = cfTime(k.LastUsed)
	}
	return o
}

func cfOK(w http.ResponseWriter, status int, result any, info map[string]any) {
	body := map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	writeJSON(w, status, body)
}

func cfError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "errors": []any{map[string]any{"code": code, "message": msg}}, "messages": []any{}, "result": nil})
}

func (c *Cloudflare) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/client/v4/accounts/")
	account, rest, _ := strings.Cut(rest, "/")
	if !ok || rest != "tokens" && !strings.HasPrefix(rest, "tokens/") {
		cfError(w, http.StatusNotFound, 7003, "Could not route to "+r.URL.Path+", perhaps your object identifier is invalid?")
		return
	}
	tok, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !bearer || tok == "" {
		cfError(w, http.StatusBadRequest, 6003, "Invalid request headers")
		return
	}
	if rest == "tokens/verify" && r.Method == http.MethodGet {
		k := c.byValue(tok)
		if k == nil || account != c.account {
			cfError(w, http.StatusUnauthorized, 1000, "Invalid API Token")
			return
		}
		k.LastUsed = c.time()
		cfOK(w, http.StatusOK, map[string]any{"id": k.ID, "status": k.Status}, nil)
		return
	}
	if tok != c.admin || account != c.account {
		cfError(w, http.StatusForbidden, 10000, "Authentication error")
		return
	}
	id, _ := strings.CutPrefix(rest, "tokens/")
	switch {
	case rest == "tokens" && r.Method == http.MethodPost:
		c.create(w, r)
	case rest == "tokens" && r.Method == http.MethodGet:
		c.list(w, r)
	case strings.HasSuffix(id, "/value") && r.Method == http.MethodPut:
		// Roll Token: the old value stops working now.
		k := c.find(strings.TrimSuffix(id, "/value"))
		if k == nil {
			cfError(w, http.StatusNotFound, 1003, "Token not found")
			return
		}
		k.Value = randToken()
		cfOK(w, http.StatusOK, k.Value, nil)
	case id != "" && !strings.Contains(id, "/") && r.Method == http.MethodGet:
		k := c.find(id)
		if k == nil {
			cfError(w, http.StatusNotFound, 1003, "Token not found")
			return
		}
		cfOK(w, http.StatusOK, c.object(k), nil)
	case id != "" && !strings.Contains(id, "/") && r.Method == http.MethodDelete:
		k := c.find(id)
		if k == nil {
			cfError(w, http.StatusNotFound, 1003, "Token not found")
			return
		}
		c.remove(k)
		cfOK(w, http.StatusOK, map[string]any{"id": id}, nil)
	default:
		cfError(w, http.StatusMethodNotAllowed, 10405, "Method not allowed for this route")
	}
}

func (c *Cloudflare) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name     *string `json:"name"`
		Policies []struct {
			Effect           string           `json:"effect"`
			PermissionGroups []map[string]any `json:"permission_groups"`
			Resources        map[string]any   `json:"resources"`
		} `json:"policies"`
	}
	if !decodeBody(r, &req) {
		cfError(w, http.StatusBadRequest, 6007, "Malformed JSON in request body")
		return
	}
	if req.Name == nil || *req.Name == "" || len(*req.Name) > 120 {
		cfError(w, http.StatusBadRequest, 400, "name: must be 1-120 characters")
		return
	}
	if len(req.Policies) == 0 {
		cfError(w, http.StatusBadRequest, 400, "policies: a token needs at least one policy")
		return
	}
	for _, p := range req.Policies {
		if p.Effect != "allow" && p.Effect != "deny" || len(p.PermissionGroups) == 0 || len(p.Resources) == 0 {
			cfError(w, http.StatusBadRequest, 400, "policies: each needs effect allow|deny, permission_groups and resources")
			return
		}
	}
	f := c.nextFault()
	if f == RateLimited {
		w.Header().Set("Retry-After", "7")
		cfError(w, http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed")
		return
	}
	k := c.mint(*req.Name)
	obj := c.object(k)
	obj["value"] = k.Value
	deliver(w, f, http.StatusOK, map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": obj})
}

func (c *Cloudflare) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, perPage := 1, 20
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			cfError(w, http.StatusBadRequest, 400, "page: must be at least 1")
			return
		}
		page = n
	}
	if s := q.Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 5 || n > 50 {
			cfError(w, http.StatusBadRequest, 400, "per_page: must be between 5 and 50")
			return
		}
		perPage = n
	}
	all := c.live()
	from := min((page-1)*perPage, len(all))
	to := min(from+perPage, len(all))
	result := []any{}
	for _, k := range all[from:to] {
		result = append(result, c.object(k))
	}
	cfOK(w, http.StatusOK, result, map[string]any{"page": page, "per_page": perPage, "count": len(result), "total_count": len(all)})
}
