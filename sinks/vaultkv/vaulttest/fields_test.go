package vaulttest

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks/sinktest"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
)

var pairFields = map[string]string{sinktest.FieldID: "access_key_id", sinktest.FieldSecret: "secret_access_key"}

func pairOf(data map[string]any) map[string]string {
	out := map[string]string{}
	for f, pl := range pairFields {
		if v, ok := data[pl].(string); ok {
			out[f] = v
		}
	}
	return out
}

func seedData(fields map[string]string) map[string]any {
	data := map[string]any{"username": "crm"}
	for f, v := range fields {
		data[pairFields[f]] = v
	}
	return data
}

func TestFieldsContractKV2(t *testing.T) {
	srv := Start(t)
	sinktest.RunFields(t, func(t *testing.T) sinktest.FieldsFixture {
		p := newPath("fields")
		return sinktest.FieldsFixture{
			Sink: newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Fields: pairFields, Auth: tokenAuth(t, srv.RootToken)}, nil),
			Peek: func(t *testing.T) map[string]string { return pairOf(kv2Data(t, srv.Root, p)) },
			Seed: func(t *testing.T, fields map[string]string) { kv2Put(t, srv.Root, p, seedData(fields)) },
		}
	})
}

func TestFieldsContractKV1(t *testing.T) {
	srv := Start(t)
	sinktest.RunFields(t, func(t *testing.T) sinktest.FieldsFixture {
		p := newPath("fields")
		return sinktest.FieldsFixture{
			Sink: newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV1Mount, Path: p, Fields: pairFields, KVVersion: 1, Auth: tokenAuth(t, srv.RootToken)}, nil),
			Peek: func(t *testing.T) map[string]string {
				s, err := srv.Root.Logical().Read(KV1Mount + "/" + p)
				if err != nil {
					t.Fatal(err)
				}
				if s == nil {
					return map[string]string{}
				}
				return pairOf(s.Data)
			},
			Seed: func(t *testing.T, fields map[string]string) {
				if _, err := srv.Root.Logical().Write(KV1Mount+"/"+p, seedData(fields)); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

// TestFieldsOneVersionPerPair: a pair is one new KV v2 version holding
// both fields and the secret's other fields; no version holds half of it.
func TestFieldsOneVersionPerPair(t *testing.T) {
	srv := Start(t)
	p := newPath("fields")
	before := kv2Put(t, srv.Root, p, map[string]any{"username": "crm", "access_key_id": "AKIAOLD", "secret_access_key": "old-secret"})
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Fields: pairFields, Auth: tokenAuth(t, srv.RootToken)}, nil)
	r, err := s.Put(context.Background(), secret.NewFields(map[string]string{"id": "AKIANEW", "secret": "new-secret"}), "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "vault-kv:" + KV2Mount + "/" + p + "#access_key_id,secret_access_key"; s.Name() != want {
		t.Errorf("Name() = %q, want %q", s.Name(), want)
	}
	if r.Version != "2" || before != 1 {
		t.Errorf("receipt version %q after seeded version %d, want one new version 2", r.Version, before)
	}
	got := kv2Data(t, srv.Root, p)
	if got["username"] != "crm" || got["access_key_id"] != "AKIANEW" || got["secret_access_key"] != "new-secret" {
		t.Errorf("secret fields after put: %v names", len(got))
	}
}
