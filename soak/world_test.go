package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/vault"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/issuers/awsiam"
	"github.com/rekeyhq/rekey/issuers/awsiam/fakeiam"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
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
// issuer per credential, the health app and the leak bookkeeping.
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
	// issuer's revocation time.
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

// cred is one credential: its issuer, its sinks and its health flag.
type cred struct {
	w      *world
	name   string
	window time.Duration
	iss    keyIssuer // every check reads the issuer through it
	// sim is the ApexVerify simulator of an apexverify credential (nil for
	// the others); clients call it directly, at sim.URL.
	sim *e2etest.Sim
	// simProxy is the fault proxy in front of the issuer, whatever its kind.
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
	// mixed: of every six credentials the fourth is an OpenAI admin key
	// (type http, preset openai-admin) with the usual sinks of its place
	// (a file and AWS Secrets Manager), and the sixth an AWS IAM access key
	// pair (type aws-iam, two fields) in a dotenv file (two variables), AWS
	// Secrets Manager and Vault (two fields each; not GitHub, which writes
	// one secret at a time). The others, and every credential without
	// mixed, are ApexVerify keys.
	mixed bool
}

// issuerFor is the issuer kind of credential i. The OpenAI credentials
// are placed where no GitHub sink falls: fault rollback-github-dropped
// makes GitHub drop every credential's writes for the engine's whole
// retry budget (5 min), which would leave them a handful of rotations.
func (o worldOptions) issuerFor(i int) string {
	switch {
	case o.mixed && i%6 == 3:
		return issuerOpenAI
	case o.mixed && i%6 == 5:
		return issuerIAM
	}
	return issuerApex
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
		// rekey's own AWS credentials: Secrets Manager (fakesm) takes any
		// signed request, fakeiam only its admin pair's.
		"AWS_ACCESS_KEY_ID=" + fakeiam.AdminKeyID, "AWS_SECRET_ACCESS_KEY=" + fakeiam.AdminSecret, "AWS_EC2_METADATA_DISABLED=true",
	}

	all := []sinkKind{kindAWS, kindVault, kindGH}
	for i := range o.credentials {
		c := &cred{w: w, name: fmt.Sprintf("c%02d", i), window: time.Duration(1+i%2) * time.Second}
		c.healthy.Store(true)
		switch o.issuerFor(i) {
		case issuerOpenAI:
			oi := newOpenAIIssuer(t, w, c.name)
			c.iss, c.simProxy = oi, oi.proxy
		case issuerIAM:
			ii := newIAMIssuer(t, c.name)
			c.iss, c.simProxy = ii, ii.proxy
		default:
			c.sim = e2etest.StartSim(t, apexsim.Options{Credits: 1 << 30, MaxActiveKeys: 20})
			c.simProxy = newFaultProxy(t, c.sim.URL)
			c.iss = &apexIssuer{sim: c.sim, proxy: c.simProxy, token: w.secretFile("token-"+c.name, c.sim.ManagementToken()), w: w}
		}
		c.kinds = []sinkKind{kindFile}
		if c.pair() && o.kinds == nil {
			c.kinds = append(c.kinds, kindAWS, kindVault)
		} else if o.kinds != nil {
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

// remember adds a single value to the leak scan's list; rememberValue is
// the same for any credential's value.
func (w *world) remember(v string) { w.values.Add(secret.New(v)) }

func (c *cred) rememberValue(v string) {
	for _, s := range c.iss.secrets(v) {
		if s != "" {
			c.w.remember(s)
		}
	}
}

// pair reports whether the credential's values have two fields.
func (c *cred) pair() bool { return len(c.iss.fields()) > 1 }

// places are where each field of a value goes, in the order of the
// issuer's fields: dotenv variables (file) or JSON/KV fields (AWS, Vault).
// GitHub holds single values only, as ghSecret.
func (c *cred) places(kind sinkKind) []string {
	if c.pair() {
		return []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
	}
	if kind == kindFile {
		return []string{"API_KEY"}
	}
	return []string{"api_key"}
}

// split returns v's parts in the order of places.
func (c *cred) split(v string) []string {
	if c.pair() {
		id, sec := pair(v)
		return []string{id, sec}
	}
	return []string{v}
}

// handleOf names the key v is at the credential's issuer.
func (c *cred) handleOf(v string) string {
	h, _ := c.iss.handle(v)
	return h
}

// seed mints the credential's first key and puts it in every sink, as an
// operator would have before rekey.
func (c *cred) seed() {
	t := c.w.t
	v := c.iss.seed(t, "soak-"+c.name+"-initial")
	c.rememberValue(v)
	parts := c.split(v)
	file := "# soak app\nAPP=" + c.name + "\n"
	for i, p := range c.places(kindFile) {
		file += p + "=" + parts[i] + "\n"
	}
	if err := os.WriteFile(c.file, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kind := range c.kinds {
		switch kind {
		case kindAWS:
			doc := map[string]string{"db_password": "keep-me"}
			for i, p := range c.places(kind) {
				doc[p] = parts[i]
			}
			b, _ := json.Marshal(doc)
			c.w.sm.Seed(c.awsID(), string(b))
		case kindVault:
			data := map[string]any{"other": "keep-me"}
			for i, p := range c.places(kind) {
				data[p] = parts[i]
			}
			if _, err := c.w.vault.KVv2(kvMount).Put(context.Background(), c.vaultPath(), data); err != nil {
				t.Fatal(err)
			}
		case kindGH:
			c.w.gh.AddEnvironment(ghRepo, c.name)
			c.w.gh.SetSecret(c.ghScope(), ghSecret, v)
		}
	}
}

// join makes a value of the parts read from a sink's places; a missing
// part stays empty (a torn pair, if the other is there).
func (c *cred) join(parts []string) (string, error) {
	if strings.Join(parts, "") == "" {
		return "", fmt.Errorf("%s: no key in the sink", c.name)
	}
	return strings.Join(parts, "\n"), nil
}

func (c *cred) awsID() string     { return "soak/" + c.name }
func (c *cred) vaultPath() string { return "soak/" + c.name }
func (c *cred) ghScope() string   { return ghtest.EnvScope(ghRepo, c.name) }

// read returns the key one sink holds now, as a client of that sink reads
// it (for a pair: both fields, joined).
func (c *cred) read(kind sinkKind) (string, error) {
	places := c.places(kind)
	parts := make([]string, len(places))
	switch kind {
	case kindFile:
		b, err := readRegular(c.file)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(b), "\n") {
			for i, p := range places {
				if v, ok := strings.CutPrefix(line, p+"="); ok {
					parts[i] = strings.TrimSpace(v)
				}
			}
		}
		return c.join(parts)
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
		for i, p := range places {
			parts[i] = doc[p]
		}
		return c.join(parts)
	case kindVault:
		s, err := c.w.vault.KVv2(kvMount).Get(context.Background(), c.vaultPath())
		if err != nil {
			return "", fmt.Errorf("vault read %s: %w", c.vaultPath(), err)
		}
		if s.Data["other"] != "keep-me" {
			return "", fmt.Errorf("vault %s lost its other fields", c.vaultPath())
		}
		for i, p := range places {
			parts[i], _ = s.Data[p].(string)
		}
		return c.join(parts)
	case kindGH:
		v, ok := c.w.gh.Plaintext(c.ghScope(), ghSecret)
		if !ok {
			return "", fmt.Errorf("no GitHub secret in %s", c.ghScope())
		}
		return v, nil
	}
	return "", fmt.Errorf("unknown sink %s", kind)
}

// mapping is a sink's `key:` (one field) or `fields:` (a pair) in config.
func (c *cred) mapping(kind sinkKind) string {
	places := c.places(kind)
	if !c.pair() {
		return "key: " + places[0]
	}
	var m []string
	for i, f := range c.iss.fields() {
		m = append(m, f+": "+places[i])
	}
	return "fields: {" + strings.Join(m, ", ") + "}"
}

func (w *world) writeConfig(path string, creds []*cred, onChange []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nstate:\n  path: %s\n  encryption_key: file:%s\n", filepath.Join(w.dir, "state", "state.db"), filepath.Join(w.dir, "secrets", "state.key"))
	b.WriteString("daemon:\n  concurrency: 6\nissuers:\n")
	for _, c := range creds {
		fmt.Fprintf(&b, "  sim-%s:\n%s", c.name, c.iss.entry())
	}
	b.WriteString("credentials:\n")
	for _, c := range creds {
		fmt.Fprintf(&b, "  %s:\n    issuer: sim-%s\n    label: soak-%s-{{date}}\n    rotate_every: 1s\n    verify: {timeout: 5s}\n", c.name, c.name, c.name)
		fmt.Fprintf(&b, "    monitor:\n      window: %s\n      interval: 1s\n      failure_threshold: 2\n      checks:\n        - url: %s/health/%s\n", c.window, w.appURL, c.name)
		b.WriteString("    sinks:\n")
		for _, kind := range c.kinds {
			switch kind {
			case kindFile:
				fmt.Fprintf(&b, "      - {type: file, path: %s, format: dotenv, %s", c.file, c.mapping(kind))
				if len(onChange) > 0 {
					q, _ := json.Marshal(onChange)
					fmt.Fprintf(&b, ", on_change: %s", q)
				}
				b.WriteString("}\n")
			case kindAWS:
				fmt.Fprintf(&b, "      - {type: aws-secretsmanager, secret_id: %s, %s, region: us-east-1, endpoint: %q}\n", c.awsID(), c.mapping(kind), w.smURL)
			case kindVault:
				fmt.Fprintf(&b, "      - {type: vault-kv, address: %q, mount: %s, path: %s, %s, auth: {method: token, token: \"file:%s\"}}\n",
					w.vProxy.URL, kvMount, c.vaultPath(), c.mapping(kind), filepath.Join(w.dir, "secrets", "vault-token"))
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

// The issuers a credential can have. Every check of the soak (refusals,
// orphans, early revocations, sinks holding a revoked key, leaks, torn
// pairs) reads an issuer through keyIssuer, whatever its kind.
const (
	issuerApex   = "apexverify"   // one ApexVerify simulator (apexsim)
	issuerOpenAI = "openai-admin" // type: http, preset openai-admin, against presettest.OpenAI
	issuerIAM    = "aws-iam"      // type: aws-iam against fakeiam: a two-field value
)

// issued is one key as its issuer holds it.
type issued struct {
	id     string // the issuer's key ID, as the journal names it
	handle string // the public name the harness gives a value (keyIssuer.handle)
	label  string
	active bool
	// revoked is when the key stopped working (revoked, made inactive or
	// deleted); zero while it works.
	revoked time.Time
}

// keyIssuer is what the soak needs of one credential's issuer. A value is
// a string: a single-value key's value, or a two-field key's fields in
// the order of fields(), joined by a newline.
type keyIssuer interface {
	kind() string
	// fields names a value's fields; nil for a single value.
	fields() []string
	// seed makes a key labelled label out of band, as an operator would
	// before rekey, and returns its value.
	seed(t *testing.T, label string) string
	// keys returns every key the issuer made for this credential, revoked
	// and deleted ones included (the management key is not one of them).
	keys() []issued
	// handle names the key v is, without revealing it: "" if the issuer
	// never made it. torn: v is a pair whose fields are not one key's
	// (one missing, or the ID of one key with the secret of another).
	handle(v string) (h string, torn bool)
	// secrets are the parts of v that must never appear outside a sink.
	secrets(v string) []string
	// use calls the API with v the way its real clients would and returns
	// the HTTP status; a refused key is 401, whatever the API says.
	use(ctx context.Context, cl *http.Client, v string) (int, error)
	// revoke revokes key id at the issuer's management API, not through
	// rekey nor the fault proxy (world fault old-revoked-outside).
	revoke(ctx context.Context, id string) error
	// entry is the issuer's config block, below its name.
	entry() string
	// fault arms the issuer fault named (issuer-5xx, issuer-429,
	// issuer-timeout, issuer-lost-create, issuer-latency,
	// slow-activation, key-limit); ok is false where it does not apply.
	fault(name string, rng *mrand.Rand) (arm, disarm func(), ok bool)
}

// keyByHandle returns the issuer's key named h.
func keyByHandle(iss keyIssuer, h string) (issued, bool) {
	var found issued
	ok := false
	for _, k := range iss.keys() {
		if k.handle == h {
			found, ok = k, true // the last one: ApexVerify prefixes can repeat
		}
	}
	return found, ok
}

func nothing() {}

// apexIssuer is an ApexVerify simulator behind a fault proxy.
type apexIssuer struct {
	sim   *e2etest.Sim
	proxy *faultProxy
	token string // the management token's file
	w     *world
}

func (a *apexIssuer) kind() string     { return issuerApex }
func (a *apexIssuer) fields() []string { return nil }
func (a *apexIssuer) seed(t *testing.T, label string) string {
	_, v := a.sim.Mint(t, label, &a.w.values)
	return v.Reveal()
}
func (a *apexIssuer) keys() []issued {
	var out []issued
	for _, k := range a.sim.Keys() {
		out = append(out, issued{id: k.ID, handle: k.Prefix, label: k.Label, active: k.Status == "active", revoked: k.Revoked})
	}
	return out
}
func (a *apexIssuer) handle(v string) (string, bool) { return apexverify.Prefix(secret.New(v)), false }
func (a *apexIssuer) secrets(v string) []string      { return []string{v} }
func (a *apexIssuer) use(ctx context.Context, cl *http.Client, v string) (int, error) {
	return e2etest.UseKey(ctx, cl, a.sim.URL, secret.New(v))
}
func (a *apexIssuer) revoke(ctx context.Context, id string) error {
	return a.sim.Issuer.Revoke(ctx, id)
}
func (a *apexIssuer) entry() string {
	return fmt.Sprintf("    type: apexverify\n    base_url: %s\n    management_token: file:%s\n    timeout: 2s\n", a.proxy.URL, a.token)
}
func (a *apexIssuer) fault(name string, rng *mrand.Rand) (arm, disarm func(), ok bool) {
	sim := a.sim
	switch name {
	case "issuer-5xx":
		return func() { sim.SetErrorRate(0.25) }, func() { sim.SetErrorRate(0) }, true
	case "issuer-429":
		return func() { sim.SetRateLimitRate(0.25) }, func() { sim.SetRateLimitRate(0) }, true
	case "issuer-timeout":
		n := 1 + rng.IntN(2)
		return func() { a.proxy.add("", "/v1/api-keys", n, 0, 3*time.Second, "") }, a.proxy.clear, true
	case "issuer-lost-create":
		return func() { sim.FailAfterNext("POST", "/v1/api-keys", 1, 502) }, nothing, true
	case "issuer-latency":
		d := time.Duration(100+rng.IntN(300)) * time.Millisecond
		return func() { sim.SetLatency(d) }, func() { sim.SetLatency(0) }, true
	case "slow-activation":
		d := time.Duration(300+rng.IntN(2500)) * time.Millisecond
		if rng.IntN(4) == 0 {
			d = 8 * time.Second // longer than verify.timeout: roll back
		}
		return func() { sim.SetActivationDelay(d) }, func() { sim.SetActivationDelay(0) }, true
	case "key-limit":
		return func() { sim.SetMaxActiveKeys(1) }, func() { sim.SetMaxActiveKeys(20) }, true
	}
	return nil, nil, false
}

// openAIIssuer is presettest's OpenAI admin-keys server behind a fault
// proxy, rotated through `type: http` with `preset: openai-admin`. Its
// clock is the real one, so that deletion times compare with the
// journal's. The management admin key is made at start and is not
// rotated.
type openAIIssuer struct {
	srv   *presettest.OpenAI
	proxy *faultProxy
	token string // the management key's file
	mgmt  string // the management key's ID
}

const openAIKeys = "/v1/organization/admin_api_keys"

func newOpenAIIssuer(t *testing.T, w *world, name string) *openAIIssuer {
	srv := presettest.NewOpenAI()
	t.Cleanup(srv.Close)
	srv.SetClock(time.Now)
	o := &openAIIssuer{srv: srv, proxy: newFaultProxy(t, srv.URL), token: w.secretFile("token-"+name, srv.ManagementKey())}
	o.mgmt, _ = srv.KeyID(srv.ManagementKey())
	return o
}

func (o *openAIIssuer) kind() string                           { return issuerOpenAI }
func (o *openAIIssuer) fields() []string                       { return nil }
func (o *openAIIssuer) seed(_ *testing.T, label string) string { return o.srv.Seed(label) }
func (o *openAIIssuer) keys() []issued {
	var out []issued
	for _, k := range o.srv.Keys() {
		if k.ID != o.mgmt {
			out = append(out, issued{id: k.ID, handle: k.ID, label: k.Name, active: k.Deleted.IsZero(), revoked: k.Deleted})
		}
	}
	return out
}

// handle is the key's ID, which the server knows by its value; the
// redacted form the API lists (8 + 3 characters) repeats too often over
// a soak's hundreds of keys to name one.
func (o *openAIIssuer) handle(v string) (string, bool) {
	id, _ := o.srv.KeyID(v)
	return id, false
}
func (o *openAIIssuer) secrets(v string) []string { return []string{v} }

// use lists one admin key with v, as a cost-report job would call the
// admin API with it.
func (o *openAIIssuer) use(ctx context.Context, cl *http.Client, v string) (int, error) {
	return call(ctx, cl, http.MethodGet, o.srv.URL+openAIKeys+"?limit=1", "Bearer "+v)
}
func (o *openAIIssuer) revoke(ctx context.Context, id string) error {
	st, err := call(ctx, http.DefaultClient, http.MethodDelete, o.srv.URL+openAIKeys+"/"+id, "Bearer "+o.srv.ManagementKey())
	if err == nil && st != http.StatusOK {
		err = fmt.Errorf("openai: delete %s: status %d", id, st)
	}
	return err
}
func (o *openAIIssuer) entry() string {
	return fmt.Sprintf("    type: http\n    preset: openai-admin\n    base_url: %s\n    auth: {token: \"file:%s\"}\n    timeout: 2s\n", o.proxy.URL, o.token)
}
func (o *openAIIssuer) fault(name string, rng *mrand.Rand) (arm, disarm func(), ok bool) {
	n := 1 + rng.IntN(3)
	switch name {
	case "issuer-5xx":
		return func() {
			o.proxy.add("", openAIKeys, n, http.StatusInternalServerError, 0, `{"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}`)
		}, o.proxy.clear, true
	case "issuer-429":
		return func() {
			o.proxy.add("", openAIKeys, n, http.StatusTooManyRequests, 0, `{"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}`)
		}, o.proxy.clear, true
	case "issuer-timeout":
		return func() { o.proxy.add("", openAIKeys, 1+rng.IntN(2), 0, 3*time.Second, "") }, o.proxy.clear, true
	case "issuer-lost-create":
		f := presettest.CreateThen500
		if rng.IntN(2) == 0 {
			f = presettest.CreateThenHangUp
		}
		return func() { o.srv.InjectCreateFault(f) }, nothing, true
	case "issuer-latency":
		d := time.Duration(100+rng.IntN(300)) * time.Millisecond
		return func() { o.proxy.add("", openAIKeys, -1, 0, d, "") }, o.proxy.clear, true
	}
	return nil, nil, false // keys work at once, and OpenAI documents no key limit
}

// call makes one request with an Authorization header and returns its
// status.
func call(ctx context.Context, cl *http.Client, method, url, auth string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", auth)
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// iamIssuer is an IAM user's access keys at fakeiam, behind a fault proxy
// (IAM and STS share the endpoint). A value is the pair access key ID and
// secret; clients sign STS GetCallerIdentity with it, which checks the
// pair. The quota is 20 keys rather than IAM's 2: a rotation that ends
// `failed` leaves two keys for a person, and with 2 every later attempt
// of the credential would fail at create; fault key-limit sets the quota
// to the keys held.
type iamIssuer struct {
	srv   *fakeiam.Server
	proxy *faultProxy
	user  string
}

const iamQuota = 20

func newIAMIssuer(t *testing.T, name string) *iamIssuer {
	srv := fakeiam.New(t, fakeiam.WithQuota(iamQuota))
	i := &iamIssuer{srv: srv, proxy: newFaultProxy(t, srv.URL), user: "soak-" + name}
	srv.AddUser(i.user)
	return i
}

func (i *iamIssuer) kind() string { return issuerIAM }
func (i *iamIssuer) fields() []string {
	return []string{awsiam.FieldAccessKeyID, awsiam.FieldSecretAccessKey}
}
func (i *iamIssuer) seed(*testing.T, string) string {
	k := i.srv.CreateKey(i.user)
	return k.ID + "\n" + k.Secret
}
func (i *iamIssuer) keys() []issued {
	tags := i.srv.Tags(i.user)
	var out []issued
	for _, k := range i.srv.History(i.user) {
		out = append(out, issued{id: k.ID, handle: k.ID, label: tags["rekey:label:"+k.ID], active: k.Revoked().IsZero(), revoked: k.Revoked()})
	}
	return out
}

// pair splits a value into its access key ID and secret.
func pair(v string) (id, secret string) {
	id, secret, _ = strings.Cut(v, "\n")
	return id, secret
}

func (i *iamIssuer) handle(v string) (string, bool) {
	id, sec := pair(v)
	for _, k := range i.srv.History(i.user) {
		if k.ID == id {
			return id, sec != k.Secret
		}
	}
	return "", id != "" && sec == "" || id == "" && sec != ""
}
func (i *iamIssuer) secrets(v string) []string {
	_, sec := pair(v)
	return []string{sec}
}

// use calls STS GetCallerIdentity signed with the pair, as the AWS SDK of
// a deployer would on start; a refused pair (inactive, deleted, unknown or
// mis-signed) is 401.
func (i *iamIssuer) use(ctx context.Context, cl *http.Client, v string) (int, error) {
	id, sec := pair(v)
	c := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(i.srv.URL), RetryMaxAttempts: 1, HTTPClient: cl,
		Credentials: credentials.NewStaticCredentialsProvider(id, sec, "")})
	_, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	var ae smithy.APIError
	switch {
	case err == nil:
		return http.StatusOK, nil
	case errors.As(err, &ae) && (ae.ErrorCode() == "InvalidClientTokenId" || ae.ErrorCode() == "SignatureDoesNotMatch"):
		return http.StatusUnauthorized, nil
	}
	return 0, err
}

// revoke makes the key Inactive, as a person in the console would.
func (i *iamIssuer) revoke(ctx context.Context, id string) error {
	c := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(i.srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(fakeiam.AdminKeyID, fakeiam.AdminSecret, "")})
	_, err := c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(i.user), AccessKeyId: aws.String(id), Status: iamtypes.StatusTypeInactive})
	return err
}
func (i *iamIssuer) entry() string {
	return fmt.Sprintf("    type: aws-iam\n    user_name: %s\n    account_id: %q\n    region: us-east-1\n    endpoint: %q\n    delete_after: 0s\n    verify_timeout: 5s\n    timeout: 2s\n",
		i.user, fakeiam.Account, i.proxy.URL)
}
func (i *iamIssuer) fault(name string, rng *mrand.Rand) (arm, disarm func(), ok bool) {
	actions := []string{"CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey", "TagUser"} // fakeiam fails IAM actions only
	action, n := actions[rng.IntN(len(actions))], 1+rng.IntN(3)
	switch name {
	case "issuer-5xx":
		return func() { i.srv.Fail(action, http.StatusInternalServerError, "ServiceFailure", n) }, nothing, true
	case "issuer-429":
		return func() { i.srv.Fail(action, http.StatusBadRequest, "Throttling", n) }, nothing, true
	case "issuer-timeout":
		return func() { i.proxy.add("", "", 1+rng.IntN(2), 0, 3*time.Second, "") }, i.proxy.clear, true
	case "issuer-lost-create":
		return func() { i.srv.LoseNext("CreateAccessKey", 1) }, nothing, true
	case "issuer-latency":
		d := time.Duration(100+rng.IntN(300)) * time.Millisecond
		return func() { i.proxy.add("", "", -1, 0, d, "") }, i.proxy.clear, true
	case "slow-activation":
		d := time.Duration(300+rng.IntN(2500)) * time.Millisecond
		if rng.IntN(4) == 0 {
			d = 8 * time.Second // longer than verify_timeout: roll back
		}
		return func() { i.srv.SetPropagation(d) }, func() { i.srv.SetPropagation(0) }, true
	case "key-limit":
		return func() { i.srv.SetQuota(len(i.srv.Keys(i.user))) }, func() { i.srv.SetQuota(iamQuota) }, true
	}
	return nil, nil, false
}
