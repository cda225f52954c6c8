package etcdstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/etcdtest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/storetest"
)

const rekeyPassword = "pw_ETCDPASSWORD_5c1e"

// A user allowed only the journal's prefix can run the whole journal:
// records, locks and leases. A wrong password fails without echoing it.
func TestAuthPrefixOnly(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t)
	c.EnableAuth(t, "rekey", rekeyPassword, "/auth/")
	cc := ClientConfig{Endpoints: c.Endpoints(), Username: "rekey", Password: secret.New(rekeyPassword)}
	s, err := Open(ctx, cc, testKey(1), Options{Prefix: "/auth/"}, nil)
	if err != nil {
		t.Fatalf("Open as rekey: %v", err)
	}
	defer s.Close()
	storetest.Save(t, s, storetest.FullRecord())
	if h, err := s.RecentAll(ctx); err != nil || len(h) != 1 {
		t.Errorf("RecentAll as rekey = %v, %v", h, err)
	}
	other, err := Open(ctx, cc, testKey(1), Options{Prefix: "/auth/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	unlock, err := s.Lock(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Lock(ctx, "prod"); !errors.Is(err, rotation.ErrBusy) {
		t.Errorf("second Lock as rekey: %v, want ErrBusy", err)
	}
	unlock()

	// Outside its prefix the user may do nothing.
	if _, err := Open(ctx, cc, testKey(1), Options{Prefix: "/elsewhere/"}, nil); err == nil {
		t.Error("Open outside the user's prefix succeeded")
	}
	cc.Password = secret.New("pw_WRONGPASSWORD_77aa")
	_, err = Open(ctx, cc, testKey(1), Options{Prefix: "/auth/"}, nil)
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "WRONGPASSWORD") {
		t.Errorf("error echoes the password: %v", err)
	}
}

// Over TLS with a client certificate, as state.etcd's ca_cert, cert and
// key configure it; without the client certificate the members refuse.
func TestTLSClientCertificate(t *testing.T) {
	ctx := context.Background()
	c, files := etcdtest.StartTLS(t)
	cc := ClientConfig{Endpoints: c.Endpoints(), CACert: files.CA, Cert: files.Cert, Key: files.Key}
	s, err := Open(ctx, cc, testKey(1), Options{Prefix: "/tls/", RequestTimeout: 3e9}, nil)
	if err != nil {
		t.Fatalf("Open over TLS: %v", err)
	}
	defer s.Close()
	storetest.Save(t, s, storetest.FullRecord())

	noCert := ClientConfig{Endpoints: c.Endpoints(), CACert: files.CA}
	if s, err := Open(ctx, noCert, testKey(1), Options{Prefix: "/tls/", RequestTimeout: 3e9}, nil); err == nil {
		s.Close()
		t.Error("Open without a client certificate succeeded")
	}
	if _, err := Dial(ctx, ClientConfig{Endpoints: c.Endpoints(), Cert: files.Cert}, nil); err == nil {
		t.Error("Dial with a cert and no key succeeded")
	}
}
