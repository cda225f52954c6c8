package httpissuer

import (
	"net/http"
	"slices"
	"strings"
)

// A preset is a complete description of one vendor's key API, written
// from the vendor's public API reference (cited on each), which an entry
// names with `preset:` and overrides field by field (see FileConfig).
// Presets never use a vendor's "roll" or "regenerate" endpoint: those
// replace a key's value in place, so the old value stops working the
// moment the new one exists — before it reached any sink, which is the
// downtime rekey exists to avoid. A preset creates a second key instead.
type preset struct {
	config func() FileConfig
	// needs are fields the user must set, with what to set.
	needs map[string]string
}

var presets = map[string]preset{
	"openai-admin": {config: openAIAdmin, needs: map[string]string{
		"auth.token": "the organization admin key that manages admin keys, e.g. env:OPENAI_ADMIN_KEY"}},
	"cloudflare-account-tokens": {config: cloudflareAccountTokens, needs: map[string]string{
		"base_url":    "the account's API root, https://api.cloudflare.com/client/v4/accounts/ACCOUNT_ID",
		"auth.token":  "a user API token with the Account API Tokens Edit permission, e.g. env:CLOUDFLARE_API_TOKEN",
		"create.body": `the new token's name and policies, e.g. {"name": "{{label}}", "policies": [...]}: Cloudflare has no default permissions`}},
	"datadog-api-keys": {config: datadogAPIKeys, needs: map[string]string{
		"auth.token": "an API key of the organization (DD-API-KEY), e.g. env:DD_API_KEY",
		"auth.extra": "the application key with api_keys_write: [{header: DD-APPLICATION-KEY, token: env:DD_APP_KEY}]"}},
	"sendgrid-api-keys": {config: sendgridAPIKeys, needs: map[string]string{
		"auth.token": "an API key with the api_keys scopes (api_keys.create, .read, .delete), e.g. env:SENDGRID_API_KEY"}},
	"twilio-api-keys": {config: twilioAPIKeys, needs: map[string]string{
		"base_url":   "the account's API root, https://api.twilio.com/2010-04-01/Accounts/ACCOUNT_SID",
		"auth.basic": "the account SID and auth token (or a Main API key's SID and secret): {username: env:TWILIO_ACCOUNT_SID, password: env:TWILIO_AUTH_TOKEN}"}},
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Preset returns the named preset's config as plain config (what an entry
// naming it starts from), and whether it exists.
func Preset(name string) (FileConfig, bool) {
	p, ok := presets[name]
	if !ok {
		return FileConfig{}, false
	}
	return p.config(), true
}

// presetNeeds reports the fields an entry naming preset left unset.
func presetNeeds(name string, user FileConfig) map[string]string {
	p, ok := presets[name]
	if !ok {
		return nil
	}
	missing := map[string]string{}
	for field, hint := range p.needs {
		set := false
		switch field {
		case "base_url":
			set = user.BaseURL != ""
		case "auth.token":
			set = user.Auth.Token.IsSet()
		case "auth.extra":
			set = len(user.Auth.Extra) > 0
		case "auth.basic":
			set = user.Auth.Basic.Username.IsSet() || user.Auth.Basic.Password.IsSet()
		case "create.body":
			set = strings.TrimSpace(user.Create.Body) != ""
		}
		if !set {
			missing[field] = hint
		}
	}
	return missing
}

// openAIAdmin: OpenAI organization admin API keys.
// Reference: https://platform.openai.com/docs/api-reference/admin-api-keys
// (create POST /v1/organization/admin_api_keys {"name"} → the key object
// with "value", shown only then; list with after/limit/order and
// has_more/last_id; retrieve and delete by key_id; errors
// {"error": {"message", "type", ...}}). Keys are deleted, not revoked;
// the listed "redacted_value" (e.g. "sk-admin...def") identifies a key.
func openAIAdmin() FileConfig {
	const path = "/v1/organization/admin_api_keys"
	return FileConfig{
		BaseURL: "https://api.openai.com",
		Auth:    Auth{Header: "Authorization", Value: "Bearer {{token}}"},
		Create:  Call{Method: http.MethodPost, Path: path, Body: `{"name": "{{label}}"}`},
		Get:     Call{Method: http.MethodGet, Path: path + "/{{id}}"},
		List: ListCall{
			Call:       Call{Method: http.MethodGet, Path: path, Query: map[string]string{"limit": "100", "order": "desc"}},
			Items:      "$.data[*]",
			Pagination: Pagination{Type: "cursor", Cursor: "$.last_id", HasMore: "$.has_more", Param: "after"},
		},
		Revoke: RevokeCall{Call: Call{Method: http.MethodDelete, Path: path + "/{{id}}"}, Deletes: true},
		// An admin key may list admin keys: the cheapest call that needs one.
		Verify: VerifyCall{Method: http.MethodGet, Path: path, Query: map[string]string{"limit": "1"},
			Header: "Authorization", Value: "Bearer {{key}}", ExpectStatus: []int{200}, RefusedStatus: []int{401, 403}},
		Key:      Mapping{ID: "$.id", Value: "$.value", Label: "$.name", CreatedAt: "$.created_at", LastUsedAt: "$.last_used_at"},
		Identify: Identify{Match: "redacted", Field: "$.redacted_value", Head: 8, Tail: 3, Separator: "..."},
		Errors:   ErrorMapping{Message: "$.error.message"},
	}
}

// cloudflareAccountTokens: Cloudflare account-owned API tokens, under
// base_url https://api.cloudflare.com/client/v4/accounts/{account_id}.
// Reference: https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/
// (create POST /accounts/{account_id}/tokens {"name", "policies"} → result
// with "value", shown only then; list GET …/tokens?page=&per_page= with
// result_info; get and delete …/tokens/{token_id}; verify GET
// …/tokens/verify with the token itself; every answer is the envelope
// {"success", "errors": [{"code", "message"}], "messages", "result"}).
// Account tokens, not user tokens: the management token (a user token)
// is then not itself one of the listed keys.
//
// Never PUT …/tokens/{token_id}/value ("Roll Token"): it gives the token a
// new value and the old value stops working at once, before the new one
// is in any sink. Validate refuses a create.path of that shape.
func cloudflareAccountTokens() FileConfig {
	return FileConfig{
		Auth:   Auth{Header: "Authorization", Value: "Bearer {{token}}"},
		Create: Call{Method: http.MethodPost, Path: "/tokens", Object: "$.result"},
		Get:    Call{Method: http.MethodGet, Path: "/tokens/{{id}}", Object: "$.result"},
		List: ListCall{
			Call:       Call{Method: http.MethodGet, Path: "/tokens"},
			Items:      "$.result[*]",
			Pagination: Pagination{Type: "page", Param: "page", SizeParam: "per_page", Size: 50},
		},
		Revoke: RevokeCall{Call: Call{Method: http.MethodDelete, Path: "/tokens/{{id}}"}, Deletes: true},
		Verify: VerifyCall{Method: http.MethodGet, Path: "/tokens/verify",
			Header: "Authorization", Value: "Bearer {{key}}", ExpectStatus: []int{200}, RefusedStatus: []int{401, 403}},
		Key: Mapping{ID: "$.id", Value: "$.value", Label: "$.name", CreatedAt: "$.issued_on", LastUsedAt: "$.last_used_on",
			Status: "$.status", StatusMap: StatusMap{Active: []string{"active"}, Revoked: []string{"disabled", "expired"}}},
		Errors: ErrorMapping{Message: "$.errors[0].message"},
	}
}

// datadogAPIKeys: Datadog API keys (v2 key management, JSON:API).
// Reference: https://docs.datadoghq.com/api/latest/key-management/
// (create POST /api/v2/api_keys {"data": {"type": "api_keys",
// "attributes": {"name"}}} → 201 with data.attributes.key; list with
// page[size]/page[number] from 0; get and delete /api/v2/api_keys/{id},
// delete → 204; errors {"errors": ["..."]}; management needs DD-API-KEY
// and DD-APPLICATION-KEY) and
// https://docs.datadoghq.com/api/latest/authentication/ (GET
// /api/v1/validate with DD-API-KEY: 200 {"valid": true}, 403 if refused).
// Listed keys show their last four characters, attributes.last4.
func datadogAPIKeys() FileConfig {
	zero := 0
	return FileConfig{
		BaseURL: "https://api.datadoghq.com",
		Auth:    Auth{Header: "DD-API-KEY", Value: "{{token}}"},
		Create: Call{Method: http.MethodPost, Path: "/api/v2/api_keys", Object: "$.data", ExpectStatus: []int{201},
			Body: `{"data": {"type": "api_keys", "attributes": {"name": "{{label}}"}}}`},
		Get: Call{Method: http.MethodGet, Path: "/api/v2/api_keys/{{id}}", Object: "$.data"},
		List: ListCall{
			Call:       Call{Method: http.MethodGet, Path: "/api/v2/api_keys", Query: map[string]string{"sort": "-created_at"}},
			Items:      "$.data[*]",
			Pagination: Pagination{Type: "page", Param: "page[number]", Start: &zero, SizeParam: "page[size]", Size: 100},
		},
		Revoke: RevokeCall{Call: Call{Method: http.MethodDelete, Path: "/api/v2/api_keys/{{id}}", ExpectStatus: []int{204}}, Deletes: true},
		Verify: VerifyCall{Method: http.MethodGet, Path: "/api/v1/validate",
			Header: "DD-API-KEY", Value: "{{key}}", ExpectStatus: []int{200}, RefusedStatus: []int{401, 403}},
		Key:      Mapping{ID: "$.id", Value: "$.attributes.key", Label: "$.attributes.name", CreatedAt: "$.attributes.created_at"},
		Identify: Identify{Match: "suffix", Field: "$.attributes.last4", Length: 4},
		Errors:   ErrorMapping{Message: "$.errors[0]"},
	}
}

// sendgridAPIKeys: Twilio SendGrid API keys (v3).
// Reference: https://www.twilio.com/docs/sendgrid/api-reference/api-keys
// (create POST /v3/api_keys {"name", "scopes"} → 201 {"api_key",
// "api_key_id", "name", "scopes"}, the value shown only then; omitting
// scopes makes a Full Access key; list GET /v3/api_keys?limit= →
// {"result": [{"name", "api_key_id"}]}, no further paging; get GET
// /v3/api_keys/{api_key_id} → {"result": [{"name", "api_key_id",
// "scopes"}]}, 404 if unknown; delete → 204; at most 100 keys per
// account, a create beyond that answered 403; errors {"errors": [{"field",
// "message"}]}) and
// https://www.twilio.com/docs/sendgrid/api-reference/api-key-permissions
// (GET /v3/scopes lists the scopes of the key that calls it: any working
// key may call it). SendGrid shows no creation or last-used time. A value
// is SG.<api_key_id>.<secret>: it names its own key.
func sendgridAPIKeys() FileConfig {
	const path = "/v3/api_keys"
	return FileConfig{
		BaseURL:       "https://api.sendgrid.com",
		MaxActiveKeys: 100,
		Auth:          Auth{Header: "Authorization", Value: "Bearer {{token}}"},
		Create:        Call{Method: http.MethodPost, Path: path, Body: `{"name": "{{label}}"}`, ExpectStatus: []int{201}},
		Get:           Call{Method: http.MethodGet, Path: path + "/{{id}}", Object: "$.result[0]"},
		List: ListCall{
			Call:  Call{Method: http.MethodGet, Path: path, Query: map[string]string{"limit": "100"}},
			Items: "$.result[*]",
		},
		Revoke: RevokeCall{Call: Call{Method: http.MethodDelete, Path: path + "/{{id}}", ExpectStatus: []int{204}}, Deletes: true},
		Verify: VerifyCall{Method: http.MethodGet, Path: "/v3/scopes",
			Header: "Authorization", Value: "Bearer {{key}}", ExpectStatus: []int{200}, RefusedStatus: []int{401, 403}},
		Key:      Mapping{ID: "$.api_key_id", Value: "$.api_key", Label: "$.name"},
		Identify: Identify{Match: "pattern", Field: "$.api_key_id", Pattern: `^SG\.([A-Za-z0-9_-]+)\.`},
		// 403 is also "access forbidden" (a management key without the
		// api_keys scopes): only the limit's message means the limit.
		Errors: ErrorMapping{Message: "$.errors[0].message", KeyLimitStatus: []int{403}, KeyLimitMessage: `(?i)more than \d+ api keys`},
	}
}

// twilioAPIKeys: Twilio API keys (Standard keys), a SID and a secret,
// under base_url https://api.twilio.com/2010-04-01/Accounts/{AccountSid}.
// Reference: https://www.twilio.com/docs/iam/api-keys/key-resource-v2010
// (create POST …/Keys.json, form-encoded FriendlyName → 201 {"sid",
// "friendly_name", "date_created", "date_updated", "secret"}, the secret
// shown only then; list GET …/Keys.json?PageSize= → {"keys": [...],
// "next_page_uri", "page", "page_size", …}, next_page_uri null on the last
// page; fetch and delete …/Keys/{sid}.json, delete → 204; dates are RFC
// 2822) and https://www.twilio.com/docs/usage/requests-to-twilio (basic
// auth with the account SID and auth token, or an API key's SID and
// secret; errors {"code", "message", "more_info", "status"}) and
// https://www.twilio.com/docs/iam/keys/api (a Standard key cannot reach
// the Accounts or Keys resources: only a Main key or the auth token can
// manage keys). A Standard key can read the account's messages, so verify
// lists one (GET …/Messages.json?PageSize=1). Twilio shows no last-used
// time; the key's SID is its ID and a field of the value.
func twilioAPIKeys() FileConfig {
	return FileConfig{
		Create: Call{Method: http.MethodPost, Path: "/Keys.json", Form: map[string]string{"FriendlyName": "{{label}}"}, ExpectStatus: []int{201}},
		Get:    Call{Method: http.MethodGet, Path: "/Keys/{{id}}.json"},
		List: ListCall{
			Call:       Call{Method: http.MethodGet, Path: "/Keys.json", Query: map[string]string{"PageSize": "100"}},
			Items:      "$.keys[*]",
			Pagination: Pagination{Type: "url", Cursor: "$.next_page_uri"},
		},
		Revoke: RevokeCall{Call: Call{Method: http.MethodDelete, Path: "/Keys/{{id}}.json", ExpectStatus: []int{204}}, Deletes: true},
		Verify: VerifyCall{Method: http.MethodGet, Path: "/Messages.json", Query: map[string]string{"PageSize": "1"},
			Basic: BasicTemplate{Username: "{{sid}}", Password: "{{secret}}"}, ExpectStatus: []int{200}, RefusedStatus: []int{401, 403}},
		Key: Mapping{ID: "$.sid", Fields: map[string]string{"sid": "$.sid", "secret": "$.secret"}, Label: "$.friendly_name",
			CreatedAt: "$.date_created"},
		Identify: Identify{Match: "pattern", ValueField: "sid", Field: "$.sid", Pattern: `^(SK[0-9a-fA-F]{32})$`},
		Errors:   ErrorMapping{Message: "$.message"},
	}
}
