package soak

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// clients are the synthetic clients: one per sink of every credential,
// each re-reading its key from the sink and using it at its issuer's API
// as a real client would (keyIssuer.use): ApexVerify's /v1/verify,
// OpenAI's admin key list, STS GetCallerIdentity signed with an IAM pair.
type clients struct {
	w      *world
	http   *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	calls  int
	ok     int
	other  int // 5xx, 429, transport errors: not refusals
	reads  int // sink reads that failed
	refuse []refusal
	// torn are reads of a pair whose fields are not one key's (one
	// missing, or the ID of one key with the secret of another); unknown
	// are reads of a value the issuer never made. Both are asserted none.
	torn, unknown []string
	okBy          map[string]int // ok calls by issuer kind
	// seen maps credential/sink/prefix to when a client last read that
	// key from that sink, and since when the sink had held it then.
	seen map[seenKey]seenAt
	// streak is, per credential and sink, the key the client read last and
	// the first read of the run of reads that found that same key: a
	// sink that held key K continuously from before time T shows a streak
	// of K that began before T.
	streak map[credSink]seenAt
}

type seenKey struct {
	cred   string
	sink   sinkKind
	handle string // keyIssuer.handle
}

type credSink struct {
	cred string
	sink sinkKind
}

// seenAt is a read of a key from a sink: when (last) and since when the
// sink had held that key without a different one read in between.
type seenAt struct {
	handle string
	since  time.Time
	last   time.Time
}

// refusal is one 401 a client got; it names the key by its handle only.
type refusal struct {
	cred   string
	sink   sinkKind
	handle string
	read   time.Time
	at     time.Time
	// since is when this sink's client first read this key in the run of
	// reads that ended with this one.
	since time.Time
}

func (r refusal) String() string {
	return fmt.Sprintf("%s/%s key %s read %s refused %s", r.cred, r.sink, r.handle, r.read.Format("15:04:05.000"), r.at.Format("15:04:05.000"))
}

func startClients(w *world, pause time.Duration) *clients {
	cl := &clients{w: w, stop: make(chan struct{}), seen: map[seenKey]seenAt{}, streak: map[credSink]seenAt{}, okBy: map[string]int{},
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	for _, c := range w.creds {
		for _, kind := range c.kinds {
			cl.wg.Add(1)
			go cl.loop(c, kind, pause)
		}
	}
	return cl
}

// close stops every client and waits for them.
func (cl *clients) close() {
	close(cl.stop)
	cl.wg.Wait()
}

func (cl *clients) loop(c *cred, kind sinkKind, pause time.Duration) {
	defer cl.wg.Done()
	tick := time.NewTicker(pause)
	defer tick.Stop()
	for {
		select {
		case <-cl.stop:
			return
		case <-tick.C:
		}
		cl.once(c, kind)
	}
}

func (cl *clients) once(c *cred, kind sinkKind) {
	read := time.Now()
	v, err := c.read(kind)
	if err != nil || v == "" {
		cl.mu.Lock()
		cl.reads++
		cl.mu.Unlock()
		return
	}
	c.rememberValue(v)
	handle, torn := c.iss.handle(v)
	cl.mu.Lock()
	switch {
	case torn:
		cl.torn = append(cl.torn, fmt.Sprintf("%s/%s at %s: a pair whose fields are not one key's (ID %s)", c.name, kind, read.Format("15:04:05.000"), handle))
	case handle == "":
		cl.unknown = append(cl.unknown, fmt.Sprintf("%s/%s at %s: a value the issuer never made", c.name, kind, read.Format("15:04:05.000")))
	}
	if torn || handle == "" {
		cl.mu.Unlock()
		return
	}
	cs := credSink{c.name, kind}
	st := cl.streak[cs]
	if st.handle != handle {
		st = seenAt{handle: handle, since: read}
	}
	st.last = read
	cl.streak[cs] = st
	cl.seen[seenKey{c.name, kind, handle}] = st
	cl.mu.Unlock()
	status, err := c.iss.use(context.Background(), cl.http, v)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.calls++
	switch {
	case err != nil:
		cl.other++
	case status == http.StatusUnauthorized:
		cl.refuse = append(cl.refuse, refusal{cred: c.name, sink: kind, handle: handle, read: read, at: time.Now(), since: st.since})
	case status == http.StatusOK:
		cl.ok++
		cl.okBy[c.iss.kind()]++
	default:
		cl.other++
	}
}
