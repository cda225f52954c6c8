package etcdtest

import (
	"context"
	"testing"
	"time"
)

func TestStartOne(t *testing.T) {
	c := Start(t)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get = %v, %v", resp, err)
	}
}

// A three-member cluster keeps serving with a follower down, and the
// member comes back with its data. (Stopping the leader makes writes wait
// for an election: failover tests do that on purpose.)
func TestClusterMemberStopStart(t *testing.T) {
	c := StartCluster(t, 3)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}
	follower := c.Members[(c.Leader(t)+1)%3]
	follower.Stop()
	if _, err := cli.Put(ctx, "k", "2"); err != nil {
		t.Fatalf("Put with one member down: %v", err)
	}
	follower.Start()
	st, err := cli.Status(ctx, follower.ClientURL)
	if err != nil {
		t.Fatalf("Status of the restarted member: %v", err)
	}
	if st.Header.Revision < 3 {
		t.Errorf("restarted member at revision %d, want the writes made while it was down", st.Header.Revision)
	}
}

func TestStartTLS(t *testing.T) {
	c, files := StartTLS(t)
	if files.CA == "" || c.Endpoints()[0][:8] != "https://" {
		t.Fatalf("StartTLS = %v, %+v", c.Endpoints(), files)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
}
