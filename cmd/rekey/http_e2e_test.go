package main

// End-to-end rotations through the http issuer's presets: `rekey rotate`
// against each vendor's test server (issuers/httpissuer/presettest), into
// a file sink, with a health check that reads the file and calls the
// vendor with the key it finds, as the app would.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
	"github.com/rekeyhq/rekey/sinks/file"
)

// presetRotation is one vendor's end-to-end case.
type presetRotation struct {
	// issuer is the issuer entry's lines (indented 4 spaces).
	issuer string
	// seed is the key in the app's file before rekey runs; keyID is its
	// ID, written as the credential's key_id when the preset cannot
	// identify a key by its value.
	seed  secret.Value
	keyID string
}

// rotateWithPreset rotates credential app once through p and checks the
// outcome: the file holds a new key that works, the seeded key is
// refused, and no key value reached rekey's output.
func rotateWithPreset(t *testing.T, p presetRotation) {
	t.Helper()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "app.env")
	e2etest.WriteFile(t, envFile, "APP=crm\nAPI_KEY="+p.seed.Reveal())
	e2etest.WriteStateKey(t, filepath.Join(dir, "state.key"))
	sink, err := file.New(file.Config{Path: envFile, Format: "dotenv", Key: "API_KEY"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	iss := presetIssuer(t, p.issuer)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := sink.Get(r.Context())
		if err == nil {
			rememberValue(v)
			err = iss.Verify(r.Context(), v)
		}
		if err != nil {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer app.Close()
	keyID := ""
	if p.keyID != "" {
		keyID = "    key_id: " + p.keyID + "\n"
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
      - {type: file, path: %[1]s/app.env, key: API_KEY}
    monitor:
      window: 2s
      interval: 1s
      failure_threshold: 2
      checks:
        - url: %[3]s/healthz
`, dir, p.issuer, app.URL, keyID))
	rememberValue(p.seed)

	// plan talks to the vendor (lists keys, identifies the current one)
	// and changes nothing.
	var planOut, planErr strings.Builder
	if code := execute(context.Background(), []string{"-c", cfg, "plan"}, &planOut, &planErr); code != exitOK {
		t.Fatalf("plan: exit %d\n%s%s", code, planOut.String(), planErr.String())
	}
	record([]byte(planOut.String()), []byte(planErr.String()))

	var out, errOut strings.Builder
	code := execute(context.Background(), []string{"-c", cfg, "rotate", "app"}, &out, &errOut)
	record([]byte(out.String()), []byte(errOut.String()))
	if code != exitOK {
		t.Fatalf("rotate: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	now, err := sink.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rememberValue(now)
	if now.Equal(p.seed) {
		t.Fatal("the file still holds the seeded key")
	}
	if err := iss.Verify(context.Background(), now); err != nil {
		t.Fatalf("the key in the file does not work at the vendor: %v", err)
	}
	if err := iss.Verify(context.Background(), p.seed); !errors.Is(err, issuers.ErrUnauthorized) {
		t.Errorf("the old key still works after the rotation (Verify = %v): it was not revoked", err)
	}
	data, _ := os.ReadFile(envFile)
	if !strings.HasPrefix(string(data), "APP=crm\n") {
		t.Errorf("the rest of the env file changed")
	}
	for _, v := range []secret.Value{p.seed, now} {
		if strings.Contains(out.String()+errOut.String(), v.Reveal()) {
			t.Errorf("a key value appears in rekey's output")
		}
	}
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

// TestRotateOpenAIAdminKey: the seeded key is adopted by its redacted
// value, then deleted after the new one passed monitoring.
func TestRotateOpenAIAdminKey(t *testing.T) {
	srv := presettest.NewOpenAI()
	defer srv.Close()
	t.Setenv("REKEY_TEST_OPENAI_ADMIN_KEY", srv.ManagementKey())
	seed := secret.New(srv.Seed("app-initial"))
	rotateWithPreset(t, presetRotation{
		issuer: "    type: http\n    preset: openai-admin\n    base_url: " + srv.URL + "\n    auth: {token: env:REKEY_TEST_OPENAI_ADMIN_KEY}\n",
		seed:   seed,
	})
	if n := srv.ActiveCount(); n != 2 {
		t.Errorf("%d admin keys at OpenAI, want 2: the management key and the new one", n)
	}
}

// TestRotateCloudflareAccountToken: Cloudflare shows no public part of a
// token, so the credential names the current token's ID (key_id).
func TestRotateCloudflareAccountToken(t *testing.T) {
	srv := presettest.NewCloudflare()
	defer srv.Close()
	t.Setenv("REKEY_TEST_CF_TOKEN", srv.ManagementToken())
	id, value := srv.Seed("app-initial")
	rotateWithPreset(t, presetRotation{
		issuer: "    type: http\n    preset: cloudflare-account-tokens\n    base_url: " + srv.BaseURL() + "\n    auth: {token: env:REKEY_TEST_CF_TOKEN}\n" +
			"    create:\n      body: '{\"name\": \"{{label}}\", \"policies\": [{\"effect\": \"allow\", \"permission_groups\": [{\"id\": \"c8fed203ed3043cba015a93ad1616f1f\"}], \"resources\": {\"com.cloudflare.api.account.zone.*\": \"*\"}}]}'\n",
		seed:  secret.New(value),
		keyID: id,
	})
	if n := srv.ActiveCount(); n != 1 {
		t.Errorf("%d account tokens, want 1: the new one", n)
	}
}

// TestRotateDatadogAPIKey: the seeded key is adopted by its last four
// characters, then deleted.
func TestRotateDatadogAPIKey(t *testing.T) {
	srv := presettest.NewDatadog()
	defer srv.Close()
	t.Setenv("REKEY_TEST_DD_API_KEY", srv.ManagementAPIKey())
	t.Setenv("REKEY_TEST_DD_APP_KEY", srv.ApplicationKey())
	seed := secret.New(srv.Seed("app-initial"))
	rotateWithPreset(t, presetRotation{
		issuer: "    type: http\n    preset: datadog-api-keys\n    base_url: " + srv.URL + "\n" +
			"    auth:\n      token: env:REKEY_TEST_DD_API_KEY\n      extra: [{header: DD-APPLICATION-KEY, token: env:REKEY_TEST_DD_APP_KEY}]\n" +
			// Random keys may share their last four characters, which
			// would (rightly) make adoption refuse: keep the management
			// key out of the keys rekey looks at.
			"    list: {items: \"$.data[?@.attributes.name != 'management']\"}\n",
		seed: seed,
	})
	if n := srv.ActiveCount(); n != 2 {
		t.Errorf("%d API keys, want 2: the management key and the new one", n)
	}
}
