package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/human"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/journalcrypto"
)

// validateResult is `rekey validate -o json`.
type validateResult struct {
	File        string   `json:"file"`
	Valid       bool     `json:"valid"`
	Credentials int      `json:"credentials"`
	Issuers     int      `json:"issuers"`
	Errors      []string `json:"errors,omitempty"`
	// Warnings are problems that do not make the config invalid, e.g. a
	// secret file others may read.
	Warnings []string `json:"warnings,omitempty"`
}

func (a *app) validateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the config and that every env:/file: reference resolves; errors name file:line and the field (exit 2 if invalid)",
		Long: `validate parses and checks the config, including every issuer and sink
entry, and then resolves every env: and file: reference: the variable must be
set and non-empty, the file a readable, non-empty regular file, and the state
key file readable by rekey alone (as run and daemon require). A secret file
that others may read is a warning. Nothing is sent anywhere. --offline checks
the file alone, without the environment or the files it names.`,
		Example: `  rekey validate -c /etc/rekey/rekey.yaml
  rekey validate --offline -o json | jq .valid`,
		Args: cobra.NoArgs,
	}
	output := outputFlag(cmd)
	offline := cmd.Flags().Bool("offline", false, "check the config file only, not the environment variables and files it references")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		o, err := parseOutput(*output)
		if err != nil {
			return err
		}
		cfg, err := a.loadConfig()
		if err != nil {
			if o == outputJSON {
				// The answer on stdout, the error on stderr, exit 2.
				res := validateResult{File: a.configPath, Errors: strings.Split(strings.TrimSpace(errorText(err)), "\n")}
				if werr := a.writeJSON(res); werr != nil {
					return werr
				}
			}
			return err
		}
		var problems, warnings config.Errors
		if !*offline {
			problems, warnings = checkSecrets(cfg)
		}
		res := validateResult{File: cfg.File, Valid: len(problems) == 0, Credentials: len(cfg.Credentials), Issuers: len(cfg.Issuers)}
		for _, w := range warnings {
			res.Warnings = append(res.Warnings, w.Error())
			if o != outputJSON {
				fmt.Fprintf(a.stderr, "warning: %s\n", w.Error())
			}
		}
		if len(problems) > 0 {
			for _, p := range problems {
				res.Errors = append(res.Errors, p.Error())
			}
			if o == outputJSON {
				if err := a.writeJSON(res); err != nil {
					return err
				}
			}
			return fail(exitUsage, problems)
		}
		if o == outputJSON {
			return a.writeJSON(res)
		}
		fmt.Fprintf(a.stdout, "%s: valid (%d credentials, %d issuers)\n", cfg.File, len(cfg.Credentials), len(cfg.Issuers))
		return nil
	}
	return cmd
}

// checkSecrets resolves every secret reference of cfg, as the commands
// that use them would, and returns what fails (problems) and secret files
// that others may read (warnings). No value leaves this function.
func checkSecrets(cfg *config.Config) (problems, warnings config.Errors) {
	for _, r := range cfg.SecretRefs() {
		if r.Secret.IsLiteral() {
			continue
		}
		at := func(err error) *config.Error {
			return &config.Error{File: r.File, Line: r.Line, Field: r.Field, Msg: strings.TrimPrefix(err.Error(), "config: ")}
		}
		if r.Field == "state.encryption_key" {
			v, err := r.Secret.ResolvePrivate()
			if err == nil {
				_, err = journalcrypto.DecodeKey(v.Reveal())
			}
			if err != nil {
				problems = append(problems, at(err))
			}
			continue
		}
		if _, err := r.Secret.Resolve(); err != nil {
			problems = append(problems, at(err))
			continue
		}
		if _, err := r.Secret.ResolvePrivate(); err != nil {
			warnings = append(warnings, at(err))
		}
	}
	return problems, warnings
}

// errorText is err's message without the exitError wrapper.
func errorText(err error) string {
	var ee *exitError
	if errors.As(err, &ee) && ee.err != nil {
		return ee.err.Error()
	}
	return err.Error()
}

// runReport is `rekey run -o json`: one result per credential, in config
// order.
type runReport struct {
	Results []resultJSON `json:"results"`
	Failed  int          `json:"failed"`
}

// resultJSON is what rekey did for one credential (run and rotate -o
// json). It holds no secret.
type resultJSON struct {
	Credential string `json:"credential"`
	// Status is one of done, rolled_back, failed, staged, not_due, busy,
	// interrupted, error.
	Status     string `json:"status"`
	RotationID string `json:"rotation_id,omitempty"`
	Phase      string `json:"phase,omitempty"`
	// Message is the human line of the table output.
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
	// DueAt is set for not_due: when the credential becomes due.
	DueAt *time.Time `json:"due_at,omitempty"`
	// HeldBy is set for busy when the lock's holder is known.
	HeldBy *rotation.LockHolder `json:"held_by,omitempty"`
	// Failed mirrors the exit code: the credential needs attention.
	Failed bool `json:"failed"`
}

func (a *app) runCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "One-shot: resume unfinished rotations, rotate every due credential, exit (1 if any failed)",
		Example: `  rekey run -c /etc/rekey/rekey.yaml
  rekey run -o json | jq -r '.results[] | select(.failed) | .credential'`,
		Args: cobra.NoArgs,
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		o, err := parseOutput(*output)
		if err != nil {
			return err
		}
		rt, err := a.open(cmd.Context())
		if err != nil {
			return err
		}
		defer rt.Close()
		rt.engine.Observe = a.progress(o)
		creds := make([]*rotation.Credential, len(rt.names))
		for i, n := range rt.names {
			creds[i] = rt.creds[n]
		}
		report := runReport{Results: []resultJSON{}}
		for _, r := range rt.engine.RunAll(cmd.Context(), creds, rt.cfg.Daemon.Concurrency) {
			res := resultOf(r, a.clock.Now())
			report.Results = append(report.Results, res)
			if res.Failed {
				report.Failed++
			}
			if o == outputTable {
				a.println(fmt.Sprintf("%-24s %s", r.Credential, res.Message))
			}
		}
		if o == outputJSON {
			if err := a.writeJSON(report); err != nil {
				return err
			}
		}
		if report.Failed > 0 {
			return fail(exitFailed, fmt.Errorf("%d of %d credentials failed", report.Failed, len(creds)))
		}
		return nil
	}
	return cmd
}

// resultOf describes a result for a person (Message) and a script.
func resultOf(r rotation.Result, now time.Time) resultJSON {
	res := resultJSON{Credential: r.Credential, RotationID: r.Outcome.RotationID, Phase: string(r.Outcome.Phase), Failed: r.Failed()}
	res.Status, res.Message = describeResult(r, now)
	var busy *rotation.BusyError
	if errors.As(r.Err, &busy) {
		res.HeldBy = busy.Holder
	}
	switch {
	case r.Err != nil:
		res.Error = r.Err.Error()
	case r.Outcome.Err != nil:
		res.Error = r.Outcome.Err.Error()
	}
	if res.Status == "not_due" && !r.Outcome.DueAt.IsZero() {
		t := r.Outcome.DueAt.UTC()
		res.DueAt = &t
	}
	return res
}

func describeResult(r rotation.Result, now time.Time) (status, message string) {
	var busy *rotation.BusyError
	switch {
	case errors.As(r.Err, &busy) && busy.Holder != nil:
		return "busy", "busy: another rekey is rotating it (" + busy.Holder.String() + "); nothing done here, the next run tries again"
	case errors.Is(r.Err, rotation.ErrBusy):
		return "busy", "busy: another rekey is rotating it; nothing done here, the next run tries again"
	case errors.Is(r.Err, rotation.ErrInterrupted):
		return "interrupted", "interrupted: " + r.Err.Error()
	case r.Err != nil:
		return "error", "error: " + r.Err.Error()
	case r.Outcome.Staged:
		return "staged", fmt.Sprintf("staged (rotation %s): the new key is live in every sink and the old key still valid; run rekey rotate %s --finish after the deploy",
			r.Outcome.RotationID, r.Credential)
	case r.Outcome.Skipped != "":
		return "not_due", dueText(false, r.Outcome.DueAt, r.Outcome.Skipped, now)
	case r.Outcome.Err != nil:
		return string(r.Outcome.Phase), fmt.Sprintf("%s (rotation %s): %v", r.Outcome.Phase, r.Outcome.RotationID, r.Outcome.Err)
	}
	return string(r.Outcome.Phase), fmt.Sprintf("%s (rotation %s)", r.Outcome.Phase, r.Outcome.RotationID)
}

// dueText says when a credential is due, for a person: "due now (never
// rotated by rekey)", "not due until 2027-03-01 03:04 UTC (in 89d; rotate_every
// 90d from the last rotation)".
func dueText(due bool, at time.Time, reason string, now time.Time) string {
	if due {
		return "due now (" + reason + ")"
	}
	if at.IsZero() {
		return "not due (" + reason + ")"
	}
	return "not due until " + human.Time(at) + " (in " + human.About(at.Sub(now)) + "; " + reason + ")"
}

func (a *app) rotateCommand() *cobra.Command {
	var opt rotation.Options
	var output *string
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Rotate one credential now and wait (exit 1 if it failed or rolled back)",
		Example: `  rekey rotate production-api
  rekey rotate production-api --stage    # deploy hook, before the deploy
  rekey rotate production-api --finish   # deploy hook, after it
  rekey rotate production-api -o json | jq -r .status`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeCredential,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := parseOutput(*output)
			if err != nil {
				return err
			}
			if opt.Stage && opt.Finish {
				return fail(exitUsage, errors.New("--stage and --finish exclude each other"))
			}
			rt, c, err := a.openCredential(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer rt.Close()
			rt.engine.Observe = a.progress(o)
			if !opt.Finish {
				opt.Force = true // an explicit rotate is always due
			}
			out, err := rt.engine.Rotate(cmd.Context(), c, opt)
			r := rotation.Result{Credential: c.Name, Outcome: out, Err: err}
			res := resultOf(r, a.clock.Now())
			if o == outputJSON {
				if werr := a.writeJSON(res); werr != nil {
					return werr
				}
			} else {
				a.println(c.Name + ": " + res.Message)
			}
			if err != nil || r.Failed() {
				if o == outputJSON {
					// stdout holds the answer alone; the error goes to stderr.
					return fail(exitFailed, errors.New(c.Name+": "+res.Message))
				}
				return fail(exitFailed, nil)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opt.Force, "force", false, "rotate even if not due (rotate always does; kept for scripts)")
	cmd.Flags().BoolVar(&opt.Stage, "stage", false, "deploy hook, first half: put the new key live everywhere, keep the old key valid")
	cmd.Flags().BoolVar(&opt.Finish, "finish", false, "deploy hook, second half: monitor the staged rotation, then revoke the old key")
	output = outputFlag(cmd)
	return cmd
}

// progress prints each engine event as a timestamped line, on a terminal
// only: the monitoring window also gets a live line, a countdown with the
// probes passed and failed, rewritten in place. Elsewhere, and with -o
// json, it returns nil: the log on stderr reports each event, once.
func (a *app) progress(output string) func(rotation.Event) {
	if !a.showsProgress(output) {
		return nil
	}
	c := a.liveConsole()
	return func(ev rotation.Event) {
		if ev.Probe != nil {
			c.setLive(fmt.Sprintf("%s %s %s monitoring: %s left, %d passed, %d failed",
				ev.Time.UTC().Format("15:04:05"), ev.Credential, ev.RotationID,
				human.Duration(ev.Probe.Left.Round(time.Second)), ev.Probe.Passed, ev.Probe.Failed))
			return
		}
		line := ev.Time.UTC().Format("15:04:05") + " " + ev.Credential + " " + ev.RotationID + " " + string(ev.Phase)
		if ev.Sink != "" {
			line += " [" + ev.Sink + "]"
		}
		if ev.Msg != "" {
			line += " " + ev.Msg
		}
		if ev.Err != nil {
			line += ": " + ev.Err.Error()
		}
		c.println(line)
	}
}

// credentialStatus is one row of `rekey status`; it holds no secret.
type credentialStatus struct {
	Name        string     `json:"name"`
	KeyID       string     `json:"key_id,omitempty"`
	Label       string     `json:"label,omitempty"`
	RotatedAt   *time.Time `json:"rotated_at,omitempty"`
	Age         string     `json:"age,omitempty"`
	NextDue     time.Time  `json:"next_due"`
	Due         bool       `json:"due"`
	DueReason   string     `json:"due_reason"`
	LastOutcome string     `json:"last_outcome,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	InFlight    string     `json:"in_flight,omitempty"` // "rotation-id phase"
	Failures    int        `json:"failures"`
	// LeftKeys are keys earlier rotations left valid for a person.
	LeftKeys []rotation.LeftKey `json:"left_keys,omitempty"`
	// Unreadable counts journal records that fail to authenticate.
	Unreadable int `json:"unreadable_records,omitempty"`
}

func (a *app) statusCommand() *cobra.Command {
	var output *string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Per credential: current key, age, next due, last outcome, rotation in flight",
		Example: `  rekey status
  rekey status -o json | jq -r '.[] | select(.due) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := parseOutput(*output)
			if err != nil {
				return err
			}
			rt, err := a.openJournal(cmd.Context())
			if err != nil {
				return err
			}
			defer rt.Close()
			now := a.clock.Now()
			// One read of every credential's records since its last
			// success: all that status shows.
			recent, err := rt.store.RecentAll(cmd.Context())
			if err != nil {
				return fail(exitFailed, err)
			}
			var rows []credentialStatus
			for _, name := range rt.names {
				due := rt.engine.DueOf(rt.creds[name], recent[name])
				rows = append(rows, statusRow(name, recent[name], due, now))
			}
			if o == outputJSON {
				if rows == nil {
					rows = []credentialStatus{}
				}
				return a.writeJSON(rows)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CREDENTIAL\tKEY\tLABEL\tAGE\tNEXT DUE\tLAST OUTCOME\tIN FLIGHT\tLAST ERROR")
			for _, r := range rows {
				age := ""
				if r.RotatedAt != nil {
					age = human.About(now.Sub(*r.RotatedAt))
				}
				next := "now (" + r.DueReason + ")"
				if !r.Due {
					next = human.Time(r.NextDue) + " (in " + human.About(r.NextDue.Sub(now)) + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, dash(r.KeyID), dash(r.Label), dash(age), next, dash(r.LastOutcome), dash(r.InFlight), dash(r.LastError))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, r := range rows {
				for _, l := range r.LeftKeys {
					held := ""
					if len(l.HeldBy) > 0 {
						held = "; held by " + strings.Join(l.HeldBy, ", ")
					}
					fmt.Fprintf(a.stdout, "%s: key %s left valid for a person by rotation %s: %s%s\n", r.Name, l.KeyID, l.RotationID, l.Reason, held)
				}
				if r.Unreadable > 0 {
					fmt.Fprintf(a.stdout, "%s: %d journal records fail to authenticate and are skipped\n", r.Name, r.Unreadable)
				}
			}
			return nil
		},
	}
	output = outputFlag(cmd)
	return cmd
}

// statusRow builds a credential's row from its records since its last
// success (Store.Recent), newest first.
func statusRow(name string, hist []*rotation.Record, due rotation.Due, now time.Time) credentialStatus {
	row := credentialStatus{Name: name, NextDue: due.At, Due: due.Due, DueReason: due.Reason, Failures: due.Failures}
	readable := make([]*rotation.Record, 0, len(hist))
	for _, r := range hist {
		if r.Unreadable != "" {
			row.Unreadable++
		} else {
			readable = append(readable, r)
		}
	}
	for i, r := range readable {
		if i == 0 {
			row.LeftKeys = r.Left
			if r.Phase.Terminal() {
				row.LastOutcome, row.LastError = string(r.Phase), r.Error
			} else {
				row.InFlight = r.ID + " " + string(r.Phase)
				if r.Staged {
					row.InFlight += " (staged)"
				}
			}
		}
		if (r.Phase == rotation.Done || r.Phase == rotation.Failed && r.Kept) && row.KeyID == "" {
			row.KeyID, row.Label = r.NewKeyID, r.Label
			t := r.FinishedAt
			row.RotatedAt = &t
			row.Age = now.Sub(t).Round(time.Second).String()
		}
		if row.LastOutcome == "" && i > 0 && r.Phase.Terminal() {
			row.LastOutcome, row.LastError = string(r.Phase), r.Error
		}
	}
	return row
}

// openCredential is open for a command about one credential: it returns
// the runtime and the credential named on the command line, or a usage
// error naming the config.
func (a *app) openCredential(ctx context.Context, name string) (*runtime, *rotation.Credential, error) {
	rt, err := a.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, ok := rt.creds[name]
	if !ok {
		rt.Close()
		return nil, nil, fail(exitUsage, fmt.Errorf("no credential %q in %s", name, rt.cfg.File))
	}
	return rt, c, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// historyPage is how many rotations `rekey history` shows by default.
const historyPage = 20

func (a *app) historyCommand() *cobra.Command {
	var output *string
	var limit int
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Past rotations of a credential with their phases and times, newest first (the newest 20 unless --limit)",
		Example: `  rekey history production-api
  rekey history production-api --limit 0 -o json | jq -r '.[].phase'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeCredential,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := parseOutput(*output)
			if err != nil {
				return err
			}
			if limit < 0 {
				return fail(exitUsage, fmt.Errorf("--limit %d: want 0 (all) or more", limit))
			}
			rt, err := a.openJournal(cmd.Context())
			if err != nil {
				return err
			}
			defer rt.Close()
			if _, ok := rt.creds[args[0]]; !ok {
				return fail(exitUsage, fmt.Errorf("no credential %q in %s", args[0], rt.cfg.File))
			}
			hist, err := rt.store.History(cmd.Context(), args[0], limit)
			if err != nil {
				return fail(exitFailed, err)
			}
			older := 0
			if limit > 0 && len(hist) > 0 {
				n, err := rt.store.Count(cmd.Context(), args[0])
				if err != nil {
					return fail(exitFailed, err)
				}
				older = n - len(hist)
			}
			hint := ""
			if older > 0 {
				hint = fmt.Sprintf("… %s older %s: rekey history %s --limit 0\n", thousands(older), plural(older, "rotation"), args[0])
			}
			if o == outputJSON {
				type entry struct {
					ID          string                `json:"rotation_id"`
					Phase       rotation.Phase        `json:"phase"`
					Label       string                `json:"label"`
					OldKeyID    string                `json:"old_key_id,omitempty"`
					NewKeyID    string                `json:"new_key_id,omitempty"`
					Error       string                `json:"error,omitempty"`
					Unreadable  string                `json:"unreadable,omitempty"`
					LeftKeys    []rotation.LeftKey    `json:"left_keys,omitempty"`
					StartedAt   time.Time             `json:"started_at"`
					FinishedAt  time.Time             `json:"finished_at,omitzero"`
					Transitions []rotation.Transition `json:"transitions"`
				}
				out := make([]entry, 0, len(hist))
				for _, r := range hist {
					out = append(out, entry{r.ID, r.Phase, r.Label, r.OldKeyID, r.NewKeyID, r.Error, r.Unreadable, r.Left, r.StartedAt, r.FinishedAt, r.Transitions})
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
				// stdout stays one JSON array of entries.
				fmt.Fprint(a.stderr, hint)
				return nil
			}
			for _, r := range hist {
				if r.Unreadable != "" {
					fmt.Fprintf(a.stdout, "%s  unreadable: %s\n", r.ID, r.Unreadable)
					continue
				}
				fmt.Fprintf(a.stdout, "%s  %s  %s  old=%s new=%s\n", r.ID, r.StartedAt.UTC().Format(time.RFC3339), r.Phase, dash(r.OldKeyID), dash(r.NewKeyID))
				for _, t := range r.Transitions {
					line := "    " + t.At.UTC().Format(time.RFC3339) + "  " + string(t.Phase)
					if t.Error != "" {
						line += "  " + t.Error
					}
					fmt.Fprintln(a.stdout, line)
				}
			}
			fmt.Fprint(a.stdout, hint)
			return nil
		},
	}
	output = outputFlag(cmd) // "text", its older name for the table, still works
	cmd.Flags().IntVar(&limit, "limit", historyPage, "show the newest N rotations; 0 shows all")
	return cmd
}

// thousands formats n >= 0 with a comma between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
