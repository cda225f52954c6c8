package main

// End-to-end rotations per issuer preset (issuers/httpissuer/presettest)
// and for aws-iam (fakeiam): `rekey rotate` into a dotenv file, with a
// health check that reads the file and asks the issuer's test server
// whether the key it finds is live, as the app would. Each issuer runs
// twice: a rotation that ends done, and one whose health check fails
// during the window, which must end rolled_back.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/awsiam/fakeiam"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
)

// e2eWorld is one issuer's test server and credential, as a case starts
// them.
type e2eWorld struct {
	// issuer is the issuer entry's lines (indented 4 spaces).
	issuer string
	// seed is the key in the app's file before rekey runs; keyID is its
	// ID, written as the credential's key_id when the issuer cannot
	// identify a key by its value.
	seed  secret.Value
	keyID string
	// fields maps a multi-field key's fields to dotenv variables; nil: a
	// single value in API_KEY. public is the field that is the key's ID,
	// which rekey may print.
	fields sinks.Fields
	public string
	// check asks the test server whether v authenticates now: nil if it
	// does, an error wrapping issuers.ErrUnauthorized if it is refused.
	check func(ctx context.Context, v secret.Value) error
	// active counts the active keys at the test server; wantActive is
	// their number after a rotation that ended done.
	active     func() int
	wantActive int
}

// e2eCases are the issuers with an end-to-end rotation and rollback.
var e2eCases = []struct {
	name  string
	start func(t *testing.T) e2eWorld
}{
	// The seeded key is adopted by its redacted value, then deleted.
	{"openai-admin", func(t *testing.T) e2eWorld {
		srv := presettest.NewOpenAI()
		t.Cleanup(srv.Close)
		t.Setenv("REKEY_TEST_OPENAI_ADMIN_KEY", srv.ManagementKey())
		return presetWorld(t, "    type: http\n    preset: openai-admin\n    base_url: "+srv.URL+"\n    auth: {token: env:REKEY_TEST_OPENAI_ADMIN_KEY}\n",
			secret.New(srv.Seed("app-initial")), "", srv.ActiveCount, 2) // the management key and the new one
	}},
	// Cloudflare shows no public part of a token, so the credential names
	// the current token's ID (key_id).
	{"cloudflare-account-tokens", func(t *testing.T) e2eWorld {
		srv := presettest.NewCloudflare()
		t.Cleanup(srv.Close)
		t.Setenv("REKEY_TEST_CF_TOKEN", srv.ManagementToken())
		id, value := srv.Seed("app-initial")
		return presetWorld(t, "    type: http\n    preset: cloudflare-account-tokens\n    base_url: "+srv.BaseURL()+"\n    auth: {token: env:REKEY_TEST_CF_TOKEN}\n"+
			"    create:\n      body: '{\"name\": \"{{label}}\", \"policies\": [{\"effect\": \"allow\", \"permission_groups\": [{\"id\": \"c8fed203ed3043cba015a93ad1616f1f\"}], \"resources\": {\"com.cloudflare.api.account.zone.*\": \"*\"}}]}'\n",
			secret.New(value), id, srv.ActiveCount, 1)
	}},
	// The seeded key is adopted by its last four characters.
	{"datadog-api-keys", func(t *testing.T) e2eWorld {
		srv := presettest.NewDatadog()
		t.Cleanup(srv.Close)
		t.Setenv("REKEY_TEST_DD_API_KEY", srv.ManagementAPIKey())
		t.Setenv("REKEY_TEST_DD_APP_KEY", srv.ApplicationKey())
		return presetWorld(t, "    type: http\n    preset: datadog-api-keys\n    base_url: "+srv.URL+"\n"+
			"    auth:\n      token: env:REKEY_TEST_DD_API_KEY\n      extra: [{header: DD-APPLICATION-KEY, token: env:REKEY_TEST_DD_APP_KEY}]\n"+
			// Random keys may share their last four characters, which
			// would (rightly) make adoption refuse: keep the management
			// key out of the keys rekey looks at.
			"    list: {items: \"$.data[?@.attributes.name != 'management']\"}\n",
			secret.New(srv.Seed("app-initial")), "", srv.ActiveCount, 2)
	}},
	// The seeded key is adopted by the key ID inside its value.
	{"sendgrid-api-keys", func(t *testing.T) e2eWorld {
		srv := presettest.NewSendGrid()
		t.Cleanup(srv.Close)
		t.Setenv("REKEY_TEST_SENDGRID_KEY", srv.ManagementKey())
		return presetWorld(t, "    type: http\n    preset: sendgrid-api-keys\n    base_url: "+srv.URL+"\n    auth: {token: env:REKEY_TEST_SENDGRID_KEY}\n"+
			"    create: {body: '{\"name\": \"{{label}}\", \"scopes\": [\"mail.send\"]}'}\n",
			secret.New(srv.Seed("app-initial", []string{"mail.send"})), "", srv.ActiveCount, 2)
	}},
	// A SID + secret pair in two variables, adopted by its SID.
	{"twilio-api-keys", func(t *testing.T) e2eWorld {
		srv := presettest.NewTwilio()
		t.Cleanup(srv.Close)
		t.Setenv("REKEY_TEST_TWILIO_SID", srv.AccountSID())
		t.Setenv("REKEY_TEST_TWILIO_TOKEN", srv.AuthToken())
		sid, sec := srv.Seed("app-initial")
		w := presetWorld(t, "    type: http\n    preset: twilio-api-keys\n    base_url: "+srv.BaseURL()+"\n"+
			"    auth: {basic: {username: env:REKEY_TEST_TWILIO_SID, password: env:REKEY_TEST_TWILIO_TOKEN}}\n",
			secret.NewFields(map[string]string{"sid": sid, "secret": sec}), "", srv.ActiveCount, 1)
		w.fields, w.public = sinks.Fields{"sid": "TWILIO_API_KEY", "secret": "TWILIO_API_SECRET"}, "sid"
		return w
	}},
	// An IAM user's access key pair; the old key ends Inactive (revoke is
	// deactivate, then delete after delete_after).
	{"aws-iam", func(t *testing.T) e2eWorld {
		iam := fakeiam.New(t)
		iam.AddUser("app")
		old := iam.CreateKey("app")
		dir := t.TempDir()
		fakeAWSEnv(t, dir)
		active := func() int {
			n := 0
			for _, k := range iam.Keys("app") {
				if k.Status == "Active" {
					n++
				}
			}
			return n
		}
		return e2eWorld{
			issuer: "    {type: aws-iam, user_name: app, region: us-east-1, endpoint: '" + iam.URL + "'}\n",
			seed:   secret.NewFields(map[string]string{"access_key_id": old.ID, "secret_access_key": old.Secret}),
			fields: sinks.Fields{"access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY"},
			public: "access_key_id",
			check: func(_ context.Context, v secret.Value) error {
				if !slices.ContainsFunc(iam.Keys("app"), func(k fakeiam.Key) bool {
					return k.Status == "Active" && k.ID == v.Field("access_key_id").Reveal() && k.Secret == v.Field("secret_access_key").Reveal()
				}) {
					return issuers.ErrUnauthorized
				}
				return nil
			},
			active: active, wantActive: 1,
		}
	}},
}

// presetWorld is the world of an http preset entry: its check is the
// preset's own verify call against the test server.
func presetWorld(t *testing.T, entry string, seed secret.Value, keyID string, active func() int, wantActive int) e2eWorld {
	iss := presetIssuer(t, entry)
	return e2eWorld{issuer: entry, seed: seed, keyID: keyID, check: iss.Verify, active: active, wantActive: wantActive}
}

// TestRotateE2E: per issuer, the seeded key is replaced by a new one that
// works, the seeded key is refused afterwards, and only the new key (and
// any management key) is active.
func TestRotateE2E(t *testing.T) {
	for _, c := range e2eCases {
		t.Run(c.name, func(t *testing.T) { rotateE2E(t, c.start(t), false) })
	}
}

// TestRollbackE2E: per issuer, the app fails its health check with the
// new key during the window: the rotation ends rolled_back, the file holds
// the seeded key again, which still works, and the new key is revoked at
// the test server.
func TestRollbackE2E(t *testing.T) {
	for _, c := range e2eCases {
		t.Run(c.name, func(t *testing.T) { rotateE2E(t, c.start(t), true) })
	}
}

// rotateE2E rotates credential app once through w's issuer and checks the
// outcome; with breaks, the app is unhealthy with any key but the seed.
func rotateE2E(t *testing.T, w e2eWorld, breaks bool) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "app.env")
	fc := file.Config{Path: envFile, Format: "dotenv", Key: "API_KEY"}
	sinkYAML := "{type: file, path: " + envFile + ", key: API_KEY}"
	seedLines := "API_KEY=" + w.seed.Reveal() + "\n"
	if w.fields != nil {
		fc.Key, fc.Fields = "", w.fields
		var m, lines []string
		for _, name := range w.fields.Names() {
			m = append(m, name+": "+w.fields[name])
			lines = append(lines, w.fields[name]+"="+w.seed.Field(name).Reveal())
		}
		sinkYAML = "{type: file, path: " + envFile + ", fields: {" + strings.Join(m, ", ") + "}}"
		seedLines = strings.Join(lines, "\n") + "\n"
	}
	e2etest.WriteFile(t, envFile, "APP=crm\n"+seedLines)
	e2etest.WriteStateKey(t, filepath.Join(dir, "state.key"))
	sink, err := file.New(fc, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// secrets are what must never be printed: the value and each field
	// but the public ID.
	secrets := func(vs ...secret.Value) []secret.Value {
		return slices.DeleteFunc(secret.Parts(vs...), func(p secret.Value) bool {
			return w.public != "" && slices.ContainsFunc(vs, func(v secret.Value) bool { return v.Field(w.public).Equal(p) })
		})
	}
	remember := func(v secret.Value) {
		for _, p := range secrets(v) {
			rememberValue(p)
		}
	}
	remember(w.seed)
	if err := w.check(ctx, w.seed); err != nil {
		t.Fatalf("the seeded key does not work at the test server: %v", err)
	}
	activeBefore := w.active()

	// The app's health: the key in its file must be live at the issuer
	// (and, when the new key breaks the app, be the seeded one).
	var (
		mu    sync.Mutex
		fresh []secret.Value // keys other than the seed the app was given
	)
	app := healthServer(t, sink, func(ctx context.Context, v secret.Value) error {
		remember(v)
		if !v.Equal(w.seed) {
			mu.Lock()
			if !slices.ContainsFunc(fresh, v.Equal) {
				fresh = append(fresh, v)
			}
			mu.Unlock()
			if breaks {
				return errors.New("the app fails with the new key")
			}
		}
		return w.check(ctx, v)
	})
	keyID := ""
	if w.keyID != "" {
		keyID = "    key_id: " + w.keyID + "\n"
	}
	cfg := filepath.Join(dir, "rekey.yaml")
	e2etest.WriteFile(t, cfg, fmt.Sprintf(`version: 1
state:
  path: %[1]s/state.db
  encryption_key: file:%[1]s/state.key
issuers:
  vendor:
%[2]scredentials:
  app:
    issuer: vendor
    label: app-{{date}}
    rotate_every: 90d
%[4]s    verify: {timeout: 30s}
    sinks:
      - %[5]s
    monitor:
      window: 2s
      interval: 1s
      failure_threshold: 2
      checks:
        - url: %[3]s/healthz
`, dir, w.issuer, app.URL, keyID, sinkYAML))

	cli := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		code := execute(ctx, append([]string{"-c", cfg}, args...), &out, &errOut)
		record([]byte(out.String()), []byte(errOut.String()))
		return code, out.String() + errOut.String()
	}
	// plan talks to the issuer (lists keys, identifies the current one)
	// and changes nothing.
	if code, out := cli("plan"); code != exitOK {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	code, out := cli("rotate", "app")
	now, err := sink.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	remember(now)
	mu.Lock()
	seen := slices.Clone(fresh)
	mu.Unlock()
	if len(seen) == 0 {
		t.Fatalf("the health check never saw a new key (rotate exit %d)\n%s", code, out)
	}
	if breaks {
		if code != exitFailed || !strings.Contains(out, "rolled_back") {
			t.Fatalf("rotate with the app failing on the new key: exit %d, want %d and rolled_back\n%s", code, exitFailed, out)
		}
		if !now.Equal(w.seed) {
			t.Error("the file does not hold the seeded key after the rollback")
		}
		if err := w.check(ctx, w.seed); err != nil {
			t.Errorf("the seeded key no longer works after the rollback: %v", err)
		}
		for _, v := range seen {
			if err := w.check(ctx, v); !errors.Is(err, issuers.ErrUnauthorized) {
				t.Errorf("the new key still works after the rollback (check = %v): it was not revoked", err)
			}
		}
		if n := w.active(); n != activeBefore {
			t.Errorf("%d active keys after the rollback, want %d as before it", n, activeBefore)
		}
		if code, out := cli("status", "-o", "json"); code != exitOK || !strings.Contains(out, `"last_outcome": "rolled_back"`) {
			t.Errorf("status after the rollback: exit %d\n%s", code, out)
		}
	} else {
		if code != exitOK {
			t.Fatalf("rotate: exit %d\n%s", code, out)
		}
		if now.Equal(w.seed) || !slices.ContainsFunc(seen, now.Equal) {
			t.Fatal("the file does not hold the new key the health check passed")
		}
		if err := w.check(ctx, now); err != nil {
			t.Fatalf("the key in the file does not work at the issuer: %v", err)
		}
		if err := w.check(ctx, w.seed); !errors.Is(err, issuers.ErrUnauthorized) {
			t.Errorf("the old key still works after the rotation (check = %v): it was not revoked", err)
		}
		if n := w.active(); n != w.wantActive {
			t.Errorf("%d active keys after the rotation, want %d", n, w.wantActive)
		}
	}
	data, _ := os.ReadFile(envFile)
	if !strings.HasPrefix(string(data), "APP=crm\n") {
		t.Errorf("the rest of the env file changed")
	}
	for _, v := range secrets(append(seen, w.seed, now)...) {
		if strings.Contains(out, v.Reveal()) {
			t.Errorf("a key value appears in rekey's output")
		}
	}
}

// healthServer is an app's health endpoint: it reads the key from sink,
// as the app would, and is healthy while judge accepts it (judge asks the
// issuer's test server whether the key is live). It stops with the test.
func healthServer(t *testing.T, sink *file.Sink, judge func(context.Context, secret.Value) error) *httptest.Server {
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		v, err := sink.Get(r.Context())
		if err == nil {
			err = judge(r.Context(), v)
		}
		if err != nil {
			http.Error(rw, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
	}))
	t.Cleanup(app.Close)
	return app
}

// presetIssuer builds the issuer an entry describes, as decodeIssuer does.
func presetIssuer(t *testing.T, entry string) issuers.Issuer {
	t.Helper()
	cfg, err := config.Parse("rekey.yaml", []byte("version: 1\nstate: {encryption_key: env:K}\nissuers:\n  vendor:\n"+entry+
		"credentials:\n  c: {issuer: vendor, label: c, rotate_every: 1d, sinks: [{type: file, path: /x, format: raw}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var fc httpissuer.FileConfig
	if err := cfg.Issuers["vendor"].Decode(&fc); err != nil {
		t.Fatal(err)
	}
	c, err := fc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := httpissuer.New(c, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return iss
}
