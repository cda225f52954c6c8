package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/sinks/file"
)

// rekeyBin is the real rekey binary, built once by TestMain.
var rekeyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rekey-vault-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaulttest:", err)
		os.Exit(1)
	}
	rekeyBin = filepath.Join(dir, "rekey")
	build := exec.Command("go", "build", "-o", rekeyBin, "./cmd/rekey")
	build.Dir = "../../.." // the root module
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "vaulttest: build rekey:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// e2ePath is the secret the credential's vault-kv sink writes, inside
// KV2Mount.
const e2ePath = "crm/apexverify"

// e2e is one credential `prod` against the ApexVerify simulator, with a
// dotenv file sink and a vault-kv sink, and an app whose health check reads
// the key from Vault and calls the simulator with it.
type e2e struct {
	t       *testing.T
	dir     string
	config  string
	vault   *Server
	sim     *apexsim.Sim
	simURL  string
	file    *file.Sink
	healthy atomic.Bool
	served  atomic.Int64 // health checks answered 200

	mu     sync.Mutex
	values []secret.Value // every key value the test saw, for the leak check
	tokens []string       // Vault tokens, which must not leak either
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	e := &e2e{t: t, dir: t.TempDir(), vault: Start(t), sim: apexsim.New(apexsim.Options{})}
	e.healthy.Store(true)
	var stop func()
	e.simURL, stop = e.sim.Start()
	t.Cleanup(stop)

	// The initial key, in the file and in Vault next to a field rekey must keep.
	iss, err := apexverify.New(apexverify.Config{BaseURL: e.simURL, ManagementToken: secret.New(e.sim.ManagementToken()), Timeout: 5 * time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	_, initial, err := iss.Create(context.Background(), "prod-initial")
	if err != nil {
		t.Fatal(err)
	}
	e.remember(initial)
	envFile := filepath.Join(e.dir, "app.env")
	writeE2EFile(t, envFile, "APP=crm\nAPI_KEY="+initial.Reveal())
	e.file, err = file.New(file.Config{Path: envFile, Format: "dotenv", Key: "API_KEY"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	kv2Put(t, e.vault.Root, e2ePath, map[string]any{key: initial.Reveal(), "db_password": "keep-me"})

	// rekey logs in with a token holding only the shipped KV v2 policy.
	e.vault.Policy(t, "rekey", policyKV2, policyDataPathKV2, KV2Mount+"/data/"+e2ePath)
	token := e.vault.Token(t, "", "rekey")
	e.tokens = []string{token, e.vault.RootToken}

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := e.useKey(r.Context()); err != nil || !e.healthy.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		e.served.Add(1)
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(app.Close)

	stateKey := make([]byte, 32)
	rand.Read(stateKey)
	writeE2EFile(t, filepath.Join(e.dir, "state.key"), base64.StdEncoding.EncodeToString(stateKey))
	writeE2EFile(t, filepath.Join(e.dir, "token"), e.sim.ManagementToken())
	e.config = filepath.Join(e.dir, "rekey.yaml")
	writeE2EFile(t, e.config, fmt.Sprintf(`version: 1
state:
  path: %[1]s/state.db
  encryption_key: file:%[1]s/state.key
issuers:
  sim:
    type: apexverify
    base_url: %[2]s
    management_token: file:%[1]s/token
credentials:
  prod:
    issuer: sim
    label: prod-{{date}}
    rotate_every: 90d
    verify: {timeout: 30s}
    sinks:
      - {type: file, path: %[1]s/app.env, key: API_KEY}
      - type: vault-kv
        address: %[4]s
        mount: %[5]s
        kv_version: 2
        path: %[6]s
        key: %[7]s
        auth: {method: token, token: "%[8]s"}
    monitor:
      window: 2s
      interval: 1s
      failure_threshold: 2
      checks:
        - url: %[3]s/healthz
`, e.dir, e.simURL, app.URL, e.vault.Addr, KV2Mount, e2ePath, key, SecretFile(t, token)))
	return e
}

func writeE2EFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (e *e2e) remember(v secret.Value) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.values = append(e.values, v)
}

// fromVault returns the key in Vault's current version and that version,
// checking that the secret's other field survived.
func (e *e2e) fromVault(ctx context.Context) (secret.Value, int, error) {
	s, err := e.vault.Root.KVv2(KV2Mount).Get(ctx, e2ePath)
	if err != nil {
		return secret.Value{}, 0, err
	}
	if s.Data["db_password"] != "keep-me" {
		return secret.Value{}, 0, errors.New("the secret's other field was lost")
	}
	v, ok := s.Data[key].(string)
	if !ok || v == "" {
		return secret.Value{}, 0, errors.New("no api_key field")
	}
	val := secret.New(v)
	e.remember(val)
	return val, s.VersionMetadata.Version, nil
}

// useKey is the app: it reads the key from Vault and calls /v1/verify.
func (e *e2e) useKey(ctx context.Context) error {
	v, _, err := e.fromVault(ctx)
	if err != nil {
		return err
	}
	return e.verify(ctx, v)
}

func (e *e2e) verify(ctx context.Context, v secret.Value) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.simURL+"/v1/verify", strings.NewReader(`{"email":"a@b.example"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+v.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("verify: status %d", resp.StatusCode)
	}
	return nil
}

// inFile returns the key in the dotenv file.
func (e *e2e) inFile() secret.Value {
	e.t.Helper()
	v, err := e.file.Get(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	e.remember(v)
	return v
}

// rotate runs `rekey -c CONFIG --log-level debug rotate prod` and returns
// its exit code and combined output, after checking the output holds no
// key value and no Vault token (I4).
func (e *e2e) rotate() (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, rekeyBin, "-c", e.config, "--log-level", "debug", "rotate", "prod")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		e.t.Fatalf("run rekey: %v", err)
	}
	e.inFile()
	if _, _, err := e.fromVault(context.Background()); err != nil {
		e.t.Errorf("read Vault after rotate: %v", err)
	}
	text := out.String() + "\n" + errOut.String()
	if errOut.Len() == 0 || !strings.Contains(errOut.String(), "debug") {
		e.t.Errorf("no debug log on stderr: the leak check would prove nothing")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, v := range e.values {
		if strings.Contains(text, v.Reveal()) {
			e.t.Fatalf("I4: key value #%d appears in rekey's output", i)
		}
	}
	for i, tok := range e.tokens {
		if strings.Contains(text, tok) {
			e.t.Fatalf("Vault token #%d appears in rekey's output", i)
		}
	}
	return code, out.String() + errOut.String()
}

// noRefusals checks I3: no client call was refused except during a new
// key's activation delay.
func (e *e2e) noRefusals() {
	e.t.Helper()
	for _, r := range e.sim.Refusals() {
		if r.Reason != apexsim.RefusedNotYetActive {
			e.t.Errorf("I3: a client was refused: %+v", r)
		}
	}
}

// onlyActive checks I2: the key in the file is the account's only active key.
func (e *e2e) onlyActive(cur secret.Value) {
	e.t.Helper()
	active := 0
	for _, k := range e.sim.Keys() {
		if k.Status != "active" {
			continue
		}
		active++
		if k.Prefix != apexverify.Prefix(cur) {
			e.t.Errorf("I2: active key %s (%s) is not the one in the sinks", k.ID, k.Label)
		}
	}
	if active != 1 {
		e.t.Errorf("I2: %d active keys, want 1", active)
	}
}

func (e *e2e) keyByPrefix(v secret.Value) apexsim.KeyRecord {
	e.t.Helper()
	for _, k := range e.sim.Keys() {
		if k.Prefix == apexverify.Prefix(v) {
			return k
		}
	}
	e.t.Fatalf("the simulator has no key with that prefix")
	return apexsim.KeyRecord{}
}

// TestE2ERotateIntoVaultKV2 is issue 4 end to end: the real binary rotates a
// credential whose sinks are a dotenv file and a field of a KV v2 secret
// (written with a least-privilege token), while an app reads the key from
// Vault. Then, with the app unhealthy, rotation rolls back by writing the
// previous key as a new version.
func TestE2ERotateIntoVaultKV2(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()
	seed, seedVersion, err := e.fromVault(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seedKey := e.keyByPrefix(seed)

	// 1. A healthy rotation.
	if code, out := e.rotate(); code != 0 {
		t.Fatalf("rotate: exit %d\n%s", code, out)
	}
	rotated, version, err := e.fromVault(ctx)
	if err != nil {
		t.Fatalf("Vault after rotate: %v", err)
	}
	if rotated.Equal(seed) {
		t.Fatalf("Vault still holds the initial key")
	}
	if version != seedVersion+1 {
		t.Errorf("Vault is at version %d after rotate, want %d", version, seedVersion+1)
	}
	if !e.inFile().Equal(rotated) {
		t.Errorf("the file does not hold the key Vault holds")
	}
	if e.served.Load() == 0 {
		t.Errorf("the app never passed a health check: monitoring proved nothing")
	}
	if err := e.verify(ctx, rotated); err != nil {
		t.Errorf("the new key does not work: %v", err)
	}
	if k := e.keyByPrefix(seed); k.ID != seedKey.ID || k.Status != "revoked" {
		t.Errorf("initial key %s is %s after rotation, want revoked", k.ID, k.Status)
	}
	e.onlyActive(rotated)
	e.noRefusals()

	// 2. The app turns unhealthy during monitoring: rekey rolls back.
	e.healthy.Store(false)
	code, out := e.rotate()
	if code != 1 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rotate with failing health: exit %d, want 1 and rolled_back\n%s", code, out)
	}
	e.healthy.Store(true)
	back, backVersion, err := e.fromVault(ctx)
	if err != nil {
		t.Fatalf("Vault after rollback: %v", err)
	}
	if !back.Equal(rotated) {
		t.Errorf("Vault's current version does not hold the previous key after rollback")
	}
	if backVersion != version+2 {
		t.Errorf("Vault is at version %d after rollback, want %d (the put, then the rollback as a new version)", backVersion, version+2)
	}
	put, err := e.vault.Root.KVv2(KV2Mount).GetVersion(ctx, e2ePath, version+1)
	if err != nil {
		t.Fatalf("read the rolled-back version %d: %v", version+1, err)
	}
	s, _ := put.Data[key].(string)
	rejected := secret.New(s)
	e.remember(rejected)
	if s == "" || rejected.Equal(rotated) || put.Data["db_password"] != "keep-me" {
		t.Errorf("version %d is not the rejected key next to the kept field", version+1)
	}
	if !e.inFile().Equal(rotated) {
		t.Errorf("the file does not hold the previous key after rollback")
	}
	if k := e.keyByPrefix(rejected); k.Status != "revoked" {
		t.Errorf("the rejected key %s is %s after rollback, want revoked", k.ID, k.Status)
	}
	if err := e.verify(ctx, rotated); err != nil {
		t.Errorf("the previous key no longer works after rollback: %v", err)
	}
	e.onlyActive(rotated)
	e.noRefusals()
}
