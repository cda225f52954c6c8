package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/fsutil"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/sinks/file"
)

// simDefaultListen is `rekey sim`'s fixed development address, so that a
// config written by hand (the README's first ten minutes) keeps working
// across restarts of the simulator. --listen 127.0.0.1:0 picks a free port.
const simDefaultListen = "127.0.0.1:8455"

// simFlags are `rekey sim`'s flags: where it listens, where its secrets go,
// and the simulator's fault knobs (apexsim.Options).
type simFlags struct {
	listen     string
	tokenFile  string
	mintInto   string
	mintFormat string
	mintKey    string
	mintLabel  string
	opts       apexsim.Options
}

func (a *app) simCommand() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve the ApexVerify simulator on loopback for trying rekey out (like vault server -dev)",
		Long: `sim serves rekey's ApexVerify simulator on a loopback address until it is
interrupted (Ctrl-C or SIGTERM: exit 0). It prints its URL and management
token on stdout (with --token-file the token goes to that file, mode 0600,
instead), and with --mint-into it mints a first key and writes it into a
dotenv or raw file (mode 0600), so that a config pointing at the simulator
has a live key to rotate. The last line it prints, "listening on URL",
means it is ready.

The simulator keeps its keys in memory only: a restart forgets them (and
a config's journal then names keys the new simulator never issued; start
over with a fresh state file). Fault knobs make it misbehave on purpose.`,
		Example: `  rekey sim --token-file sim-token --mint-into app.env
  rekey sim --listen 127.0.0.1:0 --latency 200ms --error-rate 0.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.sim(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", simDefaultListen, "loopback address to serve on; 127.0.0.1:0 picks a free port")
	fl.StringVar(&f.tokenFile, "token-file", "", "write the management token to this file (mode 0600) instead of stdout")
	fl.StringVar(&f.mintInto, "mint-into", "", "mint a first key and write it into this file (mode 0600)")
	fl.StringVar(&f.mintFormat, "mint-format", file.FormatDotenv, "format of the --mint-into file: dotenv | raw")
	fl.StringVar(&f.mintKey, "mint-key", "APEXVERIFY_API_KEY", "dotenv variable of the minted key")
	fl.StringVar(&f.mintLabel, "mint-label", "initial", "label of the minted key")
	fl.DurationVar(&f.opts.Latency, "latency", 0, "fault: delay before every answer")
	fl.Float64Var(&f.opts.ErrorRate, "error-rate", 0, "fault: share of calls (0..1) answered 503")
	fl.Float64Var(&f.opts.RateLimitRate, "rate-limit-rate", 0, "fault: share of calls (0..1) answered 429")
	fl.DurationVar(&f.opts.RetryAfter, "retry-after", time.Second, "Retry-After sent with a 429")
	fl.DurationVar(&f.opts.ActivationDelay, "activation-delay", 0, "fault: how long a new key is refused after it is created")
	fl.IntVar(&f.opts.MaxActiveKeys, "max-active-keys", apexsim.DefaultMaxActiveKeys, "the account's key limit")
	fl.Uint64Var(&f.opts.Seed, "seed", 0, "seed of the error and rate-limit draws (0: random)")
	return cmd
}

// check reports a usage error in f.
func (f *simFlags) check() error {
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", f.listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen %q: the simulator serves on loopback only (e.g. 127.0.0.1:8455)", f.listen)
	}
	for name, r := range map[string]float64{"--error-rate": f.opts.ErrorRate, "--rate-limit-rate": f.opts.RateLimitRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("%s %v: want a share between 0 and 1", name, r)
		}
	}
	switch {
	case f.opts.Latency < 0 || f.opts.ActivationDelay < 0 || f.opts.RetryAfter < 0:
		return errors.New("--latency, --activation-delay and --retry-after must not be negative")
	case f.opts.MaxActiveKeys < 1:
		return fmt.Errorf("--max-active-keys %d: want at least 1", f.opts.MaxActiveKeys)
	case f.mintFormat != file.FormatDotenv && f.mintFormat != file.FormatRaw:
		return fmt.Errorf("--mint-format %q: want dotenv or raw", f.mintFormat)
	case f.mintInto != "" && f.mintInto == f.tokenFile:
		return errors.New("--mint-into and --token-file name the same file")
	}
	return nil
}

// sim serves the simulator until ctx ends. Nothing it prints goes to the
// log: the token is printed (or written) because the user asked for it,
// and the minted key's value goes only into the --mint-into file.
func (a *app) sim(ctx context.Context, f simFlags) error {
	if err := f.check(); err != nil {
		return fail(exitUsage, err)
	}
	s := apexsim.New(f.opts)
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fail(exitFailed, fmt.Errorf("sim: %w", err))
	}
	url, stop := s.Serve(ln)
	defer stop()
	fmt.Fprintf(a.stdout, "url: %s\n", url)

	if f.tokenFile != "" {
		if err := fsutil.WriteFile(f.tokenFile, []byte(s.ManagementToken()+"\n"), 0o600); err != nil {
			return fail(exitFailed, fmt.Errorf("sim: --token-file: %w", err))
		}
		fmt.Fprintf(a.stdout, "management token: written to %s (mode 0600)\n", f.tokenFile)
	} else {
		fmt.Fprintf(a.stdout, "management token: %s\n", s.ManagementToken())
	}

	if f.mintInto != "" {
		line, err := simMint(ctx, url, s.ManagementToken(), f)
		if err != nil {
			return fail(exitFailed, err)
		}
		fmt.Fprintln(a.stdout, line)
	}
	fmt.Fprintf(a.stdout, "listening on %s until interrupted (keys are kept in memory only)\n", url)
	<-ctx.Done()
	fmt.Fprintln(a.stdout, "stopped")
	return nil
}

// simMint mints a key at the simulator at url, writes it into the
// --mint-into file with the file sink (as rekey will rewrite it), waits
// until it authenticates (the activation delay), and returns the line that
// says so. The line names the key's ID and public prefix, never its value.
func simMint(ctx context.Context, url, token string, f simFlags) (string, error) {
	iss, err := apexverify.New(apexverify.Config{BaseURL: url, ManagementToken: secret.New(token), Timeout: 10 * time.Second}, zap.NewNop())
	if err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	k, v, err := iss.Create(ctx, f.mintLabel)
	if err != nil {
		return "", fmt.Errorf("sim: mint the first key: %w", err)
	}
	path, err := filepath.Abs(f.mintInto)
	if err != nil {
		return "", fmt.Errorf("sim: --mint-into: %w", err)
	}
	fc := file.Config{Path: path, Format: f.mintFormat}
	if f.mintFormat == file.FormatDotenv {
		fc.Key = f.mintKey
	}
	sink, err := file.New(fc, zap.NewNop())
	if err != nil {
		return "", fmt.Errorf("sim: --mint-into: %w", err)
	}
	if _, err := sink.Put(ctx, v, "sim"); err != nil {
		return "", fmt.Errorf("sim: --mint-into: %w", err)
	}
	if err := waitActive(ctx, iss, v); err != nil {
		return "", fmt.Errorf("sim: the first key does not authenticate: %w", err)
	}
	where := f.mintInto
	if f.mintFormat == file.FormatDotenv {
		where += " as " + f.mintKey
	}
	return fmt.Sprintf("initial key: %s (%s…) written to %s (mode 0600)", k.ID, k.Prefix, where), nil
}
