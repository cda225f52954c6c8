package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/neterr"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
)

// planTimeout bounds each preflight call.
const planTimeout = 15 * time.Second

// Statuses of a preflight check.
const (
	checkOK           = "ok"
	checkProblem      = "problem"
	checkNotCheckable = "not_checkable"
	checkWarning      = "warning"
)

// planCheck is one preflight check of a credential. It holds no secret.
type planCheck struct {
	Kind   string `json:"kind"` // issuer | key | left_key | journal | sink | health_check
	Name   string `json:"name"`
	Status string `json:"status"` // ok | problem | warning | not_checkable
	Detail string `json:"detail,omitempty"`
}

// planRow is one credential in `rekey plan`.
type planRow struct {
	Name     string      `json:"name"`
	Due      bool        `json:"due"`
	DueAt    time.Time   `json:"due_at"`
	Reason   string      `json:"reason"`
	InFlight string      `json:"in_flight,omitempty"`
	Ready    bool        `json:"ready"`
	Checks   []planCheck `json:"checks"`
}

type planReport struct {
	Ready       bool      `json:"ready"`
	Credentials []planRow `json:"credentials"`
}

func (a *app) planCommand() *cobra.Command {
	var output *string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Per credential: when it is due, and a preflight of issuer, key slots, sinks and health checks; changes nothing (exit 1 on a problem)",
		Example: `  rekey plan
  rekey plan -o json | jq '.credentials[] | {name, due, ready}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := parseOutput(*output)
			if err != nil {
				return err
			}
			rt, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer rt.Close()
			report, err := a.plan(cmd.Context(), rt)
			if err != nil {
				return fail(exitFailed, err)
			}
			if o == outputJSON {
				if err := a.writeJSON(report); err != nil {
					return err
				}
			} else if err := writePlan(a.stdout, report, a.clock.Now()); err != nil {
				return fail(exitFailed, err)
			}
			if !report.Ready {
				return fail(exitFailed, nil)
			}
			return nil
		},
	}
	output = outputFlag(cmd)
	return cmd
}

// plan runs every read-only preflight. It writes nothing: no journal
// record, no sink, no key.
func (a *app) plan(ctx context.Context, rt *runtime) (planReport, error) {
	report := planReport{Ready: true}
	issuerChecks := map[string]planCheck{} // one List per issuer
	for _, name := range rt.names {
		c := rt.creds[name]
		due, err := rt.engine.Due(ctx, c)
		if err != nil {
			return report, err
		}
		row := planRow{Name: name, Due: due.Due, DueAt: due.At.UTC(), Reason: due.Reason, Ready: true}

		issuerName := rt.cfg.Credentials[name].Issuer
		ic, ok := issuerChecks[issuerName]
		if !ok {
			ic = checkIssuer(ctx, issuerName, c.Issuer)
			issuerChecks[issuerName] = ic
		}
		row.Checks = append(row.Checks, ic)
		keyChecks, in := checkKeys(ctx, rt.engine, c)
		if in != nil && in.Unfinished != nil {
			row.InFlight = in.Unfinished.ID + " " + string(in.Unfinished.Phase)
		}
		row.Checks = append(row.Checks, keyChecks...)
		for _, s := range c.Sinks {
			row.Checks = append(row.Checks, checkSink(ctx, s))
		}
		for i, ch := range c.Monitor.Checks {
			row.Checks = append(row.Checks, checkHealth(ctx, i, ch))
		}
		for _, ch := range row.Checks {
			if ch.Status == checkProblem {
				row.Ready, report.Ready = false, false
			}
		}
		report.Credentials = append(report.Credentials, row)
	}
	return report, nil
}

func checkIssuer(ctx context.Context, name string, iss issuers.Issuer) planCheck {
	ctx, cancel := context.WithTimeout(ctx, planTimeout)
	defer cancel()
	pc := planCheck{Kind: "issuer", Name: name}
	keys, err := iss.List(ctx)
	if err != nil {
		pc.Status, pc.Detail = checkProblem, "unreachable or management token refused: "+err.Error()
		return pc
	}
	// A rotation needs one free key slot: the new key is minted while the
	// old one is still active.
	limiter, ok := iss.(issuers.KeyLimiter)
	if !ok {
		pc.Status = checkOK
		pc.Detail = fmt.Sprintf("reachable, management token valid, %d keys active", len(keys))
		return pc
	}
	limit := limiter.MaxActiveKeys()
	var held []issuers.HeldKey
	if h, ok := iss.(issuers.SlotHolder); ok {
		if held, err = h.HeldKeys(ctx); err != nil {
			pc.Status, pc.Detail = checkProblem, "reachable, but listing the keys that hold a slot failed: "+err.Error()
			return pc
		}
	}
	free := limit - len(keys) - len(held)
	if free < 1 {
		pc.Status = checkProblem
		if len(held) == 0 {
			pc.Detail = fmt.Sprintf("no free key slot: %d of %d keys active; revoke unused keys", len(keys), limit)
		} else {
			pc.Detail = fmt.Sprintf("no free key slot: %d active and %d inactive of %d keys (inactive keys count against the limit): %s",
				len(keys), len(held), limit, describeHeld(held, true))
		}
		return pc
	}
	pc.Status = checkOK
	if len(held) == 0 {
		pc.Detail = fmt.Sprintf("reachable, management token valid, %d of %d keys active (%d free)", len(keys), limit, free)
	} else {
		pc.Detail = fmt.Sprintf("reachable, management token valid, %d active and %d inactive of %d keys (%d free): %s",
			len(keys), len(held), limit, free, describeHeld(held, false))
	}
	return pc
}

// describeHeld says of each key holding a slot when it frees it; blocking:
// no slot is free, so a rotation before then fails.
func describeHeld(held []issuers.HeldKey, blocking bool) string {
	parts := make([]string, len(held))
	for n, h := range held {
		if h.Until.IsZero() {
			parts[n] = h.ID + " is inactive and was not revoked by rekey, which never deletes it: delete it to free its slot"
			continue
		}
		parts[n] = h.ID + " is deleted after " + h.Until.UTC().Format(time.RFC3339) + " (delete_after)"
		if blocking {
			parts[n] += "; a rotation before then fails for want of a slot"
		}
	}
	return strings.Join(parts, "; ")
}

// checkKeys reports which key a rotation would replace, in plain words,
// what stops it (a key_id that contradicts the sinks, another setup's
// history), and every key earlier rotations left valid for a person. It
// returns the engine's Inspection too (nil if it failed), which holds the
// rotation in flight.
func checkKeys(ctx context.Context, e *rotation.Engine, c *rotation.Credential) ([]planCheck, *rotation.Inspection) {
	ctx, cancel := context.WithTimeout(ctx, planTimeout)
	defer cancel()
	in, err := e.Inspect(ctx, c)
	if err != nil {
		return []planCheck{{Kind: "key", Name: "current key", Status: checkProblem, Detail: err.Error()}}, nil
	}
	pc := planCheck{Kind: "key", Name: "current key", Status: checkOK, Detail: in.Note}
	switch {
	case in.Problem != nil:
		pc.Status, pc.Detail = checkProblem, in.Problem.Error()
	case in.CurrentKeyID == "":
		pc.Status = checkWarning
	default:
		pc.Name = in.CurrentKeyID
	}
	out := []planCheck{pc}
	for _, l := range in.Left {
		detail := "left valid by rotation " + l.RotationID + ": " + l.Reason
		if len(l.HeldBy) > 0 {
			detail += "; held by " + strings.Join(l.HeldBy, ", ")
		}
		detail += "; the next successful rotation revokes it, or run: rekey resolve " + c.Name + " " + l.KeyID
		out = append(out, planCheck{Kind: "left_key", Name: l.KeyID, Status: checkWarning, Detail: detail})
	}
	if in.Unreadable > 0 {
		out = append(out, planCheck{Kind: "journal", Name: "history", Status: checkWarning,
			Detail: fmt.Sprintf("%d journal records fail to authenticate and are skipped (see rekey history %s)", in.Unreadable, c.Name)})
	}
	return out, &in
}

func checkSink(ctx context.Context, s sinks.Sink) planCheck {
	pc := planCheck{Kind: "sink", Name: s.Name()}
	p, ok := s.(sinks.Preflighter)
	if !ok {
		pc.Status, pc.Detail = checkNotCheckable, "this sink type cannot be checked without writing"
		return pc
	}
	ctx, cancel := context.WithTimeout(ctx, planTimeout)
	defer cancel()
	if err := p.Preflight(ctx); err != nil {
		pc.Status, pc.Detail = checkProblem, err.Error()
		return pc
	}
	pc.Status, pc.Detail = checkOK, "writable"
	return pc
}

// checkHealth probes a monitor health check once, as the monitoring
// window would (for an HTTP check: method, headers, expected status, body
// match and timeout), and reports an unhealthy answer as a problem: a
// rotation started now would fail its monitoring window.
func checkHealth(ctx context.Context, i int, ch rotation.Check) planCheck {
	pc := planCheck{Kind: "health_check", Name: fmt.Sprintf("checks[%d]", i)}
	if hc, ok := ch.(*rotation.HTTPCheck); ok {
		pc.Name = hc.Name
		if pc.Name == "" {
			pc.Name = hc.URL
		}
	}
	ctx, cancel := context.WithTimeout(ctx, planTimeout) // the check applies its own, shorter timeout
	defer cancel()
	if err := ch.Check(ctx); err != nil {
		pc.Status, pc.Detail = checkProblem, "unhealthy: "+err.Error()
		if errors.As(err, new(*url.Error)) && !neterr.Permanent(err) {
			pc.Detail = "unreachable: " + err.Error()
		}
		return pc
	}
	pc.Status, pc.Detail = checkOK, "healthy"
	return pc
}

func writePlan(w io.Writer, r planReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	problems := 0
	for i, row := range r.Credentials {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		when := dueText(row.Due, row.DueAt, row.Reason, now)
		fmt.Fprintf(tw, "%s\t%s\n", row.Name, when)
		if row.InFlight != "" {
			fmt.Fprintf(tw, "\tin flight: %s\n", row.InFlight)
		}
		for _, ch := range row.Checks {
			status := ch.Status
			switch status {
			case checkProblem:
				status = "PROBLEM"
				problems++
			case checkNotCheckable:
				status = "not checkable"
			case checkWarning:
				status = "WARNING"
			}
			fmt.Fprintf(tw, "  %s\t%s %s\t%s\n", status, ch.Kind, ch.Name, ch.Detail)
		}
	}
	fmt.Fprintln(tw)
	if r.Ready {
		fmt.Fprintf(tw, "ready: %d credentials, no problems\n", len(r.Credentials))
	} else {
		fmt.Fprintf(tw, "not ready: %d problems\n", problems)
	}
	return tw.Flush()
}
