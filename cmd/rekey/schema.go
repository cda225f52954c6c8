package main

import (
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/config/schema"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/awsiam"
	"github.com/rekeyhq/rekey/issuers/execissuer"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
	"github.com/rekeyhq/rekey/sinks/awssm"
	"github.com/rekeyhq/rekey/sinks/file"
	"github.com/rekeyhq/rekey/sinks/ghactions"
	"github.com/rekeyhq/rekey/sinks/kubernetes"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
)

// schemaIssuers and schemaSinks are the back-ends decodeIssuer and the
// sink switch in build.go know, with the config type each decodes into.
// A new back-end goes into both places; TestSchemaCoversEveryBackend
// checks that none is missing here.
var (
	schemaIssuers = []schema.Backend{
		{Type: apexverify.Type, Config: apexverify.FileConfig{}, Required: []string{"management_token"}},
		{Type: awsiam.Type, Config: awsiam.FileConfig{}, Required: []string{"user_name"}},
		{Type: httpissuer.Type, Config: httpissuer.FileConfig{}, Required: []string{"auth"}, Enums: httpPresetEnum()},
		{Type: execissuer.Type, Config: execissuer.FileConfig{}, Required: []string{"command"}},
	}
	schemaSinks = []schema.Backend{
		{Type: file.Type, Config: file.Config{}, Required: []string{"path"},
			Enums: map[string][]any{"format": {file.FormatDotenv, file.FormatRaw, file.FormatJSON}}},
		{Type: awssm.Type, Config: awssm.Config{}, Required: []string{"secret_id"}},
		{Type: vaultkv.Type, Config: vaultkv.Config{}, Required: []string{"mount", "path"}, // and key or fields
			Enums: map[string][]any{"kv_version": {0, 1, 2}}},
		{Type: ghactions.Type, Config: ghactions.Config{}, // name or fields
			Enums: map[string][]any{"visibility": {"all", "private", "selected"}}},
		{Type: kubernetes.Type, Config: kubernetes.Config{}, Required: []string{"namespace", "name"}}, // and key or fields
	}
)

// httpPresetEnum lists the http issuer's presets for its preset field.
func httpPresetEnum() map[string][]any {
	var names []any
	for _, n := range httpissuer.PresetNames() {
		names = append(names, n)
	}
	return map[string][]any{"preset": names}
}

// configSchema is the JSON Schema of the config file that `rekey schema`
// prints and config/rekey.schema.json holds.
func configSchema() ([]byte, error) { return schema.Generate(schemaIssuers, schemaSinks) }

func (a *app) schemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema (draft 2020-12) of the config file, for editors",
		Long: `schema prints the JSON Schema of rekey's config file, generated from the
types rekey decodes it into. The same schema is committed as
config/rekey.schema.json; point an editor at it with a first line such as

  # yaml-language-server: $schema=../config/rekey.schema.json

The schema catches unknown keys, wrong types and malformed durations and
secret references as you type; rekey validate remains the full check.`,
		Example: `  rekey schema > rekey.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := configSchema()
			if err != nil {
				return fail(exitFailed, err)
			}
			_, err = a.stdout.Write(b)
			return err
		},
	}
}
