package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) resolveCommand() *cobra.Command {
	var acceptSetup bool
	cmd := &cobra.Command{
		Use:   "resolve NAME [KEY_ID...]",
		Short: "Record what a person did: mark keys left valid as handled, or accept a changed setup",
		Long: `resolve records in the journal what a person did about a credential.

With KEY_IDs, each key that an earlier rotation left valid for a person
(listed by status and plan) is marked as handled: rekey forgets it and will
not revoke it. Revoke or keep it at the issuer yourself first.

With --accept-setup, the credential's journal history is bound to the
issuer and sinks now configured. rekey refuses to act on a history written
for another setup (another issuer address, other sinks), so that two
configs sharing one state file never revoke each other's keys; use this
after changing a credential's issuer or sinks on purpose.`,
		Example: `  rekey resolve production-api key_2bjjonv6t2m4
  rekey resolve production-api --accept-setup`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeCredential,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && !acceptSetup {
				return fail(exitUsage, fmt.Errorf("resolve %s: name KEY_IDs to mark as handled, or --accept-setup", args[0]))
			}
			rt, c, err := a.openCredential(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer rt.Close()
			left, err := rt.engine.Resolve(cmd.Context(), c, args[1:], acceptSetup)
			if err != nil {
				return fail(exitFailed, err)
			}
			for _, id := range args[1:] {
				fmt.Fprintf(a.stdout, "%s: key %s marked as handled\n", c.Name, id)
			}
			if acceptSetup {
				fmt.Fprintf(a.stdout, "%s: journal bound to %s\n", c.Name, c.Setup)
			}
			fmt.Fprintf(a.stdout, "%s: %d keys left for a person\n", c.Name, len(left))
			return nil
		},
	}
	cmd.Flags().BoolVar(&acceptSetup, "accept-setup", false, "bind the journal history to the issuer and sinks now configured")
	return cmd
}
