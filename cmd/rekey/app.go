package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/jonboulle/clockwork"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Exit codes of the CLI contract (README, "CLI").
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// exitError carries an exit code out of a command; its message, if any,
// has already been printed or is printed by execute.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func fail(code int, err error) error { return &exitError{code: code, err: err} }

// app is the CLI: everything a command needs, injectable by tests.
type app struct {
	stdout, stderr io.Writer
	clock          clockwork.Clock
	configPath     string
	logLevel       string
	log            *zap.Logger
	// shared is what the back-ends of every config this process loads
	// share (see pools).
	shared *pools

	// Test seams of `rekey daemon`: reload replaces SIGHUP, listening is
	// told the HTTP address once it serves.
	reload    <-chan struct{}
	listening func(addr string)
	// terminal overrides the check of stdout for a terminal (tests).
	terminal *bool
}

// execute runs the CLI with args and returns the exit code. It knows
// nothing of signals: ctx ending means "stop after the current step".
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, clock: clockwork.NewRealClock()}
	return a.execute(ctx, args)
}

// execute runs the CLI on a, whose writers and clock are set.
func (a *app) execute(ctx context.Context, args []string) int {
	stdout, stderr := a.stdout, a.stderr
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if a.log != nil {
		_ = a.log.Sync()
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "rekey:", ee.err)
		}
		return ee.code
	}
	// Anything else comes from cobra: an unknown command or flag.
	fmt.Fprintln(stderr, "rekey:", err)
	fmt.Fprintln(stderr, "Run 'rekey --help' for usage.")
	return exitUsage
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "rekey",
		Short: "Rotate API keys without downtime",
		Long: `rekey rotates API keys safely: it mints a new key, deploys it to every sink,
verifies it and watches health checks, and only then revokes the old key,
rolling everything back if anything goes wrong.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd.Name())
		},
	}
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "config file (default $REKEY_CONFIG, else ./rekey.yaml)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "debug | info | warn | error (default: warn for interactive commands, info for run and daemon)")
	root.AddCommand(
		a.demoCommand(),
		a.validateCommand(),
		a.runCommand(),
		a.rotateCommand(),
		a.statusCommand(),
		a.historyCommand(),
		a.planCommand(),
		a.resolveCommand(),
		a.daemonCommand(),
		a.stateCommand(),
	)
	return root
}

// setup resolves the config path and builds the logger: console lines on
// a terminal, JSON otherwise, always on stderr.
func (a *app) setup(command string) error {
	if a.configPath == "" {
		a.configPath = os.Getenv("REKEY_CONFIG")
	}
	if a.configPath == "" {
		a.configPath = "rekey.yaml"
	}
	level := zapcore.WarnLevel
	if command == "run" || command == "daemon" {
		level = zapcore.InfoLevel
	}
	if a.logLevel != "" {
		l, err := zapcore.ParseLevel(a.logLevel)
		if err != nil {
			return fail(exitUsage, fmt.Errorf("--log-level: %w", err))
		}
		level = l
	}
	var enc zapcore.Encoder
	if f, ok := a.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	} else {
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	}
	a.log = zap.New(zapcore.NewCore(enc, zapcore.AddSync(a.stderr), level))
	return nil
}

func (a *app) isTerminal() bool {
	if a.terminal != nil {
		return *a.terminal
	}
	f, ok := a.stdout.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
