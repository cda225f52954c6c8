package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children is every rekey process the benchmark started and has not yet
// reaped; kill ends them all (on an error, a timeout or a signal).
type children struct {
	mu    sync.Mutex
	procs map[int]*os.Process
}

func (c *children) add(p *os.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs == nil {
		c.procs = map[int]*os.Process{}
	}
	c.procs[p.Pid] = p
}

func (c *children) remove(p *os.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.procs, p.Pid)
}

func (c *children) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		_ = p.Kill()
	}
}

// result is one finished rekey process.
type result struct {
	wall     time.Duration
	code     int // -1: killed by a signal (our timeout)
	timedOut bool
	maxRSS   int64 // bytes, from wait4's rusage
	cpu      time.Duration
	stdout   string // file paths
	stderr   string
}

// rekey runs the rekey binary with args to its end, killed after timeout;
// its output goes to files in logDir. An exit code is not an error here:
// the caller judges it.
func (b *bench) rekey(ctx context.Context, config string, timeout time.Duration, args ...string) (result, error) {
	cmd, res, err := b.startRekey(config, args...)
	if err != nil {
		return res, err
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	err = cmd.Wait()
	res.wall = time.Since(cmd.start)
	res.timedOut = !timer.Stop()
	stop()
	b.kids.remove(cmd.Process)
	cmd.closeFiles()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSS = ru.Maxrss * 1024 // KiB on Linux
		res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	default:
		return res, err
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

type rekeyCmd struct {
	*exec.Cmd
	start time.Time
	files []*os.File
}

func (c *rekeyCmd) closeFiles() {
	for _, f := range c.files {
		_ = f.Close()
	}
}

// startRekey starts `rekey -c config args...` with stdout and stderr in
// new files under the log directory.
func (b *bench) startRekey(config string, args ...string) (*rekeyCmd, result, error) {
	b.runs++
	base := filepath.Join(b.logDir, fmt.Sprintf("%04d-%s", b.runs, args[0]))
	res := result{stdout: base + ".out", stderr: base + ".err"}
	out, err := os.Create(res.stdout)
	if err != nil {
		return nil, res, err
	}
	errf, err := os.Create(res.stderr)
	if err != nil {
		out.Close()
		return nil, res, err
	}
	cmd := &rekeyCmd{Cmd: exec.Command(b.binary, append([]string{"-c", config}, args...)...), files: []*os.File{out, errf}}
	cmd.Stdout, cmd.Stderr = out, errf
	cmd.Env = append(os.Environ(), "REKEY_CONFIG=")
	cmd.start = time.Now()
	if err := cmd.Start(); err != nil {
		cmd.closeFiles()
		return nil, res, fmt.Errorf("start rekey: %w", err)
	}
	b.kids.add(cmd.Process)
	return cmd, res, nil
}

// tail returns the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// procStat is what /proc says of a running process.
type procStat struct {
	rss, hwm int64         // bytes: VmRSS, VmHWM
	cpu      time.Duration // utime + stime
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

func readProc(pid int) (procStat, error) {
	var s procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.rss = kb * 1024
		case "VmHWM:":
			s.hwm = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (field 3, state, comes first).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpu = time.Duration(utime+stime) * clockTick
	return s, nil
}

// auditWatch follows an audit log as rekey appends to it and keeps, per
// credential, how its latest rotation ended ("" while in progress).
type auditWatch struct {
	path    string
	off     int64
	partial []byte
	ended   map[string]string // credential → outcome of a terminal line
}

func newAuditWatch(path string) *auditWatch {
	return &auditWatch{path: path, ended: map[string]string{}}
}

// poll reads what was appended since the last call.
func (a *auditWatch) poll() error {
	f, err := os.Open(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(a.off, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return err
	}
	a.off += int64(len(data))
	data = append(a.partial, data...)
	last := bytes.LastIndexByte(data, '\n')
	if last < 0 {
		a.partial = data
		return nil
	}
	a.partial = append([]byte(nil), data[last+1:]...)
	for _, line := range bytes.Split(data[:last], []byte{'\n'}) {
		var e struct {
			Credential string `json:"credential"`
			Outcome    string `json:"outcome"`
		}
		if json.Unmarshal(line, &e) != nil || e.Outcome == "in_progress" || e.Outcome == "" {
			continue
		}
		a.ended[e.Credential] = e.Outcome
	}
	return nil
}

// tally counts the ended rotations by outcome.
func (a *auditWatch) tally() (success, other int) {
	for _, o := range a.ended {
		if o == "success" {
			success++
		} else {
			other++
		}
	}
	return success, other
}
