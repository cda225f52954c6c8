// Package etcdtest runs real etcd servers for tests: Debian's etcd-server
// binary (etcd 3.4), started on free loopback ports with its own data
// directory under the test's temporary directory, and killed when the test
// ends. A test that needs etcd is skipped, saying why, when the binary is
// missing, unless REKEY_REQUIRE_ETCD is set (CI sets it): then it fails.
package etcdtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// RequireEnv names the variable that turns a missing etcd binary from a
// skip into a failure.
const RequireEnv = "REKEY_REQUIRE_ETCD"

// BinEnv names the variable that overrides the etcd binary's path.
const BinEnv = "REKEY_ETCD_BIN"

// startTimeout bounds how long a member may take to serve clients; a
// member starts in about 0.3 s on loopback.
const startTimeout = 30 * time.Second

// Binary returns the etcd binary's path, or skips t (fails it when
// RequireEnv is set) if there is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			bin = "/usr/bin/etcd"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("etcdtest: no etcd binary at %s (install Debian's etcd-server: apt-get install etcd-server, or set %s)", bin, BinEnv)
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("%s; %s is set, so this is a failure", msg, RequireEnv)
		}
		t.Skip(msg)
	}
	return bin
}

// Member is one etcd server process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string

	t       testing.TB
	bin     string
	dir     string
	cluster string // --initial-cluster
	logPath string

	tls *TLSFiles // nil: plain http

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is one or more members forming one etcd cluster.
type Cluster struct {
	Members []*Member
	tls     *TLSFiles
	root    bool // auth is on: clients log in as root
}

// Start starts a one-member cluster.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return StartCluster(t, 1)
}

// StartCluster starts an n-member cluster and returns once every member
// serves clients. Members are killed when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return startCluster(t, n, nil)
}

func startCluster(t testing.TB, n int, files *TLSFiles) *Cluster {
	t.Helper()
	bin := Binary(t)
	scheme := "http://"
	if files != nil {
		scheme = "https://"
	}
	root := t.TempDir()
	// Free ports are found by binding :0 and closing; another process can
	// take one in between, so a start that fails to bind is tried again
	// on other ports.
	var lastErr error
	for attempt := range 5 {
		c := &Cluster{tls: files}
		var peers []string
		for i := range n {
			m := &Member{Name: fmt.Sprintf("m%d", i), t: t, bin: bin, tls: files,
				dir: filepath.Join(root, fmt.Sprintf("try%d-m%d", attempt, i))}
			m.ClientURL = scheme + freeAddr(t)
			m.PeerURL = "http://" + freeAddr(t)
			m.logPath = m.dir + ".log"
			peers = append(peers, m.Name+"="+m.PeerURL)
			c.Members = append(c.Members, m)
		}
		for _, m := range c.Members {
			m.cluster = strings.Join(peers, ",")
		}
		lastErr = c.startAll()
		if lastErr == nil {
			t.Cleanup(c.kill)
			return c
		}
		c.kill()
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("etcdtest: start %d-member cluster: %v", n, lastErr)
	return nil
}

func (c *Cluster) startAll() error {
	errs := make(chan error, len(c.Members))
	for _, m := range c.Members {
		go func() { errs <- m.start() }()
	}
	var first error
	for range c.Members {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *Cluster) kill() {
	for _, m := range c.Members {
		m.kill()
	}
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Client returns a client of every member, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if c.root {
		cfg.Username, cfg.Password = "root", "root-pw"
	}
	if c.tls != nil {
		var err error
		if cfg.TLS, err = c.tls.ClientConfig(); err != nil {
			t.Fatalf("etcdtest: client: %v", err)
		}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the index in Members of the cluster's leader, as the
// first running member that answers sees it.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var lastErr error
	for _, m := range c.Members {
		st, err := cli.Status(ctx, m.ClientURL)
		if err != nil {
			lastErr = err
			continue
		}
		for i, o := range c.Members {
			ost, err := cli.Status(ctx, o.ClientURL)
			if err == nil && ost.Header.MemberId == st.Leader {
				return i
			}
		}
	}
	t.Fatalf("etcdtest: no leader found: %v", lastErr)
	return -1
}

// Stop kills the member (SIGKILL) and waits for it to exit. Its data
// directory stays, so Start brings it back as the same member.
func (m *Member) Stop() { m.kill() }

// Start starts a stopped member again and waits until it serves clients,
// which needs a quorum of the cluster's members running.
func (m *Member) Start() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatalf("etcdtest: restart %s: %v", m.Name, err)
	}
}

func (m *Member) start() error {
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		return fmt.Errorf("%s is running", m.Name)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	args := []string{
		"--name", m.Name,
		"--data-dir", m.dir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.cluster,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "etcdtest",
		"--logger", "zap", "--log-outputs", "stderr",
	}
	if m.tls != nil {
		args = append(args, "--cert-file", m.tls.serverCert, "--key-file", m.tls.serverKey,
			"--trusted-ca-file", m.tls.CA, "--client-cert-auth")
	}
	cmd := exec.Command(m.bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no ETCD_* from the environment
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		m.mu.Unlock()
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		m.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	m.mu.Unlock()

	ready := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if strings.Contains(line, "serving client traffic") || strings.Contains(line, "ready to serve client requests") {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(logf, stderr)
		logf.Close()
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		return fmt.Errorf("%s exited before serving clients:\n%s", m.Name, tail(m.logPath))
	case <-time.After(startTimeout):
		m.kill()
		return fmt.Errorf("%s did not serve clients within %s:\n%s", m.Name, startTimeout, tail(m.logPath))
	}
	// etcd 3.4 logs "serving client traffic" once the member has joined the
	// cluster (3.5 and later say "ready to serve client requests"); a Get
	// with a deadline proves it answers.
	cfg := clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: startTimeout, Logger: zap.NewNop()}
	if m.tls != nil {
		if cfg.TLS, err = m.tls.ClientConfig(); err != nil {
			return err
		}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := cli.Get(ctx, "etcdtest-health"); err != nil {
		return fmt.Errorf("%s: health check: %w", m.Name, err)
	}
	return nil
}

func (m *Member) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// EnableAuth turns on etcd's authentication: a root user (password
// "root-pw") and user with password, allowed to read and write under
// prefix only. Clients from Client log in as root from then on.
func (c *Cluster) EnableAuth(t testing.TB, user, password, prefix string) {
	t.Helper()
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, user); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, user); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("etcdtest: enable auth: %v", err)
		}
	}
	c.root = true
}
