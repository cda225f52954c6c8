package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Events a notifier can subscribe to.
var Events = []string{"success", "rollback", "failure", "overdue"}

// HTTPMethods a check may use.
var HTTPMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// validator applies defaults and checks a decoded Config, reporting at the
// positions the decoder recorded.
// Its problems go to the decoder's list, so they share one cap.
type validator struct {
	d       *decoder
	issuers string // defined's answer, computed once
}

func (v *validator) errorf(field, format string, args ...any) {
	if v.d.failed(field) {
		return // the decoder already said what is wrong here
	}
	v.d.errs.add(v.d.file, v.d.line(field), field, format, args...)
}

// has reports whether field was given a non-null value.
func (v *validator) has(field string) bool { return v.d.set[field] }

func (v *validator) config(c *Config) {
	switch {
	case !v.has("version"):
		v.errorf("version", "required; write version: 1")
	case c.Version != 1:
		v.errorf("version", "must be 1, got %d", c.Version)
	}

	if c.State.Path == "" {
		c.State.Path = DefaultStatePath
	}
	v.secret("state.encryption_key", c.State.EncryptionKey, false)
	v.state(&c.State)

	for _, name := range slices.Sorted(maps.Keys(c.Issuers)) {
		p := "issuers." + name
		if c.Issuers[name] == nil {
			c.Issuers[name] = &IssuerSpec{entry: entry{kind: "issuer", Field: p, File: v.d.file, Line: v.d.line(p)}}
		}
		is := c.Issuers[name]
		is.Name = name
		v.name(p, name)
		v.entry(p, &is.entry)
	}

	if len(c.Credentials) == 0 {
		v.errorf("credentials", "at least one credential is required")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Credentials)) {
		p := "credentials." + name
		if c.Credentials[name] == nil {
			c.Credentials[name] = &Credential{}
		}
		cr := c.Credentials[name]
		cr.Name = name
		v.name(p, name)
		v.credential(c, p, cr)
	}

	for i := range c.Notify {
		if c.Notify[i] == nil {
			c.Notify[i] = &Notifier{}
		}
		v.notifier(fmt.Sprintf("notify[%d]", i), c.Notify[i])
	}

	v.daemon("daemon", &c.Daemon)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (v *validator) name(p, name string) {
	if !namePattern.MatchString(name) {
		v.errorf(p, "name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
}

// entry checks what config knows of an issuer or sink entry: that it is a
// mapping with a type. Whether the type exists, and what its other fields
// mean, only its back-end knows (Backends).
func (v *validator) entry(p string, e *entry) {
	switch {
	case e.node == nil:
		v.errorf(p, "expected a mapping with a type")
	case e.Type == "":
		v.errorf(p+".type", "required")
	}
}

func (v *validator) credential(c *Config, p string, cr *Credential) {
	switch _, ok := c.Issuers[cr.Issuer]; {
	case cr.Issuer == "":
		v.errorf(p+".issuer", "required; name one of the issuers (%s)", v.defined(c.Issuers))
	case !ok && !v.d.failed("issuers"):
		v.errorf(p+".issuer", "unknown issuer %q (defined: %s)", cr.Issuer, v.defined(c.Issuers))
	}

	v.label(p+".label", cr.Name, cr.Label)

	if !v.has(p + ".rotate_every") {
		v.errorf(p+".rotate_every", "required, e.g. 90d")
	} else if cr.RotateEvery <= 0 {
		v.errorf(p+".rotate_every", "must be greater than 0")
	}

	if cr.Window != "" {
		w := strings.TrimSpace(cr.Window)
		if strings.HasPrefix(w, "TZ=") || strings.HasPrefix(w, "CRON_TZ=") {
			v.errorf(p+".window", "set timezone: instead of a TZ= prefix")
		} else if _, err := cron.ParseStandard(w); err != nil {
			v.errorf(p+".window", "invalid cron expression (5 fields or @daily, @weekly, ...): %v", err)
		}
	}
	cr.loc = time.UTC
	if cr.Timezone != "" {
		loc, err := time.LoadLocation(cr.Timezone)
		if err != nil {
			v.errorf(p+".timezone", "unknown time zone %q (use an IANA name such as Europe/Berlin)", cr.Timezone)
		} else {
			cr.loc = loc
		}
	}

	v.positive(p+".stage_timeout", &cr.StageTimeout, DefaultStageTimeout)

	if len(cr.Sinks) == 0 {
		v.errorf(p+".sinks", "at least one sink is required")
	}
	for i := range cr.Sinks {
		v.entry(fmt.Sprintf("%s.sinks[%d]", p, i), &cr.Sinks[i].entry)
	}

	v.positive(p+".verify.timeout", &cr.Verify.Timeout, DefaultVerifyTimeout)
	v.monitor(p+".monitor", &cr.Monitor)
	if cr.Drain != nil {
		v.drain(p+".drain", cr.Drain)
	}
}

const (
	datePlaceholder = "{{date}}"
	maxLabel        = 64 // the issuer's limit
	rotationSuffix  = 9  // "-" and the 8-character short rotation ID
)

func (v *validator) label(p, name, label string) {
	if label == "" {
		v.errorf(p, "required, e.g. %s-%s", name, datePlaceholder)
		return
	}
	rest := strings.ReplaceAll(label, datePlaceholder, "")
	if strings.ContainsAny(rest, "{}") {
		v.errorf(p, "unknown placeholder; only %s is supported", datePlaceholder)
		return
	}
	for _, r := range rest {
		if !isLabelChar(r) {
			v.errorf(p, "invalid character %q; use letters, digits, '.', '_' and '-'", r)
			return
		}
	}
	if n := len(strings.ReplaceAll(label, datePlaceholder, "YYYYMMDD")) + rotationSuffix; n > maxLabel {
		v.errorf(p, "too long: %d characters with the date and the rotation ID (%d) added; the issuer allows %d", n, rotationSuffix, maxLabel)
	}
}

func isLabelChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func (v *validator) monitor(p string, m *Monitor) {
	v.defaultDuration(p+".interval", &m.Interval, DefaultMonitorInterval)
	v.defaultDuration(p+".window", &m.Window, DefaultMonitorWindow)
	if m.Interval < Duration(time.Second) {
		v.errorf(p+".interval", "must be at least 1s")
	}
	switch {
	case m.Window < Duration(time.Second):
		v.errorf(p+".window", "must be at least 1s")
	case m.Window < m.Interval:
		v.errorf(p+".window", "must be at least monitor.interval (%s)", m.Interval)
	}
	if !v.has(p + ".failure_threshold") {
		m.FailureThreshold = DefaultFailureThreshold
	} else if m.FailureThreshold < 1 {
		v.errorf(p+".failure_threshold", "must be at least 1")
	}
	for i := range m.Checks {
		v.check(fmt.Sprintf("%s.checks[%d]", p, i), &m.Checks[i])
	}
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func (v *validator) check(p string, ch *Check) {
	if ch.URL == "" {
		v.errorf(p+".url", "required")
	} else if err := checkHTTPURL(ch.URL); err != nil {
		v.errorf(p+".url", "%v", err)
	}
	if ch.Method == "" {
		ch.Method = DefaultCheckMethod
	} else if m := strings.ToUpper(ch.Method); slices.Contains(HTTPMethods, m) {
		ch.Method = m
	} else {
		v.errorf(p+".method", "unknown HTTP method %q (use %s)", ch.Method, listOr(HTTPMethods))
	}
	for _, name := range slices.Sorted(maps.Keys(ch.Headers)) {
		hp := p + ".headers." + name
		if !headerName.MatchString(name) {
			v.errorf(hp, "invalid header name")
		}
		v.secret(hp, ch.Headers[name], true)
	}
	if !v.has(p + ".expect_status") {
		ch.ExpectStatus = slices.Clone(DefaultExpectStatus)
	} else if len(ch.ExpectStatus) == 0 {
		v.errorf(p+".expect_status", "must list at least one status")
	}
	for j, s := range ch.ExpectStatus {
		if s < 100 || s > 599 {
			v.errorf(fmt.Sprintf("%s.expect_status[%d]", p, j), "must be an HTTP status from 100 to 599, got %d", s)
		}
	}
	if ch.BodyRegex != "" {
		if _, err := regexp.Compile(ch.BodyRegex); err != nil {
			v.errorf(p+".body_regex", "invalid regular expression: %v", err)
		}
	}
	v.positive(p+".timeout", &ch.Timeout, DefaultCheckTimeout)
}

func (v *validator) drain(p string, d *Drain) {
	if !v.has(p + ".idle_for") {
		v.errorf(p+".idle_for", "required, e.g. 15m")
	} else if d.IdleFor <= 0 {
		v.errorf(p+".idle_for", "must be greater than 0")
	}
	switch {
	case !v.has(p + ".max_wait"):
		v.errorf(p+".max_wait", "required, e.g. 24h")
	case d.MaxWait < d.IdleFor || d.MaxWait <= 0:
		v.errorf(p+".max_wait", "must be at least idle_for (%s)", d.IdleFor)
	}
}

func (v *validator) notifier(p string, n *Notifier) {
	switch n.Type {
	case "":
		v.errorf(p+".type", "required (slack or webhook)")
	case "slack", "webhook":
	default:
		v.errorf(p+".type", "unknown notifier type %q (supported: slack, webhook)", n.Type)
	}
	v.secret(p+".url", n.URL, false)
	if !v.has(p + ".on") {
		n.On = slices.Clone(Events)
		return
	}
	if len(n.On) == 0 {
		v.errorf(p+".on", "must list at least one event (%s)", listOr(Events))
	}
	seen := map[string]bool{}
	for j, e := range n.On {
		ep := fmt.Sprintf("%s.on[%d]", p, j)
		switch {
		case !slices.Contains(Events, e):
			v.errorf(ep, "unknown event %q (use %s)", e, listOr(Events))
		case seen[e]:
			v.errorf(ep, "%s is listed twice", e)
		}
		seen[e] = true
	}
}

func (v *validator) daemon(p string, d *Daemon) {
	if d.Listen == "" && !v.has(p+".listen") {
		d.Listen = DefaultListen
	} else if err := checkListen(d.Listen); err != nil {
		v.errorf(p+".listen", "%v", err)
	}
	if !v.has(p + ".concurrency") {
		d.Concurrency = DefaultConcurrency
	} else if d.Concurrency < 1 {
		v.errorf(p+".concurrency", "must be at least 1")
	}
}

// state checks the journal's backend and, for etcd, its cluster.
func (v *validator) state(st *State) {
	switch st.Backend {
	case "":
		if v.has("state.backend") {
			v.errorf("state.backend", "must be %s or %s", BackendSQLite, BackendEtcd)
		}
		st.Backend = BackendSQLite
	case BackendSQLite, BackendEtcd:
	default:
		v.errorf("state.backend", "unknown backend %q (use %s or %s)", st.Backend, BackendSQLite, BackendEtcd)
		return
	}
	if st.Backend != BackendEtcd {
		if v.has("state.etcd") {
			v.errorf("state.etcd", "only with backend: etcd (the backend is %s)", st.Backend)
		}
		return
	}
	if st.Etcd == nil {
		v.errorf("state.backend", "etcd needs state.etcd with its endpoints")
		return
	}
	v.etcd("state.etcd", st.Etcd)
}

func (v *validator) etcd(p string, e *Etcd) {
	if len(e.Endpoints) == 0 {
		v.errorf(p+".endpoints", "required: the members' client URLs, e.g. [https://etcd-1.internal:2379]")
	}
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
			v.errorf(fmt.Sprintf("%s.endpoints[%d]", p, i), "must be http:// or https:// with a host and port and nothing else, e.g. https://etcd-1.internal:2379")
		}
	}
	if !v.has(p + ".prefix") {
		e.Prefix = DefaultEtcdPrefix
	} else if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") || len(e.Prefix) < 2 {
		v.errorf(p+".prefix", "must start and end with / and name something, e.g. /rekey/")
	}
	if (e.Cert == "") != (e.Key == "") {
		field := p + ".key"
		if e.Cert == "" {
			field = p + ".cert"
		}
		v.errorf(field, "cert and key go together: set both for a client certificate, or neither")
	}
	if e.Username.IsSet() != e.Password.IsSet() {
		field := p + ".password"
		if !e.Username.IsSet() {
			field = p + ".username"
		}
		v.errorf(field, "username and password go together: set both, or neither")
	}
	if e.Username.IsSet() {
		v.secret(p+".username", e.Username, false)
	}
	if e.Password.IsSet() {
		v.secret(p+".password", e.Password, false)
	}
	v.positive(p+".dial_timeout", &e.DialTimeout, DefaultEtcdDialTimeout)
	v.positive(p+".request_timeout", &e.RequestTimeout, DefaultEtcdTimeout)
	if !v.has(p + ".lock_ttl") {
		e.LockTTL = DefaultEtcdLockTTL
	} else if e.LockTTL < Duration(2*time.Second) || time.Duration(e.LockTTL)%time.Second != 0 {
		v.errorf(p+".lock_ttl", "must be whole seconds, at least 2s (an etcd lease's granularity)")
	}
}

// secret checks a secret-valued field that is required.
func (v *validator) secret(p string, s Secret, literalOK bool) {
	if err := s.Check(literalOK); err != nil {
		v.errorf(p, "%v", err)
	}
}

// positive applies def when field is absent and otherwise requires a
// duration greater than zero.
func (v *validator) positive(field string, d *Duration, def Duration) {
	if !v.has(field) {
		*d = def
	} else if *d <= 0 {
		v.errorf(field, "must be greater than 0")
	}
}

func (v *validator) defaultDuration(field string, d *Duration, def Duration) {
	if !v.has(field) {
		*d = def
	}
}

// checkHTTPURL reports a URL that is not absolute http(s). The message never
// repeats the URL: it may carry a token.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("URL needs a host")
	}
	return nil
}

func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port, e.g. %s", DefaultListen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number from 0 to 65535")
	}
	return nil
}

// maxListed is how many issuer names a message lists.
const maxListed = 10

// defined lists the issuers' names for a message: at most maxListed of
// them, so that a message stays short however many there are. It is
// computed once: every credential with a bad issuer asks for it.
func (v *validator) defined(issuers map[string]*IssuerSpec) string {
	if v.issuers != "" {
		return v.issuers
	}
	names := slices.Sorted(maps.Keys(issuers))
	switch {
	case len(names) == 0:
		v.issuers = "none"
	case len(names) > maxListed:
		v.issuers = fmt.Sprintf("%s, … (%d in all)", strings.Join(names[:maxListed], ", "), len(names))
	default:
		v.issuers = strings.Join(names, ", ")
	}
	return v.issuers
}

// listOr formats "a, b or c".
func listOr(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	out := ""
	for i, it := range items[:len(items)-1] {
		if i > 0 {
			out += ", "
		}
		out += it
	}
	return out + " or " + items[len(items)-1]
}
