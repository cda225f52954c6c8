package execissuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/execissuer"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

// testToken is a secret the config passes to the command in its env.
const testToken = "tok_Zq8pL2mW9xV4"

type env struct {
	t     *testing.T
	dir   string
	iss   issuers.Issuer
	clock *clocktest.Auto
	logs  *syncBuffer
}

type envOptions struct {
	identify, lastUsed, fields bool
	misfit                     bool // the config declares the other form
	maxKeys                    int
	timeout                    time.Duration
	command                    []string
}

// newEnv returns an issuer whose command is this test binary as the
// helper, over a fresh state directory.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: clocktest.New(clockwork.NewFakeClock()), logs: &syncBuffer{}}
	// The race detector sleeps a second at every exit by default.
	vars := map[string]string{"REKEY_EXEC_HELPER": "1", "REKEY_EXEC_STATE": e.dir, "GORACE": "atexit_sleep_ms=0"}
	if o.fields {
		vars["REKEY_EXEC_FIELDS"] = "1"
	}
	var fields []string
	if o.fields != o.misfit {
		fields = []string{"secret_access_key", "access_key_id"}
	}
	cmd := o.command
	if cmd == nil {
		cmd = []string{os.Args[0], "-test.run=^TestHelperProcess$"}
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(e.logs), zap.DebugLevel))
	iss, err := execissuer.New(execissuer.Config{
		Command:       cmd,
		Identify:      o.identify,
		LastUsed:      o.lastUsed,
		Timeout:       o.timeout,
		MaxActiveKeys: o.maxKeys,
		Fields:        fields,
		Env:           map[string]secret.Value{"REKEY_TEST_TOKEN": secret.New(testToken)},
		Vars:          vars,
	}, log, execissuer.WithClock(e.clock), execissuer.WithoutEnv("REKEY_TEST_HIDDEN"))
	if err != nil {
		t.Fatal(err)
	}
	e.iss = iss
	return e
}

func (e *env) state() helperState { return readState(e.t, e.dir) }
func (e *env) calls() []call      { return readCalls(e.t, e.dir) }

// fault scripts the next misbehaviours of the command.
func (e *env) fault(fs ...fault) {
	st := e.state()
	st.Faults = append(st.Faults, fs...)
	writeState(e.t, e.dir, st)
}

func (e *env) active() int {
	n := 0
	for _, k := range e.state().Keys {
		if k.Status == "active" {
			n++
		}
	}
	return n
}

func (e *env) callsOf(op string) int {
	n := 0
	for _, c := range e.calls() {
		if c.Op == op {
			n++
		}
	}
	return n
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		e := newEnv(t, envOptions{identify: true, lastUsed: true})
		return issuertest.Fixture{
			Issuer:      e.iss,
			ActiveCount: e.active,
			Advance: func(d time.Duration) {
				st := e.state()
				st.Offset += d
				writeState(t, e.dir, st)
			},
			UnknownID: "key_000000000000000000000000",
			Logs:      e.logs.String,
		}
	})
}

// TestAbilitiesFollowConfig: the optional interfaces are there exactly
// when declared.
func TestAbilitiesFollowConfig(t *testing.T) {
	for n := range 8 {
		o := envOptions{identify: n&1 != 0, lastUsed: n&2 != 0}
		if n&4 != 0 {
			o.maxKeys = 7
		}
		e := newEnv(t, o)
		_, id := e.iss.(issuers.Identifier)
		_, ur := e.iss.(issuers.UsageReporter)
		kl, lim := e.iss.(issuers.KeyLimiter)
		if id != o.identify || ur != o.lastUsed || lim != (o.maxKeys > 0) || (lim && kl.MaxActiveKeys() != 7) {
			t.Errorf("config identify=%v last_used=%v max_active_keys=%d: Identifier %v, UsageReporter %v, KeyLimiter %v",
				o.identify, o.lastUsed, o.maxKeys, id, ur, lim)
		}
		if a, ok := e.iss.(issuers.Account); !ok || a.Account() != "exec "+os.Args[0] {
			t.Errorf("Account() of %T = %v, want exec %s", e.iss, a, os.Args[0])
		}
	}
}

func TestMultiFieldCredential(t *testing.T) {
	e := newEnv(t, envOptions{fields: true, identify: true})
	c := ctx(t)
	k, v, err := e.iss.Create(c, "aws-prod")
	if err != nil {
		t.Fatal(err)
	}
	if !v.IsFields() || v.Field("access_key_id").Reveal() != k.Prefix || v.Field("secret_access_key").IsZero() {
		t.Fatalf("Create returned fields %v with prefix %q; want access_key_id (the prefix) and secret_access_key", v.FieldNames(), k.Prefix)
	}
	if err := e.iss.Verify(c, v); err != nil {
		t.Fatalf("Verify(fields): %v", err)
	}
	other := secret.NewFields(map[string]string{"access_key_id": v.Field("access_key_id").Reveal(), "secret_access_key": "wrong"})
	if err := e.iss.Verify(c, other); !errors.Is(err, issuers.ErrUnauthorized) {
		t.Errorf("Verify(wrong secret field) = %v, want ErrUnauthorized", err)
	}
	got, err := e.iss.(issuers.Identifier).Identify(c, v)
	if err != nil || got.ID != k.ID {
		t.Errorf("Identify(fields) = %s, %v; want %s", got.ID, err, k.ID)
	}
	for _, cl := range e.calls() {
		if cl.Op == "verify" && (!strings.Contains(cl.Request, `"fields":{`) || strings.Contains(cl.Request, `"value"`)) {
			t.Errorf("verify of a multi-field value did not send fields on stdin: %s", redactAll(cl.Request, v))
		}
	}
}

// TestFormMustMatchConfig: a create answer of fields where the config
// declares a single value, or the reverse, is refused for good and its key
// revoked: rekey would write it where it does not fit.
func TestFormMustMatchConfig(t *testing.T) {
	for _, fields := range []bool{false, true} {
		e := newEnv(t, envOptions{fields: fields, misfit: true})
		_, v, err := e.iss.Create(ctx(t), "prod-1")
		if err == nil || !errors.As(err, new(*backoff.PermanentError)) || errors.Is(err, issuers.ErrMaybeCreated) || !strings.Contains(err.Error(), "but the config declares") || !v.IsZero() {
			t.Errorf("fields=%v, config the other form: Create = %v, want a permanent error naming the mismatch", fields, err)
		}
		if n := e.callsOf("create"); n != 1 || e.active() != 0 || len(e.state().Keys) != 1 {
			t.Errorf("fields=%v: %d creates, %d active of %d keys; want 1 create and its key revoked", fields, n, e.active(), len(e.state().Keys))
		}
		if f, want := e.iss.(interface{ Fields() []string }).Fields(), !fields; (len(f) > 0) != want {
			t.Errorf("Fields() = %v with fields declared %v", f, want)
		}
	}
}

// TestValueNeverInArgvOrEnv: the command gets key values on stdin only;
// its argv and environment, as it and the kernel see them, hold none, nor
// the variables rekey hides; the config's own variables are there.
func TestValueNeverInArgvOrEnv(t *testing.T) {
	t.Setenv("REKEY_TEST_HIDDEN", "hidden-Qw3rTy")
	for _, fields := range []bool{false, true} {
		e := newEnv(t, envOptions{identify: true, fields: fields})
		c := ctx(t)
		_, v, err := e.iss.Create(c, "argv-check")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.iss.Verify(c, v); err != nil {
			t.Fatal(err)
		}
		if _, err := e.iss.(issuers.Identifier).Identify(c, v); err != nil {
			t.Fatal(err)
		}
		parts := []string{v.Reveal()}
		for _, name := range v.FieldNames() {
			parts = append(parts, v.Field(name).Reveal())
		}
		calls := e.calls()
		if len(calls) != 3 {
			t.Fatalf("%d calls recorded, want 3", len(calls))
		}
		for _, cl := range calls {
			seen := strings.Join(cl.Args, "\x00") + "\n" + strings.Join(cl.Env, "\x00") + "\n" + cl.Cmdline + "\n" + cl.Environ
			for _, p := range parts {
				if strings.Contains(seen, p) {
					t.Errorf("op %s: a key value is in the command's argv or environment", cl.Op)
				}
			}
			if strings.Contains(seen, "hidden-Qw3rTy") {
				t.Errorf("op %s: the command inherited a hidden variable", cl.Op)
			}
			if !strings.Contains(cl.Environ, "REKEY_TEST_TOKEN="+testToken) {
				t.Errorf("op %s: the config's env variable did not reach the command", cl.Op)
			}
			if wantValue := cl.Op == "verify" || cl.Op == "identify"; cl.HasValue != wantValue {
				t.Errorf("op %s: value on stdin %v, want %v", cl.Op, cl.HasValue, wantValue)
			}
			if !strings.Contains(cl.Request, `"protocol":1`) {
				t.Errorf("op %s: request lacks the protocol version: %s", cl.Op, redactAll(cl.Request, v))
			}
		}
	}
}

func TestErrorCodesMapToSentinels(t *testing.T) {
	for _, tc := range []struct {
		code string
		want error
	}{
		{"unauthorized", issuers.ErrUnauthorized},
		{"not_found", issuers.ErrNotFound},
		{"key_limit", issuers.ErrKeyLimit},
		{"invalid_label", issuers.ErrInvalidLabel},
		{"no_such_code", nil},
	} {
		t.Run(tc.code, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.fault(fault{Op: "get", Mode: "error:" + tc.code})
			_, err := e.iss.Get(ctx(t), "key_1")
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Get with %s = %v, want %v", tc.code, err, tc.want)
			}
			if !errors.As(err, new(*backoff.PermanentError)) {
				t.Errorf("Get with %s: %v is not permanent", tc.code, err)
			}
			if n := e.callsOf("get"); n != 1 {
				t.Errorf("Get with %s ran the command %d times, want 1 (no retry)", tc.code, n)
			}
			if !strings.Contains(err.Error(), "injected error:"+tc.code) {
				t.Errorf("error %q does not quote the command's message", err)
			}
		})
	}
}

// TestTemporaryIsRetried: temporary and unknown_outcome on an idempotent
// op, and a crash without an error response, are retried with backoff on
// the clock.
func TestTemporaryIsRetried(t *testing.T) {
	for _, mode := range []string{"error:temporary", "error:unknown_outcome", "crash"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			c := ctx(t)
			k, _, err := e.iss.Create(c, "retry")
			if err != nil {
				t.Fatal(err)
			}
			e.fault(fault{Op: "get", Mode: mode, Times: 2})
			got, err := e.iss.Get(c, k.ID)
			if err != nil || got.ID != k.ID {
				t.Fatalf("Get after 2 failures = %v, %v", got.ID, err)
			}
			if n := e.callsOf("get"); n != 3 {
				t.Errorf("command ran %d times for get, want 3", n)
			}
			if w := e.clock.Waits(); len(w) != 2 || w[0] <= 0 || w[1] <= w[0]/2 {
				t.Errorf("backoff waits %v, want two growing waits", w)
			}
		})
	}
	t.Run("gives up", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.fault(fault{Op: "list", Mode: "crash", Times: 100})
		_, err := e.iss.List(ctx(t))
		if err == nil || errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), "exited with status 1 without an error response") ||
			!strings.Contains(err.Error(), `stderr: "helper: crashed"`) || !strings.Contains(err.Error(), "gave up after 6 attempts") {
			t.Errorf("List with a command that always crashes = %v", err)
		}
	})
}

func TestVerifyRefusalIsNotRetried(t *testing.T) {
	e := newEnv(t, envOptions{})
	err := e.iss.Verify(ctx(t), secret.New("sk_test_unknown"))
	if !errors.Is(err, issuers.ErrUnauthorized) || errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("Verify(unknown) = %v, want ErrUnauthorized, not permanent", err)
	}
	if n := e.callsOf("verify"); n != 1 {
		t.Errorf("verify ran %d times, want 1", n)
	}
}

// TestCreateOutcomeUnknownCleansUp: whenever a create's outcome is
// unknown, the keys carrying its label are revoked before the next try,
// which then succeeds: one active key, the one returned.
func TestCreateOutcomeUnknownCleansUp(t *testing.T) {
	for _, mode := range []string{"create_then_unknown", "create_then_crash", "create_then_garbage", "create_wrong_label", "create_print_then_fail"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.fault(fault{Op: "create", Mode: mode})
			k, v, err := e.iss.Create(ctx(t), "prod-1")
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			st := e.state()
			if len(st.Keys) != 2 || st.Keys[0].Status != "revoked" || st.Keys[1].Status != "active" || st.Keys[1].ID != k.ID || st.Keys[1].Value != v.Reveal() {
				t.Fatalf("keys after a create of unknown outcome: %+v; want the first revoked, the returned one active", st.Keys)
			}
			if n := e.callsOf("find"); n != 1 {
				t.Errorf("%d finds, want 1 clean-up", n)
			}
			issuertest.AssertNoLeak(t, e.logs.String(), secret.New(st.Keys[0].Value), v)
		})
	}
	// The value of an answer that came with a failure is redacted from
	// the failure's stderr.
	e := newEnv(t, envOptions{})
	e.fault(fault{Op: "create", Mode: "create_print_then_fail"}, fault{Op: "find", Mode: "error:not_found"})
	_, _, err := e.iss.Create(ctx(t), "prod-1")
	st := e.state()
	if err == nil || len(st.Keys) != 1 || !strings.Contains(err.Error(), "helper: created "+secret.Redacted) {
		t.Fatalf("Create whose clean-up fails = %v; want the failure quoting the redacted stderr", err)
	}
	issuertest.AssertNoLeak(t, fmt.Sprintf("%v %+v", err, err), secret.New(st.Keys[0].Value))
}

func TestCreateMaybeCreated(t *testing.T) {
	t.Run("every attempt unknown", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.fault(fault{Op: "create", Mode: "error:unknown_outcome", Times: 100})
		_, v, err := e.iss.Create(ctx(t), "prod-1")
		if !errors.Is(err, issuers.ErrMaybeCreated) || !v.IsZero() {
			t.Fatalf("Create = %v, want ErrMaybeCreated and no value", err)
		}
		if n, f := e.callsOf("create"), e.callsOf("find"); n != 4 || f != 4 {
			t.Errorf("%d creates and %d clean-ups, want 4 each", n, f)
		}
	})
	t.Run("clean-up fails", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.fault(fault{Op: "create", Mode: "create_then_unknown"}, fault{Op: "find", Mode: "error:unauthorized"})
		_, _, err := e.iss.Create(ctx(t), "prod-1")
		if !errors.Is(err, issuers.ErrMaybeCreated) || !strings.Contains(err.Error(), "cleanup of keys labelled prod-1") {
			t.Fatalf("Create = %v, want ErrMaybeCreated naming the clean-up", err)
		}
		if n := e.callsOf("create"); n != 1 {
			t.Errorf("%d creates after a failed clean-up, want 1", n)
		}
		if e.active() != 1 {
			t.Errorf("%d active keys, want the 1 the clean-up could not revoke", e.active())
		}
	})
	t.Run("definite failures", func(t *testing.T) {
		for mode, want := range map[string]error{"error:key_limit": issuers.ErrKeyLimit, "error:invalid_label": issuers.ErrInvalidLabel, "error:unauthorized": issuers.ErrUnauthorized} {
			e := newEnv(t, envOptions{})
			e.fault(fault{Op: "create", Mode: mode})
			_, _, err := e.iss.Create(ctx(t), "prod-1")
			if !errors.Is(err, want) || errors.Is(err, issuers.ErrMaybeCreated) || !errors.As(err, new(*backoff.PermanentError)) {
				t.Errorf("%s: Create = %v, want permanent %v and not ErrMaybeCreated", mode, err, want)
			}
			if n, f := e.callsOf("create"), e.callsOf("find"); n != 1 || f != 0 {
				t.Errorf("%s: %d creates, %d finds; want 1 and none", mode, n, f)
			}
		}
	})
	t.Run("temporary is retried without clean-up", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.fault(fault{Op: "create", Mode: "error:temporary"})
		if _, _, err := e.iss.Create(ctx(t), "prod-1"); err != nil {
			t.Fatal(err)
		}
		if n, f := e.callsOf("create"), e.callsOf("find"); n != 2 || f != 0 || e.active() != 1 {
			t.Errorf("%d creates, %d finds, %d active; want 2, 0, 1", n, f, e.active())
		}
	})
}

// TestTimeoutKillsProcessGroup: a command that does not answer within the
// timeout is killed with every process of its group; an idempotent call is
// then retried, and a create is cleaned up first.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	for _, op := range []string{"list", "create"} {
		t.Run(op, func(t *testing.T) {
			e := newEnv(t, envOptions{timeout: 3 * time.Second}) // a race-built helper starts slowly
			c := ctx(t)
			var err error
			if op == "list" {
				e.fault(fault{Op: "list", Mode: "hang"})
				_, err = e.iss.List(c)
			} else {
				e.fault(fault{Op: "create", Mode: "create_then_hang"})
				_, _, err = e.iss.Create(c, "prod-1")
			}
			if err != nil {
				t.Fatalf("%s after a hung attempt: %v", op, err)
			}
			b, err := os.ReadFile(filepath.Join(e.dir, "hang.pids"))
			if err != nil {
				t.Fatalf("the command never hung: %v", err)
			}
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				waitGone(t, pid)
			}
			if op == "create" && (len(e.state().Keys) != 2 || e.active() != 1) {
				t.Errorf("after a hung create: %d keys, %d active; want the hung one revoked and 1 active", len(e.state().Keys), e.active())
			}
		})
	}
	t.Run("message", func(t *testing.T) {
		e := newEnv(t, envOptions{timeout: 300 * time.Millisecond})
		e.fault(fault{Op: "get", Mode: "hang", Times: 100})
		_, err := e.iss.Get(ctx(t), "key_1")
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "gave no answer within 300ms and was killed") {
			t.Errorf("Get from a command that always hangs = %v", err)
		}
	})
}

// waitGone waits until pid has exited (is gone or a zombie); the kill has
// been sent by then, so this waits for the kernel, not for a time window.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || syscall.Kill(pid, 0) != nil {
			return
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still runs after the timeout killed its group", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStderrIsRedacted: what a failing command prints is quoted, with every
// value rekey knows redacted and the length capped.
func TestStderrIsRedacted(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := ctx(t)
	_, v, err := e.iss.Create(c, "redact")
	if err != nil {
		t.Fatal(err)
	}
	e.fault(fault{Op: "verify", Mode: "crash_echo", Times: 100})
	err = e.iss.Verify(c, v)
	if err == nil {
		t.Fatal("Verify with a crashing command succeeded")
	}
	msg := fmt.Sprintf("%v %+v %#v", err, err, err)
	issuertest.AssertNoLeak(t, msg, v, secret.New(testToken))
	if !strings.Contains(msg, "helper: request") || !strings.Contains(msg, secret.Redacted) {
		t.Errorf("the error does not quote the redacted stderr: %s", msg)
	}

	st := e.state()
	st.Faults = []fault{{Op: "verify", Mode: "message_echo"}}
	writeState(t, e.dir, st)
	err = e.iss.Verify(c, v)
	if !errors.Is(err, issuers.ErrUnauthorized) {
		t.Fatalf("Verify = %v, want ErrUnauthorized", err)
	}
	issuertest.AssertNoLeak(t, err.Error(), v, secret.New(testToken))
	if !strings.Contains(err.Error(), "refused "+secret.Redacted+" with "+secret.Redacted) {
		t.Errorf("the command's message is not quoted redacted: %v", err)
	}

	e.fault(fault{Op: "list", Mode: "long_stderr", Times: 100})
	_, err = e.iss.List(c)
	if err == nil || len(err.Error()) > 3000 || !strings.Contains(err.Error(), "…(truncated)") {
		t.Errorf("a 10 kB stderr is quoted at %d bytes, want it cut to about 2 kB", len(fmt.Sprint(err)))
	}
	issuertest.AssertNoLeak(t, e.logs.String(), v, secret.New(testToken))
}

// TestBadOutputIsRefused: output that is no protocol-1 response is a
// permanent error that does not quote it.
func TestBadOutputIsRefused(t *testing.T) {
	for mode, want := range map[string]string{
		"garbage":        "is not a protocol 1 response: invalid JSON at byte",
		"big":            "wrote more than 1048576 bytes to stdout and was killed",
		"protocol2":      "it speaks protocol 2",
		"unknown_member": `unknown member "kyes"`,
	} {
		e := newEnv(t, envOptions{})
		e.fault(fault{Op: "list", Mode: mode})
		_, err := e.iss.List(ctx(t))
		if err == nil || !errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: List = %v, want a permanent error with %q", mode, err, want)
		}
		if strings.Contains(fmt.Sprint(err), "this is not json") {
			t.Errorf("%s: the error quotes stdout: %v", mode, err)
		}
	}
}

func TestCommandNotFound(t *testing.T) {
	e := newEnv(t, envOptions{command: []string{filepath.Join(t.TempDir(), "no-such-issuer")}})
	_, err := e.iss.List(ctx(t))
	if err == nil || !errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), "no-such-issuer") {
		t.Errorf("List with a missing command = %v, want a permanent error naming it", err)
	}
	if len(e.clock.Waits()) != 0 {
		t.Errorf("a missing command was retried")
	}
}

func TestMalformedKeyIDsAreRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, id := range []string{"", "a b", "x\n", strings.Repeat("k", 300)} {
		if _, err := e.iss.Get(ctx(t), id); !errors.Is(err, issuers.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if n := len(e.calls()); n != 0 {
		t.Errorf("malformed IDs ran the command %d times", n)
	}
}

func redactAll(s string, v secret.Value) string {
	s = strings.ReplaceAll(s, v.Reveal(), secret.Redacted)
	for _, name := range v.FieldNames() {
		s = strings.ReplaceAll(s, v.Field(name).Reveal(), secret.Redacted)
	}
	return s
}

// syncBuffer collects the issuer's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSampleIssuerContract runs the contract against the sample issuer
// script that examples/exec.yaml uses.
func TestSampleIssuerContract(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	script, err := filepath.Abs("../../examples/exec-issuer/sample-issuer.py")
	if err != nil {
		t.Fatal(err)
	}
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		keys := filepath.Join(t.TempDir(), "keys.json")
		iss, err := execissuer.New(execissuer.Config{Command: []string{python, script, "--state", keys}, Identify: true, LastUsed: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return issuertest.Fixture{
			Issuer: iss,
			ActiveCount: func() int {
				var st struct{ Keys []struct{ Status string } }
				b, _ := os.ReadFile(keys)
				if err := json.Unmarshal(b, &st); err != nil {
					t.Fatalf("the sample's state: %v", err)
				}
				n := 0
				for _, k := range st.Keys {
					if k.Status == "active" {
						n++
					}
				}
				return n
			},
			UnknownID: "key_000000000000000000000000",
		}
	})
}

// TestCancelKillsProcessGroup: when the caller's context ends, the
// command's whole process group is killed at once, before the timeout.
func TestCancelKillsProcessGroup(t *testing.T) {
	e := newEnv(t, envOptions{timeout: time.Hour})
	e.fault(fault{Op: "get", Mode: "hang"})
	c, cancel := context.WithCancel(ctx(t))
	pids := filepath.Join(e.dir, "hang.pids")
	go func() {
		// Cancel once the command has started hanging.
		for c.Err() == nil {
			if b, err := os.ReadFile(pids); err == nil && len(strings.Fields(string(b))) == 2 {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err := e.iss.Get(c, "key_1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Get cancelled while the command hangs = %v, want context.Canceled", err)
	}
	b, _ := os.ReadFile(pids)
	if len(strings.Fields(string(b))) != 2 {
		t.Fatalf("the command and its child did not record their pids: %q", b)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		waitGone(t, pid)
	}
	if n := e.callsOf("get"); n != 1 {
		t.Errorf("get ran %d times after the cancel, want 1", n)
	}
}
