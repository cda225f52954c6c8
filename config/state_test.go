package config

import (
	"testing"
	"time"
)

func TestStateBackendDefaults(t *testing.T) {
	cfg, err := Load("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Backend != BackendSQLite || cfg.State.Etcd != nil {
		t.Errorf("a config without state.backend: backend %q, etcd %+v; want sqlite and none", cfg.State.Backend, cfg.State.Etcd)
	}

	cfg, err = Load("testdata/good/etcd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.State.Etcd
	if cfg.State.Backend != BackendEtcd || e == nil || len(e.Endpoints) != 3 || e.Prefix != "/rekey/prod/" ||
		time.Duration(e.LockTTL) != 20*time.Second || e.Username.String() != "env:ETCD_USERNAME" {
		t.Errorf("etcd.yaml: %+v", cfg.State)
	}

	cfg, err = Parse("rekey.yaml", []byte(`version: 1
state:
  backend: etcd
  encryption_key: env:K
  etcd: {endpoints: ["http://127.0.0.1:2379"]}
issuers: {apex: {type: apexverify, management_token: env:T}}
credentials:
  api: {issuer: apex, label: "api-{{date}}", rotate_every: 90d, sinks: [{type: file, path: /tmp/k, format: raw}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	e = cfg.State.Etcd
	if e.Prefix != DefaultEtcdPrefix || e.LockTTL != DefaultEtcdLockTTL || e.DialTimeout != DefaultEtcdDialTimeout || e.RequestTimeout != DefaultEtcdTimeout {
		t.Errorf("etcd defaults: %+v", e)
	}
}
