// Package fakesm is an in-process AWS Secrets Manager for tests, modelled on
// the AWS API reference where the sink depends on it: the JSON 1.1 protocol
// (POST /, X-Amz-Target: secretsmanager.<Operation>, Content-Type
// application/x-amz-json-1.1, SigV4-signed), error bodies
// {"__type": "...", "message": "..."} with status 400 (500 for
// InternalServiceError), version stages (AWSCURRENT, AWSPREVIOUS,
// AWSPENDING: one version per label; moving AWSCURRENT moves AWSPREVIOUS to
// the version it left), ClientRequestToken idempotency (same token and value:
// the request is ignored; same token, other value: ResourceExistsException)
// and UpdateSecretVersionStage's MoveToVersionId/RemoveFromVersionId rules.
//
// Operations: CreateSecret, DescribeSecret, GetSecretValue, PutSecretValue,
// UpdateSecretVersionStage, ListSecretVersionIds. Faults are injected per
// operation with Fail.
package fakesm

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// Stage labels with meaning to Secrets Manager.
const (
	Current  = "AWSCURRENT"
	Previous = "AWSPREVIOUS"
	Pending  = "AWSPENDING"
)

// Region and Account appear in the ARNs the server makes.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

// Server is a fake Secrets Manager listening on loopback.
type Server struct {
	// URL is the endpoint to use as the client's BaseEndpoint.
	URL string

	srv *httptest.Server

	mu      sync.Mutex
	secrets map[string]*secretEntry // by name
	faults  map[string][]fault
	calls   map[string]int
	now     func() time.Time
}

type secretEntry struct {
	name, arn   string
	description string
	kmsKeyID    string
	tags        []tagJSON
	created     time.Time
	changed     time.Time
	versions    map[string]*version
}

type version struct {
	id      string
	str     *string
	bin     []byte
	stages  []string
	created time.Time
}

type fault struct {
	code, msg string
	times     int // < 0: forever
}

// New starts a server and stops it when the test ends.
func New(t interface{ Cleanup(func()) }) *Server {
	s := &Server{
		secrets: map[string]*secretEntry{},
		faults:  map[string][]fault{},
		calls:   map[string]int{},
		now:     time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Fail makes the next times calls of op (e.g. "PutSecretValue") fail with
// the AWS error code code; times < 0 fails every call. Faults queue in
// order.
func (s *Server) Fail(op, code, msg string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], fault{code: code, msg: msg, times: times})
}

// Calls returns how many requests for op the server received, failed ones
// included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Seed makes value the secret's AWSCURRENT version, creating the secret if
// needed, as an operator would, and returns the new version ID.
func (s *Server) Seed(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		sec = s.newSecret(name)
	}
	id := newUUID()
	s.addVersion(sec, id, &value, nil, []string{Current})
	return id
}

// SeedBinary makes data the secret's AWSCURRENT version as SecretBinary.
func (s *Server) SeedBinary(name string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		sec = s.newSecret(name)
	}
	id := newUUID()
	s.addVersion(sec, id, nil, data, []string{Current})
	return id
}

// CreateEmpty creates a secret with no version, as CreateSecret without a
// value does.
func (s *Server) CreateEmpty(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets[name] == nil {
		s.newSecret(name)
	}
}

// Current returns the SecretString of the secret's AWSCURRENT version; ok is
// false when there is none.
func (s *Server) Current(name string) (value string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		return "", false
	}
	v := sec.withStage(Current)
	if v == nil || v.str == nil {
		return "", false
	}
	return *v.str, true
}

// Version is one version of a secret as the server holds it.
type Version struct {
	ID     string
	Value  string
	Stages []string
}

// Versions returns every version of the secret, deprecated ones (no
// stages) included, oldest first.
func (s *Server) Versions(name string) []Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		return nil
	}
	var out []Version
	for _, v := range sec.sortedVersions() {
		val := ""
		if v.str != nil {
			val = *v.str
		}
		out = append(out, Version{ID: v.id, Value: val, Stages: slices.Clone(v.stages)})
	}
	return out
}

// Secret describes a secret's metadata as CreateSecret left it.
type Secret struct {
	Name, ARN, Description, KMSKeyID string
	Tags                             map[string]string
}

// Describe returns the secret's metadata; ok is false when it does not exist.
func (s *Server) Describe(name string) (Secret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		return Secret{}, false
	}
	out := Secret{Name: sec.name, ARN: sec.arn, Description: sec.description, KMSKeyID: sec.kmsKeyID, Tags: map[string]string{}}
	for _, t := range sec.tags {
		out.Tags[t.Key] = t.Value
	}
	return out, true
}

// apiError is an AWS error response.
type apiError struct {
	status    int
	code, msg string
}

func errorf(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "secretsmanager.")
	var (
		out  any
		aerr *apiError
	)
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		aerr = errorf("UnknownOperationException", "expected POST /")
	case !ok:
		aerr = errorf("UnknownOperationException", "unknown target %q", target)
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		aerr = errorf("SerializationException", "Content-Type must be application/x-amz-json-1.1")
	case !signed(r):
		aerr = &apiError{status: http.StatusBadRequest, code: "MissingAuthenticationTokenException", msg: "Request is missing Authentication Token"}
	default:
		out, aerr = s.call(op, r)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newUUID())
	if aerr != nil {
		w.WriteHeader(aerr.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": aerr.code, "message": aerr.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

// signed checks for a SigV4 Authorization header scoped to Secrets Manager.
func signed(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	return strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=") && strings.Contains(a, "/secretsmanager/aws4_request") &&
		strings.Contains(a, "Signature=") && r.Header.Get("X-Amz-Date") != ""
}

func (s *Server) call(op string, r *http.Request) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	if q := s.faults[op]; len(q) > 0 {
		f := q[0]
		if f.times > 0 {
			q[0].times--
			if q[0].times == 0 {
				s.faults[op] = q[1:]
			}
		}
		status := http.StatusBadRequest
		if f.code == "InternalServiceError" || f.code == "InternalFailure" || f.code == "ServiceUnavailable" {
			status = http.StatusInternalServerError
		}
		return nil, &apiError{status: status, code: f.code, msg: f.msg}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	bad := func(err error) *apiError {
		return errorf("SerializationException", "cannot read %s request: %v", op, err)
	}
	switch op {
	case "CreateSecret":
		var in createSecretIn
		if err := dec.Decode(&in); err != nil {
			return nil, bad(err)
		}
		return s.createSecret(in)
	case "DescribeSecret":
		var in secretIDIn
		if err := dec.Decode(&in); err != nil {
			return nil, bad(err)
		}
		return s.describeSecret(in)
	case "GetSecretValue":
		var in getSecretValueIn
		if err := dec.Decode(&in); err != nil {
			return nil, bad(err)
		}
		return s.getSecretValue(in)
	case "PutSecretValue":
		var in putSecretValueIn
		if err := dec.Decode(&in); err != nil {
			return nil, bad(err)
		}
		return s.putSecretValue(in)
	case "UpdateSecretVersionStage":
		var in updateStageIn
		if err := dec.Decode(&in); err != nil {
			return nil, bad(err)
		}
		return s.updateSecretVersionStage(in)
	case "ListSecretVersionIds":
		var in listVersionsIn
		if err := dec.Decode(&in); err != nil {
			return nil, bad(err)
		}
		return s.listSecretVersionIDs(in)
	}
	return nil, errorf("UnknownOperationException", "operation %s is not supported by this server", op)
}

type tagJSON struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type createSecretIn struct {
	Name                        string    `json:"Name"`
	ClientRequestToken          string    `json:"ClientRequestToken,omitempty"`
	Description                 string    `json:"Description,omitempty"`
	KmsKeyId                    string    `json:"KmsKeyId,omitempty"`
	SecretString                *string   `json:"SecretString,omitempty"`
	SecretBinary                []byte    `json:"SecretBinary,omitempty"`
	Tags                        []tagJSON `json:"Tags,omitempty"`
	ForceOverwriteReplicaSecret bool      `json:"ForceOverwriteReplicaSecret,omitempty"`
}

type secretIDIn struct {
	SecretId string `json:"SecretId"`
}

type getSecretValueIn struct {
	SecretId     string `json:"SecretId"`
	VersionId    string `json:"VersionId,omitempty"`
	VersionStage string `json:"VersionStage,omitempty"`
}

type putSecretValueIn struct {
	SecretId           string   `json:"SecretId"`
	ClientRequestToken string   `json:"ClientRequestToken,omitempty"`
	SecretString       *string  `json:"SecretString,omitempty"`
	SecretBinary       []byte   `json:"SecretBinary,omitempty"`
	VersionStages      []string `json:"VersionStages,omitempty"`
	RotationToken      string   `json:"RotationToken,omitempty"`
}

type updateStageIn struct {
	SecretId            string `json:"SecretId"`
	VersionStage        string `json:"VersionStage"`
	MoveToVersionId     string `json:"MoveToVersionId,omitempty"`
	RemoveFromVersionId string `json:"RemoveFromVersionId,omitempty"`
}

type listVersionsIn struct {
	SecretId          string `json:"SecretId"`
	IncludeDeprecated bool   `json:"IncludeDeprecated,omitempty"`
	MaxResults        int    `json:"MaxResults,omitempty"`
	NextToken         string `json:"NextToken,omitempty"`
}

func (s *Server) createSecret(in createSecretIn) (any, *apiError) {
	if in.Name == "" {
		return nil, errorf("InvalidParameterException", "You must provide a value for the Name parameter.")
	}
	if aerr := checkToken(in.ClientRequestToken); aerr != nil {
		return nil, aerr
	}
	if in.SecretString != nil && in.SecretBinary != nil {
		return nil, errorf("InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	if sec := s.secrets[in.Name]; sec != nil {
		return nil, errorf("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	sec := s.newSecret(in.Name)
	sec.description, sec.kmsKeyID, sec.tags = in.Description, in.KmsKeyId, in.Tags
	out := map[string]any{"ARN": sec.arn, "Name": sec.name}
	if in.SecretString != nil || in.SecretBinary != nil {
		id := in.ClientRequestToken
		if id == "" {
			id = newUUID()
		}
		s.addVersion(sec, id, in.SecretString, in.SecretBinary, []string{Current})
		out["VersionId"] = id
	}
	return out, nil
}

func (s *Server) describeSecret(in secretIDIn) (any, *apiError) {
	sec, aerr := s.find(in.SecretId)
	if aerr != nil {
		return nil, aerr
	}
	stages := map[string][]string{}
	for id, v := range sec.versions {
		if len(v.stages) > 0 { // versions without labels are deprecated and not listed
			stages[id] = v.stages
		}
	}
	out := map[string]any{
		"ARN":                sec.arn,
		"Name":               sec.name,
		"CreatedDate":        epoch(sec.created),
		"LastChangedDate":    epoch(sec.changed),
		"VersionIdsToStages": stages,
		"RotationEnabled":    false,
	}
	if sec.description != "" {
		out["Description"] = sec.description
	}
	if sec.kmsKeyID != "" {
		out["KmsKeyId"] = sec.kmsKeyID
	}
	if len(sec.tags) > 0 {
		out["Tags"] = sec.tags
	}
	return out, nil
}

func (s *Server) getSecretValue(in getSecretValueIn) (any, *apiError) {
	sec, aerr := s.find(in.SecretId)
	if aerr != nil {
		return nil, aerr
	}
	var v *version
	switch {
	case in.VersionId != "":
		v = sec.versions[in.VersionId]
		if v == nil {
			return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.VersionId)
		}
		if in.VersionStage != "" && !slices.Contains(v.stages, in.VersionStage) {
			return nil, errorf("InvalidRequestException", "You provided a VersionStage that is not associated to the provided VersionId.")
		}
	default:
		stage := in.VersionStage
		if stage == "" {
			stage = Current
		}
		v = sec.withStage(stage)
		if v == nil {
			return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
	}
	out := map[string]any{
		"ARN":           sec.arn,
		"Name":          sec.name,
		"VersionId":     v.id,
		"VersionStages": v.stages,
		"CreatedDate":   epoch(v.created),
	}
	if v.str != nil {
		out["SecretString"] = *v.str
	} else {
		out["SecretBinary"] = base64.StdEncoding.EncodeToString(v.bin)
	}
	return out, nil
}

func (s *Server) putSecretValue(in putSecretValueIn) (any, *apiError) {
	sec, aerr := s.find(in.SecretId)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkToken(in.ClientRequestToken); aerr != nil {
		return nil, aerr
	}
	if (in.SecretString == nil) == (in.SecretBinary == nil) {
		return nil, errorf("InvalidParameterException", "You must provide either SecretString or SecretBinary, but not both.")
	}
	stages := in.VersionStages
	if len(stages) == 0 {
		stages = []string{Current}
	}
	id := in.ClientRequestToken
	if id == "" {
		id = newUUID()
	}
	if v := sec.versions[id]; v != nil {
		same := (in.SecretString != nil && v.str != nil && *in.SecretString == *v.str) ||
			(in.SecretBinary != nil && v.str == nil && string(in.SecretBinary) == string(v.bin))
		if !same {
			return nil, errorf("ResourceExistsException", "A resource with the ID you requested already exists.")
		}
		// Idempotent repeat: the request is ignored, stages included.
		return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": id, "VersionStages": v.stages}, nil
	}
	v := s.addVersion(sec, id, in.SecretString, in.SecretBinary, stages)
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": id, "VersionStages": v.stages}, nil
}

func (s *Server) updateSecretVersionStage(in updateStageIn) (any, *apiError) {
	sec, aerr := s.find(in.SecretId)
	if aerr != nil {
		return nil, aerr
	}
	if in.VersionStage == "" {
		return nil, errorf("InvalidParameterException", "You must provide a value for the VersionStage parameter.")
	}
	if in.MoveToVersionId == "" && in.RemoveFromVersionId == "" {
		return nil, errorf("InvalidParameterException", "You must specify MoveToVersionId or RemoveFromVersionId.")
	}
	var to, from *version
	if in.MoveToVersionId != "" {
		if to = sec.versions[in.MoveToVersionId]; to == nil {
			return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret version: %s", in.MoveToVersionId)
		}
	}
	if in.RemoveFromVersionId != "" {
		if from = sec.versions[in.RemoveFromVersionId]; from == nil {
			return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret version: %s", in.RemoveFromVersionId)
		}
		if !slices.Contains(from.stages, in.VersionStage) {
			return nil, errorf("InvalidParameterException", "The staging label %s is not attached to version %s.", in.VersionStage, from.id)
		}
	}
	holder := sec.withStage(in.VersionStage)
	if to == nil && in.VersionStage == Current {
		return nil, errorf("InvalidParameterException", "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.")
	}
	if to != nil && holder != nil && holder != to && holder != from {
		return nil, errorf("InvalidParameterException", "The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", in.VersionStage, holder.id)
	}
	if from != nil {
		from.stages = remove(from.stages, in.VersionStage)
	}
	if to != nil && !slices.Contains(to.stages, in.VersionStage) {
		to.stages = append(to.stages, in.VersionStage)
		if in.VersionStage == Current && from != nil && from != to {
			s.attach(sec, from, Previous)
		}
	}
	sec.changed = s.now()
	return map[string]any{"ARN": sec.arn, "Name": sec.name}, nil
}

func (s *Server) listSecretVersionIDs(in listVersionsIn) (any, *apiError) {
	sec, aerr := s.find(in.SecretId)
	if aerr != nil {
		return nil, aerr
	}
	var vs []map[string]any
	for _, v := range sec.sortedVersions() {
		if len(v.stages) == 0 && !in.IncludeDeprecated {
			continue
		}
		vs = append(vs, map[string]any{"VersionId": v.id, "VersionStages": v.stages, "CreatedDate": epoch(v.created)})
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "Versions": vs}, nil
}

// find looks a secret up by name, full ARN or partial ARN (without the
// random suffix).
func (s *Server) find(id string) (*secretEntry, *apiError) {
	if id == "" {
		return nil, errorf("InvalidParameterException", "You must provide a value for the SecretId parameter.")
	}
	if sec := s.secrets[id]; sec != nil {
		return sec, nil
	}
	for _, sec := range s.secrets {
		if sec.arn == id || strings.HasSuffix(id, ":secret:"+sec.name) && strings.HasPrefix(id, "arn:aws:secretsmanager:") {
			return sec, nil
		}
	}
	return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

func (s *Server) newSecret(name string) *secretEntry {
	now := s.now()
	sec := &secretEntry{
		name:     name,
		arn:      fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", Region, Account, name, randomSuffix()),
		created:  now,
		changed:  now,
		versions: map[string]*version{},
	}
	s.secrets[name] = sec
	return sec
}

// addVersion stores a new version holding stages, moving each label from
// the version that had it; AWSCURRENT's old holder becomes AWSPREVIOUS.
func (s *Server) addVersion(sec *secretEntry, id string, str *string, bin []byte, stages []string) *version {
	now := s.now()
	v := &version{id: id, bin: bin, created: now}
	if str != nil {
		c := *str
		v.str = &c
	}
	sec.versions[id] = v
	for _, st := range stages {
		old := sec.withStage(st)
		if old != nil && old != v {
			old.stages = remove(old.stages, st)
		}
		v.stages = append(v.stages, st)
		if st == Current && old != nil && old != v {
			s.attach(sec, old, Previous)
		}
	}
	sec.changed = now
	return v
}

// attach moves label to v from whichever version has it.
func (s *Server) attach(sec *secretEntry, v *version, label string) {
	if old := sec.withStage(label); old != nil {
		old.stages = remove(old.stages, label)
	}
	if !slices.Contains(v.stages, label) {
		v.stages = append(v.stages, label)
	}
}

func (sec *secretEntry) withStage(stage string) *version {
	for _, v := range sec.versions {
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

func (sec *secretEntry) sortedVersions() []*version {
	vs := make([]*version, 0, len(sec.versions))
	for _, v := range sec.versions {
		vs = append(vs, v)
	}
	slices.SortStableFunc(vs, func(a, b *version) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return vs
}

func checkToken(t string) *apiError {
	if t != "" && (len(t) < 32 || len(t) > 64) {
		return errorf("InvalidParameterException", "ClientRequestToken must be 32 to 64 characters long.")
	}
	return nil
}

func remove(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == s })
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
