// Package awssm is the AWS Secrets Manager sink (type aws-secretsmanager).
//
// A Put writes a new secret version with PutSecretValue, its
// ClientRequestToken (and so its version ID) derived from the rotation ID, so
// that a Put repeated after a crash is a no-op at AWS. In JSON field mode
// (Config.Key) the sink reads AWSCURRENT, sets the one field and keeps every
// other field in order. Rollback moves AWSCURRENT back to the version the Put
// replaced with UpdateSecretVersionStage, which needs no copy of the old value.
//
// Credentials come from the SDK's default chain (environment, shared config
// and SSO profiles, web identity, ECS and EC2 roles), with an STS assume-role
// provider on top when role_arn is set.
package awssm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Version stages Secrets Manager manages.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"
)

// Retry bounds for the SDK's standard retryer. Throttling and transient
// errors are retried inside one call; what is left after that is returned.
const (
	maxAttempts = 5
	maxBackoff  = 20 * time.Second
)

// ErrNoPrevious is returned (wrapped, permanent) by Rollback when the Put
// being undone created the secret's first value: there is no earlier
// version to move AWSCURRENT back to. The caller must restore the old value
// with a Put of it instead (the journal keeps it encrypted).
var ErrNoPrevious = errors.New("awssm: the put created the first value, there is no earlier version to restore")

// client is the part of the Secrets Manager API the sink uses.
type client interface {
	CreateSecret(context.Context, *secretsmanager.CreateSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	DescribeSecret(context.Context, *secretsmanager.DescribeSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(context.Context, *secretsmanager.PutSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(context.Context, *secretsmanager.UpdateSecretVersionStageInput, ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
}

// Sink is an AWS Secrets Manager secret, or one field of a JSON secret.
type Sink struct {
	cfg  Config
	name string
	api  client
	log  *zap.Logger
	now  func() time.Time
}

var (
	_ sinks.Sink        = (*Sink)(nil)
	_ sinks.Reader      = (*Sink)(nil)
	_ sinks.Rollbacker  = (*Sink)(nil)
	_ sinks.Preflighter = (*Sink)(nil)
)

// Option changes how New builds the sink.
type Option func(*options)

type options struct {
	client  []func(*secretsmanager.Options)
	backoff retry.BackoffDelayer
	now     func() time.Time
}

// WithRetryBackoff replaces the retryer's exponential jittered delay (tests
// use a zero delay); the attempt bound stays.
func WithRetryBackoff(b retry.BackoffDelayer) Option {
	return func(o *options) { o.backoff = b }
}

// WithClientOptions applies fns to the Secrets Manager client's options
// after the sink's own, e.g. static credentials or a quicker retryer in
// tests.
func WithClientOptions(fns ...func(*secretsmanager.Options)) Option {
	return func(o *options) { o.client = append(o.client, fns...) }
}

// WithNow sets the clock that stamps receipts.
func WithNow(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New builds the sink from a validated c. It loads the AWS configuration
// (region, profile, assume-role) but makes no network call: credentials are
// resolved on first use.
func New(c Config, log *zap.Logger, opts ...Option) (*Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("awssm: %s: %w", c.Name(), err)
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = zap.NewNop()
	}

	retryer := func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = maxAttempts
			so.MaxBackoff = maxBackoff
			if o.backoff != nil {
				so.Backoff = o.backoff
			}
		})
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRetryer(retryer)}
	if c.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(c.Region))
	}
	if c.Profile != "" {
		loadOpts = append(loadOpts, awsconfig.WithSharedConfigProfile(c.Profile))
	}
	// LoadDefaultConfig reads the environment and shared files only.
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("awssm: %s: load aws config: %w", c.Name(), err)
	}
	if c.RoleARN != "" {
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), c.RoleARN, func(ao *stscreds.AssumeRoleOptions) {
			if c.ExternalID != "" {
				ao.ExternalID = aws.String(c.ExternalID)
			}
			ao.RoleSessionName = c.SessionName
			if ao.RoleSessionName == "" {
				ao.RoleSessionName = "rekey"
			}
		})
		awsCfg.Credentials = aws.NewCredentialsCache(provider)
	}
	clientOpts := []func(*secretsmanager.Options){}
	if c.Endpoint != "" {
		clientOpts = append(clientOpts, func(so *secretsmanager.Options) { so.BaseEndpoint = aws.String(c.Endpoint) })
	}
	clientOpts = append(clientOpts, o.client...)
	api := secretsmanager.NewFromConfig(awsCfg, clientOpts...)
	return newSink(c, api, log, o.now), nil
}

func newSink(c Config, api client, log *zap.Logger, now func() time.Time) *Sink {
	return &Sink{cfg: c, name: c.Name(), api: api, log: log.WithLazy(zap.String("sink", c.Name())), now: now}
}

// Name is "aws-secretsmanager:" + secret ID, plus "#" + key in JSON field
// mode.
func (s *Sink) Name() string { return s.name }

// String prints the sink's name; a Sink holds no secret.
func (s *Sink) String() string { return s.name }

// GoString prints the sink's name; a Sink holds no secret.
func (s *Sink) GoString() string { return "awssm.Sink(" + s.name + ")" }

// Token returns the ClientRequestToken, and so the version ID, that a Put
// for rotationID writes to the secret secretID (field key, "" for the whole
// string): a UUID-shaped digest of the three, stable across restarts.
func Token(secretID, key, rotationID string) string {
	sum := sha256.Sum256([]byte("rekey\x00" + secretID + "\x00" + key + "\x00" + rotationID))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Put makes value the secret's AWSCURRENT value (or, with a key, the value
// of that field of AWSCURRENT's JSON object) as a new version whose ID is
// Token(secret ID, key, rotationID). Repeating it for the same rotation
// creates no further version and returns the same receipt: Version is the
// new version ID, Previous the AWSCURRENT version it replaced (empty when
// the secret held no value), Created whether the secret or field held no
// value before. A missing secret is created when create_if_missing is set
// and is a permanent error otherwise; so are access, KMS and validation
// errors and a JSON-field secret whose value is not a JSON object.
func (s *Sink) Put(ctx context.Context, value secret.Value, rotationID string) (sinks.Receipt, error) {
	r, err := s.put(ctx, value, rotationID)
	if err != nil {
		return sinks.Receipt{}, secret.Scrub(err, value)
	}
	return r, nil
}

func (s *Sink) put(ctx context.Context, value secret.Value, rotationID string) (sinks.Receipt, error) {
	if err := s.checkShape(value); err != nil {
		return sinks.Receipt{}, err
	}
	token := Token(s.cfg.SecretID, s.cfg.tokenKey(), rotationID)
	r := sinks.Receipt{Sink: s.name, RotationID: rotationID, Version: token}

	stages, found, err := s.stages(ctx, "put")
	if err != nil {
		return sinks.Receipt{}, err
	}
	if !found {
		if !s.cfg.CreateIfMissing {
			return sinks.Receipt{}, backoff.Permanent(fmt.Errorf("awssm: put %s: secret does not exist and create_if_missing is off", s.cfg.SecretID))
		}
		created, err := s.create(ctx, value, token)
		if err != nil {
			return sinks.Receipt{}, err
		}
		if created {
			r.Created, r.At = true, s.now()
			return r, nil
		}
		// Someone (or an earlier attempt of ours) created it meanwhile.
		if stages, _, err = s.stages(ctx, "put"); err != nil {
			return sinks.Receipt{}, err
		}
	}

	current := stageHolder(stages, StageCurrent)
	// base is the version this rotation's put replaced: AWSCURRENT, or
	// AWSPREVIOUS when AWSCURRENT is already ours (a repeated put).
	base := current
	if current == token {
		base = stageHolder(stages, StagePrevious)
	}
	r.Previous = base

	newString := value.Reveal()
	if !s.cfg.jsonMode() {
		r.Created = base == ""
	} else {
		curString := ""
		if current != "" {
			if curString, err = s.read(ctx, "put", current, value); err != nil {
				return sinks.Receipt{}, err
			}
		}
		var existed bool
		newString, existed, err = s.setValue(curString, value)
		if err != nil {
			return sinks.Receipt{}, backoff.Permanent(fmt.Errorf("awssm: put %s: version %s: %w; refusing to overwrite it", s.cfg.SecretID, current, err))
		}
		r.Created = !existed
		if current == token { // a repeat: what matters is whether base had the field
			r.Created = true
			if base != "" {
				baseString, err := s.read(ctx, "put", base, value)
				if err != nil {
					return sinks.Receipt{}, err
				}
				had, err := s.holdsAny(baseString)
				r.Created = err != nil || !had
			}
		}
	}

	out, err := s.api.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(s.cfg.SecretID),
		ClientRequestToken: aws.String(token),
		SecretString:       aws.String(newString),
	})
	if err != nil {
		return sinks.Receipt{}, s.fail("put", err, value, secret.New(newString))
	}
	if v := aws.ToString(out.VersionId); v != "" && v != token {
		return sinks.Receipt{}, fmt.Errorf("awssm: put %s: wrote version %s, want %s", s.cfg.SecretID, v, token)
	}
	// An ignored repeat (the version exists, e.g. after a rollback) leaves
	// the stages alone: make it current again.
	if out.VersionStages != nil && !contains(out.VersionStages, StageCurrent) {
		if err := s.moveCurrent(ctx, "put", token, current); err != nil {
			return sinks.Receipt{}, err
		}
	}
	r.At = s.now()
	s.log.Debug("secret version written", zap.String("rotation_id", rotationID),
		zap.String("version", token), zap.String("previous", r.Previous))
	return r, nil
}

// create makes the secret with value as its first version. created is false
// when the secret already exists.
func (s *Sink) create(ctx context.Context, value secret.Value, token string) (created bool, err error) {
	str := value.Reveal()
	if s.cfg.jsonMode() {
		str, _, _ = s.setValue("", value)
	}
	in := &secretsmanager.CreateSecretInput{
		Name:               aws.String(s.cfg.SecretID),
		ClientRequestToken: aws.String(token),
		SecretString:       aws.String(str),
	}
	if s.cfg.KMSKeyID != "" {
		in.KmsKeyId = aws.String(s.cfg.KMSKeyID)
	}
	if s.cfg.Description != "" {
		in.Description = aws.String(s.cfg.Description)
	}
	for _, k := range sortedKeys(s.cfg.Tags) {
		in.Tags = append(in.Tags, tag(k, s.cfg.Tags[k]))
	}
	if _, err := s.api.CreateSecret(ctx, in); err != nil {
		if errorCode(err) == "ResourceExistsException" {
			return false, nil
		}
		return false, s.fail("create", err, value, secret.New(str))
	}
	s.log.Info("secret created", zap.String("version", token))
	return true, nil
}

// Get returns the AWSCURRENT value (or its field), or sinks.ErrNotFound
// when the secret, its current version or the field does not exist.
func (s *Sink) Get(ctx context.Context) (secret.Value, error) {
	out, err := s.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(s.cfg.SecretID),
		VersionStage: aws.String(StageCurrent),
	})
	if err != nil {
		if errorCode(err) == "ResourceNotFoundException" {
			return secret.Value{}, fmt.Errorf("awssm: get %s: %w", s.cfg.SecretID, sinks.ErrNotFound)
		}
		return secret.Value{}, s.fail("get", err)
	}
	if out.SecretString == nil {
		return secret.Value{}, backoff.Permanent(fmt.Errorf("awssm: get %s: version %s holds binary data, not a string", s.cfg.SecretID, aws.ToString(out.VersionId)))
	}
	str := *out.SecretString
	if !s.cfg.jsonMode() {
		return secret.New(str), nil
	}
	if s.cfg.Fields != nil {
		return s.getFields(str, aws.ToString(out.VersionId))
	}
	v, ok, err := getField(str, s.cfg.Key)
	if err != nil {
		return secret.Value{}, backoff.Permanent(fmt.Errorf("awssm: get %s: version %s: %w", s.cfg.SecretID, aws.ToString(out.VersionId), err))
	}
	if !ok {
		return secret.Value{}, fmt.Errorf("awssm: get %s: no field %s: %w", s.cfg.SecretID, quote(s.cfg.Key), sinks.ErrNotFound)
	}
	return secret.New(v), nil
}

// Rollback moves AWSCURRENT from r.Version back to r.Previous. It is
// idempotent: when AWSCURRENT is already r.Previous it does nothing. It
// refuses, with a permanent error, when AWSCURRENT is a third version (a
// later write it must not undo), and returns ErrNoPrevious when the Put
// created the secret's first value.
func (s *Sink) Rollback(ctx context.Context, r sinks.Receipt) error {
	if r.Version == "" {
		return backoff.Permanent(fmt.Errorf("awssm: rollback %s: receipt has no version", s.cfg.SecretID))
	}
	if r.Previous == "" {
		return backoff.Permanent(fmt.Errorf("awssm: rollback %s: %w", s.cfg.SecretID, ErrNoPrevious))
	}
	stages, found, err := s.stages(ctx, "rollback")
	if err != nil {
		return err
	}
	if !found {
		return backoff.Permanent(fmt.Errorf("awssm: rollback %s: secret no longer exists", s.cfg.SecretID))
	}
	switch current := stageHolder(stages, StageCurrent); current {
	case r.Previous:
		return nil
	case r.Version:
		if err := s.moveCurrent(ctx, "rollback", r.Previous, r.Version); err != nil {
			return err
		}
		s.log.Info("secret rolled back", zap.String("rotation_id", r.RotationID),
			zap.String("version", r.Previous))
		return nil
	default:
		return backoff.Permanent(fmt.Errorf("awssm: rollback %s: AWSCURRENT is version %s, neither the put's %s nor its previous %s; not undoing a later write",
			s.cfg.SecretID, current, r.Version, r.Previous))
	}
}

// Preflight checks, without writing, that the secret can be described and
// its current value read (and, in JSON field mode, is a JSON object). A
// missing secret passes only with create_if_missing. Whether PutSecretValue
// itself is allowed cannot be proven without writing.
func (s *Sink) Preflight(ctx context.Context) error {
	stages, found, err := s.stages(ctx, "preflight")
	if err != nil {
		return err
	}
	if !found {
		if s.cfg.CreateIfMissing {
			return nil
		}
		return backoff.Permanent(fmt.Errorf("awssm: preflight %s: secret does not exist and create_if_missing is off", s.cfg.SecretID))
	}
	current := stageHolder(stages, StageCurrent)
	if current == "" {
		return nil
	}
	str, err := s.read(ctx, "preflight", current)
	if err != nil {
		return err
	}
	if s.cfg.jsonMode() {
		if _, err := parseObject(str); err != nil {
			return backoff.Permanent(fmt.Errorf("awssm: preflight %s: version %s: %w", s.cfg.SecretID, current, err))
		}
	}
	return nil
}

// stages returns the secret's version-to-stages map; found is false when
// the secret does not exist.
func (s *Sink) stages(ctx context.Context, op string) (map[string][]string, bool, error) {
	out, err := s.api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(s.cfg.SecretID)})
	if err != nil {
		if errorCode(err) == "ResourceNotFoundException" {
			return nil, false, nil
		}
		return nil, false, s.fail(op, err)
	}
	if out.DeletedDate != nil {
		return nil, false, backoff.Permanent(fmt.Errorf("awssm: %s %s: secret is scheduled for deletion", op, s.cfg.SecretID))
	}
	return out.VersionIdsToStages, true, nil
}

// read returns the SecretString of version id.
func (s *Sink) read(ctx context.Context, op, id string, values ...secret.Value) (string, error) {
	out, err := s.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:  aws.String(s.cfg.SecretID),
		VersionId: aws.String(id),
	})
	if err != nil {
		return "", s.fail(op, err, values...)
	}
	if out.SecretString == nil {
		return "", backoff.Permanent(fmt.Errorf("awssm: %s %s: version %s holds binary data, not a string", op, s.cfg.SecretID, id))
	}
	return *out.SecretString, nil
}

// moveCurrent moves AWSCURRENT to version to from version from ("" when no
// version holds it).
func (s *Sink) moveCurrent(ctx context.Context, op, to, from string) error {
	in := &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:        aws.String(s.cfg.SecretID),
		VersionStage:    aws.String(StageCurrent),
		MoveToVersionId: aws.String(to),
	}
	if from != "" {
		in.RemoveFromVersionId = aws.String(from)
	}
	if _, err := s.api.UpdateSecretVersionStage(ctx, in); err != nil {
		return s.fail(op, err)
	}
	return nil
}

func stageHolder(stages map[string][]string, stage string) string {
	for _, id := range sortedKeys(stages) { // sorted: the same answer every time
		if contains(stages[id], stage) {
			return id
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkShape refuses, before anything is read or written, a value whose
// shape the sink cannot hold: with fields, a value that is not a
// multi-field one with exactly the mapped field names; without, a
// multi-field value (its fields would be written as one string).
func (s *Sink) checkShape(value secret.Value) error {
	if s.cfg.Fields != nil {
		if _, err := s.cfg.Fields.Split(value); err != nil {
			return fmt.Errorf("awssm: put %s: %w", s.cfg.SecretID, err)
		}
		return nil
	}
	if value.IsFields() {
		return backoff.Permanent(fmt.Errorf("awssm: put %s: the value has fields %s but the sink holds a single value: map them with fields", s.cfg.SecretID, strings.Join(value.FieldNames(), ", ")))
	}
	return nil
}

// setValue returns the JSON object cur with the value set: the field key,
// or every mapped field (all in the one string a single PutSecretValue
// writes). existed reports whether any of them was there before.
func (s *Sink) setValue(cur string, value secret.Value) (out string, existed bool, err error) {
	if s.cfg.Fields == nil {
		return setField(cur, s.cfg.Key, value.Reveal())
	}
	parts, err := s.cfg.Fields.Split(value) // checked by checkShape
	if err != nil {
		return "", false, err
	}
	out = cur
	for _, pl := range s.cfg.Fields.Places() {
		var had bool
		if out, had, err = setField(out, pl, parts[pl].Reveal()); err != nil {
			return "", false, err
		}
		existed = existed || had
	}
	return out, existed, nil
}

// holdsAny reports whether the JSON object str holds the key field, or
// any mapped field.
func (s *Sink) holdsAny(str string) (bool, error) {
	places := []string{s.cfg.Key}
	if s.cfg.Fields != nil {
		places = s.cfg.Fields.Places()
	}
	for _, pl := range places {
		_, had, err := getField(str, pl)
		if err != nil {
			return false, err
		}
		if had {
			return true, nil
		}
	}
	return false, nil
}

// getFields joins the mapped fields of the JSON object str (version id):
// sinks.ErrNotFound when it holds none, sinks.ErrPartial when some.
func (s *Sink) getFields(str, id string) (secret.Value, error) {
	held := make(map[string]secret.Value, len(s.cfg.Fields))
	for _, pl := range s.cfg.Fields.Places() {
		v, _, err := getField(str, pl)
		if err != nil {
			return secret.Value{}, backoff.Permanent(fmt.Errorf("awssm: get %s: version %s: %w", s.cfg.SecretID, id, err))
		}
		held[pl] = secret.New(v)
	}
	v, err := s.cfg.Fields.Join(held)
	if err != nil {
		return secret.Value{}, fmt.Errorf("awssm: get %s: %w", s.cfg.SecretID, err)
	}
	return v, nil
}
