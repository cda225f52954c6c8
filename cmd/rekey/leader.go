package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/rotation/etcdstore"
)

// identity is a replica's leader value: who it is, for logs, /leader and
// the status page.
type identity struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

func newIdentity() identity {
	host, _ := os.Hostname()
	return identity{Host: host, PID: os.Getpid(), Started: time.Now().UTC().Truncate(time.Second)}
}

// replica is the metric label: host:pid.
func (id identity) replica() string { return fmt.Sprintf("%s:%d", id.Host, id.PID) }

func (id identity) String() string {
	b, _ := json.Marshal(id)
	return string(b)
}

// leadership is what the daemon knows of the election; safe for
// concurrent use.
type leadership struct {
	self     identity
	election *etcdstore.Election // nil with SQLite: the one daemon leads

	mu      sync.Mutex
	leading bool
}

func (l *leadership) set(leading bool) {
	l.mu.Lock()
	l.leading = leading
	l.mu.Unlock()
}

func (l *leadership) isLeading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

// leaderStatus is the /leader endpoint's body.
type leaderStatus struct {
	Leading bool      `json:"leading"`
	Replica identity  `json:"replica"`
	Leader  *identity `json:"leader"` // nil while no replica leads (or etcd is out of reach)
	Error   string    `json:"error,omitempty"`
}

func (l *leadership) status(ctx context.Context) leaderStatus {
	st := leaderStatus{Leading: l.isLeading(), Replica: l.self}
	switch {
	case st.Leading || l.election == nil:
		self := l.self
		st.Leader = &self
	default:
		v, err := l.election.Leader(ctx)
		if err != nil {
			st.Error = err.Error()
			break
		}
		if v != "" {
			var id identity
			if json.Unmarshal([]byte(v), &id) == nil {
				st.Leader = &id
			}
		}
	}
	return st
}

// describe is the status page's header line.
func (l *leadership) describe(ctx context.Context) string {
	st := l.status(ctx)
	switch {
	case st.Leading:
		return "this replica leads (" + l.self.Host + " pid " + fmt.Sprint(l.self.PID) + ")"
	case st.Leader != nil:
		return fmt.Sprintf("standby (leader: %s pid %d)", st.Leader.Host, st.Leader.PID)
	default:
		return "standby (no leader now)"
	}
}

// ServeHTTP serves /leader: whether this replica leads, and who does.
func (l *leadership) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(l.status(r.Context()))
}

// campaignRetry is how long a replica waits before campaigning again
// after a campaign failed (etcd out of reach).
const campaignRetry = 2 * time.Second

// run calls lead with a context that lasts while this replica leads, until
// ctx ends: with SQLite at once and once; on etcd after winning the
// election each time, campaigning again whenever leadership is lost. lead
// must return when its context ends. ready reports whether the replica is
// connected: campaigning, standing by or leading.
func (l *leadership) run(ctx context.Context, log *zap.Logger, ready func(bool), lead func(context.Context), onChange func(bool)) {
	if l.election == nil {
		l.set(true)
		onChange(true)
		ready(true)
		lead(ctx)
		return
	}
	first := true
	for ctx.Err() == nil {
		ready(true)
		if first {
			log.Info("standing by: campaigning for leadership", zap.String("replica", l.self.replica()))
			first = false
		}
		leadCtx, resign, err := l.election.Campaign(ctx, l.self.String())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ready(false)
			log.Warn("leader election: cannot campaign; trying again", zap.Duration("retry_in", campaignRetry), zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(campaignRetry):
			}
			continue
		}
		l.set(true)
		onChange(true)
		log.Info("gained leadership: scheduling rotations", zap.String("replica", l.self.replica()))
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			<-leadCtx.Done()
			if ctx.Err() == nil {
				l.set(false)
				onChange(false)
				log.Warn("lost leadership: stopped scheduling; rotations in flight end their current step (fenced)", zap.String("replica", l.self.replica()))
			}
		}()
		lead(leadCtx)
		resign()
		<-watched
		l.set(false)
		onChange(false)
		if ctx.Err() != nil {
			return
		}
		log.Info("stepped down: standing by, campaigning again", zap.String("replica", l.self.replica()))
	}
}
