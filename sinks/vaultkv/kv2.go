package vaultkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Sink is a key in a KV version 2 secret. Receipts carry Vault version
// numbers: Version is the version Put wrote, Previous the live version it
// replaced ("" when the secret did not exist or its latest version was
// deleted). Created is true when that version had no field Key.
type Sink struct{ *conn }

// maxWalk bounds how far an idempotent Put looks back for the version that
// first held its value.
const maxWalk = 10

// kvVersion is one version of a KV v2 secret.
type kvVersion struct {
	version int
	data    map[string]any // nil when deleted or destroyed
	created time.Time
}

func (s *Sink) dataPath() string { return s.cfg.Mount + "/data/" + s.cfg.Path }

// read returns the given version (0: the current one), or nil when the
// secret has no such version.
func (s *Sink) read(ctx context.Context, version int) (*kvVersion, error) {
	var q map[string][]string
	if version > 0 {
		q = map[string][]string{"version": {strconv.Itoa(version)}}
	}
	sec, err := s.client.Logical().ReadWithDataWithContext(ctx, s.dataPath(), q)
	if err != nil {
		return nil, s.classify("read", s.dataPath(), err)
	}
	return parseV2(sec)
}

func parseV2(sec *api.Secret) (*kvVersion, error) {
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	md, ok := sec.Data["metadata"].(map[string]any)
	if !ok {
		return nil, errors.New("vaultkv: read: response has no KV v2 metadata")
	}
	v, err := number(md["version"])
	if err != nil {
		return nil, fmt.Errorf("vaultkv: read: metadata.version: %w", err)
	}
	kv := &kvVersion{version: v}
	kv.created, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(md["created_time"]))
	if d, ok := sec.Data["data"].(map[string]any); ok {
		kv.data = d
	}
	return kv, nil
}

func number(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case float64:
		return int(n), nil
	case int:
		return n, nil
	}
	return 0, fmt.Errorf("not a number: %T", v)
}

// write stores data as a new version if the current version is still cas
// (0: the secret does not exist), returning the version written. A lost
// race returns an error matched by isCASMismatch.
func (s *Sink) write(ctx context.Context, data map[string]any, cas int, scrub secret.Value) (*kvVersion, error) {
	sec, err := s.client.Logical().WriteWithContext(ctx, s.dataPath(), map[string]any{
		"data":    data,
		"options": map[string]any{"cas": cas},
	})
	if err != nil {
		if isCASMismatch(err) {
			return nil, err
		}
		return nil, secret.Scrub(s.classify("write", s.dataPath(), err), scrub)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vaultkv: write %s: empty response", s.dataPath())
	}
	v, err := number(sec.Data["version"])
	if err != nil {
		return nil, fmt.Errorf("vaultkv: write %s: version: %w", s.dataPath(), err)
	}
	created, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(sec.Data["created_time"]))
	return &kvVersion{version: v, data: data, created: created}, nil
}

// Put sets the field to value in a new version written with check-and-set
// on the version it read, keeping the secret's other fields. A lost race
// re-reads and retries a few times, then fails with ErrConflict (retryable).
// When the current version already holds value (a repeat after a crash), Put
// writes nothing and rebuilds the first Put's receipt from the version
// history.
func (s *Sink) Put(ctx context.Context, value secret.Value, rotationID string) (sinks.Receipt, error) {
	if err := s.ready(ctx); err != nil {
		return sinks.Receipt{}, err
	}
	if err := s.cfg.checkShape(s.dataPath(), value); err != nil {
		return sinks.Receipt{}, err
	}
	for attempt := 0; attempt < casAttempts; attempt++ {
		cur, err := s.read(ctx, 0)
		if err != nil {
			return sinks.Receipt{}, err
		}
		r := sinks.Receipt{Sink: s.name, RotationID: rotationID, Created: true}
		data := map[string]any{}
		cas := 0
		if cur != nil {
			cas = cur.version
			if cur.data != nil {
				if s.cfg.holds(cur.data, value) {
					return s.repeatReceipt(ctx, cur, value, r)
				}
				data = copyData(cur.data)
				r.Created = !s.cfg.hadAny(cur.data)
				r.Previous = strconv.Itoa(cur.version)
			}
		}
		s.cfg.set(data, value)
		w, err := s.write(ctx, data, cas, value)
		if isCASMismatch(err) {
			s.log.Debug("check-and-set lost a race; reading again", zap.Int("attempt", attempt+1))
			continue
		}
		if err != nil {
			return sinks.Receipt{}, err
		}
		r.Version = strconv.Itoa(w.version)
		r.At = w.created
		if r.At.IsZero() {
			r.At = time.Now().UTC()
		}
		return r, nil
	}
	return sinks.Receipt{}, fmt.Errorf("vaultkv: put %s (address %s): %d check-and-set attempts lost to concurrent writers: %w", s.dataPath(), s.cfg.Address, casAttempts, ErrConflict)
}

// repeatReceipt finds the oldest of the consecutive versions ending at cur
// that hold value (the version the first Put wrote) and describes it as that
// Put did.
func (s *Sink) repeatReceipt(ctx context.Context, cur *kvVersion, value secret.Value, r sinks.Receipt) (sinks.Receipt, error) {
	w := cur
	r.Created, r.Previous = true, ""
	for steps := 0; w.version > 1; steps++ {
		if steps == maxWalk {
			r.Created, r.Previous = false, strconv.Itoa(w.version-1)
			break
		}
		prev, err := s.read(ctx, w.version-1)
		if err != nil {
			return sinks.Receipt{}, err
		}
		if prev == nil || prev.data == nil {
			break
		}
		if s.cfg.holds(prev.data, value) {
			w = prev
			continue
		}
		r.Created, r.Previous = !s.cfg.hadAny(prev.data), strconv.Itoa(prev.version)
		break
	}
	r.Version = strconv.Itoa(w.version)
	r.At = w.created
	return r, nil
}

// Get returns the field of the current version, or sinks.ErrNotFound when
// the secret, its current version or the field does not exist.
func (s *Sink) Get(ctx context.Context) (secret.Value, error) {
	if err := s.ready(ctx); err != nil {
		return secret.Value{}, err
	}
	cur, err := s.read(ctx, 0)
	if err != nil {
		return secret.Value{}, err
	}
	if cur == nil || cur.data == nil {
		return secret.Value{}, sinks.ErrNotFound
	}
	return s.cfg.valueOf(cur.data, s.dataPath())
}

// Rollback writes the data of r.Previous back as a new version with
// check-and-set, as `vault kv rollback` does; when r.Previous is empty (the
// secret held no live version before), it writes the current data without
// the field. It is idempotent: when the current data already equals the
// target, it writes nothing. It refuses (permanently) to overwrite a field
// that changed after r.Version was written, which would undo a newer key.
func (s *Sink) Rollback(ctx context.Context, r sinks.Receipt) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	var prev *kvVersion
	if r.Previous != "" {
		pv, err := strconv.Atoi(r.Previous)
		if err != nil {
			return backoff.Permanent(fmt.Errorf("vaultkv: rollback %s: receipt previous version %q is not a number", s.dataPath(), r.Previous))
		}
		if prev, err = s.read(ctx, pv); err != nil {
			return err
		}
		if prev == nil || prev.data == nil {
			return s.permanent(nil, "rollback %s: version %d was deleted or destroyed; cannot restore it", s.dataPath(), pv)
		}
	}
	var wrote *kvVersion
	if wv, err := strconv.Atoi(r.Version); err == nil {
		if wrote, err = s.read(ctx, wv); err != nil {
			return err
		}
	}
	for attempt := 0; attempt < casAttempts; attempt++ {
		cur, err := s.read(ctx, 0)
		if err != nil {
			return err
		}
		var curData map[string]any
		cas := 0
		if cur != nil {
			curData, cas = cur.data, cur.version
		}
		var target map[string]any
		if prev != nil {
			if curData != nil && reflect.DeepEqual(curData, prev.data) {
				return nil
			}
			target = prev.data
		} else {
			if !s.cfg.hadAny(curData) {
				return nil
			}
			target = copyData(curData)
			s.cfg.unset(target)
		}
		if wrote != nil && wrote.data != nil && !s.cfg.samePlaces(curData, wrote.data) {
			return s.permanent(nil, "rollback %s: field %q changed after version %d was written (now version %d); not overwriting it", s.dataPath(), s.cfg.placeName(), wrote.version, cas)
		}
		_, err = s.write(ctx, target, cas, secret.Value{})
		if isCASMismatch(err) {
			continue
		}
		if err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("vaultkv: rollback %s (address %s): %d check-and-set attempts lost to concurrent writers: %w", s.dataPath(), s.cfg.Address, casAttempts, ErrConflict)
}

// Preflight logs in, checks the mount and its KV version, reads the secret
// and checks that the token may write it.
func (s *Sink) Preflight(ctx context.Context) error {
	return preflight(ctx, s.conn, s.dataPath(), func(ctx context.Context) (bool, error) {
		cur, err := s.read(ctx, 0)
		return cur != nil, err
	})
}

// preflight logs in, reads the secret and checks that the token may create
// it (missing) or update it (present) at dataPath.
func preflight(ctx context.Context, c *conn, dataPath string, exists func(context.Context) (bool, error)) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	found, err := exists(ctx)
	if err != nil {
		return err
	}
	need := "create"
	if found {
		need = "update"
	}
	return c.checkCaps(ctx, dataPath, need)
}

// checkCaps checks the token's capabilities on p with capabilities-self.
func (c *conn) checkCaps(ctx context.Context, p, need string) error {
	caps, err := c.client.Sys().CapabilitiesSelfWithContext(ctx, p)
	if err != nil {
		return c.classify("check capabilities", p, err)
	}
	for _, cp := range caps {
		if cp == "root" || cp == need {
			return nil
		}
	}
	return c.permanent(nil, "preflight %s (address %s, mount %q): token may %v, needs %s", p, c.cfg.Address, c.cfg.Mount, caps, need)
}
