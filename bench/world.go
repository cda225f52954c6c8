package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
)

// world is N credentials as an operator has them before rekey first runs:
// each credential's first key minted at its account and written to its
// three file sinks (dotenv, json, raw), credentials packed perAccount to
// an account, the journal key and one management token per account on
// disk, and rekey.yaml naming all of it.
type world struct {
	dir      string
	n        int
	accounts fleet
	names    []string // sorted, as rekey sorts them
	config   string
	state    string // state.path
}

func credName(i int) string { return fmt.Sprintf("c%05d", i) }

// newWorld builds a world of n credentials under parent. Keys are minted
// with no injected latency; the caller sets it afterwards.
func newWorld(ctx context.Context, parent string, n int, o options, health string) (*world, error) {
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("world-%d-", n))
	if err != nil {
		return nil, err
	}
	w := &world{dir: dir, n: n}
	nacc := (n + o.perAccount - 1) / o.perAccount
	for range nacc {
		a, err := startAccount()
		if err != nil {
			w.close()
			return nil, fmt.Errorf("start simulator: %w", err)
		}
		w.accounts = append(w.accounts, a)
	}
	for i := range n {
		w.names = append(w.names, credName(i))
	}
	if err := w.writeSecrets(); err != nil {
		w.close()
		return nil, err
	}
	if err := w.mintAll(ctx, o.perAccount); err != nil {
		w.close()
		return nil, err
	}
	w.state = filepath.Join(dir, "state", "state.db")
	if err := os.MkdirAll(filepath.Dir(w.state), 0o700); err != nil {
		w.close()
		return nil, err
	}
	w.config = filepath.Join(dir, "rekey.yaml")
	if err := w.writeConfig(o, health); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *world) writeSecrets() error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(w.dir, "state.key"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(w.dir, "tokens"), 0o700); err != nil {
		return err
	}
	for i, a := range w.accounts {
		if err := os.WriteFile(w.tokenPath(i), []byte(a.sim.ManagementToken()+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) tokenPath(acct int) string {
	return filepath.Join(w.dir, "tokens", fmt.Sprintf("a%04d", acct))
}

func (w *world) sinkDir(i int) string { return filepath.Join(w.dir, "sinks", credName(i)) }

// mintAll creates each credential's first key at its account and writes it
// into its three sinks, eight accounts at a time.
func (w *world) mintAll(ctx context.Context, perAccount int) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(w.accounts))
	sem := make(chan struct{}, 8)
	for ai, a := range w.accounts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			iss, err := apexverify.New(apexverify.Config{BaseURL: a.url, ManagementToken: secret.New(a.sim.ManagementToken()), Timeout: 10 * time.Second}, zap.NewNop())
			if err != nil {
				errs <- err
				return
			}
			for i := ai * perAccount; i < min((ai+1)*perAccount, w.n); i++ {
				_, v, err := iss.Create(ctx, credName(i)+"-initial")
				if err != nil {
					errs <- fmt.Errorf("mint first key of %s: %w", credName(i), err)
					return
				}
				if err := writeSinks(w.sinkDir(i), v); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// writeSinks writes v into the three sink files of one credential.
func writeSinks(dir string, v secret.Value) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	js, err := json.Marshal(map[string]string{"service": "crm", "api_key": v.Reveal()})
	if err != nil {
		return err
	}
	files := map[string]string{
		"app.env":  "APP=crm\nAPI_KEY=" + v.Reveal() + "\n",
		"app.json": string(js) + "\n",
		"key.txt":  v.Reveal(),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeConfig writes rekey.yaml: every credential with its account as
// issuer, three file sinks, a 90-day rotation (so a credential rotated
// once is not due again), and a monitor of window o.window, interval 1 s,
// checking the one health endpoint.
func (w *world) writeConfig(o options, health string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nstate:\n  path: %s\n  encryption_key: file:%s\n", w.state, filepath.Join(w.dir, "state.key"))
	fmt.Fprintf(&b, "daemon:\n  listen: 127.0.0.1:0\n  concurrency: %d\n", o.concurrency)
	b.WriteString("issuers:\n")
	for i, a := range w.accounts {
		fmt.Fprintf(&b, "  a%04d:\n    type: apexverify\n    base_url: %s\n    management_token: file:%s\n", i, a.url, w.tokenPath(i))
	}
	b.WriteString("credentials:\n")
	for i, name := range w.names {
		d := w.sinkDir(i)
		fmt.Fprintf(&b, `  %[1]s:
    issuer: a%04[2]d
    label: %[1]s-{{date}}
    rotate_every: 90d
    verify: {timeout: 30s}
    sinks:
      - {type: file, path: %[3]s/app.env, format: dotenv, key: API_KEY}
      - {type: file, path: %[3]s/app.json, format: json, key: api_key}
      - {type: file, path: %[3]s/key.txt, format: raw}
    monitor:
      window: %[4]s
      interval: 1s
      failure_threshold: 3
      checks:
        - url: %[5]s
`, name, i/o.perAccount, d, o.window, health)
	}
	return os.WriteFile(w.config, []byte(b.String()), 0o600)
}

// freshJournal points the config at a new, empty journal, so that every
// credential is due again (never rotated by this journal) while its sinks
// hold the key the last rotation put there, still active at its account.
func (w *world) freshJournal(o options, health, name string) error {
	w.state = filepath.Join(w.dir, name, "state.db")
	if err := os.MkdirAll(filepath.Dir(w.state), 0o700); err != nil {
		return err
	}
	return w.writeConfig(o, health)
}

func (w *world) auditPath() string { return w.state + ".audit.jsonl" }

func (w *world) close() {
	w.accounts.close()
}
