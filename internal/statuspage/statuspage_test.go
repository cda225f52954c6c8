package statuspage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"golang.org/x/net/html"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// secrets are the key values the fixture's records carry: none may appear
// on the page.
var secrets = []string{"apx_live_OLDVALUE0000000000000000", "apx_live_NEWVALUE1111111111111111",
	"apx_live_CRMNEW22222222222222222", "apx_live_SEARCHNEW333333333333333"}

// done is a finished rotation ending at end.
func done(cred, id string, end time.Time, oldID, newID string) *rotation.Record {
	start := end.Add(-15 * time.Minute)
	return &rotation.Record{Credential: cred, ID: id, Phase: rotation.Done, Label: cred + "-" + id,
		OldKeyID: oldID, NewKeyID: newID, OldValue: secret.New(secrets[0]), NewValue: secret.New(secrets[1]),
		StartedAt: start, UpdatedAt: end, FinishedAt: end, Transitions: steps(start, rotation.Planned, rotation.Minted,
			rotation.Verified, rotation.Deployed, rotation.Monitoring, rotation.Revoking, rotation.Done)}
}

func steps(start time.Time, phases ...rotation.Phase) []rotation.Transition {
	var t []rotation.Transition
	for i, p := range phases {
		t = append(t, rotation.Transition{Phase: p, At: start.Add(time.Duration(i) * time.Second)})
	}
	return t
}

// fixture is three credentials: billing done 30 days into a 90-day life;
// crm whose last attempt failed leaving its new key for a person, its key
// 80 days old; search overdue, with a rotation two minutes into a
// 10-minute monitoring window.
func fixture() []Input {
	crmFailed := &rotation.Record{Credential: "crm", ID: "c2", Phase: rotation.Failed, Label: "crm-c2", OldKeyID: "key_crm1", NewKeyID: "key_crm2",
		NewValue: secret.New(secrets[2]), Error: "monitor: 2 consecutive failures: status 503 <script>",
		StartedAt: now.Add(-2 * time.Hour), UpdatedAt: now.Add(-110 * time.Minute), FinishedAt: now.Add(-110 * time.Minute),
		Left:        []rotation.LeftKey{{KeyID: "key_crm2", RotationID: "c2", Reason: "rollback could not restore every sink", HeldBy: []string{"file:/etc/crm/app.env"}, At: now.Add(-110 * time.Minute)}},
		Transitions: steps(now.Add(-2*time.Hour), rotation.Planned, rotation.Minted, rotation.Verified, rotation.Deployed, rotation.Monitoring, rotation.RollingBack, rotation.Failed)}
	searchStart := now.Add(-3 * time.Minute)
	searchFlight := &rotation.Record{Credential: "search", ID: "s2", Phase: rotation.Monitoring, Label: "search-s2", OldKeyID: "key_s1", NewKeyID: "key_s2",
		NewValue: secret.New(secrets[3]), StartedAt: searchStart, UpdatedAt: now.Add(-2 * time.Minute),
		Transitions: []rotation.Transition{{Phase: rotation.Planned, At: searchStart}, {Phase: rotation.Minted, At: searchStart.Add(20 * time.Second)},
			{Phase: rotation.Verified, At: searchStart.Add(40 * time.Second)}, {Phase: rotation.Deployed, At: searchStart.Add(50 * time.Second)},
			{Phase: rotation.Monitoring, At: now.Add(-2 * time.Minute)}}}
	return []Input{
		{Name: "billing", RotateEvery: 90 * day, MonitorWindow: 10 * time.Minute,
			Recent: []*rotation.Record{done("billing", "b1", now.Add(-30*day), "key_b0", "key_b1")},
			Due:    rotation.Due{At: now.Add(60 * day), Reason: "rotate_every 90d from the last rotation", LastRotated: now.Add(-30 * day)}},
		{Name: "crm", RotateEvery: 90 * day, MonitorWindow: time.Minute,
			Recent: []*rotation.Record{crmFailed, done("crm", "c1", now.Add(-80*day), "key_crm0", "key_crm1")},
			Due:    rotation.Due{At: now.Add(10 * day), Reason: "rotate_every reached", Failures: 1, LastRotated: now.Add(-80 * day)}},
		{Name: "search", RotateEvery: 90 * day, MonitorWindow: 10 * time.Minute, Overdue: true,
			Recent: []*rotation.Record{searchFlight, done("search", "s1", now.Add(-100*day), "key_s0", "key_s1")},
			Due:    rotation.Due{At: now.Add(-10 * day), Reason: "rotate_every reached", LastRotated: now.Add(-100 * day)},
			Probe:  &Probe{RotationID: "s2", End: now.Add(8 * time.Minute), Passed: 4}},
	}
}

func TestBuild(t *testing.T) {
	v := Build(now, DefaultRefresh, fixture())
	if len(v.Credentials) != 3 {
		t.Fatalf("%d rows", len(v.Credentials))
	}
	b, c, s := v.Credentials[0], v.Credentials[1], v.Credentials[2]
	if b.KeyID != "key_b1" || b.Label != "billing-b1" || b.Age != 30*day || fmt.Sprintf("%.1f", b.AgePercent) != "33.3" || b.AgeState != "ok" ||
		b.LastOutcome != "done" || b.InFlight != nil || b.Due {
		t.Errorf("billing %+v", b)
	}
	if c.KeyID != "key_crm1" || c.AgeState != "warn" || c.LastOutcome != "failed" || !strings.Contains(c.LastError, "503") ||
		len(c.Left) != 1 || c.Left[0].KeyID != "key_crm2" || c.Failures != 1 {
		t.Errorf("crm %+v", c)
	}
	if s.AgePercent != 100 || s.AgeState != "overdue" || !s.Due || s.InFlight == nil || s.InFlight.Phase != rotation.Monitoring ||
		s.LastOutcome != "done" || s.KeyID != "key_s1" {
		t.Fatalf("search %+v", s)
	}
	if cd := s.InFlight.Monitor; cd == nil || !cd.Live || cd.Left != 8*time.Minute || cd.Elapsed != 20 || cd.Passed != 4 {
		t.Errorf("search countdown %+v", cd)
	}
	if v.Summary != (Summary{Total: 3, InFlight: 1, Overdue: 1, Failing: 1, LeftKeys: 1}) {
		t.Errorf("summary %+v", v.Summary)
	}
	var ids []string
	for _, e := range v.Timeline {
		ids = append(ids, e.RotationID)
	}
	if got := strings.Join(ids, " "); got != "s2 c2 b1 c1 s1" {
		t.Errorf("timeline %s, want newest first: s2 c2 b1 c1 s1", got)
	}
	if e := v.Timeline[0]; e.Outcome != "" || e.Duration != 0 || len(e.Steps) != 5 {
		t.Errorf("in-flight entry %+v", e)
	}
	if e := v.Timeline[1]; e.Outcome != rotation.OutcomeFailure || e.Duration != 10*time.Minute {
		t.Errorf("failed entry %+v", e)
	}
}

// Without a live probe, the countdown is estimated from the journal's
// monitoring transition; a probe of another rotation is ignored.
func TestBuildCountdownFromJournal(t *testing.T) {
	in := fixture()[2:]
	in[0].Probe.RotationID = "older"
	cd := Build(now, DefaultRefresh, in).Credentials[0].InFlight.Monitor
	if cd.Live || cd.End != now.Add(8*time.Minute) || cd.Left != 8*time.Minute {
		t.Errorf("countdown %+v, want estimated end at monitoring + 10m", cd)
	}
	in[0].MonitorWindow = time.Minute // the window passed: nothing left, all elapsed
	cd = Build(now, DefaultRefresh, in).Credentials[0].InFlight.Monitor
	if cd.Left != 0 || cd.Elapsed != 100 {
		t.Errorf("countdown %+v, want 0 left", cd)
	}
}

func TestBuildNeverRotatedAndUnreadable(t *testing.T) {
	in := []Input{{Name: "new", RotateEvery: day, Recent: []*rotation.Record{{Credential: "new", ID: "x", Unreadable: "authentication failed"}},
		Due: rotation.Due{At: now, Reason: "never rotated by rekey"}}}
	v := Build(now, DefaultRefresh, in)
	r := v.Credentials[0]
	if r.KeyID != "" || r.AgeState != "unknown" || r.AgePercent != 0 || !r.Due || r.Unreadable != 1 || r.LastOutcome != "" {
		t.Errorf("row %+v", r)
	}
	if len(v.Timeline) != 1 || v.Timeline[0].Unreadable == "" {
		t.Errorf("timeline %+v", v.Timeline)
	}
}

func TestTimelineLimit(t *testing.T) {
	var recs []*rotation.Record
	for i := range 3 * TimelineLimit {
		recs = append(recs, done("c", fmt.Sprintf("r%03d", i), now.Add(-time.Duration(i)*time.Hour), "a", "b"))
	}
	v := Build(now, DefaultRefresh, []Input{{Name: "c", RotateEvery: day, Recent: recs}})
	if len(v.Timeline) != TimelineLimit || v.Timeline[0].RotationID != "r000" || v.Timeline[TimelineLimit-1].RotationID != fmt.Sprintf("r%03d", TimelineLimit-1) {
		t.Errorf("timeline %d entries, first %s", len(v.Timeline), v.Timeline[0].RotationID)
	}
}

func render(t *testing.T, v View) (string, *html.Node) {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, v); err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("REKEY_STATUSPAGE_HTML"); p != "" { // to look at the fixture in a browser
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return buf.String(), doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

// find returns every element under n for which match is true, in
// document order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func byID(t *testing.T, n *html.Node, id string) *html.Node {
	t.Helper()
	m := find(n, func(c *html.Node) bool { return attr(c, "id") == id })
	if len(m) != 1 {
		t.Fatalf("%d elements with id %q", len(m), id)
	}
	return m[0]
}

func byClass(t *testing.T, n *html.Node, class string) *html.Node {
	t.Helper()
	m := find(n, func(c *html.Node) bool { return hasClass(c, class) })
	if len(m) == 0 {
		t.Fatalf("no element of class %q", class)
	}
	return m[0]
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data + " ")
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func TestRender(t *testing.T) {
	raw, doc := render(t, Build(now, DefaultRefresh, fixture()))
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Errorf("the page holds a key value")
		}
	}
	if strings.Contains(raw, "<script>\"") || !strings.Contains(raw, "status 503 &lt;script&gt;") {
		t.Errorf("an error's markup is not escaped")
	}

	refresh := find(doc, func(n *html.Node) bool { return n.Data == "meta" && attr(n, "http-equiv") == "refresh" })
	if len(refresh) != 1 || attr(refresh[0], "content") != "10" {
		t.Errorf("meta refresh %v", refresh)
	}

	billing := byID(t, doc, "cred-billing")
	bar := byClass(t, billing, "age-bar")
	if attr(bar, "data-percent") != "33.3" || attr(byClass(t, bar, "fill"), "style") != "width: 33.3%" || !hasClass(bar, "ok") {
		t.Errorf("billing bar %v / %q", bar.Attr, attr(byClass(t, bar, "fill"), "style"))
	}
	if got := text(byClass(t, billing, "key")); got != "key_b1 billing-b1" {
		t.Errorf("billing key %q", got)
	}
	if got := text(byClass(t, billing, "due")); !strings.HasPrefix(got, "2027-01-30 12:00:00Z in 60d") {
		t.Errorf("billing next due %q", got)
	}
	if got := text(byClass(t, billing, "outcome")); got != "done 30d ago" {
		t.Errorf("billing outcome %q", got)
	}
	if got := text(byClass(t, billing, "flight")); got != "—" {
		t.Errorf("billing in flight %q", got)
	}

	crm := byID(t, doc, "cred-crm")
	if bar := byClass(t, crm, "age-bar"); attr(bar, "data-percent") != "88.9" || !hasClass(bar, "warn") {
		t.Errorf("crm bar %v", bar.Attr)
	}
	if got := text(byClass(t, crm, "outcome")); !strings.HasPrefix(got, "failed 1h 50m ago 1 failed attempt since the last success monitor: 2 consecutive") {
		t.Errorf("crm outcome %q", got)
	}
	left := find(crm, func(n *html.Node) bool { return hasClass(n, "left-key") })
	if len(left) != 1 || attr(left[0], "data-key-id") != "key_crm2" ||
		text(left[0]) != "key_crm2 by rotation c2 at 2026-12-01 10:10:00Z : rollback could not restore every sink; held by file:/etc/crm/app.env" {
		t.Errorf("crm left keys %q", text(left[0]))
	}

	search := byID(t, doc, "cred-search")
	if got := text(byClass(t, search, "name")); got != "search overdue" {
		t.Errorf("search name %q", got)
	}
	if bar := byClass(t, search, "age-bar"); attr(bar, "data-percent") != "100.0" || !hasClass(bar, "overdue") {
		t.Errorf("search bar %v", bar.Attr)
	}
	flight := byClass(t, search, "flight")
	if got := text(byClass(t, flight, "phase")); got != "monitoring" {
		t.Errorf("search phase %q", got)
	}
	cd := byClass(t, flight, "countdown")
	if attr(cd, "data-left-ms") != "480000" || attr(cd, "data-window-ms") != "600000" || text(byClass(t, cd, "left")) != "8m 00s" ||
		attr(byClass(t, cd, "fill"), "style") != "width: 20.0%" || !strings.Contains(text(cd), "4 probes passed, 0 failed") {
		t.Errorf("countdown %v %q", cd.Attr, text(cd))
	}

	if got := text(byID(t, doc, "summary")); got != "3 credentials 1 rotating 1 last attempt failed 1 overdue 1 key left for a person" {
		t.Errorf("summary %q", got)
	}
	entries := find(byID(t, doc, "timeline"), func(n *html.Node) bool { return hasClass(n, "entry") })
	if len(entries) != 5 || attr(entries[0], "data-rotation") != "s2" || !hasClass(entries[0], "inflight") || !hasClass(entries[1], "failure") {
		t.Fatalf("timeline entries %d", len(entries))
	}
	if got := text(byClass(t, entries[1], "steps")); got != "planned 10:00:00 minted 10:00:01 verified 10:00:02 deployed 10:00:03 monitoring 10:00:04 rolling_back 10:00:05 failed 10:00:06" {
		t.Errorf("steps %q", got)
	}

	// The one script is the embedded countdown, allowed by its hash.
	scripts := find(doc, func(n *html.Node) bool { return n.Data == "script" })
	if len(scripts) != 1 || scripts[0].FirstChild == nil {
		t.Fatalf("%d scripts", len(scripts))
	}
	sum := sha256.Sum256([]byte(scripts[0].FirstChild.Data))
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("the CSP does not allow the page's script")
	}
	for _, n := range find(doc, func(n *html.Node) bool { return n.Data == "link" || n.Data == "img" || n.Data == "iframe" }) {
		if h := attr(n, "href") + attr(n, "src"); h != "data:," {
			t.Errorf("the page loads %q", h)
		}
	}
}

// A replica says in the header whether it leads; a single daemon says nothing.
func TestRenderReplica(t *testing.T) {
	v := Build(now, DefaultRefresh, nil)
	v.Replica = "standby (leader: host-a pid 42)"
	if _, doc := render(t, v); text(byID(t, doc, "replica")) != v.Replica {
		t.Errorf("header replica %q, want %q", text(byID(t, doc, "replica")), v.Replica)
	}
	if out, _ := render(t, Build(now, DefaultRefresh, nil)); strings.Contains(out, `id="replica"`) {
		t.Error("a single daemon's page names a replica")
	}
}

func TestRenderEmpty(t *testing.T) {
	_, doc := render(t, Build(now, DefaultRefresh, nil))
	if got := text(byClass(t, doc, "empty")); got != "No credentials configured." {
		t.Errorf("empty page says %q", got)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		d          time.Duration
		human, cnt string
	}{
		{0, "0s", "0s"},
		{1500 * time.Millisecond, "2s", "2s"},
		{65 * time.Second, "1m 5s", "1m 05s"},
		{10 * time.Minute, "10m", "10m 00s"},
		{3*time.Hour + 4*time.Minute + 5*time.Second, "3h 4m", "3h 04m 05s"},
		{90 * day, "90d", "2160h 00m 00s"},
		{12*day + 3*time.Hour + 59*time.Minute, "12d 3h", "291h 59m 00s"},
		{day + 30*time.Minute, "1d", "24h 30m 00s"},
	} {
		if got := human(c.d); got != c.human {
			t.Errorf("human(%v) = %q, want %q", c.d, got, c.human)
		}
		if got := countdown(c.d); got != c.cnt {
			t.Errorf("countdown(%v) = %q, want %q", c.d, got, c.cnt)
		}
	}
}

// store is a journal that serves RecentAll from recent and counts its
// reads; every other read fails the test.
type store struct {
	rotation.Store
	t      *testing.T
	recent map[string][]*rotation.Record
	err    error
	reads  atomic.Int32
}

func (s *store) RecentAll(context.Context) (map[string][]*rotation.Record, error) {
	s.reads.Add(1)
	return s.recent, s.err
}

func (s *store) Recent(context.Context, string) ([]*rotation.Record, error) {
	s.t.Error("the page read one credential's journal")
	return nil, nil
}

func (s *store) History(context.Context, string, int) ([]*rotation.Record, error) {
	s.t.Error("the page read a history")
	return nil, nil
}

func newPage(t *testing.T) (*Page, *store, *clockwork.FakeClock) {
	clock := clockwork.NewFakeClockAt(now)
	st := &store{t: t, recent: map[string][]*rotation.Record{}}
	for _, in := range fixture() {
		st.recent[in.Name] = in.Recent
	}
	eng := &rotation.Engine{Store: st, Clock: clock, Log: zap.NewNop()}
	var creds []*rotation.Credential
	for _, in := range fixture() {
		creds = append(creds, &rotation.Credential{Name: in.Name, RotateEvery: in.RotateEvery, Monitor: rotation.Monitor{Window: in.MonitorWindow}})
	}
	return New(st, eng, creds), st, clock
}

func get(t *testing.T, h http.Handler) (*httptest.ResponseRecorder, *html.Node) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	doc, err := html.Parse(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return rec, doc
}

// One request is one journal read, whatever the history; the scheduler's
// status is used while no journal write is newer, the journal's schedule
// after one.
func TestServeHTTP(t *testing.T) {
	p, st, clock := newPage(t)
	rec, doc := get(t, p)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" || rec.Header().Get("Content-Security-Policy") != csp ||
		rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("%d journal reads for one request", n)
	}
	// search: no scheduler status yet, so computed from its journal — a
	// key 100 days old with rotate_every 90d is overdue; in flight, so
	// "rotating now" rather than a due time.
	search := byID(t, doc, "cred-search")
	if got := text(byClass(t, search, "due")); got != "rotating now next due once it ends" || !strings.Contains(text(byClass(t, search, "name")), "overdue") {
		t.Errorf("search due %q", got)
	}
	// The countdown has no live probe: estimated from the journal.
	if got := text(byClass(t, search, "countdown")); !strings.Contains(got, "8m 00s left of the 10m window (estimated from the journal)") {
		t.Errorf("countdown %q", got)
	}

	// The scheduler's view of billing, newer than its journal, is shown.
	p.Scheduled(rotation.Status{Credential: "billing", Due: rotation.Due{At: now.Add(7 * day), Reason: "from the scheduler"}})
	// A probe moves the countdown to the engine's figures.
	p.Observe(rotation.Event{Time: now, Credential: "search", RotationID: "s2", Phase: rotation.Monitoring, Probe: &rotation.Probe{Passed: 2, Failed: 1, Left: 5 * time.Minute}})
	_, doc = get(t, p)
	if got := text(byClass(t, byID(t, doc, "cred-billing"), "reason")); got != "from the scheduler" {
		t.Errorf("billing reason %q, want the scheduler's", got)
	}
	cd := byClass(t, byID(t, doc, "cred-search"), "countdown")
	if got := text(cd); !strings.Contains(got, "5m 00s left of the 10m window · 2 probes passed, 1 failed") || attr(cd, "data-left-ms") != "300000" {
		t.Errorf("live countdown %q", got)
	}

	// A journal write after the scheduler's status makes it stale.
	clock.Advance(time.Minute)
	st.recent["billing"] = []*rotation.Record{done("billing", "b2", clock.Now(), "key_b1", "key_b2")}
	// Leaving monitoring drops the probe.
	p.Observe(rotation.Event{Time: clock.Now(), Credential: "search", RotationID: "s2", Phase: rotation.Revoking, Transition: true})
	_, doc = get(t, p)
	if got := text(byClass(t, byID(t, doc, "cred-billing"), "reason")); got != "rotate_every 90d from the last rotation" {
		t.Errorf("billing reason %q, want the journal's (not the scheduler's stale one)", got)
	}
	if got := text(byClass(t, byID(t, doc, "cred-search"), "countdown")); !strings.Contains(got, "estimated") {
		t.Errorf("countdown after leaving monitoring %q, want the journal's estimate", got)
	}
	if n := st.reads.Load(); n != 3 {
		t.Errorf("%d journal reads for three requests", n)
	}

	// A reload that drops a credential drops its row.
	p.SetCredentials([]*rotation.Credential{{Name: "crm", RotateEvery: day}})
	_, doc = get(t, p)
	if rows := find(doc, func(n *html.Node) bool { return hasClass(n, "cred") }); len(rows) != 1 || attr(rows[0], "data-credential") != "crm" {
		t.Errorf("%d rows after reload", len(rows))
	}
}

func TestServeHTTPJournalError(t *testing.T) {
	p, st, _ := newPage(t)
	st.err = errors.New("database is locked")
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "database is locked") {
		t.Errorf("%d %q", rec.Code, rec.Body.String())
	}
}
