package presettest

import (
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Twilio is a test server of Twilio's API Key resource (REST API
// 2010-04-01) for one account, from
// https://www.twilio.com/docs/iam/api-keys/key-resource-v2010,
// https://www.twilio.com/docs/iam/keys/api and
// https://www.twilio.com/docs/usage/requests-to-twilio (paging, errors):
//
//   - POST   /2010-04-01/Accounts/{AccountSid}/Keys.json        form FriendlyName (≤ 64 characters) → 201 {"sid", "friendly_name", "date_created", "date_updated", "secret"}
//   - GET    /2010-04-01/Accounts/{AccountSid}/Keys.json        ?PageSize=1..1000 (default 50)&Page=&PageToken= → {"keys": [...], "next_page_uri", …}
//   - GET    /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json  → the key without its secret
//   - DELETE /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json  → 204
//   - GET    /2010-04-01/Accounts/{AccountSid}/Messages.json    → {"messages": [], …}
//
// Requests authenticate with HTTP basic auth: the account SID and auth
// token, or an API key's SID and secret. Keys made through the API are
// Standard keys: they may read messages but not reach the Keys resource
// (only the auth token or a Main key may; this server answers a Standard
// key there 401, the code of refused credentials). Dates are RFC 2822.
// Errors are {"code", "message", "more_info", "status"}: 20003 for refused
// credentials (401), 20404 for an unknown resource (404), 21xxx for a
// bad parameter (400). next_page_uri is null on the last page.
type Twilio struct {
	*store
	server
	account, authToken string
}

// NewTwilio starts the server for one account. Close it when done.
func NewTwilio() *Twilio {
	t := &Twilio{store: newStore(), account: "AC" + randHex(16), authToken: randHex(16)}
	t.server = start(t.store, http.HandlerFunc(t.serve))
	return t
}

// AccountSID and AuthToken authenticate as the account.
func (t *Twilio) AccountSID() string { return t.account }
func (t *Twilio) AuthToken() string  { return t.authToken }

// BaseURL is the account's API root, the preset's base_url.
func (t *Twilio) BaseURL() string { return t.URL + "/2010-04-01/Accounts/" + t.account }

// Seed makes a Standard key named name, as in the Console, and returns
// its SID and secret.
func (t *Twilio) Seed(name string) (sid, secret string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.mint(name)
	return k.ID, k.Value
}

func (t *Twilio) mint(name string) *key {
	return t.add(name, randAlnum(32), "SK"+randHex(16))
}

func twError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code), "status": status})
}

func twDate(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func (t *Twilio) object(k *key) map[string]any {
	return map[string]any{"sid": k.ID, "friendly_name": k.Name, "date_created": twDate(k.Created), "date_updated": twDate(k.Created)}
}

func (t *Twilio) serve(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	var standard bool
	switch {
	case ok && user == t.account && pass == t.authToken:
	case ok && t.find(user) != nil && t.find(user).Value == pass:
		standard = true
	default:
		twError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	prefix := "/2010-04-01/Accounts/" + t.account
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		twError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if rest == "/Messages.json" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"messages": []any{}, "next_page_uri": nil, "page": 0,
			"page_size": 50, "uri": r.URL.RequestURI()})
		return
	}
	sid, inKeys := strings.CutPrefix(rest, "/Keys/")
	sid, isJSON := strings.CutSuffix(sid, ".json")
	if rest != "/Keys.json" && (!inKeys || !isJSON || sid == "" || strings.Contains(sid, "/")) {
		twError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if standard {
		twError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	switch {
	case rest == "/Keys.json" && r.Method == http.MethodPost:
		t.create(w, r)
	case rest == "/Keys.json" && r.Method == http.MethodGet:
		t.list(w, r, prefix+"/Keys.json")
	case r.Method == http.MethodGet || r.Method == http.MethodDelete:
		k := t.find(sid)
		if k == nil {
			twError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
			return
		}
		if r.Method == http.MethodGet {
			writeJSON(w, http.StatusOK, t.object(k))
			return
		}
		k.deleted = true
		w.WriteHeader(http.StatusNoContent)
	default:
		twError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
	}
}

func (t *Twilio) create(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		twError(w, http.StatusBadRequest, 20001, "Invalid content type: the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		twError(w, http.StatusBadRequest, 20001, "Malformed form body")
		return
	}
	name := r.PostForm.Get("FriendlyName")
	if len(name) > 64 {
		twError(w, http.StatusBadRequest, 21610, "FriendlyName must be at most 64 characters")
		return
	}
	f := t.nextFault()
	if f == RateLimited {
		w.Header().Set("Retry-After", "7")
		twError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
		return
	}
	k := t.mint(name)
	o := t.object(k)
	o["secret"] = k.Value
	deliver(w, f, http.StatusCreated, o)
}

// list pages newest first. A page after the first needs the PageToken
// that next_page_uri carries: the SID of the previous page's last key.
func (t *Twilio) list(w http.ResponseWriter, r *http.Request, path string) {
	q := r.URL.Query()
	size, page := 50, 0
	if s := q.Get("PageSize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			twError(w, http.StatusBadRequest, 20001, "PageSize must be between 1 and 1000")
			return
		}
		size = n
	}
	all := t.live()
	from := 0
	if s := q.Get("Page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			twError(w, http.StatusBadRequest, 20001, "Page must not be negative")
			return
		}
		page = n
		if page > 0 {
			tok := strings.TrimPrefix(q.Get("PageToken"), "PA")
			from = -1
			for i, k := range all {
				if k.ID == tok {
					from = i + 1
				}
			}
			if from < 0 {
				twError(w, http.StatusBadRequest, 20001, "Invalid PageToken")
				return
			}
		}
	}
	to := min(from+size, len(all))
	keys := []any{}
	for _, k := range all[from:to] {
		keys = append(keys, t.object(k))
	}
	uri := func(p int, token string) string {
		v := url.Values{"PageSize": {strconv.Itoa(size)}, "Page": {strconv.Itoa(p)}}
		if token != "" {
			v.Set("PageToken", "PA"+token)
		}
		return path + "?" + v.Encode()
	}
	var next any
	if to < len(all) {
		next = uri(page+1, all[to-1].ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys, "next_page_uri": next, "first_page_uri": uri(0, ""),
		"previous_page_uri": nil, "page": page, "page_size": size, "start": from, "end": max(to-1, from),
		"uri": r.URL.RequestURI()})
}
