package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

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
	logFormat      string
	log            *zap.Logger
	// console coordinates the live progress line with log lines when
	// progress is shown on a terminal; nil otherwise.
	console *console
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
			return a.setup(cmd)
		},
	}
	root.Version = currentBuild().String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "config file (default $REKEY_CONFIG, else ./rekey.yaml)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "debug | info | warn | error (default: info for daemon, and for run and rotate when no progress is shown; warn otherwise)")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "", "console | json (default: console if stderr is a terminal, json otherwise)")
	_ = root.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"console", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	root.AddCommand(
		a.demoCommand(),
		a.validateCommand(),
		a.runCommand(),
		a.rotateCommand(),
		a.statusCommand(),
		a.historyCommand(),
		a.planCommand(),
		a.resolveCommand(),
		a.simCommand(),
		a.schemaCommand(),
		a.daemonCommand(),
		a.versionCommand(),
		a.stateCommand(),
	)
	return root
}

// setup resolves the config path and builds the logger, always on stderr.
//
// Each rotation event is reported once: on a terminal (stdout a terminal,
// table output) by the progress lines of run and rotate, which is why
// their default log level is then warn; everywhere else by the log alone
// (default level info), and stdout holds only the command's answer.
func (a *app) setup(cmd *cobra.Command) error {
	if a.configPath == "" {
		a.configPath = os.Getenv("REKEY_CONFIG")
	}
	if a.configPath == "" {
		a.configPath = "rekey.yaml"
	}
	output := outputTable
	if f := cmd.Flags().Lookup("output"); f != nil && f.Value.String() == outputJSON {
		output = outputJSON
	}
	rotating := cmd.Name() == "run" || cmd.Name() == "rotate"
	progress := rotating && a.showsProgress(output)
	level := zapcore.WarnLevel
	if cmd.Name() == "daemon" || rotating && !progress {
		level = zapcore.InfoLevel
	}
	if a.logLevel != "" {
		l, err := zapcore.ParseLevel(a.logLevel)
		if err != nil {
			return fail(exitUsage, fmt.Errorf("--log-level: %w", err))
		}
		level = l
	}
	stderrTTY := false
	if f, ok := a.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		stderrTTY = true
	}
	format := a.logFormat
	if format == "" {
		format = "json"
		if stderrTTY {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = utcTime("2006-01-02T15:04:05.000Z07:00")
		if stderrTTY {
			cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(cfg)
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = utcTime(time.RFC3339Nano)
		enc = zapcore.NewJSONEncoder(cfg)
	default:
		return fail(exitUsage, fmt.Errorf("--log-format %q: want console or json", format))
	}
	var ws zapcore.WriteSyncer = zapcore.AddSync(a.stderr)
	if progress {
		ws = a.liveConsole().logs(a.stderr)
	}
	a.log = zap.New(zapcore.NewCore(enc, ws, level))
	return nil
}

// utcTime encodes log times in UTC with an RFC 3339 layout.
func utcTime(layout string) zapcore.TimeEncoder {
	return func(t time.Time, enc zapcore.PrimitiveArrayEncoder) { enc.AppendString(t.UTC().Format(layout)) }
}

// showsProgress reports whether run and rotate print progress lines: on a
// terminal, unless stdout is reserved for JSON.
func (a *app) showsProgress(output string) bool { return output != outputJSON && a.isTerminal() }

// liveConsole is the console of stdout, made on first use.
func (a *app) liveConsole() *console {
	if a.console == nil {
		a.console = &console{out: a.stdout}
	}
	return a.console
}

// println writes a line of the command's answer on stdout, below any live
// progress line.
func (a *app) println(line string) {
	if a.console != nil {
		a.console.println(line)
		return
	}
	fmt.Fprintln(a.stdout, line)
}

func (a *app) isTerminal() bool {
	if a.terminal != nil {
		return *a.terminal
	}
	f, ok := a.stdout.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
