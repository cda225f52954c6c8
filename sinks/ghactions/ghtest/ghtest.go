// Package ghtest is a protocol-faithful stand-in for the parts of the GitHub
// REST API that the github-actions sink uses: Actions and Dependabot secrets
// of repositories, environments and organizations, repository lookup, and
// GitHub App installation tokens.
//
// It keeps a real Curve25519 key pair per scope and opens every PUT with
// box.OpenAnonymous, so a test that passes proves the sink's encryption end
// to end. Like GitHub, it answers 422 to a stale key_id or a body that does
// not open, 201 on create and 204 on update, tracks created_at/updated_at at
// second granularity, never returns a value, and checks the bearer token of
// every request. Knobs let a test rotate keys, forbid a scope, drop writes
// and answer with primary or secondary rate limits.
//
// Scopes are named as the sink names them: "repos/OWNER/REPO",
// "repos/OWNER/REPO/environments/ENV", "orgs/ORG", and for Dependabot
// secrets "repos/OWNER/REPO/dependabot" and "orgs/ORG/dependabot".
//
// Point go-github at it with BaseURL = URL + "/".
package ghtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"
	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/nacl/box"
)

// RepoScope names a repository's Actions secrets.
func RepoScope(fullName string) string { return "repos/" + fullName }

// EnvScope names an environment's secrets.
func EnvScope(fullName, env string) string { return "repos/" + fullName + "/environments/" + env }

// OrgScope names an organization's Actions secrets.
func OrgScope(org string) string { return "orgs/" + org }

// Dependabot names the Dependabot secrets of a repository or organization
// scope.
func Dependabot(scope string) string { return scope + "/dependabot" }

// Secret is what the server stores for one secret. Value is the opened
// plaintext; the API never returns it.
type Secret struct {
	Value       string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Visibility  string  // organization secrets only
	SelectedIDs []int64 // organization secrets with visibility "selected"
}

type scope struct {
	keyID   string
	pub     *[32]byte
	priv    *[32]byte
	secrets map[string]*Secret // by upper-cased name, as GitHub is case-insensitive
}

type repo struct {
	id       int64
	owner    string
	name     string
	envs     map[string]bool
	fullName string
}

type app struct {
	id             int64
	installationID int64
	pub            *rsa.PublicKey
}

type rateLimit struct {
	primary   bool
	remaining int // how many more responses to limit
	wait      time.Duration
	status    int
	until     time.Time // requests before it are refused again
}

// Server is the fake GitHub API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API root, without a trailing slash.
	URL string

	srv   *httptest.Server
	clock clockwork.Clock

	mu           sync.Mutex
	tokens       map[string]time.Time // token → expiry (zero: never)
	repos        map[string]*repo     // by lower-cased full name
	reposByID    map[int64]*repo
	orgs         map[string]bool
	scopes       map[string]*scope
	forbidden    map[string]bool
	dropWrites   bool
	dropNext     int                // PUTs still to drop after DropNextWrites
	failPuts     map[string]failPut // by secret name
	limit        *rateLimit
	apps         map[int64]*app // by installation ID
	tokenTTL     time.Duration
	minted       int
	requests     []string
	nextID       int64
	keySerial    int
	defaultToken string
}

// Option configures a Server.
type Option func(*Server)

// WithClock makes the server stamp created_at, updated_at, Date and rate
// limit resets from c instead of the real clock.
func WithClock(c clockwork.Clock) Option { return func(s *Server) { s.clock = c } }

// New starts a server, closed when the test ends. It accepts Token() as a
// bearer token.
func New(t testing.TB, opts ...Option) *Server {
	s := &Server{
		clock:     clockwork.NewRealClock(),
		tokens:    map[string]time.Time{},
		repos:     map[string]*repo{},
		reposByID: map[int64]*repo{},
		orgs:      map[string]bool{},
		scopes:    map[string]*scope{},
		forbidden: map[string]bool{},
		apps:      map[int64]*app{},
		tokenTTL:  time.Hour,
		nextID:    1000,
	}
	for _, o := range opts {
		o(s)
	}
	s.defaultToken = "ghp_" + randomHex(18)
	s.tokens[s.defaultToken] = time.Time{}
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Token returns a personal access token the server accepts.
func (s *Server) Token() string { return s.defaultToken }

// AddRepo creates a repository ("owner/name"; the owner need not be an
// organization) and returns its numeric ID.
func (s *Server) AddRepo(fullName string) int64 {
	owner, name, _ := strings.Cut(fullName, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.repos[strings.ToLower(fullName)]; ok {
		return r.id
	}
	s.nextID++
	r := &repo{id: s.nextID, owner: owner, name: name, envs: map[string]bool{}, fullName: fullName}
	s.repos[strings.ToLower(fullName)] = r
	s.reposByID[r.id] = r
	return r.id
}

// AddEnvironment creates an environment in an existing repository.
func (s *Server) AddEnvironment(fullName, env string) {
	s.AddRepo(fullName)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[strings.ToLower(fullName)].envs[env] = true
}

// AddOrg creates an organization.
func (s *Server) AddOrg(org string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orgs[strings.ToLower(org)] = true
}

// Forbid makes every request on scope answer 403, as GitHub does when the
// token lacks the permission.
func (s *Server) Forbid(scope string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden[scope] = true
}

// DropWrites makes PUTs answer 204 without storing anything, like a write
// that never landed.
func (s *Server) DropWrites(drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWrites = drop
}

// DropNextWrites makes the next n PUTs answer 204 without storing
// anything, and the ones after them land again.
func (s *Server) DropNextWrites(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropNext = n
}

type failPut struct {
	status int
	times  int // left; < 0 for every PUT
}

// FailPuts makes the next times PUTs of the secret name (in any scope)
// answer status without storing anything, as a GitHub outage or a
// permission missing for one secret would; times < 0 fails every PUT until
// FailPuts(name, 0, 0).
func (s *Server) FailPuts(name string, status, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPuts == nil {
		s.failPuts = map[string]failPut{}
	}
	if times == 0 {
		delete(s.failPuts, name)
		return
	}
	s.failPuts[name] = failPut{status: status, times: times}
}

// failPutLocked reports the status a PUT of name must fail with, if any.
func (s *Server) failPutLocked(name string) (int, bool) {
	f, ok := s.failPuts[name]
	if !ok {
		return 0, false
	}
	if f.times > 0 {
		f.times--
		if f.times == 0 {
			delete(s.failPuts, name)
		} else {
			s.failPuts[name] = f
		}
	}
	return f.status, true
}

// RotateKey gives scope a new key pair and key ID; PUTs sealed for the old
// key then get 422.
func (s *Server) RotateKey(scopeName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(scopeName)
	s.newKeyLocked(sc)
}

// KeyID returns scope's current public key ID.
func (s *Server) KeyID(scopeName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scopeLocked(scopeName).keyID
}

// SetSecret stores value directly, as an operator would have in the UI.
func (s *Server) SetSecret(scopeName, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(scopeName)
	now := s.now()
	key := strings.ToUpper(name)
	if old, ok := sc.secrets[key]; ok {
		old.Value, old.UpdatedAt = value, now
		return
	}
	sc.secrets[key] = &Secret{Value: value, CreatedAt: now, UpdatedAt: now}
}

// Plaintext returns the value the server holds for name in scope.
func (s *Server) Plaintext(scopeName, name string) (string, bool) {
	sec, ok := s.Lookup(scopeName, name)
	return sec.Value, ok
}

// Lookup returns a copy of what the server holds for name in scope.
func (s *Server) Lookup(scopeName, name string) (Secret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scopes[scopeName]
	if !ok {
		return Secret{}, false
	}
	sec, ok := sc.secrets[strings.ToUpper(name)]
	if !ok {
		return Secret{}, false
	}
	c := *sec
	c.SelectedIDs = append([]int64(nil), sec.SelectedIDs...)
	return c, true
}

// PrimaryRateLimit makes the next n requests answer 403 with
// X-RateLimit-Remaining: 0 and a reset wait from now; requests before the
// reset are refused again, as GitHub does.
func (s *Server) PrimaryRateLimit(n int, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = &rateLimit{primary: true, remaining: n, wait: wait, status: http.StatusForbidden}
}

// SecondaryRateLimit makes the next n requests answer status (403 or 429)
// with Retry-After: wait; requests before that are refused again.
func (s *Server) SecondaryRateLimit(n int, wait time.Duration, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = &rateLimit{remaining: n, wait: wait, status: status}
}

// AddApp registers a GitHub App installation whose JWTs verify with pub.
func (s *Server) AddApp(appID, installationID int64, pub *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[installationID] = &app{id: appID, installationID: installationID, pub: pub}
}

// SetInstallationTokenTTL sets the lifetime of installation tokens minted
// from now on (default one hour).
func (s *Server) SetInstallationTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// MintedTokens counts installation tokens minted so far.
func (s *Server) MintedTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.minted
}

// Requests returns "METHOD /path" for every request served so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Count returns how many requests had this method and path.
func (s *Server) Count(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r == method+" "+path {
			n++
		}
	}
	return n
}

func (s *Server) now() time.Time { return s.clock.Now().UTC().Truncate(time.Second) }

func (s *Server) scopeLocked(name string) *scope {
	sc, ok := s.scopes[name]
	if !ok {
		sc = &scope{secrets: map[string]*Secret{}}
		s.newKeyLocked(sc)
		s.scopes[name] = sc
	}
	return sc
}

func (s *Server) newKeyLocked(sc *scope) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	s.keySerial++
	sc.pub, sc.priv = pub, priv
	sc.keyID = strconv.Itoa(3380204578043523366 + s.keySerial)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ---- HTTP ----

const docsURL = "https://docs.github.com/rest"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/{owner}/{repo}", s.getRepo)
	mux.HandleFunc("GET /repos/{owner}/{repo}/{kind}/secrets/public-key", s.publicKey)
	mux.HandleFunc("GET /repos/{owner}/{repo}/{kind}/secrets", s.listSecrets)
	mux.HandleFunc("GET /repos/{owner}/{repo}/{kind}/secrets/{name}", s.getSecret)
	mux.HandleFunc("PUT /repos/{owner}/{repo}/{kind}/secrets/{name}", s.putSecret)
	mux.HandleFunc("GET /repositories/{id}/environments/{env}/secrets/public-key", s.publicKey)
	mux.HandleFunc("GET /repositories/{id}/environments/{env}/secrets", s.listSecrets)
	mux.HandleFunc("GET /repositories/{id}/environments/{env}/secrets/{name}", s.getSecret)
	mux.HandleFunc("PUT /repositories/{id}/environments/{env}/secrets/{name}", s.putSecret)
	mux.HandleFunc("GET /orgs/{org}/{kind}/secrets/public-key", s.publicKey)
	mux.HandleFunc("GET /orgs/{org}/{kind}/secrets", s.listSecrets)
	mux.HandleFunc("GET /orgs/{org}/{kind}/secrets/{name}", s.getSecret)
	mux.HandleFunc("PUT /orgs/{org}/{kind}/secrets/{name}", s.putSecret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		now := s.clock.Now()
		s.mu.Unlock()
		w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/app/installations/") {
			s.accessToken(w, r)
			return
		}
		if !s.authorized(r) {
			writeError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		if s.rateLimited(w) {
			return
		}
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "4999")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg, "documentation_url": docsURL})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && (exp.IsZero() || s.clock.Now().Before(exp))
}

func (s *Server) rateLimited(w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limit
	if l == nil {
		return false
	}
	now := s.clock.Now()
	if l.remaining <= 0 && !now.Before(l.until) {
		s.limit = nil
		return false
	}
	if l.remaining > 0 {
		l.remaining--
		l.until = now.Add(l.wait)
	}
	if l.primary {
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(l.until.Add(time.Second-1).Unix(), 10))
		writeError(w, l.status, "API rate limit exceeded for installation ID 1.")
		return true
	}
	secs := int64(l.until.Sub(now) / time.Second)
	if l.until.Sub(now)%time.Second != 0 {
		secs++
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, l.status, map[string]string{
		"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
		"documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
	})
	return true
}

// resolve finds the scope a request addresses, answering 404/403 itself
// when it does not exist or is forbidden. It returns the scope name and
// whether it is an organization scope.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request) (name string, org bool, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.PathValue("id") != "":
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		rp, found := s.reposByID[id]
		if !found {
			writeError(w, http.StatusNotFound, "Not Found")
			return "", false, false
		}
		env := r.PathValue("env")
		if !rp.envs[env] {
			writeError(w, http.StatusNotFound, "Not Found")
			return "", false, false
		}
		name = EnvScope(rp.fullName, env)
	case r.PathValue("org") != "":
		o := r.PathValue("org")
		if !s.orgs[strings.ToLower(o)] {
			writeError(w, http.StatusNotFound, "Not Found")
			return "", false, false
		}
		name, org = OrgScope(o), true
	default:
		rp, found := s.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
		if !found {
			writeError(w, http.StatusNotFound, "Not Found")
			return "", false, false
		}
		name = RepoScope(rp.fullName)
	}
	switch r.PathValue("kind") {
	case "", "actions":
	case "dependabot":
		name = Dependabot(name)
	default:
		writeError(w, http.StatusNotFound, "Not Found")
		return "", false, false
	}
	if s.forbidden[name] {
		writeError(w, http.StatusForbidden, "Resource not accessible by personal access token")
		return "", false, false
	}
	return name, org, true
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rp, ok := s.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": rp.id, "name": rp.name, "full_name": rp.fullName,
		"owner": map[string]any{"login": rp.owner},
	})
}

func (s *Server) publicKey(w http.ResponseWriter, r *http.Request) {
	name, _, ok := s.resolve(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	sc := s.scopeLocked(name)
	body := map[string]string{"key_id": sc.keyID, "key": base64.StdEncoding.EncodeToString(sc.pub[:])}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func secretJSON(name string, sec *Secret, org bool) map[string]any {
	m := map[string]any{
		"name":       name,
		"created_at": sec.CreatedAt.Format(time.RFC3339),
		"updated_at": sec.UpdatedAt.Format(time.RFC3339),
	}
	if org {
		m["visibility"] = sec.Visibility
	}
	return m
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	name, org, ok := s.resolve(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	key := strings.ToUpper(r.PathValue("name"))
	sec, found := s.scopeLocked(name).secrets[key]
	var body map[string]any
	if found {
		body = secretJSON(key, sec, org)
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	name, org, ok := s.resolve(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	list := []map[string]any{}
	for k, sec := range s.scopeLocked(name).secrets {
		list = append(list, secretJSON(k, sec, org))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(list), "secrets": list})
}

var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	scopeName, org, ok := s.resolve(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	s.mu.Lock()
	status, fail := s.failPutLocked(name)
	s.mu.Unlock()
	if fail {
		writeError(w, status, http.StatusText(status))
		return
	}
	if !validName.MatchString(name) || strings.HasPrefix(strings.ToUpper(name), "GITHUB_") {
		writeError(w, http.StatusUnprocessableEntity,
			"Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_). Spaces are not allowed. Must start with a letter ([a-z], [A-Z]) or underscores (_). Must not start with GITHUB_.")
		return
	}
	var body struct {
		EncryptedValue        string `json:"encrypted_value"`
		KeyID                 string `json:"key_id"`
		Visibility            string `json:"visibility"`
		SelectedRepositoryIDs []any  `json:"selected_repository_ids"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	var ids []int64
	for _, v := range body.SelectedRepositoryIDs {
		// Actions sends numbers, Dependabot strings.
		id, err := strconv.ParseInt(strings.Trim(fmt.Sprint(v), `"`), 10, 64)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nselected_repository_ids must be integers.")
			return
		}
		ids = append(ids, id)
	}
	if org {
		switch body.Visibility {
		case "all", "private", "selected":
		default:
			writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nvisibility must be one of all, private, selected.")
			return
		}
		if body.Visibility != "selected" && len(ids) > 0 {
			writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nselected_repository_ids requires visibility selected.")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(scopeName)
	if body.KeyID != sc.keyID {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nkey_id does not match the current public key.")
		return
	}
	sealed, err := base64.StdEncoding.DecodeString(body.EncryptedValue)
	if err != nil || len(sealed) > 48*1024+box.AnonymousOverhead {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nencrypted_value is not valid base64 or too large.")
		return
	}
	plain, opened := box.OpenAnonymous(nil, sealed, sc.pub, sc.priv)
	if !opened {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nencrypted_value could not be decrypted with the public key.")
		return
	}
	for _, id := range ids {
		if rp, found := s.reposByID[id]; !found || !strings.EqualFold(rp.owner, r.PathValue("org")) {
			writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nselected_repository_ids contains a repository outside the organization.")
			return
		}
	}
	if s.dropWrites || s.dropNext > 0 {
		if s.dropNext > 0 {
			s.dropNext--
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	now := s.now()
	key := strings.ToUpper(name)
	sec, exists := sc.secrets[key]
	if !exists {
		sec = &Secret{CreatedAt: now}
		sc.secrets[key] = sec
	}
	sec.Value, sec.UpdatedAt = string(plain), now
	if org {
		sec.Visibility, sec.SelectedIDs = body.Visibility, ids
	}
	if exists {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{})
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/app/installations/")
	idText, ok := strings.CutSuffix(rest, "/access_tokens")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.mu.Lock()
	a, found := s.apps[id]
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	raw, isBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !isBearer {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) {
		if tok.Method != jwt.SigningMethodRS256 {
			return nil, fmt.Errorf("unexpected signing method %v", tok.Header["alg"])
		}
		return a.pub, nil
	})
	if err != nil || claims.Issuer != strconv.FormatInt(a.id, 10) || claims.ExpiresAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
		writeError(w, http.StatusUnauthorized, "'Issuer' claim ('iss') must be an Integer")
		return
	}
	s.mu.Lock()
	tok := "ghs_" + randomHex(18)
	exp := s.clock.Now().Add(s.tokenTTL).UTC().Truncate(time.Second)
	s.tokens[tok] = exp
	s.minted++
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":      tok,
		"expires_at": exp.Format(time.RFC3339),
		"permissions": map[string]string{
			"secrets": "write", "environments": "write", "organization_secrets": "write",
		},
	})
}
