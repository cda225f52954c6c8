package e2etest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
)

// Sim is a running ApexVerify simulator and a management client of it.
type Sim struct {
	*apexsim.Sim
	URL    string
	Issuer *apexverify.Issuer
}

// StartSim starts a simulator with o, stopped when t ends.
func StartSim(t testing.TB, o apexsim.Options) *Sim {
	t.Helper()
	s := &Sim{Sim: apexsim.New(o)}
	var stop func()
	s.URL, stop = s.Start()
	t.Cleanup(stop)
	var err error
	s.Issuer, err = apexverify.New(apexverify.Config{BaseURL: s.URL, ManagementToken: secret.New(s.ManagementToken()), Timeout: 5 * time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Mint creates a key labelled label, as an operator does before rekey
// first runs, and records its value in seen.
func (s *Sim) Mint(t testing.TB, label string, seen *Values) (issuers.Key, secret.Value) {
	t.Helper()
	k, v, err := s.Issuer.Create(context.Background(), label)
	if err != nil {
		t.Fatal(err)
	}
	seen.Add(v)
	return k, v
}

// KeyByPrefix returns the simulator's record of the key whose value is v,
// failing the test if there is none.
func (s *Sim) KeyByPrefix(t testing.TB, v secret.Value) apexsim.KeyRecord {
	t.Helper()
	for _, k := range s.Keys() {
		if k.Prefix == apexverify.Prefix(v) {
			return k
		}
	}
	t.Fatalf("the simulator has no key with that prefix")
	return apexsim.KeyRecord{}
}

// UseKey is what an application does with its key: one POST /v1/verify to
// the simulator at url, with no retry. It returns the response's status.
func UseKey(ctx context.Context, c *http.Client, url string, v secret.Value) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/verify", strings.NewReader(`{"email":"a@b.example"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+v.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// WriteFile writes body and a newline to path, mode 0600.
func WriteFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// WriteStateKey writes a random journal encryption key to path, base64 as
// the config's encryption_key: file: reference reads it.
func WriteStateKey(t testing.TB, path string) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	WriteFile(t, path, base64.StdEncoding.EncodeToString(key))
}

// Use is UseKey against s with the default client, as an error: nil only
// for a 200.
func (s *Sim) Use(ctx context.Context, v secret.Value) error {
	status, err := UseKey(ctx, http.DefaultClient, s.URL, v)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("verify: status %d", status)
	}
	return err
}
