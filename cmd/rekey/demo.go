package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/fsutil"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
)

// demoConfig is the config `rekey demo` writes and then loads through the
// normal path, so the demo exercises the same wiring as production.
const demoConfig = `version: 1
state:
  path: {{dir}}/state.db
  encryption_key: file:{{dir}}/state.key
issuers:
  apexverify-sim:
    type: apexverify
    base_url: {{sim}}
    management_token: file:{{dir}}/management-token
credentials:
  demo-api:
    issuer: apexverify-sim
    label: demo-api-{{date}}
    rotate_every: 90d
    verify: {timeout: 30s}
    sinks:
      - type: file
        path: {{dir}}/app.env
        format: dotenv
        key: APEXVERIFY_API_KEY
    monitor:
      window: 5s
      interval: 1s
      failure_threshold: 3
{{checks}}    drain: {idle_for: 1s, max_wait: 10s}
`

func (a *app) demoCommand() *cobra.Command {
	var keep bool
	var ext demoSim
	cmd := &cobra.Command{
		Use:     "demo",
		Short:   "Run one full rotation against the built-in ApexVerify simulator, a file sink and a live app",
		Example: "  rekey demo",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.demo(cmd.Context(), keep, ext)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo's temporary directory (config, journal, app.env)")
	ext.flags(cmd)
	return cmd
}

func (a *app) demo(ctx context.Context, keep bool, ext demoSim) error {
	start := a.clock.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(a.stdout, "[%5.1fs] %s\n", a.clock.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "rekey-demo-")
	if err != nil {
		return fail(exitFailed, err)
	}
	if keep {
		defer func() { say("%s", ext.keptNote(dir)) }()
	} else {
		defer os.RemoveAll(dir)
	}

	// The issuer: ApexVerify's API, simulated in-process, or a running
	// rekey sim (--sim).
	sim, simURL, token, stopSim, err := ext.start()
	if err != nil {
		return err
	}
	defer stopSim()
	say("ApexVerify simulator at %s%s", simURL, ext.what())

	// The key in production before rekey arrives: minted by hand, in app.env.
	iss, err := apexverify.New(apexverify.Config{BaseURL: simURL, ManagementToken: secret.New(token), Timeout: 5 * time.Second}, zap.NewNop())
	if err != nil {
		return fail(exitFailed, err)
	}
	oldKey, oldValue, err := iss.Create(ctx, "demo-api-initial")
	if err != nil {
		return fail(exitFailed, fmt.Errorf("demo: mint the initial key: %w", err))
	}
	envPath := filepath.Join(dir, "app.env")
	if err := fsutil.WriteFile(envPath, []byte("# demo app config\nAPP_NAME=crm\nAPEXVERIFY_API_KEY="+oldValue.Reveal()+"\n"), 0o600); err != nil {
		return fail(exitFailed, err)
	}
	if err := waitActive(ctx, iss, oldValue); err != nil {
		return fail(exitFailed, err)
	}
	say("initial key %s (%s) written to %s", oldKey.ID, oldKey.Prefix+"…", envPath)

	// The app: reads its key from app.env on every request and calls
	// ApexVerify with it, as a real service re-reading its secret would.
	reader, err := file.New(file.Config{Path: envPath, Format: "dotenv", Key: "APEXVERIFY_API_KEY"}, zap.NewNop())
	if err != nil {
		return fail(exitFailed, err)
	}
	appSrv, appURL, err := serveDemoApp(reader, simURL)
	if err != nil {
		return fail(exitFailed, err)
	}
	defer appSrv.Close()
	say("demo app at %s reads its key from app.env on every request", appURL)

	// Clients hammering the app throughout the rotation.
	load := startLoad(ctx, appURL+"/verify", 4)
	say("4 clients are calling the app")

	if err := writeDemoFiles(dir, simURL, appURL, token); err != nil {
		return fail(exitFailed, err)
	}
	a.configPath = filepath.Join(dir, "rekey.yaml")
	rt, err := a.open(ctx)
	if err != nil {
		load.stop()
		return err
	}
	defer rt.Close()
	rt.engine.Observe = func(ev rotation.Event) {
		if ev.Probe != nil {
			return // the monitoring lines say enough
		}
		msg := ev.Msg
		if msg == "" {
			msg = "phase " + string(ev.Phase)
		}
		if ev.Sink != "" {
			msg = ev.Sink + ": " + msg
		}
		if ev.Err != nil {
			msg += ": " + ev.Err.Error()
		}
		say("%-12s %s", ev.Phase, msg)
	}
	say("rotating demo-api (monitor window 5s, drain until the old key is idle 1s)")
	out, rotErr := rt.engine.Rotate(ctx, rt.creds["demo-api"], rotation.Options{Force: true})
	served, refused := load.stop()

	// The summary checks the outcome against the simulator's own records.
	current, getErr := reader.Get(ctx)
	// A refusal of a revoked or unknown key is downtime. rekey's own verify
	// of the new key while it activates is refused by design, before any
	// sink holds it.
	outages, activating := demoRefusals(sim)
	oldStatus, newID, newStatus := demoKeys(ctx, iss, oldKey.ID, current, getErr)
	live := getErr == nil && iss.Verify(ctx, current) == nil
	fmt.Fprintln(a.stdout)
	fmt.Fprintln(a.stdout, "summary")
	fmt.Fprintf(a.stdout, "  rotation          %s (%s)\n", out.RotationID, out.Phase)
	fmt.Fprintf(a.stdout, "  old key           %s %s\n", oldKey.ID, oldStatus)
	fmt.Fprintf(a.stdout, "  new key           %s %s, in app.env, authenticates: %v\n", dash(newID), dash(newStatus), live)
	fmt.Fprintf(a.stdout, "  requests served   %d\n", served)
	if sim != nil {
		fmt.Fprintf(a.stdout, "  requests refused  %d (revoked or unknown keys seen by the simulator: %d)\n", refused, outages)
		fmt.Fprintf(a.stdout, "  verify retries    %d (rekey's checks of the new key while it activated)\n", activating)
	} else {
		fmt.Fprintf(a.stdout, "  requests refused  %d (as the clients saw them; rekey sim keeps its own count)\n", refused)
	}
	switch {
	case rotErr != nil:
		return fail(exitFailed, fmt.Errorf("demo: %w", rotErr))
	case out.Phase != rotation.Done:
		return fail(exitFailed, fmt.Errorf("demo: rotation ended %s: %v", out.Phase, out.Err))
	case oldStatus != string(issuers.Revoked) || !live || newID == oldKey.ID:
		return fail(exitFailed, errors.New("demo: the keys did not end as expected"))
	case refused > 0 || outages > 0:
		return fail(exitFailed, errors.New("demo: requests were refused"))
	case served == 0:
		return fail(exitFailed, errors.New("demo: no request was served"))
	}
	fmt.Fprintln(a.stdout, "  zero downtime: every request during the rotation was served")
	if keep && sim == nil {
		// The demo app goes with the demo: the kept config checks nothing
		// but the new key itself, so that it keeps working against rekey sim.
		if err := fsutil.WriteFile(filepath.Join(dir, "rekey.yaml"), []byte(demoConfigFor(dir, simURL, "")), 0o600); err != nil {
			return fail(exitFailed, err)
		}
	}
	return nil
}

func waitActive(ctx context.Context, iss issuers.Issuer, v secret.Value) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := iss.Verify(ctx, v)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// demoConfigFor is demoConfig for the files in dir and the simulator at
// simURL, with a health check of the demo app at appURL, or none when
// appURL is empty.
func demoConfigFor(dir, simURL, appURL string) string {
	checks := ""
	if appURL != "" {
		checks = "      checks:\n        - url: " + appURL + "/healthz\n          expect_status: [200]\n"
	}
	return strings.NewReplacer("{{dir}}", dir, "{{sim}}", simURL, "{{checks}}", checks).Replace(demoConfig)
}

func writeDemoFiles(dir, simURL, appURL, token string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	files := map[string]string{
		"state.key":        base64.StdEncoding.EncodeToString(key) + "\n",
		"management-token": token + "\n",
		"rekey.yaml":       demoConfigFor(dir, simURL, appURL),
	}
	for name, body := range files {
		if err := fsutil.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// serveDemoApp serves /verify and /healthz: each reads the key from the
// file and calls the simulator's /v1/verify with it.
func serveDemoApp(keys sinks.Reader, simURL string) (*http.Server, string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	handler := func(w http.ResponseWriter, r *http.Request) {
		key, err := keys.Get(r.Context())
		if err != nil {
			http.Error(w, "no key", http.StatusServiceUnavailable)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, simURL+"/v1/verify", bytes.NewBufferString(`{"email":"ada@example.com"}`))
		req.Header.Set("Authorization", "Bearer "+key.Reveal())
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "upstream unreachable", http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			// Pass the upstream status through so clients can count 401s.
			http.Error(w, "upstream said "+resp.Status, resp.StatusCode)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/verify", handler)
	mux.HandleFunc("/healthz", handler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String(), nil
}

// load is a set of clients calling a URL until stopped.
type load struct {
	cancel          context.CancelFunc
	wg              sync.WaitGroup
	served, refused atomic.Int64
}

func startLoad(ctx context.Context, url string, clients int) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel}
	client := &http.Client{Timeout: 5 * time.Second}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					l.served.Add(1)
				case http.StatusUnauthorized:
					l.refused.Add(1)
				}
				// Pace each client so the simulator is busy, not flooded.
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}
	return l
}

func (l *load) stop() (served, refused int64) {
	l.cancel()
	l.wg.Wait()
	return l.served.Load(), l.refused.Load()
}
