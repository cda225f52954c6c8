// Package server serves the daemon's HTTP endpoints: /healthz answers
// while the process runs, /readyz only while the daemon says it is ready,
// /metrics serves the metrics handler it is given, and / the status page
// when it is given one (WithPage). Nothing it serves holds a secret.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// shutdownTimeout bounds how long Close waits for requests in flight.
const shutdownTimeout = 5 * time.Second

// Server is a running HTTP server. Its methods are safe for concurrent use.
type Server struct {
	ready atomic.Bool
	ln    net.Listener
	srv   *http.Server
	done  chan error
}

// Option adds to what a Server serves.
type Option func(*http.ServeMux)

// WithPage serves page at / (GET and HEAD; any other path stays 404).
func WithPage(page http.Handler) Option {
	return func(mux *http.ServeMux) { mux.Handle("GET /{$}", page) }
}

// WithHandler serves h at the GET pattern path (e.g. "/leader").
func WithHandler(path string, h http.Handler) Option {
	return func(mux *http.ServeMux) { mux.Handle("GET "+path, h) }
}

// Start listens on addr and serves in the background until Close; a
// listen error is returned as net.Listen returned it. /readyz answers 503
// until SetReady(true).
func Start(addr string, metrics http.Handler, opts ...Option) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, done: make(chan error, 1)}
	mux := s.handler(metrics)
	for _, o := range opts {
		o(mux)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

func (s *Server) handler(metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", metrics)
	return mux
}

// Addr is the address the server listens on, with the port the system
// chose for port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetReady sets whether /readyz answers 200 (ready) or 503.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Done receives, once, why the server stopped serving: the error of
// http.Server.Serve, or nil after Close.
func (s *Server) Done() <-chan error { return s.done }

// Close stops the server, letting requests in flight finish for a few
// seconds.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
