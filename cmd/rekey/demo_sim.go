package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
)

// demoSim is where `rekey demo` finds its simulator: in-process (the
// default), or a running `rekey sim` named by --sim, whose journal, keys
// and config the demo then leaves working with --keep.
type demoSim struct {
	url       string
	tokenFile string
}

func (d *demoSim) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.url, "sim", "", "run against a running `rekey sim` at this URL instead of an in-process simulator (with --keep, the kept config keeps working against it)")
	cmd.Flags().StringVar(&d.tokenFile, "sim-token-file", "", "the running simulator's management token file (rekey sim --token-file); required with --sim")
}

// start returns the simulator: in-process (sim non-nil, stop closes it), or
// the one at --sim (sim nil, stop a no-op) with the token from its file.
func (d demoSim) start() (sim *apexsim.Sim, url, token string, stop func(), err error) {
	if d.url == "" {
		if d.tokenFile != "" {
			return nil, "", "", nil, fail(exitUsage, errors.New("--sim-token-file needs --sim"))
		}
		// New keys take a moment to start working, as real SaaS keys
		// sometimes do.
		sim = apexsim.New(apexsim.Options{ActivationDelay: 700 * time.Millisecond})
		url, stop = sim.Start()
		return sim, url, sim.ManagementToken(), stop, nil
	}
	if d.tokenFile == "" {
		return nil, "", "", nil, fail(exitUsage, errors.New("--sim needs --sim-token-file (the file rekey sim --token-file wrote)"))
	}
	// The token file is read the way a config's file: reference is.
	tok, err := config.Secret{Ref: "file:" + d.tokenFile}.Resolve()
	if err != nil {
		return nil, "", "", nil, fail(exitUsage, fmt.Errorf("--sim-token-file: %w", err))
	}
	return nil, strings.TrimRight(d.url, "/"), tok.Reveal(), func() {}, nil
}

func (d demoSim) what() string {
	if d.url == "" {
		return " (in-process)"
	}
	return " (rekey sim)"
}

// keptNote is the demo's last line with --keep: where the files are and
// whether its config still works.
func (d demoSim) keptNote(dir string) string {
	if d.url == "" {
		return fmt.Sprintf("kept %s (its config names the demo's simulator, which stopped with it; to keep one that works, run the demo against rekey sim: --sim URL --sim-token-file FILE)", dir)
	}
	return fmt.Sprintf("kept %s; its config works against the simulator at %s: rekey -c %s/rekey.yaml status", dir, d.url, dir)
}

// demoRefusals counts the in-process simulator's 401s: outages (revoked or
// unknown keys) and rekey's own verifies of a key still activating. An
// external simulator's are not known here (0, 0).
func demoRefusals(sim *apexsim.Sim) (outages, activating int) {
	if sim == nil {
		return 0, 0
	}
	for _, r := range sim.Refusals() {
		if r.Reason == apexsim.RefusedNotYetActive {
			activating++
		} else {
			outages++
		}
	}
	return outages, activating
}

// demoKeys asks the issuer how the old key ended and which key, in what
// state, the sink holds now (current, read with getErr).
func demoKeys(ctx context.Context, iss *apexverify.Issuer, oldID string, current secret.Value, getErr error) (oldStatus, newID, newStatus string) {
	if k, err := iss.Get(ctx, oldID); err == nil {
		oldStatus = string(k.Status)
	}
	if getErr == nil {
		if k, err := iss.Identify(ctx, current); err == nil {
			newID, newStatus = k.ID, string(k.Status)
		}
	}
	return oldStatus, newID, newStatus
}
