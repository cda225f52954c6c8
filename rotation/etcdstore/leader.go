package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Election is the daemon replicas' leader election: a
// concurrency.Election under <prefix>leader, each campaign on a session of
// its own whose lease has Options.LockTTL. At most one replica leads at a
// time; the others wait in Campaign, watching (never polling) the key of
// the replica ahead of them.
type Election struct {
	cli     *clientv3.Client
	key     string
	ttl     int64
	timeout time.Duration
}

// Election returns the leader election of the journal under the Store's
// prefix, on the Store's client.
func (s *Store) Election() *Election {
	return &Election{cli: s.cli, key: s.opt.Prefix + "leader", ttl: int64(s.opt.LockTTL / time.Second), timeout: s.opt.RequestTimeout}
}

// ErrLeaseLost is returned by Campaign when the campaign's own session
// ended before it won (its lease expired: etcd unreachable or without a
// quorum for the TTL).
var ErrLeaseLost = errors.New("etcdstore: the election session's lease expired")

// Campaign blocks until this process leads, with identity as the leader
// value others read (Leader), or until ctx ends. It returns a context that
// ends when leadership is lost: ctx ended, or the session's lease expired or
// could not be kept alive for its TTL (the process paused, etcd unreachable
// or without quorum), as the client's keep-alive finds out. resign gives up
// leadership (deleting the leader key and revoking the lease) and ends the
// context; call it once, when done leading. A replica that loses its lease
// can no longer win any fenced write, so what it still runs cannot act.
func (e *Election) Campaign(ctx context.Context, identity string) (lead context.Context, resign func(), err error) {
	gctx, cancel := context.WithTimeout(ctx, e.timeout)
	lease, err := e.cli.Grant(gctx, e.ttl)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("etcdstore: election: lease: %w", err)
	}
	session, err := concurrency.NewSession(e.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(e.ttl)))
	if err != nil {
		e.revoke(lease.ID)
		return nil, nil, fmt.Errorf("etcdstore: election: session: %w", err)
	}
	// The campaign ends with the session: a campaign whose lease expired
	// while it waited would otherwise win without its key.
	cctx, stop := context.WithCancel(ctx)
	go func() {
		select {
		case <-session.Done():
		case <-cctx.Done():
		}
		stop()
	}()
	el := concurrency.NewElection(session, e.key)
	err = el.Campaign(cctx, identity)
	lost := session.Done()
	select {
	case <-lost:
		if err == nil {
			err = ErrLeaseLost
		}
	default:
	}
	if err != nil {
		stop()
		_ = session.Close()
		if ctx.Err() == nil && errors.Is(err, context.Canceled) {
			err = ErrLeaseLost
		}
		return nil, nil, fmt.Errorf("etcdstore: election: campaign: %w", err)
	}
	// Still ours? (The lease may have ended just as the campaign won.)
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	resp, err := e.cli.Get(rctx, el.Key())
	cancel()
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != el.Rev() {
		stop()
		_ = session.Close()
		if err == nil {
			err = ErrLeaseLost
		}
		return nil, nil, fmt.Errorf("etcdstore: election: campaign: %w", err)
	}
	return cctx, func() {
		stop()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.timeout)
		_ = el.Resign(rctx)
		cancel()
		_ = session.Close()
	}, nil
}

// Leader returns the identity of the replica leading now, and "" if none
// does.
func (e *Election) Leader(ctx context.Context) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	resp, err := e.cli.Get(rctx, e.key+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("etcdstore: election: leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

func (e *Election) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	_, _ = e.cli.Revoke(ctx, id)
}
