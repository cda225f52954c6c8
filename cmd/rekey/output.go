package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/spf13/cobra"
)

// The -o/--output vocabulary, one for every command that answers: a table
// (or a few lines) for a person, or one JSON document for a script.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// outputFlag adds -o/--output to cmd and returns the value; check it with
// parseOutput in RunE. "text", history's older name for the table, is
// still accepted.
func outputFlag(cmd *cobra.Command) *string {
	out := new(string)
	cmd.Flags().StringVarP(out, "output", "o", outputTable, "output format: table | json")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{outputTable + "\tfor a person", outputJSON + "\tone JSON document on stdout"}, cobra.ShellCompDirectiveNoFileComp
	})
	return out
}

// parseOutput checks an -o value: table (or text) or json; anything else
// is a usage error.
func parseOutput(s string) (string, error) {
	switch s {
	case outputTable, "text", "":
		return outputTable, nil
	case outputJSON:
		return outputJSON, nil
	}
	return "", fail(exitUsage, fmt.Errorf("-o %q: want table or json", s))
}

// writeJSON writes v to stdout as one indented JSON document.
func (a *app) writeJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(exitFailed, err)
	}
	return nil
}

// completeCredential completes a command's first argument with the
// credential names of the config at --config ($REKEY_CONFIG,
// ./rekey.yaml). It reads no secret; a config that does not load
// completes nothing.
func (a *app) completeCredential(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if a.configPath == "" {
		a.configPath = os.Getenv("REKEY_CONFIG")
	}
	if a.configPath == "" {
		a.configPath = "rekey.yaml"
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := slices.Sorted(maps.Keys(cfg.Credentials))
	return names, cobra.ShellCompDirectiveNoFileComp
}
