// Package awsiam is the issuer for the access keys of one AWS IAM user
// (type aws-iam). It speaks IAM's Query API through aws-sdk-go-v2, and
// verifies a key with STS GetCallerIdentity signed by that key; fakeiam is
// the protocol-faithful IAM and STS it is tested against.
//
// # Values
//
// A key's value has two fields (secret.NewFields): "access_key_id" and
// "secret_access_key" (Fields names them). The access key ID is the key's
// ID at the issuer, so a value identifies its key exactly (Identifier).
//
// # Labels
//
// IAM access keys carry no label, description or tag. rekey's label
// contract (Find returns the keys a rotation created, including one whose
// CreateAccessKey answer was lost) is kept with tags on the IAM user, which
// IAM does store durably:
//
//   - before CreateAccessKey, the tag "rekey:pending" is set to the time,
//     the label and the IDs of the keys the user holds at that moment;
//   - after it, "rekey:label:<key ID>" is set to the label and the pending
//     tag is removed.
//
// A key with no label tag that is not among the pending tag's IDs appeared
// after the attempt began: Find attributes it to the pending label. So a
// key whose create answer was lost (a crash, a dropped connection, a 5xx)
// is found by its label after a restart, and the engine revokes it (I2).
// Create itself, when an attempt's outcome is unknown, lists the user's
// keys and deletes any key the pending tag does not know (its secret is
// lost), and tries again only when it found one; otherwise it returns
// issuers.ErrMaybeCreated (the request may still land; the pending tag
// stays, so a late key is still attributed). IAM's quota of two keys per
// user bounds what can be left behind. One IAM user must therefore belong
// to one rekey credential; a key a person creates for the user while a
// rotation is unfinished can be taken for that rotation's orphan.
//
// # Revoking
//
// Revoke deactivates the key (UpdateAccessKey Status=Inactive): it stops
// authenticating at once, and a person can still reactivate it. The time is
// recorded first in the tag "rekey:revoked:<key ID>" (IAM keeps no time of a
// status change), which makes the grace durable without the journal: an
// inactive key whose revoked tag is older than delete_after is deleted by
// the next Create or Revoke, or by Sweep. delete_after: 0 deletes the key at
// once. List and Get never delete, so `rekey plan` changes nothing. IAM
// counts inactive keys against the quota of two: a rotation started within
// delete_after of the last one finds the previous old key still there and
// fails with issuers.ErrKeyLimit, naming the key and when it will go.
//
// # Account
//
// Account is "aws-iam account <account_id> user <user_name>" when
// account_id is set, else "aws-iam <endpoint> user <user_name>" with the
// configured endpoint, or "aws" for AWS's own. The journal binds to it:
// set account_id from the first rotation on (adding it later makes earlier
// history another setup's).
//
// # Permissions
//
// rekey's own credentials need iam:CreateAccessKey, iam:ListAccessKeys,
// iam:UpdateAccessKey, iam:DeleteAccessKey, iam:GetAccessKeyLastUsed,
// iam:TagUser, iam:UntagUser and iam:ListUserTags on the user (the policy
// deploy/aws/rekey-iam-policy.json). STS GetCallerIdentity needs no
// permission.
package awsiam

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// The fields of a value.
const (
	FieldAccessKeyID     = "access_key_id"
	FieldSecretAccessKey = "secret_access_key"
)

// MaxKeysPerUser is IAM's quota of access keys per user, active and
// inactive together; it cannot be raised.
const MaxKeysPerUser = 2

// Tags on the IAM user (see the package doc).
const (
	tagPending       = "rekey:pending"
	tagLabelPrefix   = "rekey:label:"
	tagRevokedPrefix = "rekey:revoked:"
)

// Retry bounds for the SDK's standard retryer (throttling, 5xx, dropped
// connections) on every call but CreateAccessKey, which is never retried
// blindly.
const (
	maxAttempts = 5
	maxBackoff  = 20 * time.Second
	createTries = 3
)

// ErrAccessDenied: IAM refused rekey's own credentials an action. It is
// permanent; the message names the action and the user.
var ErrAccessDenied = errors.New("awsiam: access denied")

// errPropagating marks a refusal of a fresh, active key: IAM's eventual
// consistency, worth waiting for.
var errPropagating = errors.New("the new key is not yet valid at STS")

// Config configures an Issuer; FileConfig.Resolve makes one.
type Config struct {
	UserName    string
	AccountID   string
	Region      string
	Profile     string
	Endpoint    string
	STSEndpoint string
	// DeleteAfter is how long a revoked key stays inactive before it is
	// deleted; 0 deletes at once.
	DeleteAfter time.Duration
	// VerifyTimeout bounds how long Verify waits for a fresh key to reach
	// STS; DefaultVerifyTimeout when 0.
	VerifyTimeout time.Duration
	// Timeout bounds each HTTP request; DefaultTimeout when 0.
	Timeout time.Duration
}

type iamAPI interface {
	CreateAccessKey(context.Context, *iam.CreateAccessKeyInput, ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error)
	ListAccessKeys(context.Context, *iam.ListAccessKeysInput, ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error)
	UpdateAccessKey(context.Context, *iam.UpdateAccessKeyInput, ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error)
	DeleteAccessKey(context.Context, *iam.DeleteAccessKeyInput, ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
	GetAccessKeyLastUsed(context.Context, *iam.GetAccessKeyLastUsedInput, ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error)
	TagUser(context.Context, *iam.TagUserInput, ...func(*iam.Options)) (*iam.TagUserOutput, error)
	UntagUser(context.Context, *iam.UntagUserInput, ...func(*iam.Options)) (*iam.UntagUserOutput, error)
	ListUserTags(context.Context, *iam.ListUserTagsInput, ...func(*iam.Options)) (*iam.ListUserTagsOutput, error)
}

// Issuer manages one IAM user's access keys. It is safe for concurrent use.
type Issuer struct {
	user          string
	accountID     string
	account       string
	deleteAfter   time.Duration
	verifyTimeout time.Duration
	api           iamAPI
	awsCfg        aws.Config
	stsOpts       []func(*sts.Options)
	clock         clockwork.Clock
	log           *zap.Logger
}

var (
	_ issuers.Issuer        = (*Issuer)(nil)
	_ issuers.Identifier    = (*Issuer)(nil)
	_ issuers.UsageReporter = (*Issuer)(nil)
	_ issuers.KeyLimiter    = (*Issuer)(nil)
	_ issuers.SlotHolder    = (*Issuer)(nil)
	_ issuers.Account       = (*Issuer)(nil)
	_ issuers.Fielded       = (*Issuer)(nil)
)

// Option adjusts how New builds an Issuer.
type Option func(*options)

type options struct {
	clock   clockwork.Clock
	creds   aws.CredentialsProvider
	backoff awsretry.BackoffDelayer
	iam     []func(*iam.Options)
	sts     []func(*sts.Options)
}

// WithClock sets the clock of the grace, of Verify's waits and of the
// pending tag (default: the real clock).
func WithClock(c clockwork.Clock) Option { return func(o *options) { o.clock = c } }

// WithCredentials replaces the SDK's default chain for rekey's own calls
// (not for Verify, which signs with the value verified).
func WithCredentials(p aws.CredentialsProvider) Option { return func(o *options) { o.creds = p } }

// WithRetryBackoff replaces the SDK retryer's delay (tests use none); the
// attempt bound stays.
func WithRetryBackoff(b awsretry.BackoffDelayer) Option { return func(o *options) { o.backoff = b } }

// WithIAMOptions and WithSTSOptions apply fns to the clients' options
// after the issuer's own.
func WithIAMOptions(fns ...func(*iam.Options)) Option {
	return func(o *options) { o.iam = append(o.iam, fns...) }
}

// WithSTSOptions: see WithIAMOptions.
func WithSTSOptions(fns ...func(*sts.Options)) Option {
	return func(o *options) { o.sts = append(o.sts, fns...) }
}

// New builds the issuer. It loads the AWS configuration (region, profile)
// but makes no network call.
func New(c Config, log *zap.Logger, opts ...Option) (*Issuer, error) {
	switch {
	case !userNameRE.MatchString(c.UserName):
		return nil, errors.New("awsiam: user_name must be an IAM user name (1-64 of letters, digits and +=,.@_-)")
	case c.AccountID != "" && !accountIDRE.MatchString(c.AccountID):
		return nil, errors.New("awsiam: account_id must be 12 digits")
	case c.DeleteAfter < 0:
		return nil, errors.New("awsiam: delete_after must not be negative")
	}
	if c.VerifyTimeout <= 0 {
		c.VerifyTimeout = DefaultVerifyTimeout
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	o := options{clock: clockwork.NewRealClock()}
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = zap.NewNop()
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(func() aws.Retryer {
			return awsretry.NewStandard(func(so *awsretry.StandardOptions) {
				so.MaxAttempts = maxAttempts
				so.MaxBackoff = maxBackoff
				if o.backoff != nil {
					so.Backoff = o.backoff
				}
			})
		}),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(c.Timeout)),
	}
	if c.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(c.Region))
	}
	if c.Profile != "" {
		loadOpts = append(loadOpts, awsconfig.WithSharedConfigProfile(c.Profile))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("awsiam: load aws config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1" // IAM is global; STS needs some region
	}
	if o.creds != nil {
		awsCfg.Credentials = o.creds
	}
	iamOpts := []func(*iam.Options){}
	if c.Endpoint != "" {
		iamOpts = append(iamOpts, func(io *iam.Options) { io.BaseEndpoint = aws.String(c.Endpoint) })
	}
	stsEndpoint := c.STSEndpoint
	if stsEndpoint == "" {
		stsEndpoint = c.Endpoint
	}
	stsOpts := []func(*sts.Options){}
	if stsEndpoint != "" {
		stsOpts = append(stsOpts, func(so *sts.Options) { so.BaseEndpoint = aws.String(stsEndpoint) })
	}
	where := "aws"
	switch {
	case c.AccountID != "":
		where = "account " + c.AccountID
	case c.Endpoint != "":
		where = strings.TrimRight(c.Endpoint, "/")
	}
	return &Issuer{
		user:          c.UserName,
		accountID:     c.AccountID,
		account:       Type + " " + where + " user " + c.UserName,
		deleteAfter:   c.DeleteAfter,
		verifyTimeout: c.VerifyTimeout,
		api:           iam.NewFromConfig(awsCfg, append(iamOpts, o.iam...)...),
		awsCfg:        awsCfg,
		stsOpts:       append(stsOpts, o.sts...),
		clock:         o.clock,
		log:           log,
	}, nil
}

// Account names the account and user (issuers.Account; see the package
// doc). Keep it as it is: the journal binds to it.
func (i *Issuer) Account() string { return i.account }

// MaxActiveKeys is IAM's quota of two keys per user (issuers.KeyLimiter).
// Inactive keys count against it too.
func (i *Issuer) MaxActiveKeys() int { return MaxKeysPerUser }

// Fields names the fields of the values this issuer mints.
func (i *Issuer) Fields() []string { return []string{FieldAccessKeyID, FieldSecretAccessKey} }

// String prints the issuer's account; an Issuer holds no secret.
func (i *Issuer) String() string { return i.account }

// GoString prints the issuer's account; an Issuer holds no secret.
func (i *Issuer) GoString() string { return "awsiam.Issuer(" + i.account + ")" }

// labelRE is what a label may be: it must fit in a tag value with a time
// and two key IDs, in IAM's tag alphabet, without spaces.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9_.:/=+@-]{1,128}$`)

// Create mints an access key for the user, labelled label (see the package
// doc for how a label is kept, and what happens when an answer is lost).
// It first deletes the keys whose grace has passed. Errors wrapping
// issuers.ErrInvalidLabel, issuers.ErrKeyLimit, issuers.ErrNotFound (no
// such user) and ErrAccessDenied are permanent.
func (i *Issuer) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	if !labelRE.MatchString(label) {
		return issuers.Key{}, secret.Value{}, backoff.Permanent(fmt.Errorf("awsiam: create: label must be 1-128 characters of A-Z a-z 0-9 _.:/=+@-: %w", issuers.ErrInvalidLabel))
	}
	st, err := i.state(ctx)
	if err != nil {
		return issuers.Key{}, secret.Value{}, fmt.Errorf("awsiam: create: %w", err)
	}
	sweepErr := i.sweep(ctx, &st)
	for try := 1; ; try++ {
		start := i.clock.Now().UTC()
		known := make([]string, 0, len(st.keys))
		for _, k := range st.keys {
			known = append(known, aws.ToString(k.AccessKeyId))
		}
		pending := strings.Join(append([]string{start.Format(time.RFC3339), label}, known...), " ")
		if err := i.tag(ctx, "TagUser", tagPending, pending); err != nil {
			return issuers.Key{}, secret.Value{}, fmt.Errorf("awsiam: create: record the attempt: %w", err)
		}
		out, err := i.api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(i.user)},
			func(o *iam.Options) { o.Retryer = aws.NopRetryer{} })
		if err == nil && out.AccessKey != nil {
			return i.created(ctx, label, out.AccessKey)
		}
		if err == nil {
			err = errors.New("CreateAccessKey answered without a key")
		}
		if definite(err) {
			i.untag(ctx, tagPending)
			if errorCode(err) == "LimitExceeded" {
				return issuers.Key{}, secret.Value{}, i.limitError(st, sweepErr, err)
			}
			if isThrottle(err) && try < createTries {
				if retry.Sleep(ctx, i.clock, time.Duration(try)*time.Second) == nil {
					continue
				}
			}
			return issuers.Key{}, secret.Value{}, i.fail("CreateAccessKey", err)
		}
		// The outcome is unknown: delete what the attempt may have made,
		// unless the caller ended the call: then the clean-up is the
		// caller's, under its lock (a rekey that lost its lock must not
		// delete keys it did not know of: whoever took the rotation over
		// may since have made one).
		cause := i.fail("CreateAccessKey", err)
		if ctx.Err() != nil {
			return issuers.Key{}, secret.Value{}, fmt.Errorf("%w: %w", cause, issuers.ErrMaybeCreated)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		found, cerr := i.deleteUnknown(cctx, known)
		cancel()
		if cerr != nil {
			return issuers.Key{}, secret.Value{}, fmt.Errorf("%w (looking for a key it may have made failed: %v): %w", cause, cerr, issuers.ErrMaybeCreated)
		}
		if !found || try >= createTries || ctx.Err() != nil {
			return issuers.Key{}, secret.Value{}, fmt.Errorf("%w: %w", cause, issuers.ErrMaybeCreated)
		}
		i.log.Info("awsiam: deleted the key a create whose answer was lost made; trying again", zap.Int("attempt", try), zap.Error(cause))
		if st, err = i.state(ctx); err != nil {
			return issuers.Key{}, secret.Value{}, fmt.Errorf("awsiam: create: %w", err)
		}
	}
}

// created labels a new key and builds its Key and value. A failure to tag
// is logged, not returned: the pending tag still attributes the key.
func (i *Issuer) created(ctx context.Context, label string, ak *iamtypes.AccessKey) (issuers.Key, secret.Value, error) {
	id := aws.ToString(ak.AccessKeyId)
	value := secret.NewFields(map[string]string{FieldAccessKeyID: id, FieldSecretAccessKey: aws.ToString(ak.SecretAccessKey)})
	if err := i.tag(ctx, "TagUser", tagLabelPrefix+id, label); err != nil {
		i.log.Warn("awsiam: label the new key (the pending tag still names it)", zap.String("key_id", id), zap.Error(err))
	} else {
		i.untag(ctx, tagPending)
	}
	created := aws.ToTime(ak.CreateDate)
	if created.IsZero() {
		created = i.clock.Now().UTC()
	}
	return issuers.Key{ID: id, Label: label, Status: issuers.Active, CreatedAt: created}, value, nil
}

// deleteUnknown deletes the user's keys that are not among known: what a
// create of unknown outcome made, whose secret is lost.
func (i *Issuer) deleteUnknown(ctx context.Context, known []string) (found bool, err error) {
	keys, err := i.listKeys(ctx)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		id := aws.ToString(k.AccessKeyId)
		if slices.Contains(known, id) {
			continue
		}
		if err := i.delete(ctx, id); err != nil {
			return false, err
		}
		i.log.Info("awsiam: deleted a key whose create answer was lost", zap.String("key_id", id))
		found = true
	}
	return found, nil
}

func (i *Issuer) limitError(st state, sweepErr, err error) error {
	var held []string
	for _, k := range st.keys {
		id := aws.ToString(k.AccessKeyId)
		s := id + " " + strings.ToLower(string(k.Status))
		if at, ok := st.revokedAt(id); ok && k.Status == iamtypes.StatusTypeInactive {
			s += fmt.Sprintf(" (revoked %s, deleted after %s)", at.Format(time.RFC3339), at.Add(i.deleteAfter).Format(time.RFC3339))
		}
		held = append(held, s)
	}
	msg := fmt.Sprintf("awsiam: create: user %s holds %d access keys, IAM's quota (inactive keys count): %s", i.user, len(st.keys), strings.Join(held, ", "))
	if sweepErr != nil {
		msg += fmt.Sprintf("; deleting expired keys failed: %v", sweepErr)
	}
	return backoff.Permanent(fmt.Errorf("%s: %w: %w", msg, issuers.ErrKeyLimit, err))
}

// Find returns the user's keys labelled label, newest first: those tagged
// with it and those the pending tag attributes to it (package doc).
func (i *Issuer) Find(ctx context.Context, label string) ([]issuers.Key, error) {
	st, err := i.state(ctx)
	if err != nil {
		return nil, fmt.Errorf("awsiam: find: %w", err)
	}
	var out []issuers.Key
	for _, k := range st.sorted() {
		if k.Label == label {
			out = append(out, k)
		}
	}
	return out, nil
}

// Get returns one of the user's keys, or ErrNotFound.
func (i *Issuer) Get(ctx context.Context, id string) (issuers.Key, error) {
	st, err := i.state(ctx)
	if err != nil {
		return issuers.Key{}, fmt.Errorf("awsiam: get %s: %w", id, err)
	}
	for _, k := range st.sorted() {
		if k.ID == id {
			return k, nil
		}
	}
	return issuers.Key{}, backoff.Permanent(fmt.Errorf("awsiam: get %s: no such access key of user %s: %w", id, i.user, issuers.ErrNotFound))
}

// List returns the user's active keys, newest first. It changes nothing.
func (i *Issuer) List(ctx context.Context) ([]issuers.Key, error) {
	st, err := i.state(ctx)
	if err != nil {
		return nil, fmt.Errorf("awsiam: list: %w", err)
	}
	var out []issuers.Key
	for _, k := range st.sorted() {
		if k.Status == issuers.Active {
			out = append(out, k)
		}
	}
	return out, nil
}

// HeldKeys returns the user's inactive keys that still fill one of IAM's
// two slots (issuers.SlotHolder): those rekey revoked less than
// delete_after ago, with the time the grace ends, and those a person
// deactivated (no revoked tag; rekey never deletes them), with a zero
// Until. A key whose grace has passed is left out: Create deletes it
// first. It changes nothing.
func (i *Issuer) HeldKeys(ctx context.Context) ([]issuers.HeldKey, error) {
	st, err := i.state(ctx)
	if err != nil {
		return nil, fmt.Errorf("awsiam: held keys: %w", err)
	}
	now := i.clock.Now()
	var out []issuers.HeldKey
	for _, k := range st.keys {
		if k.Status != iamtypes.StatusTypeInactive {
			continue
		}
		id := aws.ToString(k.AccessKeyId)
		h := issuers.HeldKey{ID: id}
		if at, ok := st.revokedAt(id); ok {
			h.Until = at.Add(i.deleteAfter).UTC()
			if !now.Before(h.Until) {
				continue
			}
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b issuers.HeldKey) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Identify returns the active key whose ID is the value's access key ID
// (issuers.Identifier), or ErrNotFound.
func (i *Issuer) Identify(ctx context.Context, value secret.Value) (issuers.Key, error) {
	id := value.Field(FieldAccessKeyID).Reveal()
	if id == "" {
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("awsiam: identify: the value has no %s field: %w", FieldAccessKeyID, issuers.ErrNotFound))
	}
	k, err := i.Get(ctx, id)
	if err != nil {
		return issuers.Key{}, err
	}
	if k.Status != issuers.Active {
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("awsiam: identify: access key %s is inactive: %w", id, issuers.ErrNotFound))
	}
	return k, nil
}

// Verify calls STS GetCallerIdentity signed with the value's pair, and
// checks that the caller is the user (and account_id, when set). A fresh
// active key that STS refuses (InvalidClientTokenId, SignatureDoesNotMatch:
// IAM is eventually consistent) is tried again on the clock until
// verify_timeout after its creation; any other refusal is
// issuers.ErrUnauthorized at once.
func (i *Issuer) Verify(ctx context.Context, value secret.Value) error {
	id, sk := value.Field(FieldAccessKeyID).Reveal(), value.Field(FieldSecretAccessKey)
	if id == "" || sk.IsZero() {
		return backoff.Permanent(fmt.Errorf("awsiam: verify: the value lacks %s or %s: %w", FieldAccessKeyID, FieldSecretAccessKey, issuers.ErrUnauthorized))
	}
	client := sts.NewFromConfig(i.awsCfg, append([]func(*sts.Options){func(o *sts.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(id, sk.Reveal(), "")
	}}, i.stsOpts...)...)
	_, err := retry.Policy{
		Initial: time.Second, Max: 10 * time.Second, For: i.verifyTimeout, Clock: i.clock,
		Permanent: func(err error) bool { return !errors.Is(err, errPropagating) },
	}.Do(ctx, func(ctx context.Context) error {
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err == nil {
			return i.checkCaller(id, out)
		}
		switch errorCode(err) {
		case "InvalidClientTokenId", "SignatureDoesNotMatch":
			return i.refused(ctx, id, err)
		}
		return i.fail("sts:GetCallerIdentity", err)
	})
	if errors.Is(err, errPropagating) {
		return fmt.Errorf("awsiam: verify %s: STS still refuses it %s after its creation: %w", id, i.verifyTimeout, issuers.ErrUnauthorized)
	}
	return secret.Scrub(err, sk)
}

func (i *Issuer) checkCaller(id string, out *sts.GetCallerIdentityOutput) error {
	arn, acct := aws.ToString(out.Arn), aws.ToString(out.Account)
	if !strings.HasSuffix(arn, ":user/"+i.user) && !strings.HasSuffix(arn, "/"+i.user) {
		return backoff.Permanent(fmt.Errorf("awsiam: verify %s: the key belongs to %s, not user %s: %w", id, arn, i.user, issuers.ErrUnauthorized))
	}
	if i.accountID != "" && acct != i.accountID {
		return backoff.Permanent(fmt.Errorf("awsiam: verify %s: the key belongs to account %s, not %s: %w", id, acct, i.accountID, issuers.ErrUnauthorized))
	}
	return nil
}

// refused decides what STS's refusal of key id means: a fresh active key
// is still propagating; anything else is refused for good.
func (i *Issuer) refused(ctx context.Context, id string, stsErr error) error {
	code := errorCode(stsErr)
	st, err := i.state(ctx)
	if err != nil {
		return fmt.Errorf("awsiam: verify %s: STS answered %s; looking the key up: %w", id, code, err)
	}
	for _, k := range st.keys {
		if aws.ToString(k.AccessKeyId) != id {
			continue
		}
		if k.Status == iamtypes.StatusTypeActive && i.clock.Since(aws.ToTime(k.CreateDate)) < i.verifyTimeout {
			return fmt.Errorf("awsiam: verify %s: %s: %w", id, code, errPropagating)
		}
		return backoff.Permanent(fmt.Errorf("awsiam: verify %s: STS refused the key (%s, status %s): %w", id, code, k.Status, issuers.ErrUnauthorized))
	}
	return backoff.Permanent(fmt.Errorf("awsiam: verify %s: STS refused the key (%s); user %s has no such key: %w", id, code, i.user, issuers.ErrUnauthorized))
}

// LastUsed returns when the user's key id last authenticated
// (GetAccessKeyLastUsed); zero if never. ErrNotFound if the user has no
// such key.
func (i *Issuer) LastUsed(ctx context.Context, id string) (time.Time, error) {
	if _, err := i.Get(ctx, id); err != nil {
		return time.Time{}, err
	}
	out, err := i.api.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(id)})
	if err != nil {
		return time.Time{}, i.fail("GetAccessKeyLastUsed", err)
	}
	if out.AccessKeyLastUsed == nil {
		return time.Time{}, nil
	}
	return aws.ToTime(out.AccessKeyLastUsed.LastUsedDate), nil
}

// Revoke deactivates the key, recording the time in its revoked tag first,
// and then deletes the keys whose grace has passed (with delete_after 0,
// this one too). Revoking an inactive key succeeds; a key the user does
// not hold (or no longer: deleted after its grace) is ErrNotFound.
func (i *Issuer) Revoke(ctx context.Context, id string) error {
	st, err := i.state(ctx)
	if err != nil {
		return fmt.Errorf("awsiam: revoke %s: %w", id, err)
	}
	idx := slices.IndexFunc(st.keys, func(k iamtypes.AccessKeyMetadata) bool { return aws.ToString(k.AccessKeyId) == id })
	if idx < 0 {
		return backoff.Permanent(fmt.Errorf("awsiam: revoke %s: no such access key of user %s: %w", id, i.user, issuers.ErrNotFound))
	}
	// An active key's revoked tag is written afresh: one left by a revoke
	// that failed, or by a key a person reactivated, must not shorten the
	// grace. An inactive key keeps the time it has.
	active := st.keys[idx].Status != iamtypes.StatusTypeInactive
	if _, ok := st.revokedAt(id); active || !ok {
		now := i.clock.Now().UTC()
		if err := i.tag(ctx, "TagUser", tagRevokedPrefix+id, now.Format(time.RFC3339)); err != nil {
			return fmt.Errorf("awsiam: revoke %s: record the time: %w", id, err)
		}
		st.tags[tagRevokedPrefix+id] = now.Format(time.RFC3339)
	}
	if active {
		_, err := i.api.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(i.user), AccessKeyId: aws.String(id), Status: iamtypes.StatusTypeInactive})
		if err != nil {
			return i.fail("UpdateAccessKey", err)
		}
		st.keys[idx].Status = iamtypes.StatusTypeInactive
		i.log.Info("awsiam: deactivated access key", zap.String("key_id", id))
	}
	if err := i.sweep(ctx, &st); err != nil {
		return fmt.Errorf("awsiam: revoke %s: the key is inactive; %w", id, err)
	}
	return nil
}

// Sweep deletes the user's inactive keys revoked longer than delete_after
// ago, and the tags of keys that no longer exist. Inactive keys rekey did
// not revoke (no revoked tag) are left alone.
func (i *Issuer) Sweep(ctx context.Context) error {
	st, err := i.state(ctx)
	if err != nil {
		return fmt.Errorf("awsiam: sweep: %w", err)
	}
	return i.sweep(ctx, &st)
}

func (i *Issuer) sweep(ctx context.Context, st *state) error {
	now := i.clock.Now()
	var kept []iamtypes.AccessKeyMetadata
	for _, k := range st.keys {
		id := aws.ToString(k.AccessKeyId)
		at, ok := st.revokedAt(id)
		if k.Status == iamtypes.StatusTypeInactive && ok && !now.Before(at.Add(i.deleteAfter)) {
			if err := i.delete(ctx, id); err != nil {
				return fmt.Errorf("sweep: %w", err)
			}
			i.log.Info("awsiam: deleted access key after its grace", zap.String("key_id", id), zap.Duration("delete_after", i.deleteAfter))
			continue
		}
		kept = append(kept, k)
	}
	st.keys = kept
	var stale []string
	for t := range st.tags {
		id, ok := strings.CutPrefix(t, tagLabelPrefix)
		if !ok {
			id, ok = strings.CutPrefix(t, tagRevokedPrefix)
		}
		if ok && !slices.ContainsFunc(st.keys, func(k iamtypes.AccessKeyMetadata) bool { return aws.ToString(k.AccessKeyId) == id }) {
			stale = append(stale, t)
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		if _, err := i.api.UntagUser(ctx, &iam.UntagUserInput{UserName: aws.String(i.user), TagKeys: stale}); err != nil {
			return fmt.Errorf("sweep: %w", i.fail("UntagUser", err))
		}
		for _, t := range stale {
			delete(st.tags, t)
		}
	}
	return nil
}

func (i *Issuer) delete(ctx context.Context, id string) error {
	_, err := i.api.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(i.user), AccessKeyId: aws.String(id)})
	if err != nil && errorCode(err) != "NoSuchEntity" {
		return i.fail("DeleteAccessKey", err)
	}
	return nil
}

func (i *Issuer) tag(ctx context.Context, op, key, value string) error {
	_, err := i.api.TagUser(ctx, &iam.TagUserInput{UserName: aws.String(i.user), Tags: []iamtypes.Tag{{Key: aws.String(key), Value: aws.String(value)}}})
	if err != nil {
		return i.fail(op, err)
	}
	return nil
}

// untag removes a tag, best effort: a tag left behind is harmless.
func (i *Issuer) untag(ctx context.Context, key string) {
	if _, err := i.api.UntagUser(ctx, &iam.UntagUserInput{UserName: aws.String(i.user), TagKeys: []string{key}}); err != nil {
		i.log.Debug("awsiam: remove tag", zap.String("tag", key), zap.Error(i.fail("UntagUser", err)))
	}
}

// state is the user's keys (in IAM's list order) and tags.
type state struct {
	keys []iamtypes.AccessKeyMetadata
	tags map[string]string
}

func (i *Issuer) state(ctx context.Context) (state, error) {
	keys, err := i.listKeys(ctx)
	if err != nil {
		return state{}, err
	}
	tags := map[string]string{}
	p := iam.NewListUserTagsPaginator(i.api, &iam.ListUserTagsInput{UserName: aws.String(i.user)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return state{}, i.fail("ListUserTags", err)
		}
		for _, t := range page.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return state{keys: keys, tags: tags}, nil
}

func (i *Issuer) listKeys(ctx context.Context) ([]iamtypes.AccessKeyMetadata, error) {
	var keys []iamtypes.AccessKeyMetadata
	p := iam.NewListAccessKeysPaginator(i.api, &iam.ListAccessKeysInput{UserName: aws.String(i.user)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, i.fail("ListAccessKeys", err)
		}
		keys = append(keys, page.AccessKeyMetadata...)
	}
	return keys, nil
}

func (st state) revokedAt(id string) (time.Time, bool) {
	v, ok := st.tags[tagRevokedPrefix+id]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// sorted returns the keys as issuers.Keys, newest first; keys created in
// the same second keep IAM's order (oldest first) reversed.
func (st state) sorted() []issuers.Key {
	var pendingLabel string
	var pendingKnown []string
	if f := strings.Fields(st.tags[tagPending]); len(f) >= 2 {
		pendingLabel, pendingKnown = f[1], f[2:]
	}
	out := make([]issuers.Key, 0, len(st.keys))
	for n := len(st.keys) - 1; n >= 0; n-- {
		k := st.keys[n]
		id := aws.ToString(k.AccessKeyId)
		key := issuers.Key{ID: id, Status: issuers.Active, CreatedAt: aws.ToTime(k.CreateDate)}
		if l, ok := st.tags[tagLabelPrefix+id]; ok {
			key.Label = l
		} else if pendingLabel != "" && !slices.Contains(pendingKnown, id) {
			key.Label = pendingLabel
		}
		if k.Status != iamtypes.StatusTypeActive {
			key.Status = issuers.Revoked
			key.RevokedAt, _ = st.revokedAt(id)
		}
		out = append(out, key)
	}
	slices.SortStableFunc(out, func(a, b issuers.Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out
}

// definite reports whether IAM answered err itself with a client error: the
// request was refused, and created nothing.
func definite(err error) bool {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || errorCode(err) == "" {
		return false
	}
	s := re.HTTPStatusCode()
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout
}

func isThrottle(err error) bool {
	switch errorCode(err) {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded":
		return true
	}
	return false
}
