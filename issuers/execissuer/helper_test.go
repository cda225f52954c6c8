package execissuer_test

// The test command: this test binary, run again as the issuer's command
// (os.Args[0] -test.run=^TestHelperProcess$) with REKEY_EXEC_HELPER=1. It
// speaks protocol 1, keeps its keys in a JSON file in REKEY_EXEC_STATE so
// that they survive from one invocation to the next, records each
// invocation (its argv and environment, as it and the kernel see them) in
// calls.jsonl there, and plays the faults the test wrote to the state.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type helperKey struct {
	ID         string     `json:"id"`
	Label      string     `json:"label"`
	Prefix     string     `json:"prefix"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// storedKey is a helperKey with its secret, as the state file holds it.
type storedKey struct {
	helperKey
	Value  string            `json:"value"`
	Fields map[string]string `json:"fields,omitempty"`
	Seq    int               `json:"seq"`
}

// fault is one scripted misbehaviour: for the next Times (default 1)
// invocations of Op ("" any op), do Mode instead of, or after, the real
// work.
type fault struct {
	Op    string `json:"op"`
	Mode  string `json:"mode"`
	Times int    `json:"times"`
}

type helperState struct {
	Keys   []storedKey   `json:"keys"`
	Seq    int           `json:"seq"`
	Offset time.Duration `json:"offset"` // added to the real clock (Fixture.Advance)
	Faults []fault       `json:"faults"`
}

// call is one invocation as the helper recorded it.
type call struct {
	Op       string   `json:"op"`
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Cmdline  string   `json:"cmdline"` // /proc/self/cmdline
	Environ  string   `json:"environ"` // /proc/self/environ
	HasValue bool     `json:"has_value"`
	Request  string   `json:"request"` // what arrived on stdin
}

func readState(t testing.TB, dir string) helperState {
	t.Helper()
	var st helperState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func writeState(t testing.TB, dir string, st helperState) {
	t.Helper()
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readCalls(t testing.TB, dir string) []call {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls.jsonl"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var calls []call
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var c call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	return calls
}

// TestHelperProcess is the test command; run as a test it does nothing.
func TestHelperProcess(t *testing.T) {
	switch {
	case os.Getenv("REKEY_EXEC_HELPER_SLEEP") == "1":
		time.Sleep(time.Hour) // a grandchild that only a group kill ends
		os.Exit(0)
	case os.Getenv("REKEY_EXEC_HELPER") != "1":
		return
	}
	os.Exit(helperMain())
}

func helperMain() int {
	dir := os.Getenv("REKEY_EXEC_STATE")
	in, _ := io.ReadAll(os.Stdin)
	var req struct {
		Protocol int               `json:"protocol"`
		Op       string            `json:"op"`
		Label    string            `json:"label"`
		ID       string            `json:"id"`
		Value    string            `json:"value"`
		Fields   map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(in, &req); err != nil || req.Protocol != 1 {
		fmt.Fprintln(os.Stderr, "helper: bad request")
		return 2
	}
	cmdline, _ := os.ReadFile("/proc/self/cmdline")
	environ, _ := os.ReadFile("/proc/self/environ")
	rec, _ := json.Marshal(call{Op: req.Op, Args: os.Args, Env: os.Environ(), Cmdline: string(cmdline), Environ: string(environ),
		HasValue: req.Value != "" || len(req.Fields) > 0, Request: string(in)})
	if f, err := os.OpenFile(filepath.Join(dir, "calls.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Write(append(rec, '\n'))
		f.Close()
	}

	var st helperState
	if b, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil && len(b) > 0 {
		if err := json.Unmarshal(b, &st); err != nil {
			fmt.Fprintln(os.Stderr, "helper: bad state")
			return 2
		}
	}
	save := func() {
		b, _ := json.Marshal(st)
		os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600)
	}
	mode := ""
	for i, f := range st.Faults {
		if f.Op == "" || f.Op == req.Op {
			mode = f.Mode
			if f.Times <= 1 {
				st.Faults = slices.Delete(st.Faults, i, i+1)
			} else {
				st.Faults[i].Times--
			}
			break
		}
	}
	save()
	now := time.Now().Add(st.Offset).UTC()
	out := func(v any) int {
		b, _ := json.Marshal(v)
		os.Stdout.Write(append(b, '\n'))
		return 0
	}
	fail := func(code, msg string) int {
		return out(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}

	// Faults that replace the work.
	switch {
	case strings.HasPrefix(mode, "error:"):
		return fail(strings.TrimPrefix(mode, "error:"), "injected "+mode)
	case mode == "crash":
		fmt.Fprintln(os.Stderr, "helper: crashed")
		return 1
	case mode == "crash_echo":
		// A careless script printing what it was given.
		fmt.Fprintf(os.Stderr, "helper: request %s token %s\n", in, os.Getenv("REKEY_TEST_TOKEN"))
		return 1
	case mode == "message_echo":
		return fail("unauthorized", "refused "+req.Value+" with "+os.Getenv("REKEY_TEST_TOKEN"))
	case mode == "long_stderr":
		fmt.Fprint(os.Stderr, strings.Repeat("e", 10000))
		return 1
	case mode == "garbage":
		fmt.Print("this is not json")
		return 0
	case mode == "big":
		fmt.Print(`{"keys":[` + strings.Repeat(" ", 2<<20))
		return 0
	case mode == "hang":
		hang(dir)
	case mode == "protocol2":
		return out(map[string]any{"protocol": 2, "keys": []any{}})
	case mode == "unknown_member":
		return out(map[string]any{"keys": []any{}, "kyes": []any{}})
	}

	find := func(id string) *storedKey {
		for i := range st.Keys {
			if st.Keys[i].ID == id {
				return &st.Keys[i]
			}
		}
		return nil
	}
	public := func(k storedKey) helperKey { return k.helperKey }
	sorted := func(keep func(storedKey) bool) []helperKey {
		var ks []storedKey
		for _, k := range st.Keys {
			if keep(k) {
				ks = append(ks, k)
			}
		}
		slices.SortFunc(ks, func(a, b storedKey) int { return b.Seq - a.Seq })
		list := []helperKey{}
		for _, k := range ks {
			list = append(list, public(k))
		}
		return list
	}
	matches := func(k storedKey) bool {
		if len(req.Fields) > 0 {
			return len(k.Fields) > 0 && fmt.Sprint(k.Fields) == fmt.Sprint(req.Fields)
		}
		return k.Value != "" && k.Value == req.Value
	}

	switch req.Op {
	case "create":
		if strings.ContainsAny(req.Label, " /") {
			return fail("invalid_label", "labels are letters, digits, . _ -")
		}
		st.Seq++
		k := storedKey{helperKey: helperKey{ID: "key_" + randHex(12), Label: req.Label, Status: "active", CreatedAt: now}, Seq: st.Seq}
		resp := map[string]any{}
		if os.Getenv("REKEY_EXEC_FIELDS") == "1" {
			k.Fields = map[string]string{"access_key_id": "AKIA" + strings.ToUpper(randHex(8)), "secret_access_key": randHex(20)}
			k.Prefix = k.Fields["access_key_id"]
			resp["fields"] = k.Fields
		} else {
			k.Value = "sk_test_" + randHex(16)
			k.Prefix = k.Value[:12]
			resp["value"] = k.Value
		}
		st.Keys = append(st.Keys, k)
		save()
		resp["key"] = public(k)
		switch mode {
		case "create_then_unknown":
			return fail("unknown_outcome", "the API did not answer")
		case "create_then_crash":
			fmt.Fprintln(os.Stderr, "helper: crashed after creating")
			return 3
		case "create_then_garbage":
			fmt.Print(`{"key":`)
			return 0
		case "create_then_hang":
			hang(dir)
		case "create_print_then_fail":
			// Answers, then fails, telling stderr the value.
			out(resp)
			fmt.Fprintln(os.Stderr, "helper: created "+k.Value+" but failed to finish")
			return 1
		case "create_wrong_label":
			k.Label = "other"
			resp["key"] = public(k)
		}
		return out(resp)
	case "get":
		if k := find(req.ID); k != nil {
			return out(map[string]any{"key": public(*k)})
		}
		return fail("not_found", "no key "+req.ID)
	case "list":
		return out(map[string]any{"keys": sorted(func(k storedKey) bool { return k.Status == "active" })})
	case "find":
		return out(map[string]any{"keys": sorted(func(k storedKey) bool { return k.Label == req.Label })})
	case "revoke":
		k := find(req.ID)
		if k == nil {
			return fail("not_found", "no key "+req.ID)
		}
		if k.Status != "revoked" {
			k.Status, k.RevokedAt = "revoked", &now
			save()
		}
		return out(map[string]any{"ok": true})
	case "verify":
		for i, k := range st.Keys {
			if k.Status == "active" && matches(k) {
				st.Keys[i].LastUsedAt = &now
				save()
				return out(map[string]any{})
			}
		}
		return fail("unauthorized", "key refused")
	case "identify":
		var found []storedKey
		for _, k := range st.Keys {
			if k.Status != "active" {
				continue
			}
			if (len(req.Fields) > 0 && req.Fields["access_key_id"] == k.Prefix) || (req.Value != "" && strings.HasPrefix(req.Value, k.Prefix)) {
				found = append(found, k)
			}
		}
		if len(found) != 1 {
			return fail("not_found", fmt.Sprintf("%d keys match", len(found)))
		}
		return out(map[string]any{"key": public(found[0])})
	case "last_used":
		k := find(req.ID)
		if k == nil {
			return fail("not_found", "no key "+req.ID)
		}
		return out(map[string]any{"last_used_at": k.LastUsedAt})
	}
	return fail("unsupported", "unknown op "+req.Op)
}

// hang starts a grandchild in the same process group, records both pids,
// and blocks until killed.
func hang(dir string) {
	gc := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	gc.Env = append(os.Environ(), "REKEY_EXEC_HELPER_SLEEP=1")
	if err := gc.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "helper: start grandchild:", err)
		os.Exit(2)
	}
	os.WriteFile(filepath.Join(dir, "hang.pids"), fmt.Appendf(nil, "%d %d", os.Getpid(), gc.Process.Pid), 0o600)
	fmt.Fprintln(os.Stderr, "helper: hanging")
	time.Sleep(time.Hour)
	os.Exit(0)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
