package sqlite

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/storetest"
)

// checkRecent checks Recent and RecentAll of every credential against each
// other and against RecentOf(History), and returns prod's Recent.
func checkRecent(t *testing.T, s *Store, saved map[string]*rotation.Record) (ok, bad []string) {
	t.Helper()
	ctx := context.Background()
	all, err := s.RecentAll(ctx)
	if err != nil {
		t.Fatalf("RecentAll: %v", err)
	}
	if len(all) != 3 {
		t.Errorf("RecentAll has %d credentials, want 3", len(all))
	}
	for _, c := range []string{"prod", "new", "fresh"} {
		r, err := s.Recent(ctx, c)
		if err != nil {
			t.Fatalf("Recent(%s): %v", c, err)
		}
		h, err := s.History(ctx, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(r), ids(rotation.RecentOf(h)); !reflect.DeepEqual(got, want) {
			t.Errorf("Recent(%s) = %v, want RecentOf(History) %v", c, got, want)
		}
		if !reflect.DeepEqual(all[c], r) {
			t.Errorf("RecentAll[%s] = %v, want Recent %v", c, ids(all[c]), ids(r))
		}
		storetest.Readable(t, r, saved)
	}
	r, _ := s.Recent(ctx, "prod")
	return storetest.Readable(t, r, saved)
}

// Recent reads as far back as it must whatever rows were edited: an edited
// row is unreadable, included in its place, and never taken for the last
// success, whether the edit hid the done row or made another row claim it.
func TestRecentEditedRows(t *testing.T) {
	for _, tc := range []struct {
		name, id, set string
		ok            []string // prod's readable records
	}{
		{"failure among them", "rb-1", `record = json_set(record, '$.error', 'x')`,
			[]string{"prod/m-1", "prod/rb-2", "prod/f-1", "prod/d-1"}},
		{"done row edited to failed", "d-1", `phase = 'failed'`,
			[]string{"prod/m-1", "prod/rb-2", "prod/rb-1", "prod/f-1", "prod/d-0"}},
		{"failure edited to claim done", "rb-2", `phase = 'done'`,
			[]string{"prod/m-1", "prod/rb-1", "prod/f-1", "prod/d-1"}},
		{"kept failure edited to claim done", "f-1", `phase = 'done'`,
			[]string{"prod/m-1", "prod/rb-2", "prod/rb-1", "prod/d-1"}},
		{"done row moved to look newest", "d-1", `started_at = 9000000000000000000`,
			[]string{"prod/m-1", "prod/rb-2", "prod/rb-1", "prod/f-1", "prod/d-0"}},
		// Then it is older than d-0, the last success as stored: out of
		// sight.
		{"done row moved to look oldest", "d-1", `started_at = 0`,
			[]string{"prod/m-1", "prod/rb-2", "prod/rb-1", "prod/f-1", "prod/d-0"}},
		{"kept flag cleared", "f-1", `record = json_remove(record, '$.kept')`,
			[]string{"prod/m-1", "prod/rb-2", "prod/rb-1", "prod/d-1"}},
		{"mac removed from the done row", "d-1", `mac = x''`,
			[]string{"prod/m-1", "prod/rb-2", "prod/rb-1", "prod/f-1", "prod/d-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			s := openTest(t, path)
			saved := storetest.RecentWorld(t, s)
			rawExec(t, path, `UPDATE rotations SET `+tc.set+` WHERE credential = 'prod' AND id = ?`, tc.id)
			ok, bad := checkRecent(t, s, saved)
			wantBad := []string{"prod/" + tc.id}
			if tc.set == `started_at = 0` {
				wantBad = nil
			}
			if !reflect.DeepEqual(ok, tc.ok) || !reflect.DeepEqual(bad, wantBad) {
				t.Errorf("Recent(prod) = %v, unreadable %v; want %v and %v", ok, bad, tc.ok, wantBad)
			}
		})
	}
}

// A schema 2 journal (before the indexes of schema 3) upgrades with every
// row readable as it was, and reads the same.
func TestUpgradeFromV2(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s := openTest(t, path)
	saved := storetest.RecentWorld(t, s)
	s.Close()
	rawExec(t, path, `DROP INDEX rotations_recent; DROP INDEX rotations_done;
		CREATE INDEX rotations_started ON rotations (started_at, credential, id);
		CREATE INDEX rotations_history ON rotations (credential, started_at);
		PRAGMA user_version = 2`)
	if v := schemaVersion(t, path); v != 2 {
		t.Fatalf("schema version %d, want 2", v)
	}
	s = openTest(t, path)
	if v := schemaVersion(t, path); v != SchemaVersion {
		t.Fatalf("schema version after upgrade %d, want %d", v, SchemaVersion)
	}
	for key, want := range saved {
		got, err := s.Get(ctx, want.Credential, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s after upgrade: %v\n got %+v\nwant %+v", key, err, got, want)
		}
	}
	if ok, bad := checkRecent(t, s, saved); len(ok) != 5 || bad != nil {
		t.Errorf("Recent(prod) after upgrade = %v, unreadable %v", ok, bad)
	}
	// Edits are still caught after the upgrade.
	rawExec(t, path, `UPDATE rotations SET phase = 'failed' WHERE credential = 'prod' AND id = 'd-1'`)
	assertUnreadable(t, s, "prod", "d-1")
}

// The reads that must not grow with history use the indexes of schema 3,
// streamed in order, never a scan of the table.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, statePath(t))
	storetest.RecentWorld(t, s)
	if _, err := s.db.Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]string{
		"history":   selectColumns + ` WHERE credential = 'prod' ORDER BY started_at DESC, id DESC`,
		"newest":    newestQuery,
		"recentAll": recentAllQuery,
	} {
		rows, err := s.db.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, d := range plan {
			if d == "SCAN rotations" || (name == "history" && d == "USE TEMP B-TREE FOR ORDER BY") {
				t.Errorf("%s: plan has %q:\n%v", name, d, plan)
			}
		}
	}
}

func ExampleRecentOf() {
	hist := []*rotation.Record{
		{ID: "3", Phase: rotation.RolledBack},
		{ID: "2", Unreadable: "record fails authentication"},
		{ID: "1", Phase: rotation.Done},
		{ID: "0", Phase: rotation.Done},
	}
	fmt.Println(ids(rotation.RecentOf(hist)))
	// Output: [/3 /2 /1]
}
