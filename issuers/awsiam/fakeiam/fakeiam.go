// Package fakeiam is an in-process AWS IAM and STS for tests, modelled on
// the IAM API reference (API version 2010-05-08) and STS's (2011-06-15):
// the Query protocol (a form-encoded POST naming Action and Version), XML
// answers with AWS's element names, and AWS's error shape
// (<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>).
//
// Every request must carry a valid Signature Version 4 signature, which the
// server recomputes from the secret it knows for the signing access key ID:
// IAM actions are allowed only for the admin pair the server was made with,
// STS's GetCallerIdentity for an active key the server issued (an inactive,
// deleted, unknown or mis-signed key gets InvalidClientTokenId or
// SignatureDoesNotMatch, like AWS). Users start with no keys and hold at
// most Quota access keys, active and inactive alike (AWS's
// AccessKeysPerUser quota is 2). A key issued less than Propagation ago is
// not yet known to STS (IAM's eventual consistency).
//
// IAM actions: CreateAccessKey, ListAccessKeys (MaxItems, Marker),
// UpdateAccessKey, DeleteAccessKey, GetAccessKeyLastUsed, TagUser,
// UntagUser, ListUserTags. STS: GetCallerIdentity. Faults: Deny(action)
// answers AccessDenied; Fail(action, status, code, n) fails the next n
// calls without effect; LoseNext(action) performs the next call of action
// and then drops the connection without an answer.
package fakeiam

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Account is the account ID in the ARNs the server makes.
const Account = "123456789012"

// Admin is the access key pair allowed to call IAM.
const (
	AdminKeyID  = "AKIAFAKEADMIN0000000"
	AdminSecret = "fakeiam/admin/secret/0000000000000000000"
)

const (
	iamNS = "https://iam.amazonaws.com/doc/2010-05-08/"
	stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// Key is an access key as the server holds it.
type Key struct {
	ID, Secret, User, Status string
	Created, LastUsed        time.Time
	LastService, LastRegion  string
}

// Server is a fake IAM and STS listening on loopback.
type Server struct {
	URL string
	srv *httptest.Server

	mu          sync.Mutex
	now         func() time.Time
	quota       int
	propagation time.Duration
	users       map[string]*user
	keys        map[string]*Key // every key ever issued, by ID; deleted ones removed
	denied      map[string]bool
	lose        map[string]int
	faults      map[string][]*apiError
	calls       map[string]int
	pageSize    int
}

type user struct {
	name string
	id   string
	keys []string // key IDs in creation order
	tags [][2]string
}

// Option configures a Server.
type Option func(*Server)

// WithClock makes the server read the time from now (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithQuota sets the keys a user may hold (default 2, AWS's quota).
func WithQuota(n int) Option { return func(s *Server) { s.quota = n } }

// WithPropagation makes a new key unknown to STS for d after its creation.
func WithPropagation(d time.Duration) Option { return func(s *Server) { s.propagation = d } }

// WithPageSize caps ListAccessKeys pages below MaxItems (IAM "might return
// fewer results"), to exercise pagination.
func WithPageSize(n int) Option { return func(s *Server) { s.pageSize = n } }

// New starts a server and stops it when the test ends.
func New(t interface{ Cleanup(func()) }, opts ...Option) *Server {
	s := &Server{
		now: time.Now, quota: 2,
		users: map[string]*user{}, keys: map[string]*Key{},
		denied: map[string]bool{}, lose: map[string]int{}, calls: map[string]int{}, faults: map[string][]*apiError{},
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// AddUser creates an IAM user with no keys.
func (s *Server) AddUser(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[name] = &user{name: name, id: "AIDA" + randomString(17, upperDigits)}
}

// Deny makes every call of action answer AccessDenied (or stop doing so).
func (s *Server) Deny(action string, deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[action] = deny
}

// LoseNext makes the next n calls of action take effect and then drop the
// connection without an answer: the client cannot know the outcome.
func (s *Server) LoseNext(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose[action] = n
}

// Fail makes the next n calls of action fail with the HTTP status and AWS
// error code given (e.g. 400 Throttling, 500 ServiceFailure), without
// taking effect.
func (s *Server) Fail(action string, status int, code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	for range n {
		s.faults[action] = append(s.faults[action], &apiError{status: status, typ: typ, code: code, msg: "injected " + code})
	}
}

// Calls returns how many signed requests for action the server received.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// Keys returns copies of the user's keys in creation order.
func (s *Server) Keys(userName string) []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userName]
	if u == nil {
		return nil
	}
	out := make([]Key, 0, len(u.keys))
	for _, id := range u.keys {
		out = append(out, *s.keys[id])
	}
	return out
}

// Tags returns the user's tags as a map.
func (s *Server) Tags(userName string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if u := s.users[userName]; u != nil {
		for _, t := range u.tags {
			out[t[0]] = t[1]
		}
	}
	return out
}

// CreateKey issues a key out of band, as a person with the console would.
func (s *Server) CreateKey(userName string) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.issue(s.users[userName])
	return *k
}

// Deactivate sets a key Inactive out of band, as a person with the
// console would.
func (s *Server) Deactivate(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keys[id]; k != nil {
		k.Status = "Inactive"
	}
}

// Delete deletes a key out of band, as a person with the console would.
func (s *Server) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[id]
	if k == nil {
		return
	}
	delete(s.keys, id)
	if u := s.users[k.User]; u != nil {
		u.keys = slices.DeleteFunc(u.keys, func(x string) bool { return x == id })
	}
}

type apiError struct {
	status int
	typ    string // Sender or Receiver
	code   string
	msg    string
}

func senderError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, typ: "Sender", code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost {
		writeError(w, iamNS, senderError(400, "InvalidAction", "the Query API takes a form-encoded POST"))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeError(w, iamNS, senderError(400, "MalformedQueryString", "the body is not a form"))
		return
	}
	action := form.Get("Action")
	service, keyID, aerr := s.authenticate(r, body)
	ns := iamNS
	if service == "sts" {
		ns = stsNS
	}
	if aerr != nil {
		writeError(w, ns, aerr)
		return
	}

	s.mu.Lock()
	s.calls[action]++
	var (
		resp any
		e    *apiError
	)
	switch {
	case service == "sts":
		if form.Get("Version") != "2011-06-15" {
			e = senderError(400, "InvalidAction", "could not find operation %s for version %s", action, form.Get("Version"))
		} else if action != "GetCallerIdentity" {
			e = senderError(400, "InvalidAction", "could not find operation %s for version 2011-06-15", action)
		} else {
			resp, e = s.callerIdentity(keyID)
		}
	case keyID != AdminKeyID:
		// An issued key has no IAM permissions: its user has no policy.
		e = senderError(403, "AccessDenied", "User: arn:aws:iam::%s:user/%s is not authorized to perform: iam:%s", Account, s.keys[keyID].User, action)
	case form.Get("Version") != "2010-05-08":
		e = senderError(400, "InvalidAction", "could not find operation %s for version %s", action, form.Get("Version"))
	case len(s.faults[action]) > 0:
		e = s.faults[action][0]
		s.faults[action] = s.faults[action][1:]
	case s.denied[action]:
		e = senderError(403, "AccessDenied", "User: arn:aws:iam::%s:user/rekey-admin is not authorized to perform: iam:%s on resource: user %s because no identity-based policy allows the iam:%s action", Account, action, form.Get("UserName"), action)
	default:
		resp, e = s.iam(action, form)
	}
	lose := e == nil && s.lose[action] > 0
	if lose {
		s.lose[action]--
	}
	s.mu.Unlock()

	if lose {
		// The call took effect; its answer never arrives.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if e != nil {
		writeError(w, ns, e)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID())
	out, _ := xml.Marshal(resp)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$`)

// authenticate checks r's SigV4 signature against the secret of the access
// key it names. It returns the service the request was signed for.
func (s *Server) authenticate(r *http.Request, body []byte) (service, keyID string, _ *apiError) {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "", "", senderError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	keyID, date, region, service, signedHeaders, signature := m[1], m[2], m[3], m[4], m[5], m[6]
	if service != "iam" && service != "sts" {
		return "", "", senderError(403, "SignatureDoesNotMatch", "Credential should be scoped to a valid service")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, date) {
		return service, "", senderError(403, "IncompleteSignature", "the X-Amz-Date header is missing or does not match the credential scope")
	}
	s.mu.Lock()
	now := s.now()
	secret := ""
	switch k := s.keys[keyID]; {
	case keyID == AdminKeyID:
		secret = AdminSecret
	case k != nil && k.Status == "Active" && !now.Before(k.Created.Add(s.propagation)):
		secret = k.Secret
	}
	s.mu.Unlock()
	if secret == "" {
		return service, "", senderError(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	// The signing time is the client's wall clock: skew is real time.
	if d := time.Since(t); d > 15*time.Minute || d < -15*time.Minute {
		return service, "", senderError(403, "SignatureDoesNotMatch", "Signature expired: %s is now earlier than %s", amzDate, time.Now().Add(-15*time.Minute).UTC().Format("20060102T150405Z"))
	}
	headers := strings.Split(signedHeaders, ";")
	if !slices.IsSorted(headers) || !slices.Contains(headers, "host") || !slices.Contains(headers, "x-amz-date") {
		return service, "", senderError(403, "SignatureDoesNotMatch", "the signed headers must be sorted and include host and x-amz-date")
	}
	var canon strings.Builder
	for _, h := range headers {
		v := r.Header.Get(h)
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		}
		canon.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	bodySum := sha256.Sum256(body)
	creq := strings.Join([]string{r.Method, path, canonicalQuery(r.URL.Query()), canon.String(), signedHeaders, hex.EncodeToString(bodySum[:])}, "\n")
	creqSum := sha256.Sum256([]byte(creq))
	scope := date + "/" + region + "/" + service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creqSum[:])
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return service, "", senderError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return service, keyID, nil
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := slices.Clone(q[k])
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, strings.ReplaceAll(url.QueryEscape(k), "+", "%20")+"="+strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	return strings.Join(parts, "&")
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// callerIdentity answers GetCallerIdentity for an issued key (the admin
// pair is answered as the user rekey-admin) and records the key's use.
func (s *Server) callerIdentity(keyID string) (any, *apiError) {
	type result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	}
	type response struct {
		XMLName  xml.Name `xml:"GetCallerIdentityResponse"`
		NS       string   `xml:"xmlns,attr"`
		Result   result   `xml:"GetCallerIdentityResult"`
		Metadata metadata `xml:"ResponseMetadata"`
	}
	if keyID == AdminKeyID {
		return response{NS: stsNS, Result: result{Arn: "arn:aws:iam::" + Account + ":user/rekey-admin", UserID: "AIDAFAKEADMIN00000000", Account: Account}, Metadata: newMetadata()}, nil
	}
	k := s.keys[keyID]
	u := s.users[k.User]
	k.LastUsed, k.LastService, k.LastRegion = s.now().UTC().Truncate(time.Second), "sts", "us-east-1"
	return response{NS: stsNS, Result: result{Arn: "arn:aws:iam::" + Account + ":user/" + u.name, UserID: u.id, Account: Account}, Metadata: newMetadata()}, nil
}

type metadata struct {
	RequestID string `xml:"RequestId"`
}

func newMetadata() metadata { return metadata{RequestID: requestID()} }

type accessKeyMetadata struct {
	UserName    string `xml:"UserName"`
	AccessKeyID string `xml:"AccessKeyId"`
	Status      string `xml:"Status"`
	CreateDate  string `xml:"CreateDate"`
}

type tagXML struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

var (
	userNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	tagRE      = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// iam runs one IAM action for the admin; s.mu is held.
func (s *Server) iam(action string, form url.Values) (any, *apiError) {
	name := form.Get("UserName")
	find := func() (*user, *apiError) {
		if !userNameRE.MatchString(name) {
			return nil, senderError(400, "ValidationError", "1 validation error detected: Value at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+")
		}
		u := s.users[name]
		if u == nil {
			return nil, senderError(404, "NoSuchEntity", "The user with name %s cannot be found.", name)
		}
		return u, nil
	}
	userKey := func(u *user) (*Key, *apiError) {
		id := form.Get("AccessKeyId")
		if k := s.keys[id]; k != nil && k.User == u.name {
			return k, nil
		}
		return nil, senderError(404, "NoSuchEntity", "The Access Key with id %s cannot be found.", id)
	}
	ok := func(root string) any {
		return struct {
			XMLName  xml.Name
			NS       string   `xml:"xmlns,attr"`
			Metadata metadata `xml:"ResponseMetadata"`
		}{XMLName: xml.Name{Local: root}, NS: iamNS, Metadata: newMetadata()}
	}

	switch action {
	case "CreateAccessKey":
		u, e := find()
		if e != nil {
			return nil, e
		}
		if len(u.keys) >= s.quota {
			return nil, senderError(409, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: %d", s.quota)
		}
		k := s.issue(u)
		type accessKey struct {
			UserName        string `xml:"UserName"`
			AccessKeyID     string `xml:"AccessKeyId"`
			Status          string `xml:"Status"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			CreateDate      string `xml:"CreateDate"`
		}
		return struct {
			XMLName  xml.Name  `xml:"CreateAccessKeyResponse"`
			NS       string    `xml:"xmlns,attr"`
			Key      accessKey `xml:"CreateAccessKeyResult>AccessKey"`
			Metadata metadata  `xml:"ResponseMetadata"`
		}{NS: iamNS, Key: accessKey{u.name, k.ID, k.Status, k.Secret, isoTime(k.Created)}, Metadata: newMetadata()}, nil

	case "ListAccessKeys":
		u, e := find()
		if e != nil {
			return nil, e
		}
		maxItems := 100
		if v := form.Get("MaxItems"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return nil, senderError(400, "ValidationError", "1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000", v)
			}
			maxItems = n
		}
		if s.pageSize > 0 {
			maxItems = min(maxItems, s.pageSize)
		}
		start := 0
		if m := form.Get("Marker"); m != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(m, "m-"))
			if err != nil || !strings.HasPrefix(m, "m-") || n < 0 || n > len(u.keys) {
				return nil, senderError(400, "InvalidInput", "Invalid Marker.")
			}
			start = n
		}
		end := min(start+maxItems, len(u.keys))
		type result struct {
			UserName    string              `xml:"UserName"`
			Keys        []accessKeyMetadata `xml:"AccessKeyMetadata>member"`
			IsTruncated bool                `xml:"IsTruncated"`
			Marker      string              `xml:"Marker,omitempty"`
		}
		res := result{UserName: u.name, Keys: []accessKeyMetadata{}, IsTruncated: end < len(u.keys)}
		for _, id := range u.keys[start:end] {
			k := s.keys[id]
			res.Keys = append(res.Keys, accessKeyMetadata{u.name, k.ID, k.Status, isoTime(k.Created)})
		}
		if res.IsTruncated {
			res.Marker = "m-" + strconv.Itoa(end)
		}
		return struct {
			XMLName  xml.Name `xml:"ListAccessKeysResponse"`
			NS       string   `xml:"xmlns,attr"`
			Result   result   `xml:"ListAccessKeysResult"`
			Metadata metadata `xml:"ResponseMetadata"`
		}{NS: iamNS, Result: res, Metadata: newMetadata()}, nil

	case "UpdateAccessKey":
		u, e := find()
		if e != nil {
			return nil, e
		}
		k, e := userKey(u)
		if e != nil {
			return nil, e
		}
		switch st := form.Get("Status"); st {
		case "Active", "Inactive":
			k.Status = st
		default:
			return nil, senderError(400, "ValidationError", "1 validation error detected: Value '%s' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]", st)
		}
		return ok("UpdateAccessKeyResponse"), nil

	case "DeleteAccessKey":
		u, e := find()
		if e != nil {
			return nil, e
		}
		k, e := userKey(u)
		if e != nil {
			return nil, e
		}
		delete(s.keys, k.ID)
		u.keys = slices.DeleteFunc(u.keys, func(id string) bool { return id == k.ID })
		return ok("DeleteAccessKeyResponse"), nil

	case "GetAccessKeyLastUsed":
		id := form.Get("AccessKeyId")
		k := s.keys[id]
		if k == nil {
			// The reference lists no error of its own for an unknown key
			// ID; other emulators answer NoSuchEntity. The issuer looks the
			// key up among the user's first and does not depend on it.
			return nil, senderError(404, "NoSuchEntity", "The Access Key with id %s cannot be found.", id)
		}
		type lastUsed struct {
			LastUsedDate string `xml:"LastUsedDate,omitempty"`
			ServiceName  string `xml:"ServiceName"`
			Region       string `xml:"Region"`
		}
		lu := lastUsed{ServiceName: "N/A", Region: "N/A"}
		if !k.LastUsed.IsZero() {
			lu = lastUsed{isoTime(k.LastUsed), k.LastService, k.LastRegion}
		}
		return struct {
			XMLName  xml.Name `xml:"GetAccessKeyLastUsedResponse"`
			NS       string   `xml:"xmlns,attr"`
			LastUsed lastUsed `xml:"GetAccessKeyLastUsedResult>AccessKeyLastUsed"`
			UserName string   `xml:"GetAccessKeyLastUsedResult>UserName"`
			Metadata metadata `xml:"ResponseMetadata"`
		}{NS: iamNS, LastUsed: lu, UserName: k.User, Metadata: newMetadata()}, nil

	case "TagUser":
		u, e := find()
		if e != nil {
			return nil, e
		}
		tags := u.tags
		for n := 1; form.Has(fmt.Sprintf("Tags.member.%d.Key", n)); n++ {
			k, v := form.Get(fmt.Sprintf("Tags.member.%d.Key", n)), form.Get(fmt.Sprintf("Tags.member.%d.Value", n))
			if k == "" || len(k) > 128 || len(v) > 256 || !tagRE.MatchString(k) || !tagRE.MatchString(v) {
				return nil, senderError(400, "InvalidInput", "tag key or value has invalid characters or length")
			}
			if strings.HasPrefix(strings.ToLower(k), "aws:") {
				return nil, senderError(400, "InvalidInput", "the aws: prefix is reserved")
			}
			i := slices.IndexFunc(tags, func(t [2]string) bool { return t[0] == k })
			if i >= 0 {
				tags[i][1] = v
			} else {
				tags = append(tags, [2]string{k, v})
			}
		}
		if len(tags) > 50 {
			return nil, senderError(409, "LimitExceeded", "The number of tags has reached the maximum limit.")
		}
		u.tags = tags
		return ok("TagUserResponse"), nil

	case "UntagUser":
		u, e := find()
		if e != nil {
			return nil, e
		}
		for n := 1; form.Has(fmt.Sprintf("TagKeys.member.%d", n)); n++ {
			k := form.Get(fmt.Sprintf("TagKeys.member.%d", n))
			u.tags = slices.DeleteFunc(u.tags, func(t [2]string) bool { return t[0] == k })
		}
		return ok("UntagUserResponse"), nil

	case "ListUserTags":
		u, e := find()
		if e != nil {
			return nil, e
		}
		type result struct {
			Tags        []tagXML `xml:"Tags>member"`
			IsTruncated bool     `xml:"IsTruncated"`
		}
		res := result{Tags: []tagXML{}}
		for _, t := range u.tags {
			res.Tags = append(res.Tags, tagXML{t[0], t[1]})
		}
		return struct {
			XMLName  xml.Name `xml:"ListUserTagsResponse"`
			NS       string   `xml:"xmlns,attr"`
			Result   result   `xml:"ListUserTagsResult"`
			Metadata metadata `xml:"ResponseMetadata"`
		}{NS: iamNS, Result: res, Metadata: newMetadata()}, nil
	}
	return nil, senderError(400, "InvalidAction", "Could not find operation %s for version 2010-05-08", action)
}

// issue makes a new active key for u; s.mu is held.
func (s *Server) issue(u *user) *Key {
	k := &Key{
		ID:      "AKIA" + randomString(16, upperDigits),
		Secret:  randomString(40, base64ish),
		User:    u.name,
		Status:  "Active",
		Created: s.now().UTC().Truncate(time.Second),
	}
	s.keys[k.ID] = k
	u.keys = append(u.keys, k.ID)
	return k
}

func writeError(w http.ResponseWriter, ns string, e *apiError) {
	type errXML struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	out, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		NS        string   `xml:"xmlns,attr"`
		Error     errXML   `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{NS: ns, Error: errXML{e.typ, e.code, e.msg}, RequestID: requestID()})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	_, _ = w.Write(out)
}

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64ish   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
