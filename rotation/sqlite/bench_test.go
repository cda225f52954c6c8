package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/storetest"
	"github.com/rekeyhq/rekey/sinks"
)

// Fleet-scale figures (issue 12): go test -run '^$' -bench . ./rotation/sqlite

// benchRecord is a realistic record: two receipts, a full set of
// transitions.
func benchRecord(cred, id string, phase rotation.Phase, at time.Time) *rotation.Record {
	r := &rotation.Record{Credential: cred, ID: id, Phase: phase, Label: cred + "-" + id,
		OldKeyID: "key_old_" + id, OldValue: secret.New(storetest.OldSecret), NewKeyID: "key_new_" + id, NewValue: secret.New(storetest.NewSecret),
		Setup:     "issuer=apexverify-prod;sinks=file:/etc/app.env#KEY,aws-secretsmanager:prod/app",
		StartedAt: at, UpdatedAt: at.Add(time.Hour), FinishedAt: at.Add(time.Hour)}
	for _, sink := range []string{"file:/etc/app.env#KEY", "aws-secretsmanager:prod/app"} {
		r.Receipts = append(r.Receipts, sinks.Receipt{Sink: sink, RotationID: id, Previous: "sha256:abc", At: at})
	}
	for i, p := range []rotation.Phase{rotation.Planned, rotation.Minted, rotation.Verified, rotation.Deployed, rotation.Monitoring, rotation.Revoking, phase} {
		r.Transitions = append(r.Transitions, rotation.Transition{Phase: p, At: at.Add(time.Duration(i) * time.Minute)})
	}
	return r
}

// bulkSave saves recs in one transaction (Save fsyncs each record).
func bulkSave(b *testing.B, s *Store, recs []*rotation.Record) {
	b.Helper()
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	st := tx.Stmt(s.stmt.save)
	for _, r := range recs {
		args, err := s.encode(r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Exec(args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), b.TempDir()+"/state.db", testKey(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// history is n rotations of cred, an hour apart: done, with every fifth
// rolled back, and the newest failing ones rolled back (so Recent returns
// failing+1).
func history(cred string, n, failing int) []*rotation.Record {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []*rotation.Record
	for i := range n {
		phase := rotation.Done
		if i%5 == 4 || i >= n-failing {
			phase = rotation.RolledBack
		}
		recs = append(recs, benchRecord(cred, fmt.Sprintf("r%06d", i), phase, t0.Add(time.Duration(i)*time.Hour)))
	}
	return recs
}

// BenchmarkRecent: one credential with 10,000 rotations; Recent reads 3.
func BenchmarkRecent(b *testing.B) {
	s := benchStore(b)
	bulkSave(b, s, history("prod", 10_000, 2))
	ctx := context.Background()
	for b.Loop() {
		r, err := s.Recent(ctx, "prod")
		if err != nil || len(r) != 3 {
			b.Fatalf("Recent: %d records, %v", len(r), err)
		}
	}
}

// BenchmarkRecentAll: 10,000 credentials with 4 rotations each, the newest
// done (a fleet at rest); RecentAll reads 1 of each.
func BenchmarkRecentAll(b *testing.B) { benchRecentAll(b, 0) }

// BenchmarkRecentAllFailing: the same, but every credential's newest two
// rotations rolled back; RecentAll reads 3 of each.
func BenchmarkRecentAllFailing(b *testing.B) { benchRecentAll(b, 2) }

func benchRecentAll(b *testing.B, failing int) {
	s := benchStore(b)
	var recs []*rotation.Record
	for c := range 10_000 {
		recs = append(recs, history(fmt.Sprintf("cred-%05d", c), 4, failing)...)
	}
	bulkSave(b, s, recs)
	ctx := context.Background()
	for b.Loop() {
		all, err := s.RecentAll(ctx)
		if err != nil || len(all) != 10_000 || len(all["cred-00042"]) != failing+1 {
			b.Fatalf("RecentAll: %d credentials, %v", len(all), err)
		}
	}
}

// BenchmarkUnfinished: 10,000 credentials with 4 rotations each.
func BenchmarkUnfinished(b *testing.B) {
	s := benchStore(b)
	var recs []*rotation.Record
	for c := range 10_000 {
		recs = append(recs, history(fmt.Sprintf("cred-%05d", c), 4, 0)...)
	}
	bulkSave(b, s, recs)
	ctx := context.Background()
	for b.Loop() {
		if un, err := s.Unfinished(ctx); err != nil || len(un) != 0 {
			b.Fatalf("Unfinished: %d, %v", len(un), err)
		}
	}
}

// BenchmarkHistoryPage: `rekey history`'s default page (20) and the count
// of older rotations, of a credential with 10,000 rotations.
func BenchmarkHistoryPage(b *testing.B) {
	s := benchStore(b)
	bulkSave(b, s, history("prod", 10_000, 2))
	ctx := context.Background()
	for b.Loop() {
		h, err := s.History(ctx, "prod", 20)
		if err != nil || len(h) != 20 {
			b.Fatalf("History: %d, %v", len(h), err)
		}
		if n, err := s.Count(ctx, "prod"); err != nil || n != 10_000 {
			b.Fatalf("Count: %d, %v", n, err)
		}
	}
}

// BenchmarkSave: one durable (fsynced) Save of an update to a rotation.
func BenchmarkSave(b *testing.B) {
	s := benchStore(b)
	bulkSave(b, s, history("prod", 1000, 0))
	r := benchRecord("prod", "new", rotation.Monitoring, time.Now())
	ctx := context.Background()
	for b.Loop() {
		if err := s.Save(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
