package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/rekeyhq/rekey/internal/fsutil"
	"github.com/rekeyhq/rekey/internal/secret"
)

const (
	envPrefix  = "env:"
	filePrefix = "file:"
)

// MaxSecretFileSize caps the file a file: reference names: a token or key
// is well under 1 KiB, and the cap keeps a reference to /dev/zero or a huge
// file from growing memory.
const MaxSecretFileSize = 64 << 10

// IsSet reports whether the field was given.
func (s Secret) IsSet() bool { return s.Ref != "" }

// IsLiteral reports whether s holds the secret itself rather than an env: or
// file: reference.
func (s Secret) IsLiteral() bool {
	return s.IsSet() && !strings.HasPrefix(s.Ref, envPrefix) && !strings.HasPrefix(s.Ref, filePrefix)
}

// Check reports what is wrong with s as a required secret: unset, an env: or
// file: reference without a name, or a literal value where literalOK is
// false. The message never contains the value.
func (s Secret) Check(literalOK bool) error {
	switch {
	case !s.IsSet():
		return errors.New("required")
	case strings.HasPrefix(s.Ref, envPrefix):
		name := strings.TrimPrefix(s.Ref, envPrefix)
		if name == "" || strings.ContainsAny(name, "=\x00") || strings.TrimSpace(name) != name {
			return errors.New("env: reference needs a variable name, e.g. env:REKEY_STATE_KEY")
		}
	case strings.HasPrefix(s.Ref, filePrefix):
		p := strings.TrimPrefix(s.Ref, filePrefix)
		if p == "" || strings.ContainsRune(p, 0) {
			return errors.New("file: reference needs a path, e.g. file:/etc/rekey/state.key")
		}
	case !literalOK:
		return errors.New("literal secret values are not allowed here; use env: or file: (e.g. env:NAME or file:/path)")
	}
	return nil
}

// Resolve returns the secret: the named environment variable (which must be
// set and non-empty), the file's contents without the trailing newline, or
// the literal. A file: reference must name a regular file (symlinks are
// followed) of at most MaxSecretFileSize bytes; the read never blocks.
// Errors name the reference, never the value.
func (s Secret) Resolve() (secret.Value, error) {
	return s.resolve(false)
}

// ResolvePrivate is Resolve for a secret only rekey may read, such as the
// state encryption key: a file: reference whose file others may access
// (mode & 0o007 != 0), or whose group may access it while that group is not
// one of rekey's own groups, is refused with the chmod that fixes it, as
// the journal's own file is. A group that is rekey's own is allowed so
// that the documented deployments work: systemd's root:rekey 0640 and a
// Kubernetes secret volume, which always gives fsGroup read access.
func (s Secret) ResolvePrivate() (secret.Value, error) {
	return s.resolve(true)
}

// checkPrivate refuses a file that someone other than rekey's user and
// groups may access.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	shared := perm&0o007 != 0
	if perm&0o070 != 0 {
		st, ok := fi.Sys().(*syscall.Stat_t)
		shared = shared || !ok || !ownGroup(int(st.Gid))
	}
	if shared {
		return fmt.Errorf("key file has mode %04o, but group and others must have no access; run: chmod 600 %s", perm, path)
	}
	return nil
}

// ownGroup reports whether gid is the process's group or one of its
// supplementary groups.
func ownGroup(gid int) bool {
	if gid == os.Getgid() || gid == os.Getegid() {
		return true
	}
	groups, _ := os.Getgroups()
	return slices.Contains(groups, gid)
}

func (s Secret) resolve(private bool) (secret.Value, error) {
	switch {
	case !s.IsSet():
		return secret.Value{}, errors.New("config: secret not set")
	case strings.HasPrefix(s.Ref, envPrefix):
		name := strings.TrimPrefix(s.Ref, envPrefix)
		v, ok := os.LookupEnv(name)
		if !ok {
			return secret.Value{}, fmt.Errorf("config: %s: environment variable not set", s.Ref)
		}
		if v == "" {
			return secret.Value{}, fmt.Errorf("config: %s: environment variable is empty", s.Ref)
		}
		return secret.New(v), nil
	case strings.HasPrefix(s.Ref, filePrefix):
		path := strings.TrimPrefix(s.Ref, filePrefix)
		b, err := fsutil.ReadRegular(path, MaxSecretFileSize)
		if err != nil {
			// *PathError names the path and the cause only.
			return secret.Value{}, fmt.Errorf("config: %s: %w", s.Ref, err)
		}
		if private {
			if err := checkPrivate(path); err != nil {
				return secret.Value{}, fmt.Errorf("config: %s: %w", s.Ref, err)
			}
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return secret.Value{}, fmt.Errorf("config: %s: file is empty", s.Ref)
		}
		return secret.New(v), nil
	}
	return secret.New(s.Ref), nil
}

// UnmarshalYAML accepts any scalar; null leaves s unset.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a string such as env:NAME or file:PATH, got %s", describe(n))
	}
	if n.ShortTag() == "!!null" {
		*s = Secret{}
		return nil
	}
	*s = Secret{Ref: n.Value}
	return nil
}

// String returns the reference ("env:NAME", "file:PATH"), "[REDACTED]" for
// a literal, or "" when unset.
func (s Secret) String() string {
	if s.IsLiteral() {
		return secret.Redacted
	}
	return s.Ref
}

// GoString prints like String, so %#v shows no literal either.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format prints String for every verb, so %d, %x or %q cannot reach the
// literal through reflection.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// MarshalYAML prints the reference, or "[REDACTED]" for a literal.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText prints the reference, or "[REDACTED]" for a literal; JSON
// output uses it too.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
