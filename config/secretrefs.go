package config

import (
	"cmp"
	"slices"
)

// SecretRef is one secret-valued field of a loaded config: where it is and
// the reference it holds (never a resolved value).
type SecretRef struct {
	Field  string // e.g. "issuers.apex.management_token"
	File   string
	Line   int
	Secret Secret
}

// SecretRefs returns every secret field set in c, in file order: those of
// the config's own blocks, and those of the issuer and sink entries that a
// Backends hook decoded at load (LoadWith; with Load, entries are not
// decoded and their secrets are not listed). `rekey validate` resolves each
// to check that it can be read.
func (c *Config) SecretRefs() []SecretRef {
	refs := slices.Clone(c.secrets)
	for _, is := range c.Issuers {
		refs = append(refs, is.secrets...)
	}
	for _, cc := range c.Credentials {
		for i := range cc.Sinks {
			refs = append(refs, cc.Sinks[i].secrets...)
		}
	}
	slices.SortStableFunc(refs, func(a, b SecretRef) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Field, b.Field))
	})
	return refs
}
