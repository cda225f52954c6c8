package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/sinks/file"
)

// chromium is the browser the test drives: $REKEY_CHROMIUM, else Debian's.
func chromium() string {
	if p := os.Getenv("REKEY_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

func haveChromium() bool {
	_, err := exec.LookPath(chromium())
	return err == nil
}

func TestMain(m *testing.M) {
	if !haveChromium() && os.Getenv("REKEY_REQUIRE_CHROMIUM") != "1" {
		os.Exit(m.Run()) // every test skips: no binary to build
	}
	os.Exit(e2etest.Main(m))
}

func requireChromium(t *testing.T) {
	t.Helper()
	if haveChromium() {
		return
	}
	msg := fmt.Sprintf("no Chromium at %s (apt-get install -y --no-install-recommends chromium, or set REKEY_CHROMIUM)", chromium())
	if os.Getenv("REKEY_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg + "; REKEY_REQUIRE_CHROMIUM=1 makes that a failure")
	}
	t.Skip(msg)
}

// world is three credentials on one simulator, each with a file sink and
// a health check: billing (rotate_every 2m), crm and search (90d, search
// with a 10-minute monitoring window). crm may start a rotation only on
// 1 January (an explicit rotate ignores that): the daemon does not retry
// it while the test runs.
type world struct {
	t      *testing.T
	dir    string
	config string
	sim    *e2etest.Sim
	seen   *e2etest.Values
	sinks  map[string]*file.Sink
	// probes receives each health check of search: probes are its
	// monitoring window running.
	probes chan struct{}
}

var names = []string{"billing", "crm", "search"}

func newWorld(t *testing.T) *world {
	w := &world{t: t, dir: t.TempDir(), sim: e2etest.StartSim(t, apexsim.Options{}), seen: &e2etest.Values{},
		sinks: map[string]*file.Sink{}, probes: make(chan struct{}, 1000)}
	e2etest.WriteStateKey(t, filepath.Join(w.dir, "state.key"))
	e2etest.WriteFile(t, filepath.Join(w.dir, "token"), w.sim.ManagementToken())
	original := map[string]string{}
	for _, n := range names {
		_, v := w.sim.Mint(t, n+"-initial", w.seen)
		path := filepath.Join(w.dir, n+".env")
		original[n] = "APP=" + n + "\nAPI_KEY=" + v.Reveal()
		e2etest.WriteFile(t, path, original[n])
		s, err := file.New(file.Config{Path: path, Format: "dotenv", Key: "API_KEY"}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		w.sinks[n] = s
	}
	var mu sync.Mutex
	health := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n := strings.TrimPrefix(r.URL.Path, "/")
		if _, ok := w.sinks[n]; !ok {
			http.NotFound(rw, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.inSink(n)
		switch n {
		case "crm":
			// Someone puts the old key back behind rekey's back: twice,
			// and the rotation fails, leaving its new key for a person.
			if err := os.WriteFile(filepath.Join(w.dir, "crm.env"), []byte(original[n]+"\n"), 0o600); err != nil {
				t.Error(err)
			}
		case "search":
			select {
			case w.probes <- struct{}{}:
			default:
			}
		}
		fmt.Fprintln(rw, "ok")
	}))
	t.Cleanup(health.Close)

	var creds strings.Builder
	for _, n := range names {
		every, window, cron := "90d", "1s", ""
		switch n {
		case "billing":
			every = "2m"
		case "crm":
			cron = "    window: \"0 3 1 1 *\"\n"
		case "search":
			window = "10m"
		}
		fmt.Fprintf(&creds, `  %[1]s:
    issuer: sim
    label: %[1]s-{{date}}
    rotate_every: %[2]s
%[6]s    verify: {timeout: 30s}
    sinks:
      - {type: file, path: %[4]s/%[1]s.env, key: API_KEY}
    monitor:
      window: %[3]s
      interval: 1s
      failure_threshold: 2
      checks:
        - url: %[5]s/%[1]s
`, n, every, window, w.dir, health.URL, cron)
	}
	w.config = filepath.Join(w.dir, "rekey.yaml")
	e2etest.WriteFile(t, w.config, fmt.Sprintf(`version: 1
state:
  path: %[1]s/state.db
  encryption_key: file:%[1]s/state.key
issuers:
  sim:
    type: apexverify
    base_url: %[2]s
    management_token: file:%[1]s/token
daemon:
  listen: 127.0.0.1:0
credentials:
%[3]s`, w.dir, w.sim.URL, creds.String()))
	return w
}

// inSink records the key now in n's sink as a value the page must not
// show.
func (w *world) inSink(n string) {
	v, err := w.sinks[n].Get(context.Background())
	if err != nil {
		w.t.Errorf("read %s: %v", n, err)
		return
	}
	w.seen.Add(v)
}

// latest is n's newest rotation, from `rekey history`.
func (w *world) latest(n string) e2etest.HistoryEntry {
	w.t.Helper()
	code, out, errOut := e2etest.Run(w.t, e2etest.Command(w.t, w.config, "history", n, "--limit", "1", "-o", "json"))
	h, err := e2etest.ParseHistory([]byte(out))
	if code != 0 || err != nil || len(h) != 1 {
		w.t.Fatalf("history %s: exit %d %v %q\n%s", n, code, err, out, errOut)
	}
	return h[0]
}

// daemon starts `rekey daemon` and returns its address; it is stopped with
// SIGTERM when the test ends, and must exit 0.
func (w *world) daemon() (addr string, logs func() string) {
	t := w.t
	cmd := e2etest.Command(t, w.config, "daemon")
	var buf e2etest.SyncBuffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = &buf, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			buf.Write(append(line, '\n'))
			var l struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "daemon started" {
				select {
				case started <- l.Listen:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if code := e2etest.ExitCode(err); code != 0 {
				t.Errorf("daemon exit %d after SIGTERM", code)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("daemon did not stop on SIGTERM")
		}
		if leaks := w.seen.Leaks(buf.String()); len(leaks) > 0 {
			t.Errorf("the daemon's output holds %d key values", len(leaks))
		}
	})
	select {
	case addr = <-started:
	case err := <-exited:
		t.Fatalf("daemon exited %d:\n%s", e2etest.ExitCode(err), buf.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not start:\n%s", buf.String())
	}
	return addr, buf.String
}

// dom is what the test reads of the rendered page.
type dom struct {
	Rows []struct {
		Name       string  `json:"name"`
		KeyID      string  `json:"keyID"`
		Percent    string  `json:"percent"`
		State      string  `json:"state"`
		BarPx      float64 `json:"barPx"`
		FillPx     float64 `json:"fillPx"`
		Outcome    string  `json:"outcome"`
		Due        string  `json:"due"`
		Phase      string  `json:"phase"`
		RotationID string  `json:"rotationID"`
		Countdown  string  `json:"countdown"`
		WindowFill float64 `json:"windowFill"`
		LeftKeys   []struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		} `json:"leftKeys"`
		Height float64 `json:"height"`
	} `json:"rows"`
	Timeline []struct {
		Credential string `json:"credential"`
		Rotation   string `json:"rotation"`
		Class      string `json:"cls"`
	} `json:"timeline"`
	Summary string `json:"summary"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
}

const readDOM = `(() => {
  const txt = (el, s) => { const n = el.querySelector(s); return n ? n.innerText.replace(/\s+/g, " ").trim() : ""; };
  const px = (el) => el ? el.getBoundingClientRect().width : -1;
  return {
    rows: [...document.querySelectorAll("tbody.cred")].map(tb => {
      const bar = tb.querySelector(".age-bar"), cd = tb.querySelector(".countdown");
      return {
        name: tb.dataset.credential, keyID: txt(tb, ".key .key-id"),
        percent: bar.dataset.percent, state: bar.dataset.state, barPx: px(bar), fillPx: px(bar.querySelector(".fill")),
        outcome: txt(tb, ".outcome .badge"), due: txt(tb, ".due"), phase: txt(tb, ".flight .badge"), rotationID: txt(tb, ".flight .rid"),
        countdown: cd ? txt(cd, ".left") : "", windowFill: cd ? px(cd.querySelector(".fill")) / px(cd.querySelector(".bar")) : -1,
        leftKeys: [...tb.querySelectorAll(".left-key")].map(li => ({id: li.dataset.keyId, text: li.textContent.replace(/\s+/g, " ").trim()})),
        height: tb.getBoundingClientRect().height,
      };
    }),
    timeline: [...document.querySelectorAll("#timeline .entry")].map(e => ({credential: e.dataset.credential, rotation: e.dataset.rotation, cls: e.className})),
    summary: txt(document, "#summary"),
    text: document.body.innerText,
    html: document.documentElement.outerHTML,
  };
})()`

var countdownText = regexp.MustCompile(`^(\d+)m (\d\d)s$`)

// The status page in a real browser: one credential done, one failed with
// its new key left for a person, one in its monitoring window; the DOM
// shows each, the age bar is drawn at the key's share of rotate_every, the
// countdown runs, no key value is anywhere on the page, and it renders
// without JavaScript too.
func TestStatusPageInChromium(t *testing.T) {
	requireChromium(t)
	w := newWorld(t)
	if code, out, errOut := e2etest.Run(t, e2etest.Command(t, w.config, "rotate", "billing")); code != 0 {
		t.Fatalf("rotate billing: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := e2etest.Run(t, e2etest.Command(t, w.config, "rotate", "crm")); code != 1 {
		t.Fatalf("rotate crm: exit %d, want 1 (failed)\n%s%s", code, out, errOut)
	}
	billing, crm := w.latest("billing"), w.latest("crm")
	if billing.Phase != "done" || crm.Phase != "failed" || crm.NewKeyID == "" {
		t.Fatalf("billing %s, crm %s (new key %q)", billing.Phase, crm.Phase, crm.NewKeyID)
	}
	w.inSink("billing")

	addr, logs := w.daemon()
	// search was never rotated: the daemon starts at once. Two probes mean
	// it is in its window and the first probe's progress has reached the
	// page.
	for range 2 {
		select {
		case <-w.probes:
		case <-time.After(60 * time.Second):
			t.Fatalf("search never monitored; daemon logs:\n%s", logs())
		}
	}
	search := w.latest("search")
	if search.Phase != "monitoring" {
		t.Fatalf("search in %s, want monitoring", search.Phase)
	}
	w.inSink("search")

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium()), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 900))...)
	defer cancel()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(browser); err != nil { // start the browser, without a deadline
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()

	url := "http://" + addr + "/"
	before := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#cred-search .countdown .left")); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	d, err := chromedp.Run(ctx, chromedp.Evaluate[dom](readDOM))
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	if len(d.Rows) != 3 {
		t.Fatalf("%d credential rows, want 3", len(d.Rows))
	}
	rows := map[string]int{}
	for i, r := range d.Rows {
		rows[r.Name] = i
		if r.Height <= 0 {
			t.Errorf("row %s not rendered", r.Name)
		}
	}
	b, c, s := d.Rows[rows["billing"]], d.Rows[rows["crm"]], d.Rows[rows["search"]]

	// billing: done, its key's age a share of rotate_every 2m, the bar
	// drawn that wide.
	if b.KeyID != billing.NewKeyID || b.Outcome != "done" || b.Phase != "" || !strings.Contains(b.Due, "rotate_every 2m from the last rotation") {
		t.Errorf("billing row %+v, want key %s done and nothing in flight", b, billing.NewKeyID)
	}
	done := billing.At("done")
	lo, hi := 100*before.Sub(done).Seconds()/120, 100*after.Sub(done).Seconds()/120
	var pct float64
	if _, err := fmt.Sscan(b.Percent, &pct); err != nil || pct < lo-0.05 || pct > hi+0.05 || pct <= 0 {
		t.Errorf("billing age %s%%, want between %.1f and %.1f", b.Percent, lo, hi)
	}
	if want := pct / 100 * b.BarPx; b.BarPx < 100 || math.Abs(b.FillPx-want) > 2.5 {
		t.Errorf("billing bar drawn %.1fpx of %.1fpx, want %.1fpx (%s%%)", b.FillPx, b.BarPx, want, b.Percent)
	}

	// crm: failed, its new key left for a person; no key rotated by rekey,
	// so no age.
	window := time.Date(after.UTC().Year(), 1, 1, 3, 0, 0, 0, time.UTC)
	if !window.After(after) {
		window = window.AddDate(1, 0, 0)
	}
	if c.Outcome != "failed" || c.KeyID != "" || c.State != "unknown" || c.FillPx != 0 || c.Phase != "" ||
		!strings.HasPrefix(c.Due, window.Format("2006-01-02 15:04:05Z")) || !strings.HasSuffix(c.Due, "backing off after 1 failed attempts; then waits for the window 0 3 1 1 *") {
		t.Errorf("crm row %+v, want due at the next window %v", c, window)
	}
	if len(c.LeftKeys) != 1 || c.LeftKeys[0].ID != crm.NewKeyID || !strings.Contains(c.LeftKeys[0].Text, "by rotation "+crm.ID) ||
		!strings.Contains(c.LeftKeys[0].Text, "changed behind rekey's back") {
		t.Errorf("crm left keys %+v, want %s", c.LeftKeys, crm.NewKeyID)
	}

	// search: monitoring, with a countdown from at most 10 minutes and the
	// window's bar drawn.
	if s.Phase != "monitoring" || s.RotationID != search.ID || s.Outcome != "" || s.Due != "rotating now next due once it ends" {
		t.Errorf("search row %+v, want rotation %s monitoring", s, search.ID)
	}
	m := countdownText.FindStringSubmatch(s.Countdown)
	if m == nil || m[1] > "9" || len(m[1]) > 1 {
		t.Errorf("search countdown %q, want under 10m", s.Countdown)
	}
	if s.WindowFill <= 0 || s.WindowFill > 0.5 {
		t.Errorf("monitoring bar %.3f of its track, want a little of the window gone", s.WindowFill)
	}

	if want := "3 credentials 1 rotating 1 last attempt failed 0 overdue 1 key left for a person"; d.Summary != want {
		t.Errorf("summary %q, want %q", d.Summary, want)
	}
	var tl []string
	for _, e := range d.Timeline {
		tl = append(tl, e.Credential+"/"+e.Rotation+"/"+strings.TrimPrefix(e.Class, "entry "))
	}
	if got, want := strings.Join(tl, " "), "search/"+search.ID+"/inflight crm/"+crm.ID+"/failure billing/"+billing.ID+"/success"; got != want {
		t.Errorf("timeline %s, want %s", got, want)
	}

	// No key value: not in the text, not in the markup.
	for _, n := range names {
		w.inSink(n)
	}
	if w.seen.Len() < 6 {
		t.Fatalf("only %d key values seen: the leak check would prove little", w.seen.Len())
	}
	if leaks := append(w.seen.Leaks(d.Text), w.seen.Leaks(d.HTML)...); len(leaks) > 0 {
		t.Errorf("the page holds %d key values", len(leaks))
	}
	if strings.Contains(d.HTML, "avk_") {
		t.Error("the page holds something shaped like an ApexVerify key")
	}

	// The countdown script runs: the text moves on without a reload.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.rekeyTest = 1`)); err != nil {
		t.Fatal(err)
	}
	cond := fmt.Sprintf(`window.rekeyTest === 1 && document.querySelector("#cred-search .countdown .left").textContent !== %q`, s.Countdown)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Errorf("the countdown did not move from %q: %v", s.Countdown, err)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("the screenshot is not a PNG")
	}
	path := os.Getenv("REKEY_STATUSPAGE_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "statuspage.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s: %s (%d bytes)", url, path, len(shot))

	// Without JavaScript the page is complete: rows, phase and countdown
	// are rendered by the server.
	nojs, cancel := chromedp.NewContext(browser)
	defer cancel()
	nojs, cancel = context.WithTimeout(nojs, 30*time.Second)
	defer cancel()
	disable := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	})
	if err := chromedp.Do(nojs, disable, chromedp.Navigate(url), chromedp.WaitVisible("#cred-search .countdown .left")); err != nil {
		t.Fatalf("load without JavaScript: %v", err)
	}
	d2, err := chromedp.Run(nojs, chromedp.Evaluate[dom](readDOM))
	if err != nil {
		t.Fatal(err)
	}
	if len(d2.Rows) != 3 || d2.Rows[rows["search"]].Phase != "monitoring" || !countdownText.MatchString(d2.Rows[rows["search"]].Countdown) ||
		d2.Rows[rows["crm"]].LeftKeys == nil {
		t.Errorf("page without JavaScript: %+v", d2.Rows)
	}
}
