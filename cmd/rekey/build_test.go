package main

import (
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
)

// A credential's setup, which binds its journal (I8), is the string
// journals have carried since they were first bound: "apexverify", the
// base URL without a trailing slash, and the sorted sink names.
func TestSetupString(t *testing.T) {
	iss, err := apexverify.New(apexverify.Config{BaseURL: "https://api.example//", ManagementToken: secret.New("t")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := file.New(file.Config{Path: "/b/app.env", Key: "K"}, nil)
	b, _ := file.New(file.Config{Path: "/a/key", Format: "raw"}, nil)
	if got, want := setupOf(iss, apexverify.Type, []sinks.Sink{a, b}), "apexverify https://api.example; sinks: file:/a/key, file:/b/app.env#K"; got != want {
		t.Errorf("setup = %q, want %q", got, want)
	}
	if got := setupOf(struct{ issuers.Issuer }{iss}, "other", []sinks.Sink{b}); got != "other; sinks: file:/a/key" {
		t.Errorf("setup of an issuer that names no account = %q", got)
	}
}
