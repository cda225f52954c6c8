package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/rotation"
)

func (a *app) stateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "state",
		Short:   "Work on the journal itself (see state migrate)",
		Example: `  rekey state migrate --from /etc/rekey/rekey.yaml --to /etc/rekey/rekey-etcd.yaml`,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(a.migrateCommand())
	return cmd
}

func (a *app) migrateCommand() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "migrate --to CONFIG [--from CONFIG]",
		Short: "Copy every journal record from one config's state to another's (e.g. SQLite to etcd)",
		Long: `migrate copies the whole journal of the --from config's state (default: the
config of -c) into the journal of the --to config's state: every rotation of
every credential, each record decrypted with the source's encryption_key and
sealed and authenticated again under the target's.

It holds every credential's lock on both sides while it copies, so no rekey
may rotate during a migration (stop the daemon and timers first; a busy
credential stops it before anything is written). It refuses, before writing
anything, a target that already holds history for a credential (naming it),
a source record that is unreadable, and a target that is the source. The
audit log is a local file and is not copied. The source is left as it was:
point rekey at the target's config once migrate succeeds.`,
		Example: `  rekey state migrate --from /etc/rekey/rekey.yaml --to /etc/rekey/rekey-etcd.yaml
  rekey -c /etc/rekey/rekey-etcd.yaml state migrate --to /etc/rekey/rekey-sqlite.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return fail(exitUsage, errors.New("state migrate: --to CONFIG is required"))
			}
			if from == "" {
				from = a.configPath
			}
			return a.migrate(cmd.Context(), from, to)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "config whose journal is copied (default: the -c config)")
	cmd.Flags().StringVar(&to, "to", "", "config whose journal receives the records")
	return cmd
}

// describeState names a config's journal for people.
func describeState(st config.State) string {
	if st.Backend == config.BackendEtcd {
		return fmt.Sprintf("etcd %s prefix %s", strings.Join(st.Etcd.Endpoints, ","), st.Etcd.Prefix)
	}
	return "sqlite " + st.Path
}

// sameState reports whether two configs name one journal.
func sameState(a, b config.State) bool {
	if a.Backend != b.Backend {
		return false
	}
	if a.Backend == config.BackendEtcd {
		return a.Etcd.Prefix == b.Etcd.Prefix && slices.ContainsFunc(a.Etcd.Endpoints, func(e string) bool { return slices.Contains(b.Etcd.Endpoints, e) })
	}
	pa, _ := filepath.Abs(a.Path)
	pb, _ := filepath.Abs(b.Path)
	return pa == pb
}

// openState opens the journal of a loaded config.
func (a *app) openState(ctx context.Context, cfg *config.Config) (journal, error) {
	key, err := stateKey(cfg)
	if err != nil {
		return nil, err
	}
	return a.openStore(ctx, cfg, key)
}

func (a *app) migrate(ctx context.Context, fromPath, toPath string) error {
	fromCfg, err := loadConfigAt(fromPath)
	if err != nil {
		return err
	}
	toCfg, err := loadConfigAt(toPath)
	if err != nil {
		return err
	}
	if sameState(fromCfg.State, toCfg.State) {
		return fail(exitUsage, fmt.Errorf("state migrate: --from and --to name the same journal (%s)", describeState(fromCfg.State)))
	}
	src, err := a.openState(ctx, fromCfg)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := a.openState(ctx, toCfg)
	if err != nil {
		return err
	}
	defer dst.Close()

	recent, err := src.RecentAll(ctx)
	if err != nil {
		return fail(exitFailed, fmt.Errorf("state migrate: read %s: %w", describeState(fromCfg.State), err))
	}
	names := make([]string, 0, len(recent))
	for n := range recent {
		names = append(names, n)
	}
	slices.Sort(names)

	// Every lock on both sides first, then every check, then the copy: a
	// refusal writes nothing.
	var unlocks []func()
	defer func() {
		for _, u := range slices.Backward(unlocks) {
			u()
		}
	}()
	for _, n := range names {
		for _, side := range []struct {
			j    journal
			what string
		}{{src, "source"}, {dst, "target"}} {
			u, err := side.j.Lock(ctx, n)
			if errors.Is(err, rotation.ErrBusy) {
				return fail(exitFailed, fmt.Errorf("state migrate: %s is being rotated on the %s; stop every rekey using it and try again", n, side.what))
			}
			if err != nil {
				return fail(exitFailed, fmt.Errorf("state migrate: %w", err))
			}
			unlocks = append(unlocks, u)
		}
	}
	hists := map[string][]*rotation.Record{}
	var refusals []string
	for _, n := range names {
		if c, err := dst.Count(ctx, n); err != nil {
			return fail(exitFailed, fmt.Errorf("state migrate: %w", err))
		} else if c > 0 {
			refusals = append(refusals, fmt.Sprintf("the target already holds %d rotations of %s", c, n))
			continue
		}
		h, err := src.History(ctx, n, 0)
		if err != nil {
			return fail(exitFailed, fmt.Errorf("state migrate: %w", err))
		}
		for _, r := range h {
			if r.Unreadable != "" {
				refusals = append(refusals, fmt.Sprintf("rotation %s of %s is unreadable in the source (%s)", r.ID, n, r.Unreadable))
			}
		}
		hists[n] = h
	}
	if len(refusals) > 0 {
		return fail(exitFailed, fmt.Errorf("state migrate: nothing copied: %s", strings.Join(refusals, "; ")))
	}
	total := 0
	for _, n := range names {
		h := hists[n]
		for _, r := range slices.Backward(h) { // oldest first
			if err := dst.Save(ctx, r); err != nil {
				return fail(exitFailed, fmt.Errorf("state migrate: %d rotations copied, then: %w", total, err))
			}
			total++
		}
		if c, err := dst.Count(ctx, n); err != nil || c != len(h) {
			return fail(exitFailed, fmt.Errorf("state migrate: %s: the target holds %d rotations after the copy, want %d (%v)", n, c, len(h), err))
		}
	}
	fmt.Fprintf(a.stdout, "copied %d rotations of %d credentials from %s to %s\n", total, len(names), describeState(fromCfg.State), describeState(toCfg.State))
	return nil
}
