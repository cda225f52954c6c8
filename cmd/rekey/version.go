package main

import (
	"fmt"
	goruntime "runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at link time to override what the build info says, e.g.
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD) -X main.date=$(date -u +%FT%TZ)"
//
// (the Makefile's build target and the Dockerfile do this).
var (
	version string
	commit  string
	date    string
)

// buildInfo is what `rekey version` prints. It holds no secret.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

// currentBuild is this binary's build info: the ldflags values where set,
// else the Go build info (main module version, vcs.revision, vcs.time,
// vcs.modified), else "devel" and "unknown" (as with -buildvcs=false).
func currentBuild() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveBuild(bi, version, commit, date)
}

func resolveBuild(bi *debug.BuildInfo, version, commit, date string) buildInfo {
	b := buildInfo{Version: "devel", Commit: "unknown", Date: "unknown", GoVersion: goruntime.Version()}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			b.Version = v
		}
		if bi.GoVersion != "" {
			b.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.Date = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		b.Version = version
	}
	if commit != "" {
		b.Commit = commit
	}
	if date != "" {
		b.Date = date
	}
	return b
}

// String is the one line of `rekey --version`.
func (b buildInfo) String() string {
	c := b.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if b.Modified {
		c += "-dirty"
	}
	return fmt.Sprintf("rekey %s (commit %s, built %s, %s)", b.Version, c, b.Date, b.GoVersion)
}

func (a *app) versionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print rekey's version, commit, build date and Go version",
		Example: `  rekey version
  rekey version -o json | jq -r .commit`,
		Args: cobra.NoArgs,
	}
	output := outputFlag(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		o, err := parseOutput(*output)
		if err != nil {
			return err
		}
		b := currentBuild()
		if o == outputJSON {
			return a.writeJSON(b)
		}
		fmt.Fprintf(a.stdout, "version:    %s\ncommit:     %s\nmodified:   %v\nbuilt:      %s\ngo version: %s\n", b.Version, b.Commit, b.Modified, b.Date, b.GoVersion)
		return nil
	}
	return cmd
}
