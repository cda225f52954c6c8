package etcdstore

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/rotation"
)

var _ rotation.ChangeWatcher = (*Store)(nil)

// Bounds of the wait before watching again after the watch broke.
const (
	rewatchMin = 500 * time.Millisecond
	rewatchMax = 10 * time.Second
)

// WatchChanges calls changed with the credential of each record any process
// saves from now on (rotation.ChangeWatcher). Every Save puts the
// credential's summary key in its transaction, so one watch on the
// summaries sees every write, and costs nothing while nothing is written.
//
// The watch requires a leader: on a member that lost its quorum it breaks
// rather than going quiet. It then starts again, after a wait that doubles
// up to ten seconds while it keeps failing, from the revision after the
// last one it saw, so etcd replays what happened in between; only when that
// history is compacted (or the starting revision could not be read) does
// it report "" — every credential may have changed.
func (s *Store) WatchChanges(ctx context.Context, changed func(credential string)) {
	prefix := s.opt.Prefix + "credentials/"
	clock := clockwork.NewRealClock()
	wait := rewatchMin
	pause := func() bool {
		err := retry.Sleep(ctx, clock, wait)
		wait = min(2*wait, rewatchMax)
		return err == nil
	}
	var next int64 // the revision to watch from; 0: read it first
	missed := false
	for ctx.Err() == nil {
		if next == 0 {
			rctx, cancel := s.reqCtx(ctx)
			resp, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
			cancel()
			if err != nil {
				missed = true
				if !pause() {
					return
				}
				continue
			}
			next = resp.Header.Revision + 1
			if missed {
				changed("")
				missed = false
			}
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(next), clientv3.WithFilterDelete()) {
			if resp.CompactRevision != 0 {
				next, missed = 0, true
				break
			}
			if resp.Err() != nil {
				break
			}
			wait = rewatchMin
			for _, ev := range resp.Events {
				next = ev.Kv.ModRevision + 1
				if name, err := url.PathUnescape(strings.TrimPrefix(string(ev.Kv.Key), prefix)); err == nil {
					changed(name)
				}
			}
		}
		cancel()
		if ctx.Err() != nil || !pause() {
			return
		}
	}
}
