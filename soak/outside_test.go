package soak

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rekeyhq/rekey/internal/e2etest"
)

// World faults (issue 10, I8 "look before you leap"): the harness changes
// the world behind rekey's back, the way a person or config management
// would, while a rotation is under way. Unlike the other faults they do
// not make a call fail; they make what rekey believes false. Each one
// has a judge that reads the attempt's rotation from the journal
// afterwards and sorts its outcome into expected, safe but unexpected,
// and unsafe (asserted: none).
//
// Accounting: a client 401 on a key the harness revoked itself, read from
// a sink that had held that key without a break since before the harness
// revoked it, is the fault's doing, not rekey's: it is counted apart
// ("refused, the harness's doing"). Any other 401 still counts against
// rekey, in particular one on a key rekey wrote into a sink after the
// harness had revoked it (a rollback restoring a dead key).

// outsideRevoke is a key the harness revoked behind rekey's back.
type outsideRevoke struct {
	cred, keyID, handle string
	at                  time.Time // the issuer's revocation time
}

// outsideAt reports when the harness revoked cred's key with handle
// (keyIssuer.handle), if it did.
func (w *world) outsideAt(cred, handle string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.outside {
		if o.cred == cred && o.handle == handle {
			return o.at, true
		}
	}
	return time.Time{}, false
}

// outsideByID reports whether the harness revoked cred's key id.
func (w *world) outsideByID(cred, id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.outside[cred+"/"+id]
	return ok
}

// revokeOutside revokes the key with handle at the issuer through its
// management API (not through the fault proxy, not through rekey) and
// records it; it returns the key's ID, or "" if the key was not active or
// the harness was not the one that revoked it.
func (c *cred) revokeOutside(handle string) string {
	var id string
	for _, k := range c.iss.keys() {
		if k.handle == handle && k.active {
			id = k.id
		}
	}
	if id == "" {
		return ""
	}
	t0 := time.Now()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.iss.revoke(ctx, id)
		cancel()
		if err == nil {
			break
		}
	}
	for _, k := range c.iss.keys() {
		// Only a revocation stamped after the call began is the harness's
		// own: rekey may have revoked the key a moment before.
		if k.id == id && !k.revoked.IsZero() && !k.revoked.Before(t0.Add(-time.Millisecond)) {
			c.w.mu.Lock()
			c.w.outside[c.name+"/"+id] = outsideRevoke{cred: c.name, keyID: id, handle: handle, at: k.revoked}
			c.w.mu.Unlock()
			return id
		}
	}
	return ""
}

// write puts v into one readable sink directly, as config management or a
// person would: the file is replaced whole (temp file and rename, so a
// client never reads half a file), AWS gets a new AWSCURRENT version,
// Vault a new KV version; the other fields are kept.
func (c *cred) write(kind sinkKind, v string) error {
	places, parts := c.places(kind), c.split(v)
	switch kind {
	case kindFile:
		b, err := readRegular(c.file)
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			for j, p := range places {
				if strings.HasPrefix(l, p+"=") {
					lines[i] = p + "=" + parts[j]
				}
			}
		}
		return replaceFile(c.file, []byte(strings.Join(lines, "\n")), ".revert")
	case kindAWS:
		cur, ok := c.w.sm.Current(c.awsID())
		if !ok {
			return fmt.Errorf("no AWSCURRENT for %s", c.awsID())
		}
		var doc map[string]string
		if err := json.Unmarshal([]byte(cur), &doc); err != nil {
			return fmt.Errorf("secret %s is not JSON", c.awsID())
		}
		for j, p := range places {
			doc[p] = parts[j]
		}
		b, _ := json.Marshal(doc)
		c.w.sm.Seed(c.awsID(), string(b))
		return nil
	case kindVault:
		kv := c.w.vault.KVv2(kvMount)
		s, err := kv.Get(context.Background(), c.vaultPath())
		if err != nil {
			return fmt.Errorf("vault read %s: %w", c.vaultPath(), err)
		}
		data := map[string]any{}
		for k, x := range s.Data {
			data[k] = x
		}
		for j, p := range places {
			data[p] = parts[j]
		}
		if _, err := kv.Put(context.Background(), c.vaultPath(), data); err != nil {
			return fmt.Errorf("vault write %s: %w", c.vaultPath(), err)
		}
		return nil
	}
	return fmt.Errorf("sink %s is not written by the harness", kind)
}

// replaceFile writes data to path through a temp file beside it whose
// name starts with ".app.env" (the leak scan skips those, as it skips
// the sinks) and a rename.
func replaceFile(path string, data []byte, suffix string) error {
	tmp := filepath.Join(filepath.Dir(path), ".app.env"+suffix)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fifoSwap replaces the file sink's path by a FIFO, atomically (a FIFO
// made beside it, renamed over it), and returns what the file held.
func (c *cred) fifoSwap() ([]byte, error) {
	b, err := readRegular(c.file)
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(c.fileDir, ".app.env.fifo")
	os.Remove(tmp)
	if err := syscall.Mkfifo(tmp, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, c.file); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return b, nil
}

// fifoRestore puts the regular file back with content, unless something
// already replaced the FIFO: then it reports replaced and leaves what is
// there.
func (c *cred) fifoRestore(content []byte) (replaced bool) {
	fi, err := os.Lstat(c.file)
	if err == nil && fi.Mode()&os.ModeNamedPipe == 0 {
		return true
	}
	if err := replaceFile(c.file, content, ".restore"); err != nil {
		c.w.t.Errorf("%s: restore the file sink after sink-fifo: %v", c.name, err)
	}
	return false
}

// verdict is a judge's reading of one attempt under a world fault.
type verdict struct {
	outcome  string // the rotation's end, or "none", "hung", "not-injected"
	expected bool   // the outcome the fault's comment predicts
	unsafe   string // non-empty: an invariant broken by rekey, and how
	unclear  string // non-empty: the rotation failed without naming the cause
}

// judged is what a judge sees of its attempt.
type judged struct {
	hung bool
	rot  *e2etest.HistoryEntry // the rotation the attempt started; nil if none
}

func (j judged) phase() string {
	switch {
	case j.hung:
		return "hung"
	case j.rot == nil:
		return "none"
	}
	return j.rot.Phase
}

func (j judged) reached(phase string) bool { return !j.at(phase).IsZero() }

// at returns when the rotation first entered phase; zero if it did not.
func (j judged) at(phase string) time.Time {
	if j.rot != nil {
		for _, tr := range j.rot.Transitions {
			if tr.Phase == phase {
				return tr.At
			}
		}
	}
	return time.Time{}
}

// keyActive reports whether cred's key id is active at the issuer.
func (c *cred) keyActive(id string) bool {
	for _, k := range c.iss.keys() {
		if k.id == id {
			return k.active
		}
	}
	return false
}

// handleActive reports whether cred's key with handle is active.
func (c *cred) handleActive(handle string) bool {
	k, ok := keyByHandle(c.iss, handle)
	return ok && k.active
}

// onceAt runs f (once) delay after the rotation first prints phase; it
// never blocks the process's output.
func onceAt(phase string, delay time.Duration, f func()) func(string, *proc) {
	var once sync.Once
	return func(p string, _ *proc) {
		if p == phase {
			once.Do(func() { time.AfterFunc(delay, f) })
		}
	}
}

// pickWorld fills f with one of the world faults.
func (c *cred) pickWorld(rng *mrand.Rand, f *fault) {
	var readable []sinkKind
	for _, k := range c.kinds {
		if k != kindGH { // write-only: rekey cannot see a revert there (I8 reads back only what it can)
			readable = append(readable, k)
		}
	}
	switch n := rng.IntN(6); n {
	case 0, 1:
		c.oldRevokedOutside(f, n == 1)
	case 2, 3:
		c.sinkReverted(f, readable[rng.IntN(len(readable))], n == 3, time.Duration(100+rng.IntN(200))*time.Millisecond)
	default:
		c.sinkFIFO(f, n == 5, time.Duration(100+rng.IntN(300))*time.Millisecond)
	}
}

// oldRevokedOutside: once the rotation is monitoring, the key it is
// replacing (the one in the sinks when the attempt began) is revoked at
// the issuer by someone else. With rollback set, the health check fails
// from the start, so the window fails after the revocation and the engine
// must decide what to undo.
//
// Invariants under this fault:
//   - I3 never dark: with the old key dead, the new key is the only one
//     that works. Rolling back would put a dead key in every sink; so
//     before restoring, rekey must check that the old key still
//     authenticates, see that it does not, keep the new key in every sink,
//     leave the new key valid and end `failed` with an alert (expected;
//     `rolled_back` is unsafe, and so is a new key revoked by rekey).
//     Without the failing health check the window passes and the old
//     key's revocation finds it "already revoked", which is success:
//     expected `done`. A `failed` there (a probe lost to load, then the
//     old key found dead) is safe.
//   - I1 never early: the old key's revocation time is the harness's, not
//     rekey's; the early-revocation check skips such keys.
//   - I2 never lost: a kept new key is in every sink; the dead old key is
//     not active, so neither is an orphan.
//   - Accounting: sinks hold the new key when the harness revokes the old
//     one, so a 401 is the harness's doing only for a client that read the
//     old key just before the deploy; a 401 on the old key read from a
//     sink rekey restored it to counts against rekey.
func (c *cred) oldRevokedOutside(f *fault, rollback bool) {
	f.name = "old-revoked-outside"
	if rollback {
		f.name += "-rollback"
	}
	var oldPrefix, revoked string
	var mu sync.Mutex
	done := make(chan struct{})
	f.arm = func() {
		if rollback {
			c.healthy.Store(false)
		}
		if v, err := c.read(kindFile); err == nil {
			oldPrefix = c.handleOf(v)
		}
	}
	f.onPhase = onceAt("monitoring", 0, func() {
		defer close(done)
		id := c.revokeOutside(oldPrefix)
		mu.Lock()
		revoked = id
		mu.Unlock()
	})
	f.disarm = func() { c.healthy.Store(true) }
	f.judge = func(j judged) verdict {
		if j.reached("monitoring") {
			<-done
		}
		mu.Lock()
		id := revoked
		mu.Unlock()
		v := verdict{outcome: j.phase()}
		if id == "" || j.rot == nil || j.rot.OldKeyID != id {
			// Not reached (the attempt ended before monitoring), or the
			// key revoked was not the rotation's old key (sinks disagreed
			// after an earlier failed rotation): nothing to judge.
			v.outcome = "not-injected"
			v.expected = true
			return v
		}
		c.w.mu.Lock()
		at := c.w.outside[c.name+"/"+id].at
		c.w.mu.Unlock()
		if rb := j.at("rolling_back"); !rb.IsZero() && !at.Before(rb) {
			// The harness was late: rekey had begun rolling back to a
			// key that was still valid.
			v.outcome, v.expected = "late", true
			return v
		}
		switch j.rot.Phase {
		case "rolled_back":
			v.unsafe = "rolled back although the old key " + id + " had been revoked: the sinks were restored to a dead key"
		case "failed":
			if j.rot.NewKeyID != "" && !c.keyActive(j.rot.NewKeyID) {
				v.unsafe = "failed with the new key " + j.rot.NewKeyID + " revoked and the old key dead: no valid key left"
			}
			v.expected = rollback
		case "done":
			v.expected = !rollback
		}
		return v
	}
}

// sinkReverted: during the monitoring window one readable sink (file, AWS
// or Vault; GitHub is write-only, rekey cannot see a revert there) is
// written back to the value it held when the attempt began, directly, not
// through rekey. Once: a single revert delay after monitoring starts.
// Sticky: from then on the harness puts the old value back whenever the
// sink holds anything else, polling every 100 ms, as config management
// would, until the process ends.
//
// The harness writes only while the last transition rekey printed is
// `monitoring`, a single revert only early in the window (up to the window
// less 400 ms after the transition was seen), and never once the old key
// is revoked: a revert that lands between rekey's last read-back and its
// revoke is a race no engine can win, and the harness must not plant a
// dead key itself. Sticky writes follow rekey's own writes within 100 ms,
// a whole window before its next read-back.
//
// Invariants under this fault:
//   - I8 / I3: right before revoking the old key, rekey must read back
//     every readable sink. Once: it finds the old key, does not revoke,
//     puts the new key back, watches a whole window again, finds every
//     sink on the new key and revokes: expected `done`. Sticky (judged as
//     such once the harness reverted twice, i.e. after rekey redeployed):
//     the second read-back finds the old key again; rekey must give up
//     with both keys valid: expected `failed`; `done` is unsafe (the old
//     key was revoked while config management kept it in a sink), and so
//     is a `failed` that revoked either key. A `rolled_back` (new key
//     revoked, every sink on the old key) is safe, though not what the
//     design asks.
//   - A revoke that finds the old key in a sink without the read-back
//     shows as client 401s on the reverted sink and "sinks held revoked":
//     rekey's doing, counted against it (the harness only wrote a key that
//     was valid at the time).
//   - I2: a `failed` rotation leaves both keys valid; both are on its
//     record (old and new key IDs), which the orphan check accepts.
//   - I1: the window that counts is the last one; the early-revocation
//     check measures from the first `monitoring` transition, which is
//     weaker, never stricter.
func (c *cred) sinkReverted(f *fault, kind sinkKind, sticky bool, delay time.Duration) {
	f.name = "sink-reverted-once-" + string(kind)
	if sticky {
		f.name = "sink-reverted-sticky-" + string(kind)
	}
	var (
		mu             sync.Mutex
		old, oldPrefix string
		phase          string    // the last transition rekey printed
		monitoring     time.Time // when the first `monitoring` was seen
		reverts        int
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	f.arm = func() {
		if v, err := c.read(kind); err == nil {
			old, oldPrefix = v, c.handleOf(v)
		}
	}
	// revert writes the old value if the sink holds anything else and
	// the guards allow; it reports whether to go on polling.
	revert := func() bool {
		mu.Lock()
		inWindow := phase == "monitoring" && (sticky || time.Since(monitoring) < c.window-400*time.Millisecond)
		mu.Unlock()
		if old == "" || !c.handleActive(oldPrefix) {
			return false
		}
		if !inWindow {
			return sticky
		}
		if cur, err := c.read(kind); err != nil || cur == old {
			return true
		}
		if c.write(kind, old) == nil {
			mu.Lock()
			reverts++
			mu.Unlock()
		}
		return true
	}
	run := func() {
		defer close(done)
		if !sticky {
			revert()
			return
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for revert() {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}
	f.onPhase = func(p string, _ *proc) {
		mu.Lock()
		phase = p
		first := p == "monitoring" && monitoring.IsZero()
		if first {
			monitoring = time.Now()
		}
		mu.Unlock()
		if first {
			time.AfterFunc(delay, run)
		}
	}
	var stopOnce sync.Once
	f.disarm = func() {
		stopOnce.Do(func() { close(stop) })
	}
	f.judge = func(j judged) verdict {
		mu.Lock()
		seen := !monitoring.IsZero()
		mu.Unlock()
		if seen {
			<-done // the reverter has stopped
		}
		mu.Lock()
		n := reverts
		mu.Unlock()
		v := verdict{outcome: j.phase()}
		if n == 0 || j.rot == nil {
			v.outcome, v.expected = "not-injected", true
			return v
		}
		stuck := sticky && n >= 2 // rekey redeployed and the sink was reverted again
		if sticky && !stuck {
			v.outcome += " (reverted once)"
		}
		switch j.rot.Phase {
		case "done":
			v.expected = !stuck
			if cur, err := c.read(kind); err == nil && cur == old {
				v.unsafe = fmt.Sprintf("done, with %s holding the revoked old key", kind)
			} else if stuck {
				v.unsafe = fmt.Sprintf("done although config management kept putting the old key back into %s", kind)
			}
		case "failed":
			v.expected = stuck
			for _, id := range []string{j.rot.OldKeyID, j.rot.NewKeyID} {
				if id != "" && !c.keyActive(id) {
					v.unsafe = "failed with key " + id + " revoked: a reverted sink may hold it"
				}
			}
		}
		return v
	}
}

// sinkFIFO: the file sink's path is replaced by a FIFO, before the attempt
// or, with during set, delay after monitoring starts (after the deploy:
// then it meets the read-back before the revoke, or the rollback). The
// regular file comes back, with what it held before the swap, after the
// process ended.
//
// Invariants under this fault:
//   - No hang: opening a FIFO blocks until a writer comes, and no context
//     interrupts a blocked open(2). The file sink must find out without
//     blocking (lstat, or O_NONBLOCK and fstat) and fail permanently: a
//     FIFO is no transient error worth five minutes of retries. An attempt
//     still running 10 min after it began is killed and counted hung
//     (asserted: none). The bound is far above what a FIFO costs a rekey
//     that does not block on it (about a second), and above the engine's
//     own retry budget (Engine.RetryFor, 5 min), because an attempt can
//     legitimately wait that long for a server another credential's fault
//     is breaking (the GitHub and Vault servers are shared): a 90 s bound
//     once killed such an attempt, rolling back into GitHub while another
//     credential's rollback-github-dropped fault dropped every write.
//   - Never replace it: the FIFO is not rekey's to remove (someone put it
//     there on purpose); an attempt that leaves a regular file in its
//     place is counted as "FIFOs replaced" (asserted: none).
//   - Clear error: a rotation that reached the deploy (before) or was hit
//     during monitoring (during) and did not end `done` must name the file
//     sink in its journaled error (asserted).
//   - I1/I8: `done` is unsafe either way: before, the file never received
//     the new key; during, the file could not be read back before the
//     revoke, so nobody knows it does not hold the old key.
//   - I3: rolling back restores the other sinks and cannot restore the
//     FIFO; that must end `failed` with the new key left valid (the file
//     held the new key when it vanished, and it holds it again once the
//     harness restores the file). A new key revoked by rekey then shows as
//     "sinks held revoked" against rekey: it revoked a key that a sink it
//     could not read had last held.
func (c *cred) sinkFIFO(f *fault, during bool, delay time.Duration) {
	f.name = "sink-fifo"
	if during {
		f.name = "sink-fifo-monitoring"
	}
	f.watchdog = 10 * time.Minute
	var content []byte
	var swapped, replaced, disarmed bool
	var mu sync.Mutex
	swap := func() {
		mu.Lock()
		defer mu.Unlock()
		if disarmed {
			return // the process ended before the delay passed
		}
		if b, err := c.fifoSwap(); err == nil {
			content, swapped = b, true
		}
	}
	if during {
		f.onPhase = onceAt("monitoring", delay, swap)
	} else {
		f.arm = swap
	}
	f.disarm = func() {
		mu.Lock()
		defer mu.Unlock()
		disarmed = true
		if swapped {
			replaced = c.fifoRestore(content)
		}
	}
	f.judge = func(j judged) verdict {
		mu.Lock()
		defer mu.Unlock()
		v := verdict{outcome: j.phase()}
		if !swapped {
			v.outcome, v.expected = "not-injected", true
			return v
		}
		if replaced {
			v.unsafe = "the FIFO at " + c.file + " was replaced"
		}
		if j.hung || j.rot == nil {
			// Hung attempts are counted apart; no rotation: `run` found
			// the credential not due, or rekey refused before planning.
			v.expected = true
			return v
		}
		switch j.rot.Phase {
		case "done":
			v.unsafe = "done although the file sink was a FIFO"
			if during {
				v.unsafe = "done without reading back the file sink (a FIFO) before the revoke"
			}
		case "rolled_back", "failed":
			v.expected = true
			if (during || j.reached("verified")) && !strings.Contains(j.rot.Error, c.file) {
				v.unclear = "the rotation's error does not name the file sink"
			}
		}
		return v
	}
}

// judge runs f's judge on the rotation this attempt started (the first
// one journaled since begin) and records the verdict.
func (c *cred) judge(f *fault, begin time.Time, hung bool, log string, st *stats) {
	j := judged{hung: hung}
	hist, err := c.historyE()
	if err != nil {
		st.mu.Lock()
		st.bad = append(st.bad, fmt.Sprintf("%s (%s): history: %v", c.name, f.name, err))
		st.mu.Unlock()
		return
	}
	for i := range hist {
		if h := &hist[i]; !h.StartedAt.Before(begin) && (j.rot == nil || h.StartedAt.Before(j.rot.StartedAt)) {
			j.rot = h
		}
	}
	v := f.judge(j)
	where := fmt.Sprintf("%s %s (%s)", c.name, f.mode, f.name)
	if j.rot != nil {
		where += " rotation " + j.rot.ID
	}
	where += ", log " + filepath.Base(log)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.outcomes[f.name+":"+v.outcome]++
	if v.unsafe != "" {
		st.unsafe = append(st.unsafe, where+": "+v.unsafe)
	}
	if v.unclear != "" {
		st.unclear = append(st.unclear, where+": "+v.unclear)
	}
	if !v.expected && v.unsafe == "" {
		st.offExpect = append(st.offExpect, where+": ended "+v.outcome)
	}
}
