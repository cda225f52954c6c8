package apexsim_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
)

var (
	idRE    = regexp.MustCompile(`^key_[a-z2-7]{24}$`)
	valueRE = regexp.MustCompile(`^avk_live_[0-9A-Za-z]{40}$`)
	t0      = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
)

type client struct {
	t   *testing.T
	url string
	sim *apexsim.Sim
}

func start(t *testing.T, o apexsim.Options) (*client, *clockwork.FakeClock) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(t0)
	o.Clock = clock
	sim := apexsim.New(o)
	u, stop := sim.Start()
	t.Cleanup(stop)
	return &client{t: t, url: u, sim: sim}, clock
}

// call makes one request and decodes the JSON answer into a map.
func (c *client) call(method, path, bearer, body string) (int, map[string]any, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		c.t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, data)
	}
	return resp.StatusCode, m, resp.Header
}

func (c *client) mgmt(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	st, m, _ := c.call(method, path, c.sim.ManagementToken(), body)
	return st, m
}

func (c *client) create(label string) (id, value string) {
	c.t.Helper()
	st, m := c.mgmt("POST", "/v1/api-keys", `{"label":"`+label+`"}`)
	if st != http.StatusCreated {
		c.t.Fatalf("create %s: status %d %v", label, st, m["error"])
	}
	return m["id"].(string), m["key"].(string)
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func ids(m map[string]any) []string {
	var out []string
	for _, k := range m["data"].([]any) {
		o := k.(map[string]any)
		if _, has := o["key"]; has {
			panic("a listed key carries its value")
		}
		out = append(out, o["id"].(string))
	}
	return out
}

func TestCreateShapes(t *testing.T) {
	c, _ := start(t, apexsim.Options{})
	st, m := c.mgmt("POST", "/v1/api-keys", `{"label":"production-api-20261125-7f3a"}`)
	if st != http.StatusCreated {
		t.Fatalf("status %d", st)
	}
	id, value := m["id"].(string), m["key"].(string)
	if !idRE.MatchString(id) || !valueRE.MatchString(value) {
		t.Errorf("id %q / value of %d chars do not match the API's formats", id, len(value))
	}
	if m["prefix"] != value[:12] || m["status"] != "active" || m["created_at"] != "2026-11-25T03:00:00Z" || m["last_used_at"] != nil || m["revoked_at"] != nil {
		t.Errorf("key object = %v", m)
	}
	_, again := c.create("production-api-20261125-7f3a")
	if again == value {
		t.Errorf("two keys share a value")
	}
	st, got := c.mgmt("GET", "/v1/api-keys/"+id, "")
	if _, has := got["key"]; st != http.StatusOK || has {
		t.Errorf("GET key: status %d, carries the value: %v", st, has)
	}
	recs := c.sim.Keys()
	if len(recs) != 2 || recs[0].ID != id || recs[0].Prefix != value[:12] || !recs[0].Created.Equal(t0) {
		t.Errorf("Keys() = %+v", recs)
	}
}

func TestLabelsAndQueries(t *testing.T) {
	c, _ := start(t, apexsim.Options{})
	for _, body := range []string{`{"label":""}`, `{"label":"a b"}`, `{"label":"` + strings.Repeat("x", 65) + `"}`, `{}`, `{"label":5}`} {
		if st, m := c.mgmt("POST", "/v1/api-keys", body); st != http.StatusBadRequest || errCode(m) != "invalid_label" && errCode(m) != "invalid_request" {
			t.Errorf("create %s: %d %s, want 400 invalid_label", body, st, errCode(m))
		}
	}
	if st, m := c.mgmt("POST", "/v1/api-keys", `{"label":"a b"}`); errCode(m) != "invalid_label" {
		t.Errorf("create with a space: %d %s, want invalid_label", st, errCode(m))
	}
	a1, _ := c.create("a")
	b1, _ := c.create("b")
	a2, _ := c.create("a")
	if st, _ := c.mgmt("DELETE", "/v1/api-keys/"+a1, ""); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	for q, want := range map[string][]string{
		"":                                {a2, b1},
		"?status=all":                     {a2, b1, a1},
		"?status=revoked":                 {a1},
		"?label=a&status=all":             {a2, a1},
		"?label=a":                        {a2},
		"?label=" + url.QueryEscape("zz"): nil,
	} {
		st, m := c.mgmt("GET", "/v1/api-keys"+q, "")
		if got := ids(m); st != http.StatusOK || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("list%s = %d %v, want %v", q, st, got, want)
		}
	}
	for _, q := range []string{"?status=gone", "?label=", "?sort=asc", "?status=all&status=active"} {
		if st, m := c.mgmt("GET", "/v1/api-keys"+q, ""); st != http.StatusBadRequest || errCode(m) != "invalid_query" {
			t.Errorf("list%s = %d %s, want 400 invalid_query", q, st, errCode(m))
		}
	}
}

func TestAuthAndRevocation(t *testing.T) {
	c, clock := start(t, apexsim.Options{})
	id, value := c.create("k")
	if st, _, _ := c.call("GET", "/v1/api-keys", "wrong", ""); st != http.StatusUnauthorized {
		t.Errorf("management call with a wrong token: %d", st)
	}
	if st, _, _ := c.call("GET", "/v1/api-keys", value, ""); st != http.StatusUnauthorized {
		t.Errorf("management call with an API key: %d", st)
	}
	if st, _, _ := c.call("GET", "/v1/account", c.sim.ManagementToken(), ""); st != http.StatusUnauthorized {
		t.Errorf("account call with the management token: %d", st)
	}
	clock.Advance(time.Minute)
	st, m, _ := c.call("GET", "/v1/account", value, "")
	if st != http.StatusOK || m["account_id"] != "acct_sim" {
		t.Errorf("account: %d %v", st, m)
	}
	clock.Advance(time.Minute)
	st, m, _ = c.call("POST", "/v1/verify", value, `{"email":"a@b.example"}`)
	if st != http.StatusOK || m["email"] != "a@b.example" {
		t.Errorf("verify: %d %v", st, m)
	}
	_, m2, _ := c.call("POST", "/v1/verify", value, `{"email":"a@b.example"}`)
	if m2["result"] != m["result"] {
		t.Errorf("verify results differ for one address: %v, %v", m["result"], m2["result"])
	}
	if st, m, _ := c.call("POST", "/v1/verify", value, `{"email":"nope"}`); st != http.StatusBadRequest || errCode(m) != "invalid_email" {
		t.Errorf("verify without @: %d %s", st, errCode(m))
	}
	_, got := c.mgmt("GET", "/v1/api-keys/"+id, "")
	if got["last_used_at"] != "2026-11-25T03:02:00Z" {
		t.Errorf("last_used_at = %v, want the second use", got["last_used_at"])
	}
	rec := c.sim.Keys()[0]
	if !rec.FirstUsed.Equal(t0.Add(time.Minute)) || !rec.LastUsed.Equal(t0.Add(2*time.Minute)) || rec.Uses != 4 {
		t.Errorf("record = %+v, want first use at +1m, last at +2m, 4 uses", rec)
	}

	for range 2 { // revoking twice answers the same 200
		st, m := c.mgmt("DELETE", "/v1/api-keys/"+id, "")
		if st != http.StatusOK || m["status"] != "revoked" || m["revoked_at"] != "2026-11-25T03:02:00Z" {
			t.Errorf("revoke: %d %v", st, m)
		}
	}
	if st, _, _ := c.call("GET", "/v1/account", value, ""); st != http.StatusUnauthorized {
		t.Errorf("account with a revoked key: %d", st)
	}
	if st, _, _ := c.call("GET", "/v1/account", "avk_live_unknownunknownunknown", ""); st != http.StatusUnauthorized {
		t.Errorf("account with an unknown key: %d", st)
	}
	refs := c.sim.Refusals()
	want := []apexsim.Reason{apexsim.RefusedUnknown, apexsim.RefusedRevoked, apexsim.RefusedUnknown}
	if len(refs) != 3 {
		t.Fatalf("refusals = %+v, want 3", refs)
	}
	for i, r := range refs {
		if r.Reason != want[i] {
			t.Errorf("refusal %d = %s, want %s", i, r.Reason, want[i])
		}
	}
	if refs[0].Prefix != "" || refs[1].KeyID != id || refs[2].Prefix != "avk_live_unk" {
		t.Errorf("refusals = %+v: the management token must not be recorded, the revoked key and the unknown prefix must", refs)
	}
	for _, p := range []string{"/v1/api-keys/key_aaaaaaaaaaaaaaaaaaaaaaaa", "/v1/nothing"} {
		if st, m := c.mgmt("GET", p, ""); st != http.StatusNotFound || errCode(m) != "not_found" {
			t.Errorf("GET %s: %d %s", p, st, errCode(m))
		}
	}
	if st, _ := c.mgmt("DELETE", "/v1/api-keys/key_aaaaaaaaaaaaaaaaaaaaaaaa", ""); st != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d", st)
	}
}

func TestKnobs(t *testing.T) {
	t.Run("ActivationDelay", func(t *testing.T) {
		c, clock := start(t, apexsim.Options{ActivationDelay: 10 * time.Second})
		_, v := c.create("slow")
		if st, _, _ := c.call("GET", "/v1/account", v, ""); st != http.StatusUnauthorized {
			t.Errorf("before activation: %d", st)
		}
		clock.Advance(10 * time.Second)
		if st, _, _ := c.call("GET", "/v1/account", v, ""); st != http.StatusOK {
			t.Errorf("after activation: %d", st)
		}
		if r := c.sim.Refusals(); len(r) != 1 || r[0].Reason != apexsim.RefusedNotYetActive {
			t.Errorf("refusals = %+v", r)
		}
	})
	t.Run("MaxActiveKeys", func(t *testing.T) {
		c, _ := start(t, apexsim.Options{})
		c.sim.SetMaxActiveKeys(1)
		id, _ := c.create("one")
		if st, m := c.mgmt("POST", "/v1/api-keys", `{"label":"two"}`); st != http.StatusConflict || errCode(m) != "key_limit_reached" {
			t.Errorf("past the limit: %d %s", st, errCode(m))
		}
		c.mgmt("DELETE", "/v1/api-keys/"+id, "")
		c.create("two") // a revoked key frees its slot
		if n := c.sim.ActiveCount(); n != 1 {
			t.Errorf("ActiveCount = %d", n)
		}
	})
	t.Run("Rates", func(t *testing.T) {
		c, _ := start(t, apexsim.Options{Seed: 1, RetryAfter: 1500 * time.Millisecond})
		c.sim.SetRateLimitRate(1)
		st, m, h := c.call("GET", "/v1/api-keys", c.sim.ManagementToken(), "")
		if st != http.StatusTooManyRequests || h.Get("Retry-After") != "2" || errCode(m) == "" {
			t.Errorf("rate limited: %d Retry-After %q", st, h.Get("Retry-After"))
		}
		c.sim.SetRateLimitRate(0)
		c.sim.SetErrorRate(1)
		if st, _ := c.mgmt("POST", "/v1/api-keys", `{"label":"x"}`); st != http.StatusServiceUnavailable {
			t.Errorf("error rate 1: %d", st)
		}
		c.sim.SetErrorRate(0)
		if len(c.sim.Keys()) != 0 {
			t.Errorf("a failed call acted")
		}
	})
	t.Run("Latency", func(t *testing.T) {
		c, _ := start(t, apexsim.Options{})
		c.sim.SetLatency(60 * time.Millisecond)
		begin := time.Now()
		c.mgmt("GET", "/v1/api-keys", "")
		if d := time.Since(begin); d < 60*time.Millisecond {
			t.Errorf("answer came after %v, want >= 60ms", d)
		}
	})
	t.Run("Faults", func(t *testing.T) {
		c, _ := start(t, apexsim.Options{})
		c.sim.FailNext("POST", "/v1/api-keys", 1, http.StatusBadGateway)
		if st, _ := c.mgmt("POST", "/v1/api-keys", `{"label":"x"}`); st != http.StatusBadGateway || len(c.sim.Keys()) != 0 {
			t.Errorf("FailNext: %d, %d keys", st, len(c.sim.Keys()))
		}
		c.sim.FailAfterNext("POST", "/v1/api-keys", 1, http.StatusInternalServerError)
		if st, _ := c.mgmt("POST", "/v1/api-keys", `{"label":"x"}`); st != http.StatusInternalServerError || len(c.sim.Keys()) != 1 {
			t.Errorf("FailAfterNext: %d, %d keys", st, len(c.sim.Keys()))
		}
		c.sim.DropResponseNext(1)
		req, _ := http.NewRequest("POST", c.url+"/v1/api-keys", strings.NewReader(`{"label":"x"}`))
		req.Header.Set("Authorization", "Bearer "+c.sim.ManagementToken())
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("DropResponseNext answered %d, want a hang-up", resp.StatusCode)
		}
		if n := len(c.sim.Keys()); n != 2 {
			t.Errorf("the dropped create did not act: %d keys", n)
		}
		c.create("x") // faults are used up
	})
}

func TestServeOnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim := apexsim.New(apexsim.Options{ManagementToken: "avm_fixed"})
	u, stop := sim.Serve(ln)
	defer stop()
	if u != "http://"+ln.Addr().String() {
		t.Errorf("url = %q, want the listener's address", u)
	}
	c := &client{t: t, url: u, sim: sim}
	if st, _ := c.mgmt("GET", "/v1/api-keys", ""); st != http.StatusOK || sim.ManagementToken() != "avm_fixed" {
		t.Errorf("list over Serve: %d", st)
	}
}
