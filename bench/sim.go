package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
)

// account is one ApexVerify simulator account served on its own loopback
// port, with the counts the benchmark reads: TCP connections accepted at
// the listener, requests served, and the peak of requests in flight at
// once (the fewest keep-alive connections that could have carried them).
type account struct {
	sim *apexsim.Sim
	url string
	srv *http.Server
	ln  net.Listener

	conns    atomic.Int64
	requests atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64
	done     chan struct{}
}

// startAccount serves a new simulator on 127.0.0.1 (never another address).
func startAccount() (*account, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &account{sim: apexsim.New(apexsim.Options{}), done: make(chan struct{})}
	a.ln = &countingListener{Listener: ln, n: &a.conns}
	a.url = "http://" + ln.Addr().String()
	h := a.sim.Handler()
	a.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.requests.Add(1)
			n := a.inflight.Add(1)
			for {
				p := a.peak.Load()
				if n <= p || a.peak.CompareAndSwap(p, n) {
					break
				}
			}
			defer a.inflight.Add(-1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(a.done)
		_ = a.srv.Serve(a.ln)
	}()
	return a, nil
}

// counts is a snapshot of an account's counters.
type counts struct{ conns, requests int64 }

func (a *account) counts() counts { return counts{a.conns.Load(), a.requests.Load()} }

// resetPeak starts a new measurement of the peak requests in flight.
func (a *account) resetPeak() { a.peak.Store(a.inflight.Load()) }

// close stops the server, waiting at most 5 s for calls in flight.
func (a *account) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		_ = a.srv.Close()
	}
	<-a.done
}

// countingListener counts every connection it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// healthServer is the one local health endpoint every credential's monitor
// checks; it always answers 200 and counts its connections too.
type healthServer struct {
	url      string
	srv      *http.Server
	conns    atomic.Int64
	requests atomic.Int64
	done     chan struct{}
}

func startHealth() (*healthServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &healthServer{url: "http://" + ln.Addr().String() + "/healthz", done: make(chan struct{})}
	h.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.requests.Add(1)
			_, _ = w.Write([]byte("ok\n"))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(&countingListener{Listener: ln, n: &h.conns}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return
		}
	}()
	return h, nil
}

func (h *healthServer) counts() counts { return counts{h.conns.Load(), h.requests.Load()} }

func (h *healthServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
	<-h.done
}

// fleet is every account of one world.
type fleet []*account

func (f fleet) setLatency(d time.Duration) {
	for _, a := range f {
		a.sim.SetLatency(d)
	}
}

func (f fleet) counts() []counts {
	out := make([]counts, len(f))
	for i, a := range f {
		out[i] = a.counts()
	}
	return out
}

func (f fleet) resetPeak() {
	for _, a := range f {
		a.resetPeak()
	}
}

func (f fleet) close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, a := range f {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a.close()
		}()
	}
	wg.Wait()
}

// connStats compares connections with requests over one phase: before is
// the fleet's counts when it began; the peaks are read now.
type connStats struct {
	hosts          int   // hosts that got at least one request
	conns          int64 // TCP connections accepted, all hosts
	requests       int64
	peakSum        int64 // Σ per host of the peak requests in flight: the ideal
	maxConnsPerHst int64
}

func (f fleet) connStats(before []counts) connStats {
	var s connStats
	for i, a := range f {
		now := a.counts()
		c, r := now.conns-before[i].conns, now.requests-before[i].requests
		if r == 0 {
			continue
		}
		s.hosts++
		s.conns += c
		s.requests += r
		s.peakSum += a.peak.Load()
		s.maxConnsPerHst = max(s.maxConnsPerHst, c)
	}
	return s
}
