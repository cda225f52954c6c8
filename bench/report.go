package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one figure of the report. ideal and ratio are empty where no
// ideal applies (peak RSS).
type row struct {
	figure, measured, ideal, ratio, note string
}

func ratio(got, ideal time.Duration) string {
	if ideal <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", float64(got)/float64(ideal))
}

func ratioN(got, ideal int64) string {
	if ideal <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", float64(got)/float64(ideal))
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second || d <= -10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d >= time.Second || d <= -time.Second:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func fmtBytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// machine is what the report says about where it ran.
type machine struct {
	cpus               int
	model              string
	goVersion          string
	loadStart, loadEnd string
}

func readMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version(), model: "unknown", loadStart: loadavg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (b *bench) report(out io.Writer, m machine) {
	fmt.Fprintf(out, "rekey bench: %d CPUs (nproc), %s, %s\n", m.cpus, m.model, m.goVersion)
	fmt.Fprintf(out, "load average at start %s, at end %s\n", m.loadStart, m.loadEnd)
	fmt.Fprintf(out, "latency %s per issuer call, concurrency %d, monitor window %s, %d credentials per account, idle %s\n",
		b.o.latency, b.o.concurrency, b.o.window, b.o.perAccount, b.o.idle)
	fmt.Fprintf(out, "critical path of one rotation: first %s (%d calls), later %s (%d calls)\n\n",
		fmtDur(b.critical(callsFirst)), callsFirst, fmtDur(b.critical(callsSteady)), callsSteady)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tMEASURED\tIDEAL\tRATIO\tNOTES")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.figure, r.measured, dash(r.ideal), dash(r.ratio), r.note)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
