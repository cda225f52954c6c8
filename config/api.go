package config

// This file holds the types other packages build on (Duration, Secret,
// SinkSpec, IssuerSpec, Error); load.go, decode.go and validate.go read and
// check a file into them.

import (
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration that also accepts days: "90d", "1d12h", "30s".
type Duration time.Duration

// Secret is a secret-valued field: "env:NAME" or "file:PATH" (literals are
// accepted only where a field's docs say so, e.g. check headers). It is
// resolved when used, never at load time, and prints only its reference.
type Secret struct {
	Ref string
}

// SinkSpec is one entry of a credential's sinks list. Its type-specific
// fields are decoded by the sink's own package through Decode.
type SinkSpec struct {
	entry
}

// IssuerSpec is one entry of the issuers mapping. Its type-specific fields
// are decoded by the issuer's own package through Decode.
type IssuerSpec struct {
	// Name is the entry's key in issuers, which credentials name.
	Name string
	entry
}

// entry is what SinkSpec and IssuerSpec share: a back-end's entry, kept as
// YAML until the back-end's package decodes it (Decode), or, once a
// Backends hook has decoded it at load, as the back-end's config only. Only
// cmd/rekey knows which package a Type belongs to.
type entry struct {
	// Type is the entry's type key, e.g. "file" or "apexverify".
	Type string
	// Field is the entry's path, e.g. "credentials.prod.sinks[1]" or
	// "issuers.apexverify-prod".
	Field string
	File  string
	Line  int

	kind     string // "sink" or "issuer", for messages
	typeLine int    // where type is, for UnknownType
	node     *yaml.Node
	// decoded is what the Backends hook decoded the entry into; once it is
	// set, node is released and Decode hands out this value.
	decoded any
	// budget, during the Backends hooks, is the load's node budget, which
	// the entry's Decode shares.
	budget *int
	// secretEnv is the loaded Config's SecretEnv.
	secretEnv []string
	// secrets are the secret-valued fields Decode found in the entry.
	secrets []SecretRef
}

// Error is one configuration problem, located in the file.
type Error struct {
	File  string
	Line  int    // 0 when unknown
	Field string // dotted path, e.g. "credentials.prod.monitor.window"
	Msg   string

	more int // > 0: this entry counts problems left out (MaxErrors)
}

func (e *Error) Error() string {
	s := ""
	if e.File != "" {
		s = e.File + ":"
		if e.Line > 0 {
			s += strconv.Itoa(e.Line) + ":"
		}
		s += " "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}
