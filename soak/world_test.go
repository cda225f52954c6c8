package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/vault"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/sinks/awssm/fakesm"
	"github.com/rekeyhq/rekey/sinks/ghactions/ghtest"
)

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

const (
	kvMount  = "kv"
	ghRepo   = "acme/soak"
	ghSecret = "APEXVERIFY_API_KEY"
)

// startVault starts a real Vault core with a KV v2 engine at kvMount and
// returns its address and root client. The same start as
// sinks/vaultkv/vaulttest, kept minimal here.
func startVault(t testing.TB) (string, *api.Client) {
	t.Helper()
	core, _, root := vault.TestCoreUnsealedWithConfig(t, &vault.CoreConfig{Logger: hclog.NewNullLogger()})
	ln, addr := vaulthttp.TestServer(t, core)
	t.Cleanup(func() { ln.Close() })
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(root)
	if err := c.Sys().Mount(kvMount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount KV v2: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.KVv2(kvMount).Put(context.Background(), "soak/ready", map[string]any{"ok": "yes"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("KV v2 mount never became writable: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, c
}

// world is everything the soak runs against: the sink servers, one
// simulator per credential, the health app and the leak bookkeeping.
type world struct {
	t         *testing.T
	dir       string
	sm        *fakesm.Server
	smURL     string
	gh        *ghtest.Server
	ghProxy   *faultProxy
	vaultAddr string
	vault     *api.Client
	vProxy    *faultProxy
	appURL    string
	creds     []*cred
	env       []string

	values e2etest.Values // every key value the harness saw

	mu sync.Mutex
	// outside holds the keys the harness itself revoked behind rekey's
	// back (fault old-revoked-outside), by credential and key ID, with the
	// simulator's revocation time.
	outside map[string]outsideRevoke
	procs   atomic.Int64
}

type sinkKind string

const (
	kindFile  sinkKind = "file"
	kindAWS   sinkKind = "aws"
	kindVault sinkKind = "vault"
	kindGH    sinkKind = "github"
)

// cred is one credential: its simulator, its sinks and its health flag.
type cred struct {
	w        *world
	name     string
	window   time.Duration
	sim      *e2etest.Sim // clients call it directly, at sim.URL
	simProxy *faultProxy
	kinds    []sinkKind
	fileDir  string
	file     string
	config   string // a config holding only this credential
	healthy  atomic.Bool
}

type worldOptions struct {
	credentials int
	// kinds, if set, gives every credential these extra sinks.
	kinds []sinkKind
	// onChange, if set, is the file sinks' on_change argv.
	onChange []string
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), outside: map[string]outsideRevoke{}}
	for _, d := range []string{"state", "logs", "secrets", "creds"} {
		if err := os.MkdirAll(filepath.Join(w.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w.sm = fakesm.New(t)
	w.smURL = w.sm.URL
	w.gh = ghtest.New(t)
	w.gh.AddRepo(ghRepo)
	w.ghProxy = newFaultProxy(t, w.gh.URL)
	w.vaultAddr, w.vault = startVault(t)
	w.vProxy = newFaultProxy(t, w.vaultAddr)
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/health/")
		for _, c := range w.creds {
			if c.name == name && c.healthy.Load() {
				fmt.Fprintln(rw, "ok")
				return
			}
		}
		http.Error(rw, "unhealthy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(app.Close)
	w.appURL = app.URL

	e2etest.WriteStateKey(t, filepath.Join(w.dir, "secrets", "state.key"))
	w.secretFile("vault-token", w.vault.Token())
	w.secretFile("gh-token", w.gh.Token())
	w.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir,
		"AWS_ACCESS_KEY_ID=AKIDSOAK", "AWS_SECRET_ACCESS_KEY=soak-secret", "AWS_EC2_METADATA_DISABLED=true",
	}

	all := []sinkKind{kindAWS, kindVault, kindGH}
	for i := range o.credentials {
		c := &cred{w: w, name: fmt.Sprintf("c%02d", i), window: time.Duration(1+i%2) * time.Second}
		c.healthy.Store(true)
		c.sim = e2etest.StartSim(t, apexsim.Options{Credits: 1 << 30, MaxActiveKeys: 20})
		c.simProxy = newFaultProxy(t, c.sim.URL)
		w.secretFile("token-"+c.name, c.sim.ManagementToken())
		c.kinds = []sinkKind{kindFile}
		if o.kinds != nil {
			c.kinds = append(c.kinds, o.kinds...)
		} else {
			c.kinds = append(c.kinds, all[i%3])
			if i%2 == 0 {
				c.kinds = append(c.kinds, all[(i+1)%3])
			}
		}
		c.fileDir = filepath.Join(w.dir, "creds", c.name)
		c.file = filepath.Join(c.fileDir, "app.env")
		if err := os.MkdirAll(c.fileDir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.seed()
		w.creds = append(w.creds, c)
	}
	for _, c := range w.creds {
		c.config = filepath.Join(w.dir, "rekey-"+c.name+".yaml")
		w.writeConfig(c.config, []*cred{c}, o.onChange)
	}
	w.writeConfig(filepath.Join(w.dir, "rekey.yaml"), w.creds, o.onChange)
	return w
}

func (w *world) secretFile(name, value string) string {
	p := filepath.Join(w.dir, "secrets", name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// readRegular reads path like os.ReadFile, but refuses anything that is
// not a regular file without blocking: a FIFO put in a sink's place (fault
// sink-fifo) must not wedge a client or the leak scan.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	return io.ReadAll(f)
}

func (w *world) remember(v string) { w.values.Add(secret.New(v)) }

// seed mints the credential's first key and puts it in every sink, as an
// operator would have before rekey.
func (c *cred) seed() {
	t := c.w.t
	_, v := c.sim.Mint(t, "soak-"+c.name+"-initial", &c.w.values)
	if err := os.WriteFile(c.file, []byte("# soak app\nAPP="+c.name+"\nAPI_KEY="+v.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kind := range c.kinds {
		switch kind {
		case kindAWS:
			b, _ := json.Marshal(map[string]string{"db_password": "keep-me", "api_key": v.Reveal()})
			c.w.sm.Seed(c.awsID(), string(b))
		case kindVault:
			if _, err := c.w.vault.KVv2(kvMount).Put(context.Background(), c.vaultPath(), map[string]any{"api_key": v.Reveal(), "other": "keep-me"}); err != nil {
				t.Fatal(err)
			}
		case kindGH:
			c.w.gh.AddEnvironment(ghRepo, c.name)
			c.w.gh.SetSecret(c.ghScope(), ghSecret, v.Reveal())
		}
	}
}

func (c *cred) awsID() string     { return "soak/" + c.name }
func (c *cred) vaultPath() string { return "soak/" + c.name }
func (c *cred) ghScope() string   { return ghtest.EnvScope(ghRepo, c.name) }

// read returns the key one sink holds now, as a client of that sink reads it.
func (c *cred) read(kind sinkKind) (string, error) {
	switch kind {
	case kindFile:
		b, err := readRegular(c.file)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "API_KEY="); ok {
				return strings.TrimSpace(v), nil
			}
		}
		return "", fmt.Errorf("no API_KEY in %s", c.file)
	case kindAWS:
		cur, ok := c.w.sm.Current(c.awsID())
		if !ok {
			return "", fmt.Errorf("no AWSCURRENT for %s", c.awsID())
		}
		var doc map[string]string
		if err := json.Unmarshal([]byte(cur), &doc); err != nil {
			return "", fmt.Errorf("secret %s is not JSON", c.awsID())
		}
		if doc["db_password"] != "keep-me" {
			return "", fmt.Errorf("secret %s lost its other fields", c.awsID())
		}
		return doc["api_key"], nil
	case kindVault:
		s, err := c.w.vault.KVv2(kvMount).Get(context.Background(), c.vaultPath())
		if err != nil {
			return "", fmt.Errorf("vault read %s: %w", c.vaultPath(), err)
		}
		if s.Data["other"] != "keep-me" {
			return "", fmt.Errorf("vault %s lost its other fields", c.vaultPath())
		}
		v, _ := s.Data["api_key"].(string)
		return v, nil
	case kindGH:
		v, ok := c.w.gh.Plaintext(c.ghScope(), ghSecret)
		if !ok {
			return "", fmt.Errorf("no GitHub secret in %s", c.ghScope())
		}
		return v, nil
	}
	return "", fmt.Errorf("unknown sink %s", kind)
}

func (w *world) writeConfig(path string, creds []*cred, onChange []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nstate:\n  path: %s\n  encryption_key: file:%s\n", filepath.Join(w.dir, "state", "state.db"), filepath.Join(w.dir, "secrets", "state.key"))
	b.WriteString("daemon:\n  concurrency: 6\nissuers:\n")
	for _, c := range creds {
		fmt.Fprintf(&b, "  sim-%s:\n    type: apexverify\n    base_url: %s\n    management_token: file:%s\n    timeout: 2s\n",
			c.name, c.simProxy.URL, filepath.Join(w.dir, "secrets", "token-"+c.name))
	}
	b.WriteString("credentials:\n")
	for _, c := range creds {
		fmt.Fprintf(&b, "  %s:\n    issuer: sim-%s\n    label: soak-%s-{{date}}\n    rotate_every: 1s\n    verify: {timeout: 5s}\n", c.name, c.name, c.name)
		fmt.Fprintf(&b, "    monitor:\n      window: %s\n      interval: 1s\n      failure_threshold: 2\n      checks:\n        - url: %s/health/%s\n", c.window, w.appURL, c.name)
		b.WriteString("    sinks:\n")
		for _, kind := range c.kinds {
			switch kind {
			case kindFile:
				fmt.Fprintf(&b, "      - {type: file, path: %s, format: dotenv, key: API_KEY", c.file)
				if len(onChange) > 0 {
					q, _ := json.Marshal(onChange)
					fmt.Fprintf(&b, ", on_change: %s", q)
				}
				b.WriteString("}\n")
			case kindAWS:
				fmt.Fprintf(&b, "      - {type: aws-secretsmanager, secret_id: %s, key: api_key, region: us-east-1, endpoint: %q}\n", c.awsID(), w.smURL)
			case kindVault:
				fmt.Fprintf(&b, "      - {type: vault-kv, address: %q, mount: %s, path: %s, key: api_key, auth: {method: token, token: \"file:%s\"}}\n",
					w.vProxy.URL, kvMount, c.vaultPath(), filepath.Join(w.dir, "secrets", "vault-token"))
			case kindGH:
				fmt.Fprintf(&b, "      - {type: github-actions, repository: %s, environment: %s, name: %s, token: \"file:%s\", base_url: %q}\n",
					ghRepo, c.name, ghSecret, filepath.Join(w.dir, "secrets", "gh-token"), w.ghProxy.URL+"/")
			}
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// proc is one run of the real binary; every byte it prints is kept in a
// log file under dir/logs for the leak scan.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer       // stdout
	errOut e2etest.SyncBuffer // stderr: the logs
	line   []byte
	on     func(line string)
	log    string
	// errLine is stderr's unfinished line, under mu.
	errLine []byte
}

// procLogs is a proc's stderr. Off a terminal rekey reports each event
// once, in its JSON log: each journaled phase change ("phase X") is passed
// to on as the progress line a terminal would show, "HH:MM:SS credential
// rotation_id phase".
type procLogs struct{ p *proc }

func (l procLogs) Write(b []byte) (int, error) {
	p := l.p
	p.errOut.Write(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errLine = append(p.errLine, b...)
	for {
		i := bytes.IndexByte(p.errLine, '\n')
		if i < 0 {
			break
		}
		var entry struct {
			Msg        string `json:"msg"`
			Credential string `json:"credential"`
			RotationID string `json:"rotation_id"`
			Phase      string `json:"phase"`
		}
		line := p.errLine[:i]
		p.errLine = p.errLine[i+1:]
		if p.on == nil || json.Unmarshal(line, &entry) != nil || entry.Phase == "" || entry.Msg != "phase "+entry.Phase {
			continue
		}
		p.on(fmt.Sprintf("00:00:00 %s %s %s", entry.Credential, entry.RotationID, entry.Phase))
	}
	return len(b), nil
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Write(b)
	p.line = append(p.line, b...)
	for {
		i := bytes.IndexByte(p.line, '\n')
		if i < 0 {
			break
		}
		l := string(p.line[:i])
		p.line = p.line[i+1:]
		if p.on != nil {
			p.on(l)
		}
	}
	return len(b), nil
}

// start runs the binary with config and args; on sees every output line.
func (w *world) start(config string, on func(string), args ...string) *proc {
	n := w.procs.Add(1)
	p := &proc{on: on, log: filepath.Join(w.dir, "logs", fmt.Sprintf("%06d.log", n))}
	p.cmd = e2etest.Command(w.t, config, args...)
	p.cmd.Env = w.env
	p.cmd.Stdout, p.cmd.Stderr = p, procLogs{p}
	if err := p.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// wait waits for the process and returns its exit code (see
// e2etest.ExitCode) and its stdout; stdout and stderr both go to the
// process's log file.
func (p *proc) wait() (int, string) {
	err := p.cmd.Wait()
	p.mu.Lock()
	out := p.out.String()
	p.mu.Unlock()
	header := strings.Join(p.cmd.Args[1:], " ") + "\n"
	_ = os.WriteFile(p.log, []byte(header+out+p.errOut.String()), 0o600)
	return e2etest.ExitCode(err), out
}

// cli runs the binary to the end and returns its exit code and output.
func (w *world) cli(config string, args ...string) (int, string) {
	return w.start(config, nil, args...).wait()
}

func (c *cred) history() []e2etest.HistoryEntry {
	h, err := c.historyE()
	if err != nil {
		c.w.t.Fatal(err)
	}
	return h
}

// historyE is history for goroutines other than the test's: it returns
// its error.
func (c *cred) historyE() ([]e2etest.HistoryEntry, error) {
	code, out := c.w.cli(c.config, "history", c.name, "--limit", "0", "-o", "json")
	if code != 0 {
		return nil, fmt.Errorf("history %s: exit %d", c.name, code)
	}
	h, err := e2etest.ParseHistory([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", c.name, err)
	}
	return h, nil
}
