package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
)

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

// e2ePath is the secret the credential's vault-kv sink writes, inside
// KV2Mount.
const e2ePath = "crm/apexverify"

// e2e is one credential `prod` against the ApexVerify simulator, with a
// dotenv file sink and a vault-kv sink, and an app whose health check reads
// the key from Vault and calls the simulator with it.
type e2e struct {
	*e2etest.World
	t      *testing.T
	vault  *Server
	app    *e2etest.App
	tokens e2etest.Values // Vault tokens, which must not leak either
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	e := &e2e{t: t, World: e2etest.NewWorld(t, nil), vault: Start(t)}

	// The initial key is in Vault too, next to a field rekey must keep.
	kv2Put(t, e.vault.Root, e2ePath, map[string]any{key: e.InFile().Reveal(), "db_password": "keep-me"})

	// rekey logs in with a token holding only the shipped KV v2 policy.
	e.vault.Policy(t, "rekey", policyKV2, policyDataPathKV2, KV2Mount+"/data/"+e2ePath)
	token := e.vault.Token(t, "", "rekey")
	e.tokens.Add(secret.New(token), secret.New(e.vault.RootToken))

	e.app = e2etest.StartApp(t, e.useKey)
	e.WriteConfig(e2etest.Config{HealthURL: e.app.HealthURL(), Sinks: []string{fmt.Sprintf(`type: vault-kv
address: %s
mount: %s
kv_version: 2
path: %s
key: %s
auth: {method: token, token: "%s"}`, e.vault.Addr, KV2Mount, e2ePath, key, SecretFile(t, token))}})
	return e
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
	e.Seen.Add(val)
	return val, s.VersionMetadata.Version, nil
}

// useKey is the app: it reads the key from Vault and calls /v1/verify.
func (e *e2e) useKey(ctx context.Context) error {
	v, _, err := e.fromVault(ctx)
	if err != nil {
		return err
	}
	return e.Use(ctx, v)
}

// rotate runs `rekey -c CONFIG --log-level debug rotate prod` and returns
// its exit code and combined output, after checking the output holds no
// key value and no Vault token (I4).
func (e *e2e) rotate() (int, string) {
	e.t.Helper()
	code, out, errOut := e2etest.Run(e.t, e.Rekey("rotate", "prod"))
	e.InFile()
	if _, _, err := e.fromVault(context.Background()); err != nil {
		e.t.Errorf("read Vault after rotate: %v", err)
	}
	if errOut == "" || !strings.Contains(errOut, "debug") {
		e.t.Errorf("no debug log on stderr: the leak check would prove nothing")
	}
	text := out + "\n" + errOut
	for _, v := range e.Seen.Leaks(text) {
		e.t.Fatalf("I4: key value %s appears in rekey's output", apexverify.Prefix(v))
	}
	if n := len(e.tokens.Leaks(text)); n > 0 {
		e.t.Fatalf("%d Vault tokens appear in rekey's output", n)
	}
	return code, out + errOut
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
	seedKey := e.KeyByPrefix(t, seed)

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
	if !e.InFile().Equal(rotated) {
		t.Errorf("the file does not hold the key Vault holds")
	}
	if e.app.Served.Load() == 0 {
		t.Errorf("the app never passed a health check: monitoring proved nothing")
	}
	if err := e.Use(ctx, rotated); err != nil {
		t.Errorf("the new key does not work: %v", err)
	}
	if k := e.KeyByPrefix(t, seed); k.ID != seedKey.ID || k.Status != "revoked" {
		t.Errorf("initial key %s is %s after rotation, want revoked", k.ID, k.Status)
	}
	e2etest.OnlyActive(t, e.Sim.Sim, rotated)
	e.Invariants(e.History(), 2*time.Second)

	// 2. The app turns unhealthy during monitoring: rekey rolls back.
	e.app.SetHealthy(func() bool { return false })
	code, out := e.rotate()
	if code != 1 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rotate with failing health: exit %d, want 1 and rolled_back\n%s", code, out)
	}
	e.app.SetHealthy(nil)
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
	e.Seen.Add(rejected)
	if s == "" || rejected.Equal(rotated) || put.Data["db_password"] != "keep-me" {
		t.Errorf("version %d is not the rejected key next to the kept field", version+1)
	}
	if !e.InFile().Equal(rotated) {
		t.Errorf("the file does not hold the previous key after rollback")
	}
	if k := e.KeyByPrefix(t, rejected); k.Status != "revoked" {
		t.Errorf("the rejected key %s is %s after rollback, want revoked", k.ID, k.Status)
	}
	if err := e.Use(ctx, rotated); err != nil {
		t.Errorf("the previous key no longer works after rollback: %v", err)
	}
	e2etest.OnlyActive(t, e.Sim.Sim, rotated)
	e.Invariants(e.History(), 2*time.Second)
}
