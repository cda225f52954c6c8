package awssm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/awssm"
	"github.com/rekeyhq/rekey/sinks/awssm/fakesm"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

// noDelay makes the SDK retryer retry at once.
type noDelay struct{}

func (noDelay) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// newSink points a sink at srv with static credentials and undelayed
// retries; the attempt bound is the sink's own.
func newSink(t *testing.T, srv *fakesm.Server, c awssm.Config, log *zap.Logger) *awssm.Sink {
	t.Helper()
	c.Region = "us-east-1"
	c.Endpoint = srv.URL
	s, err := awssm.New(c, log, awssm.WithRetryBackoff(noDelay{}), awssm.WithClientOptions(func(o *secretsmanager.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")
	}))
	if err != nil {
		t.Fatalf("awssm.New: %v", err)
	}
	return s
}

// fixture builds the contract fixture for one sink configuration. With
// exists, the secret exists without a value before the test; otherwise
// create_if_missing makes it.
func fixture(c awssm.Config, exists bool) func(t *testing.T) sinktest.Fixture {
	return func(t *testing.T) sinktest.Fixture {
		srv := fakesm.New(t)
		if exists {
			srv.CreateEmpty(c.SecretID)
		}
		return sinktest.Fixture{
			Sink: newSink(t, srv, c, zap.NewNop()),
			Peek: func(t *testing.T) (string, bool) { return peek(t, srv, c) },
			Seed: func(t *testing.T, value string) {
				if c.Key == "" {
					srv.Seed(c.SecretID, value)
					return
				}
				srv.Seed(c.SecretID, `{"user":"svc",`+quote(c.Key)+`:`+quote(value)+`,"note":"kept"}`)
			},
		}
	}
}

// peek reads the value the fake holds at AWSCURRENT, the field in JSON mode.
func peek(t *testing.T, srv *fakesm.Server, c awssm.Config) (string, bool) {
	t.Helper()
	cur, ok := srv.Current(c.SecretID)
	if !ok || c.Key == "" {
		return cur, ok
	}
	v, ok := field(t, cur, c.Key)
	return v, ok
}

func TestContract(t *testing.T) {
	t.Run("whole string", func(t *testing.T) {
		sinktest.Run(t, fixture(awssm.Config{SecretID: "prod/crm/apexverify"}, true))
	})
	t.Run("whole string created", func(t *testing.T) {
		sinktest.Run(t, fixture(awssm.Config{SecretID: "prod/crm/apexverify", CreateIfMissing: true}, false))
	})
	t.Run("json field", func(t *testing.T) {
		sinktest.Run(t, fixture(awssm.Config{SecretID: "prod/crm/apexverify", Key: "api_key"}, true))
	})
	t.Run("json field created", func(t *testing.T) {
		sinktest.Run(t, fixture(awssm.Config{SecretID: "prod/crm/apexverify", Key: "api_key", CreateIfMissing: true}, false))
	})
}

func TestName(t *testing.T) {
	srv := fakesm.New(t)
	for _, tt := range []struct {
		c    awssm.Config
		want string
	}{
		{awssm.Config{SecretID: "prod/x"}, "aws-secretsmanager:prod/x"},
		{awssm.Config{SecretID: "prod/x", Key: "api_key"}, "aws-secretsmanager:prod/x#api_key"},
	} {
		if got := newSink(t, srv, tt.c, nil).Name(); got != tt.want {
			t.Errorf("Name() = %q, want %q", got, tt.want)
		}
	}
}

func TestToken(t *testing.T) {
	a := awssm.Token("prod/x", "", "rot-1")
	if len(a) < 32 || len(a) > 64 {
		t.Errorf("token %q is %d chars, AWS wants 32-64", a, len(a))
	}
	if a != awssm.Token("prod/x", "", "rot-1") {
		t.Errorf("token is not deterministic")
	}
	for _, other := range []string{awssm.Token("prod/x", "", "rot-2"), awssm.Token("prod/x", "api_key", "rot-1"), awssm.Token("prod/y", "", "rot-1")} {
		if other == a {
			t.Errorf("distinct inputs share token %q", a)
		}
	}
}

func TestRepeatPutCreatesNoSecondVersion(t *testing.T) {
	ctx := context.Background()
	for _, key := range []string{"", "api_key"} {
		t.Run("key="+key, func(t *testing.T) {
			srv := fakesm.New(t)
			seeded := srv.Seed("app", `{"api_key":"old"}`)
			s := newSink(t, srv, awssm.Config{SecretID: "app", Key: key}, nil)
			v := sinktest.Value(t, "v1")
			first, err := s.Put(ctx, v, "rot-1")
			if err != nil {
				t.Fatal(err)
			}
			again, err := s.Put(ctx, v, "rot-1")
			if err != nil {
				t.Fatal(err)
			}
			if first.Version != awssm.Token("app", key, "rot-1") || first.Previous != seeded {
				t.Errorf("receipt version %q previous %q, want %q %q", first.Version, first.Previous, awssm.Token("app", key, "rot-1"), seeded)
			}
			if again.Version != first.Version || again.Previous != first.Previous || again.Created != first.Created {
				t.Errorf("repeat receipt %+v differs from first %+v", again, first)
			}
			if vs := srv.Versions("app"); len(vs) != 2 {
				t.Errorf("secret has %d versions after a repeated put, want 2 (seed + one)", len(vs))
			}
			if n := srv.Calls("PutSecretValue"); n != 2 {
				t.Errorf("PutSecretValue called %d times, want 2 (the repeat must reach AWS and be ignored there)", n)
			}
		})
	}
}

func TestJSONFieldKeepsOtherFieldsInOrder(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	srv.Seed("app", `{"zeta":"z","api_key":"old","alpha":{"n":[1, 2]},"num":1.50,"flag":true}`)
	s := newSink(t, srv, awssm.Config{SecretID: "app", Key: "api_key"}, nil)
	v := sinktest.Value(t, "v1")
	r, err := s.Put(ctx, v, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"zeta":"z","api_key":"` + v.Reveal() + `","alpha":{"n":[1, 2]},"num":1.50,"flag":true}`
	if got, _ := srv.Current("app"); got != want {
		t.Errorf("secret after put = %s\nwant %s", strings.ReplaceAll(got, v.Reveal(), "<KEY>"), strings.ReplaceAll(want, v.Reveal(), "<KEY>"))
	}
	if r.Created {
		t.Errorf("receipt.Created = true, but the field existed")
	}

	// A field the secret lacks is added last and counts as created.
	srv2 := fakesm.New(t)
	srv2.Seed("app", `{"user":"svc"}`)
	s2 := newSink(t, srv2, awssm.Config{SecretID: "app", Key: "api_key"}, nil)
	r2, err := s2.Put(ctx, v, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := srv2.Current("app"); got != `{"user":"svc","api_key":"`+v.Reveal()+`"}` {
		t.Errorf("secret after put = %s", strings.ReplaceAll(got, v.Reveal(), "<KEY>"))
	}
	if !r2.Created || r2.Previous == "" {
		t.Errorf("receipt %+v: want Created with the previous version recorded", r2)
	}
	again, err := s2.Put(ctx, v, "rot-1")
	if err != nil || again.Created != r2.Created || again.Previous != r2.Previous {
		t.Errorf("repeat receipt %+v (err %v) differs from first %+v", again, err, r2)
	}
}

func TestJSONFieldRefusesNonObject(t *testing.T) {
	ctx := context.Background()
	for name, seed := range map[string]func(*fakesm.Server){
		"plain string": func(s *fakesm.Server) { s.Seed("app", "avk_live_operatorsplainkeyvalue") },
		"json array":   func(s *fakesm.Server) { s.Seed("app", `["avk_live_operatorsplainkeyvalue"]`) },
		"binary":       func(s *fakesm.Server) { s.SeedBinary("app", []byte("avk_live_operatorsplainkeyvalue")) },
	} {
		t.Run(name, func(t *testing.T) {
			srv := fakesm.New(t)
			seed(srv)
			s := newSink(t, srv, awssm.Config{SecretID: "app", Key: "api_key"}, nil)
			v := sinktest.Value(t, "v1")
			_, err := s.Put(ctx, v, "rot-1")
			mustPermanent(t, err, "app")
			sinktest.AssertNoLeak(t, err.Error(), v, secret.New("avk_live_operatorsplainkeyvalue"))
			if n := len(srv.Versions("app")); n != 1 {
				t.Errorf("secret has %d versions, want the seeded one only", n)
			}
			if err := s.Preflight(ctx); err == nil {
				t.Errorf("Preflight passed on a secret that is not a JSON object")
			}
		})
	}
}

func TestPermanentErrors(t *testing.T) {
	ctx := context.Background()
	v := sinktest.Value(t, "v1")
	tests := []struct {
		op, code   string
		sdkRetries bool // the SDK's retryer counts it as throttling
	}{
		{"PutSecretValue", "AccessDeniedException", false},
		{"DescribeSecret", "AccessDeniedException", false},
		{"GetSecretValue", "AccessDeniedException", false},
		{"PutSecretValue", "KMSAccessDeniedException", false},
		{"PutSecretValue", "EncryptionFailure", false},
		{"GetSecretValue", "DecryptionFailure", false},
		{"PutSecretValue", "InvalidRequestException", false},
		{"PutSecretValue", "LimitExceededException", true},
	}
	for _, tt := range tests {
		t.Run(tt.op+"/"+tt.code, func(t *testing.T) {
			srv := fakesm.New(t)
			srv.Seed("prod/app", `{"api_key":"old"}`)
			// The message echoes the value, as a careless SDK or proxy might:
			// the sink must scrub it.
			srv.Fail(tt.op, tt.code, "denied for value "+v.Reveal(), -1)
			core, logs := observer.New(zap.DebugLevel)
			s := newSink(t, srv, awssm.Config{SecretID: "prod/app", Key: "api_key"}, zap.New(core))
			_, err := s.Put(ctx, v, "rot-1")
			mustPermanent(t, err, "prod/app")
			if !strings.Contains(err.Error(), tt.code) {
				t.Errorf("error %q does not name the AWS code %s", err, tt.code)
			}
			sinktest.AssertNoLeak(t, err.Error(), v)
			for _, e := range logs.All() {
				sinktest.AssertNoLeak(t, e.Message, v)
				for _, f := range e.Context {
					sinktest.AssertNoLeak(t, f.String, v)
				}
			}
			if n := srv.Calls(tt.op); n != 1 && !tt.sdkRetries {
				t.Errorf("%s called %d times: a permanent error must not be retried", tt.op, n)
			}
		})
	}
}

func TestMissingSecretWithoutCreate(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	s := newSink(t, srv, awssm.Config{SecretID: "prod/absent"}, nil)
	_, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1")
	mustPermanent(t, err, "prod/absent")
	mustPermanent(t, s.Preflight(ctx), "prod/absent")
	if _, err := s.Get(ctx); !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Get on a missing secret: %v, want ErrNotFound", err)
	}
	if srv.Calls("CreateSecret") != 0 {
		t.Errorf("CreateSecret called without create_if_missing")
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	srv.Seed("app", "old")
	s := newSink(t, srv, awssm.Config{SecretID: "app"}, nil)
	v := sinktest.Value(t, "v1")

	srv.Fail("PutSecretValue", "ThrottlingException", "Rate exceeded", 2)
	if _, err := s.Put(ctx, v, "rot-1"); err != nil {
		t.Fatalf("Put after two throttles: %v", err)
	}
	if n := srv.Calls("PutSecretValue"); n != 3 {
		t.Errorf("PutSecretValue called %d times, want 3 (two throttled, one through)", n)
	}
	if got, _ := srv.Current("app"); got != v.Reveal() {
		t.Errorf("secret does not hold the new value")
	}

	// Throttled for good: the retryer gives up after its bound, and the
	// error stays retryable for the engine.
	srv.Fail("PutSecretValue", "ThrottlingException", "Rate exceeded", -1)
	before := srv.Calls("PutSecretValue")
	_, err := s.Put(ctx, sinktest.Value(t, "v2"), "rot-2")
	if err == nil {
		t.Fatal("Put succeeded while throttled")
	}
	if errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("throttling reported as permanent: %v", err)
	}
	if n := srv.Calls("PutSecretValue") - before; n != 5 {
		t.Errorf("PutSecretValue tried %d times, want the bound of 5", n)
	}
	if !strings.Contains(err.Error(), "ThrottlingException") || !strings.Contains(err.Error(), "app") {
		t.Errorf("error %q lacks the secret ID or the code", err)
	}
}

func TestCreateIfMissing(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	c := awssm.Config{SecretID: "prod/new", Key: "api_key", CreateIfMissing: true, KMSKeyID: "alias/rekey",
		Description: "ApexVerify key, rotated by rekey", Tags: map[string]string{"owner": "platform", "app": "crm"}}
	s := newSink(t, srv, c, nil)
	if err := s.Preflight(ctx); err != nil {
		t.Errorf("Preflight of a missing secret with create_if_missing: %v", err)
	}
	v := sinktest.Value(t, "v1")
	r, err := s.Put(ctx, v, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Created || r.Previous != "" || r.Version != awssm.Token("prod/new", "api_key", "rot-1") {
		t.Errorf("receipt %+v: want Created, no previous, version = token", r)
	}
	got, ok := srv.Describe("prod/new")
	if !ok || got.KMSKeyID != "alias/rekey" || got.Description != c.Description || got.Tags["owner"] != "platform" || got.Tags["app"] != "crm" {
		t.Errorf("created secret %+v lacks the configured metadata", got)
	}
	if cur, _ := srv.Current("prod/new"); cur != `{"api_key":"`+v.Reveal()+`"}` {
		t.Errorf("created secret holds the wrong JSON")
	}
	again, err := s.Put(ctx, v, "rot-1")
	if err != nil || again.Created != r.Created || again.Previous != r.Previous || again.Version != r.Version {
		t.Errorf("repeat after create: %+v, %v; want %+v", again, err, r)
	}
	if n := srv.Calls("CreateSecret"); n != 1 {
		t.Errorf("CreateSecret called %d times, want 1", n)
	}

	err = s.Rollback(ctx, r)
	if !errors.Is(err, awssm.ErrNoPrevious) {
		t.Errorf("Rollback of a creation: %v, want ErrNoPrevious", err)
	}
	mustPermanent(t, err, "prod/new")
}

func TestCreateRace(t *testing.T) {
	// The secret appears between DescribeSecret and CreateSecret: the sink
	// falls back to a put into the existing secret.
	ctx := context.Background()
	srv := fakesm.New(t)
	srv.Fail("CreateSecret", "ResourceExistsException", "The operation failed because the secret app already exists.", 1)
	srv.Fail("DescribeSecret", "ResourceNotFoundException", "Secrets Manager can't find the specified secret.", 1)
	prev := srv.Seed("app", "old")
	s := newSink(t, srv, awssm.Config{SecretID: "app", CreateIfMissing: true}, nil)
	r, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Created || r.Previous != prev {
		t.Errorf("receipt %+v, want previous %s, not created", r, prev)
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	v0 := srv.Seed("app", "old")
	s := newSink(t, srv, awssm.Config{SecretID: "app"}, nil)
	v := sinktest.Value(t, "v1")
	r, err := s.Put(ctx, v, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Rollback(ctx, r); err != nil {
			t.Fatalf("Rollback #%d: %v", i+1, err)
		}
		if cur, _ := srv.Current("app"); cur != "old" {
			t.Fatalf("after rollback AWSCURRENT holds %q, want the old value", secret.New(cur).Fingerprint())
		}
	}
	if n := srv.Calls("UpdateSecretVersionStage"); n != 1 {
		t.Errorf("UpdateSecretVersionStage called %d times, want 1 (the repeat finds nothing to do)", n)
	}
	stages := map[string][]string{}
	for _, ver := range srv.Versions("app") {
		stages[ver.ID] = ver.Stages
	}
	if !equal(stages[v0], fakesm.Current) || !equal(stages[r.Version], fakesm.Previous) {
		t.Errorf("stages after rollback: %v", stages)
	}

	// Putting the rolled-back rotation again makes its version current
	// again, without a new version.
	again, err := s.Put(ctx, v, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := srv.Current("app"); cur != v.Reveal() {
		t.Errorf("repeat put after rollback did not make the value current")
	}
	if again.Version != r.Version || again.Previous != r.Previous || len(srv.Versions("app")) != 2 {
		t.Errorf("repeat put after rollback: receipt %+v (first %+v), %d versions", again, r, len(srv.Versions("app")))
	}
}

func TestRollbackRefusesToUndoALaterWrite(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	srv.Seed("app", "old")
	s := newSink(t, srv, awssm.Config{SecretID: "app"}, nil)
	r, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	srv.Seed("app", "operator-wrote-this-later")
	mustPermanent(t, s.Rollback(ctx, r), "app")
	if cur, _ := srv.Current("app"); cur != "operator-wrote-this-later" {
		t.Errorf("rollback undid a later write")
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	srv.Seed("json", `{"api_key":7,"other":"x"}`)
	srv.SeedBinary("bin", []byte{1, 2, 3})
	srv.CreateEmpty("empty")

	if _, err := newSink(t, srv, awssm.Config{SecretID: "json", Key: "api_key"}, nil).Get(ctx); err == nil || errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Get of a non-string field: %v, want an error other than ErrNotFound", err)
	}
	if _, err := newSink(t, srv, awssm.Config{SecretID: "json", Key: "absent"}, nil).Get(ctx); !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Get of an absent field: %v, want ErrNotFound", err)
	}
	if got, err := newSink(t, srv, awssm.Config{SecretID: "json", Key: "other"}, nil).Get(ctx); err != nil || got.Reveal() != "x" {
		t.Errorf("Get of a field: %v", err)
	}
	if _, err := newSink(t, srv, awssm.Config{SecretID: "bin"}, nil).Get(ctx); err == nil {
		t.Errorf("Get of a binary secret: no error")
	}
	if _, err := newSink(t, srv, awssm.Config{SecretID: "empty"}, nil).Get(ctx); !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Get of a secret without versions: %v, want ErrNotFound", err)
	}
}

func TestPreflightDoesNotWrite(t *testing.T) {
	ctx := context.Background()
	srv := fakesm.New(t)
	srv.Seed("app", `{"api_key":"old"}`)
	if err := newSink(t, srv, awssm.Config{SecretID: "app", Key: "api_key"}, nil).Preflight(ctx); err != nil {
		t.Errorf("Preflight: %v", err)
	}
	if srv.Calls("DescribeSecret") != 1 || srv.Calls("GetSecretValue") != 1 {
		t.Errorf("Preflight did not describe and read the secret")
	}
	srv.Fail("GetSecretValue", "AccessDeniedException", "no read", -1)
	mustPermanent(t, newSink(t, srv, awssm.Config{SecretID: "app"}, nil).Preflight(ctx), "app")
	for _, op := range []string{"PutSecretValue", "CreateSecret", "UpdateSecretVersionStage"} {
		if n := srv.Calls(op); n != 0 {
			t.Errorf("Preflight called %s %d times", op, n)
		}
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := awssm.New(awssm.Config{}, nil); err == nil {
		t.Errorf("New accepted a config without secret_id")
	}
}

func TestNewWithAssumeRoleMakesNoCall(t *testing.T) {
	// The STS endpoint is unreachable here: New must not contact it.
	t.Setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
	s, err := awssm.New(awssm.Config{SecretID: "app", Region: "eu-west-1", RoleARN: "arn:aws:iam::123456789012:role/rekey",
		ExternalID: "ext", SessionName: "rekey-test"}, nil)
	if err != nil || s.Name() != "aws-secretsmanager:app" {
		t.Fatalf("New with role_arn: %v", err)
	}
}

func mustPermanent(t *testing.T, err error, secretID string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error")
	}
	if !errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("error %q is not permanent", err)
	}
	if !strings.Contains(err.Error(), secretID) {
		t.Errorf("error %q does not name secret %s", err, secretID)
	}
}

func equal(a []string, b ...string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

var pairFields = map[string]string{sinktest.FieldID: "access_key_id", sinktest.FieldSecret: "secret_access_key"}

// fieldsFixture is fixture for a sink that maps a pair to two fields of
// the JSON secret, next to a field it must keep.
func fieldsFixture(c awssm.Config, exists bool) func(t *testing.T) sinktest.FieldsFixture {
	return func(t *testing.T) sinktest.FieldsFixture {
		srv := fakesm.New(t)
		if exists {
			srv.CreateEmpty(c.SecretID)
		}
		seeded := false
		return sinktest.FieldsFixture{
			Sink: newSink(t, srv, c, zap.NewNop()),
			Peek: func(t *testing.T) map[string]string {
				out := map[string]string{}
				cur, ok := srv.Current(c.SecretID)
				if !ok {
					return out
				}
				if note, _ := field(t, cur, "note"); seeded && note != "kept" {
					t.Errorf("the write dropped a field the sink does not map")
				}
				for f, pl := range pairFields {
					if v, ok := field(t, cur, pl); ok {
						out[f] = v
					}
				}
				return out
			},
			Seed: func(t *testing.T, fields map[string]string) {
				s := `{"user":"svc"`
				for f, v := range fields {
					s += `,` + quote(pairFields[f]) + `:` + quote(v)
				}
				srv.Seed(c.SecretID, s+`,"note":"kept"}`)
				seeded = true
			},
		}
	}
}

func TestFieldsContract(t *testing.T) {
	t.Run("existing", func(t *testing.T) {
		sinktest.RunFields(t, fieldsFixture(awssm.Config{SecretID: "prod/crm/aws", Fields: pairFields}, true))
	})
	t.Run("created", func(t *testing.T) {
		sinktest.RunFields(t, fieldsFixture(awssm.Config{SecretID: "prod/crm/aws", Fields: pairFields, CreateIfMissing: true}, false))
	})
}

// TestFieldsOnePutSecretValue: a pair lands as one new version holding
// both fields, never a version with one of them.
func TestFieldsOnePutSecretValue(t *testing.T) {
	srv := fakesm.New(t)
	srv.Seed("app", `{"access_key_id":"AKIAOLD","secret_access_key":"old-secret","note":"kept"}`)
	s := newSink(t, srv, awssm.Config{SecretID: "app", Fields: pairFields}, nil)
	if want := "aws-secretsmanager:app#access_key_id,secret_access_key"; s.Name() != want {
		t.Errorf("Name() = %q, want %q", s.Name(), want)
	}
	before := srv.Calls("PutSecretValue")
	v := secret.NewFields(map[string]string{"id": "AKIANEW", "secret": "new-secret"})
	if _, err := s.Put(context.Background(), v, "rot-1"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls("PutSecretValue") - before; n != 1 {
		t.Errorf("%d PutSecretValue calls for a pair, want 1", n)
	}
	cur, _ := srv.Current("app")
	if cur != `{"access_key_id":"AKIANEW","secret_access_key":"new-secret","note":"kept"}` {
		t.Errorf("AWSCURRENT = %s", cur)
	}
}
