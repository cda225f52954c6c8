package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSimFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:0"},
		{"--listen", "192.0.2.1:8455"},
		{"--listen", "no-port"},
		{"--error-rate", "1.5"},
		{"--rate-limit-rate", "-0.1"},
		{"--latency", "-1s"},
		{"--max-active-keys", "0"},
		{"--mint-format", "json", "--mint-into", "x"},
		{"--mint-into", "same", "--token-file", "same"},
	} {
		var out, errOut bytes.Buffer
		code := execute(context.Background(), append([]string{"sim"}, args...), &out, &errOut)
		if code != exitUsage || out.Len() != 0 {
			t.Errorf("rekey sim %q: exit %d, stdout %q; want 2 and nothing served", args, code, out.String())
		}
	}
}

// TestSimPrintsTokenAndMintsRaw runs `rekey sim` in-process without
// --token-file: the token is on stdout and manages keys; --mint-format raw
// writes the bare key, which authenticates; cancelling the context (what
// SIGINT does in main) ends it with exit 0.
func TestSimPrintsTokenAndMintsRaw(t *testing.T) {
	raw := filepath.Join(t.TempDir(), "key")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		code := execute(ctx, []string{"sim", "--listen", "127.0.0.1:0", "--mint-into", raw, "--mint-format", "raw", "--max-active-keys", "1"}, pw, &errOut)
		pw.Close()
		exit <- code
	}()
	fields := map[string]string{}
	sc := bufio.NewScanner(pr)
	listening := false
	for !listening && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		fields[k] = v
		listening = strings.HasPrefix(sc.Text(), "listening on ")
	}
	url, token := fields["url"], fields["management token"]
	if !listening || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasPrefix(token, "avm_") {
		t.Fatalf("rekey sim printed %v; want its url and token; stderr: %s", fields, errOut.String())
	}
	go io.Copy(io.Discard, pr)

	st, err := os.Stat(raw)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("--mint-into file: %v; want mode 0600", err)
	}
	key, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, bearer string) int {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(`{"label":"x"}`))
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(http.MethodGet, "/v1/account", strings.TrimSpace(string(key))); got != http.StatusOK {
		t.Errorf("the minted raw key: GET /v1/account %d, want 200", got)
	}
	if got := call(http.MethodGet, "/v1/api-keys", token); got != http.StatusOK {
		t.Errorf("the printed token: GET /v1/api-keys %d, want 200", got)
	}
	// --max-active-keys 1 is in force: the minted key fills the account.
	if got := call(http.MethodPost, "/v1/api-keys", token); got != http.StatusConflict {
		t.Errorf("a second key with --max-active-keys 1: %d, want 409", got)
	}

	cancel()
	select {
	case code := <-exit:
		if code != exitOK {
			t.Fatalf("rekey sim after cancel: exit %d, want 0; stderr: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rekey sim did not stop after its context ended")
	}
	if strings.Contains(errOut.String(), token) {
		t.Error("the management token is in the log")
	}
}
