package httpissuer_test

import (
	"testing"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
)

// TestAbilitiesFollowConfig: for every combination of identify,
// key.last_used_at, max_active_keys and key.fields, the issuer has exactly
// the optional abilities the config supports, no more; it always says the
// shape of its values (issuers.Fielded), nil fields for single values.
func TestAbilitiesFollowConfig(t *testing.T) {
	for mask := range 16 {
		hasID, hasLU, hasLim, hasF := mask&1 != 0, mask&2 != 0, mask&4 != 0, mask&8 != 0
		c, _ := httpissuer.Preset("openai-admin")
		c.Auth.Token = config.Secret{Ref: "env:T"}
		c.Timeout = config.Duration(1e9)
		if !hasID {
			c.Identify = httpissuer.Identify{}
		}
		if !hasLU {
			c.Key.LastUsedAt = ""
		}
		if hasLim {
			c.MaxActiveKeys = 5
		}
		if hasF {
			c.Key.Value, c.Key.Fields = "", map[string]string{"public": "$.id", "secret": "$.value"}
			c.Verify.Value = "Bearer {{public}}:{{secret}}"
			if hasID {
				c.Identify.ValueField = "secret"
			}
		}
		iss, err := httpissuer.New(httpissuer.Config{API: c, Headers: []httpissuer.Header{{Name: "Authorization", Value: secret.New("x")}}}, nil)
		if err != nil {
			t.Fatalf("mask %04b: %v", mask, err)
		}
		_, id := iss.(issuers.Identifier)
		_, lu := iss.(issuers.UsageReporter)
		kl, lim := iss.(issuers.KeyLimiter)
		f, ok := iss.(issuers.Fielded)
		fd := ok && f.Fields() != nil
		if id != hasID || lu != hasLU || lim != hasLim || !ok || fd != hasF {
			t.Errorf("mask %04b: abilities identify %v, last used %v, key limit %v, fielded %v with fields %v; want %v %v %v true %v", mask, id, lu, lim, ok, fd, hasID, hasLU, hasLim, hasF)
		}
		if lim && kl.MaxActiveKeys() != 5 {
			t.Errorf("mask %04b: MaxActiveKeys = %d, want 5", mask, kl.MaxActiveKeys())
		}
		if fd && (len(f.Fields()) != 2 || f.Fields()[0] != "public") {
			t.Errorf("mask %04b: Fields = %v", mask, f.Fields())
		}
		if _, ok := iss.(issuers.Account); !ok {
			t.Errorf("mask %04b: not an issuers.Account", mask)
		}
	}
}
