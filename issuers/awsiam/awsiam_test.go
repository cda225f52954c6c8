package awsiam_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/awsiam"
	"github.com/rekeyhq/rekey/issuers/awsiam/fakeiam"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

const user = "ci-deployer"

type noDelay struct{}

func (noDelay) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

type env struct {
	srv   *fakeiam.Server
	iss   *awsiam.Issuer
	clock *clocktest.Auto
	logs  *observer.ObservedLogs
	ctx   context.Context
}

// newEnv starts a fake IAM with the user and an issuer over it, sharing a
// fake clock whose waits pass at once.
func newEnv(t *testing.T, c awsiam.Config, opts ...fakeiam.Option) env {
	t.Helper()
	fake := clockwork.NewFakeClockAt(time.Now().UTC().Truncate(time.Second))
	clock := clocktest.New(fake)
	srv := fakeiam.New(t, append([]fakeiam.Option{fakeiam.WithClock(fake.Now)}, opts...)...)
	srv.AddUser(user)
	if c.UserName == "" {
		c.UserName = user
	}
	c.Endpoint, c.Region = srv.URL, "us-east-1"
	core, logs := observer.New(zap.DebugLevel)
	iss, err := awsiam.New(c, zap.New(core), awsiam.WithClock(clock), awsiam.WithRetryBackoff(noDelay{}),
		awsiam.WithCredentials(credentials.NewStaticCredentialsProvider(fakeiam.AdminKeyID, fakeiam.AdminSecret, "")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return env{srv: srv, iss: iss, clock: clock, logs: logs, ctx: ctx}
}

func (e env) allLogs() string {
	var b strings.Builder
	for _, en := range e.logs.All() {
		fmt.Fprintf(&b, "%s %v\n", en.Message, en.ContextMap())
	}
	return b.String()
}

func (e env) create(t *testing.T, label string) (issuers.Key, secret.Value) {
	t.Helper()
	k, v, err := e.iss.Create(e.ctx, label)
	if err != nil {
		t.Fatalf("Create(%s): %v", label, err)
	}
	return k, v
}

func (e env) serverKey(t *testing.T, id string) (fakeiam.Key, bool) {
	t.Helper()
	for _, k := range e.srv.Keys(user) {
		if k.ID == id {
			return k, true
		}
	}
	return fakeiam.Key{}, false
}

// The contract needs room for 5 keys: the fake's quota is raised for it;
// the real quota of 2 is tested below.
func TestContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		e := newEnv(t, awsiam.Config{DeleteAfter: 7 * 24 * time.Hour}, fakeiam.WithQuota(5))
		return issuertest.Fixture{
			Issuer: e.iss,
			ActiveCount: func() int {
				n := 0
				for _, k := range e.srv.Keys(user) {
					if k.Status == "Active" {
						n++
					}
				}
				return n
			},
			Advance:   e.clock.Advance,
			UnknownID: "AKIAAAAAAAAAAAAAAAAA",
			Logs:      e.allLogs,
		}
	})
}

func TestValueIsTheIssuedPair(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	k, v := e.create(t, "pair")
	if got := v.FieldNames(); !slices.Equal(got, e.iss.Fields()) {
		t.Fatalf("value fields = %v, want %v", got, e.iss.Fields())
	}
	sk, ok := e.serverKey(t, k.ID)
	if !ok || v.Field(awsiam.FieldAccessKeyID).Reveal() != k.ID || v.Field(awsiam.FieldSecretAccessKey).Reveal() != sk.Secret {
		t.Fatalf("the value is not the pair IAM issued for key %s", k.ID)
	}
	if got := e.srv.Tags(user)["rekey:label:"+k.ID]; got != "pair" {
		t.Errorf("label tag = %q, want pair", got)
	}
	if _, ok := e.srv.Tags(user)["rekey:pending"]; ok {
		t.Error("the pending tag outlived a create that succeeded")
	}
	issuertest.AssertNoLeak(t, e.allLogs(), v.Field(awsiam.FieldSecretAccessKey))
}

func TestQuotaOfTwo(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	if e.iss.MaxActiveKeys() != 2 {
		t.Errorf("MaxActiveKeys = %d, want 2", e.iss.MaxActiveKeys())
	}
	e.create(t, "q1")
	e.create(t, "q2")
	_, v, err := e.iss.Create(e.ctx, "q3")
	if !errors.Is(err, issuers.ErrKeyLimit) || !retry.IsPermanent(err) || !v.IsZero() {
		t.Fatalf("third Create = %v, want a permanent issuers.ErrKeyLimit", err)
	}
	if !strings.Contains(err.Error(), user) {
		t.Errorf("error %q does not name the user", err)
	}
	if n := len(e.srv.Keys(user)); n != 2 {
		t.Errorf("user holds %d keys, want 2", n)
	}
	if _, ok := e.srv.Tags(user)["rekey:pending"]; ok {
		t.Error("the pending tag outlived a create IAM refused")
	}
}

func TestRevokeDeactivatesThenDeletesAfterGrace(t *testing.T) {
	e := newEnv(t, awsiam.Config{DeleteAfter: 7 * 24 * time.Hour})
	a, va := e.create(t, "old")
	b, _ := e.create(t, "new")
	if err := e.iss.Revoke(e.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if k, ok := e.serverKey(t, a.ID); !ok || k.Status != "Inactive" {
		t.Fatalf("after Revoke the key is %+v (exists %v), want it inactive", k.Status, ok)
	}
	if err := e.iss.Verify(e.ctx, va); !errors.Is(err, issuers.ErrUnauthorized) {
		t.Errorf("Verify(revoked) = %v, want ErrUnauthorized", err)
	}
	// Within the grace the inactive key still fills a slot.
	e.clock.Advance(7*24*time.Hour - time.Minute)
	if _, _, err := e.iss.Create(e.ctx, "too-early"); !errors.Is(err, issuers.ErrKeyLimit) || !strings.Contains(err.Error(), a.ID) {
		t.Fatalf("Create within the grace = %v, want ErrKeyLimit naming %s", err, a.ID)
	}
	if _, ok := e.serverKey(t, a.ID); !ok {
		t.Fatal("the key was deleted before its grace ended")
	}
	if err := e.iss.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.serverKey(t, a.ID); !ok {
		t.Fatal("Sweep deleted the key before its grace ended")
	}
	e.clock.Advance(time.Minute)
	c, _ := e.create(t, "after-grace")
	if _, ok := e.serverKey(t, a.ID); ok {
		t.Fatal("the key outlived its grace")
	}
	var ids []string
	for _, k := range e.srv.Keys(user) {
		ids = append(ids, k.ID)
	}
	if !slices.Equal(ids, []string{b.ID, c.ID}) {
		t.Errorf("user holds %v, want [%s %s]", ids, b.ID, c.ID)
	}
	for tag := range e.srv.Tags(user) {
		if strings.HasSuffix(tag, a.ID) {
			t.Errorf("tag %s of the deleted key remains", tag)
		}
	}
	if _, err := e.iss.Get(e.ctx, a.ID); !errors.Is(err, issuers.ErrNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrNotFound", err)
	}
}

func TestDeleteAfterZeroDeletesAtRevoke(t *testing.T) {
	e := newEnv(t, awsiam.Config{DeleteAfter: 0})
	a, _ := e.create(t, "gone")
	if err := e.iss.Revoke(e.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.serverKey(t, a.ID); ok {
		t.Fatal("delete_after 0: the key still exists after Revoke")
	}
	if err := e.iss.Revoke(e.ctx, a.ID); !errors.Is(err, issuers.ErrNotFound) {
		t.Errorf("Revoke(deleted) = %v, want ErrNotFound", err)
	}
}

// A create whose answer is lost made a key whose secret nobody has: Create
// deletes it and tries again, leaving exactly the key it returns.
func TestLostCreateAnswerIsCleanedUp(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	old := e.srv.CreateKey(user) // the key in use, made by a person
	e.srv.LoseNext("CreateAccessKey", 1)
	k, v, err := e.iss.Create(e.ctx, "lost")
	if err != nil {
		t.Fatalf("Create after a lost answer: %v", err)
	}
	keys := e.srv.Keys(user)
	if len(keys) != 2 || keys[0].ID != old.ID || keys[1].ID != k.ID {
		t.Fatalf("user holds %v, want the old key %s and the returned %s", keys, old.ID, k.ID)
	}
	if got := e.srv.Calls("CreateAccessKey"); got != 2 {
		t.Errorf("CreateAccessKey calls = %d, want 2 (the lost one, then one after the clean-up)", got)
	}
	if err := e.iss.Verify(e.ctx, v); err != nil {
		t.Errorf("Verify(returned key): %v", err)
	}
}

// When the clean-up cannot run, the key is attributed to the label by the
// pending tag, so the engine's Find (after a restart too) revokes it; the
// key in use, which existed before the attempt, is not attributed.
func TestLostCreateAnswerIsFoundByLabel(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	old := e.srv.CreateKey(user)
	e.srv.LoseNext("CreateAccessKey", 1)
	e.srv.Deny("DeleteAccessKey", true)
	_, _, err := e.iss.Create(e.ctx, "rot-abc")
	if !errors.Is(err, issuers.ErrMaybeCreated) {
		t.Fatalf("Create = %v, want ErrMaybeCreated", err)
	}
	e.srv.Deny("DeleteAccessKey", false)
	keys := e.srv.Keys(user)
	if len(keys) != 2 {
		t.Fatalf("user holds %d keys, want the old and the orphan", len(keys))
	}
	orphan := keys[1].ID
	// A new Issuer: nothing of the attempt survives in memory.
	e2 := e
	var err2 error
	e2.iss, err2 = awsiam.New(awsiam.Config{UserName: user, Endpoint: e.srv.URL, Region: "us-east-1"}, zap.NewNop(),
		awsiam.WithClock(e.clock), awsiam.WithRetryBackoff(noDelay{}),
		awsiam.WithCredentials(credentials.NewStaticCredentialsProvider(fakeiam.AdminKeyID, fakeiam.AdminSecret, "")))
	if err2 != nil {
		t.Fatal(err2)
	}
	found, err := e2.iss.Find(e.ctx, "rot-abc")
	if err != nil || len(found) != 1 || found[0].ID != orphan || found[0].Status != issuers.Active {
		t.Fatalf("Find(rot-abc) = %+v, %v; want only the orphan %s", found, err, orphan)
	}
	if none, _ := e2.iss.Find(e.ctx, "other"); len(none) != 0 {
		t.Errorf("Find(other) = %+v, want none", none)
	}
	if err := e2.iss.Revoke(e.ctx, orphan); err != nil {
		t.Fatal(err)
	}
	if k, _ := e.serverKey(t, old.ID); k.Status != "Active" {
		t.Errorf("the old key is %s, want it untouched", k.Status)
	}
}

func TestVerifyWaitsForPropagation(t *testing.T) {
	e := newEnv(t, awsiam.Config{VerifyTimeout: 2 * time.Minute}, fakeiam.WithPropagation(20*time.Second))
	_, v := e.create(t, "fresh")
	if err := e.iss.Verify(e.ctx, v); err != nil {
		t.Fatalf("Verify of a key STS learns of in 20s: %v", err)
	}
	var waited time.Duration
	for _, d := range e.clock.Waits() {
		waited += d
	}
	if waited < 20*time.Second || waited > time.Minute {
		t.Errorf("Verify waited %v in all, want about the 20s propagation", waited)
	}
}

func TestVerifyGivesUpAfterTimeout(t *testing.T) {
	e := newEnv(t, awsiam.Config{VerifyTimeout: 30 * time.Second}, fakeiam.WithPropagation(time.Hour))
	_, v := e.create(t, "slow")
	err := e.iss.Verify(e.ctx, v)
	if !errors.Is(err, issuers.ErrUnauthorized) {
		t.Fatalf("Verify = %v, want ErrUnauthorized after verify_timeout", err)
	}
	issuertest.AssertNoLeak(t, err.Error(), v.Field(awsiam.FieldSecretAccessKey), v)
}

func TestVerifyRefusesAnotherUsersKey(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	e.srv.AddUser("someone-else")
	k := e.srv.CreateKey("someone-else")
	v := secret.NewFields(map[string]string{awsiam.FieldAccessKeyID: k.ID, awsiam.FieldSecretAccessKey: k.Secret})
	err := e.iss.Verify(e.ctx, v)
	if !errors.Is(err, issuers.ErrUnauthorized) || !strings.Contains(err.Error(), "someone-else") {
		t.Fatalf("Verify(another user's key) = %v, want ErrUnauthorized naming its owner", err)
	}
	if _, err := e.iss.Identify(e.ctx, v); !errors.Is(err, issuers.ErrNotFound) {
		t.Errorf("Identify(another user's key) = %v, want ErrNotFound", err)
	}
}

func TestVerifyRefusesWrongSecret(t *testing.T) {
	e := newEnv(t, awsiam.Config{VerifyTimeout: 10 * time.Second})
	k, v := e.create(t, "wrong")
	bad := secret.NewFields(map[string]string{awsiam.FieldAccessKeyID: k.ID, awsiam.FieldSecretAccessKey: "not-the-secret-" + strings.Repeat("x", 25)})
	e.clock.Advance(time.Minute) // no longer fresh: a refusal is final
	err := e.iss.Verify(e.ctx, bad)
	if !errors.Is(err, issuers.ErrUnauthorized) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("Verify(wrong secret) = %v, want ErrUnauthorized from SignatureDoesNotMatch", err)
	}
	issuertest.AssertNoLeak(t, err.Error(), bad.Field(awsiam.FieldSecretAccessKey), v.Field(awsiam.FieldSecretAccessKey))
}

func TestAccessDeniedNamesActionAndUser(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	e.srv.Deny("CreateAccessKey", true)
	_, _, err := e.iss.Create(e.ctx, "denied")
	if !errors.Is(err, awsiam.ErrAccessDenied) || !retry.IsPermanent(err) || errors.Is(err, issuers.ErrMaybeCreated) {
		t.Fatalf("Create = %v, want a permanent ErrAccessDenied, not maybe-created", err)
	}
	for _, want := range []string{"iam:CreateAccessKey", user, awsiam.PolicyFile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := len(e.srv.Keys(user)); n != 0 {
		t.Errorf("user holds %d keys after a denied create", n)
	}
}

func TestUnknownUserIsNotFound(t *testing.T) {
	e := newEnv(t, awsiam.Config{UserName: "nobody"})
	_, _, err := e.iss.Create(e.ctx, "x")
	if !errors.Is(err, issuers.ErrNotFound) || !retry.IsPermanent(err) {
		t.Fatalf("Create for a missing user = %v, want a permanent ErrNotFound", err)
	}
}

func TestListFollowsPages(t *testing.T) {
	e := newEnv(t, awsiam.Config{}, fakeiam.WithQuota(5), fakeiam.WithPageSize(1))
	var want []string
	for n := range 3 {
		k, _ := e.create(t, fmt.Sprintf("page-%d", n))
		want = append([]string{k.ID}, want...)
	}
	got, err := e.iss.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range got {
		ids = append(ids, k.ID)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("List = %v, want %v (every page, newest first)", ids, want)
	}
}

func TestAccount(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	if got, want := e.iss.Account(), "aws-iam "+e.srv.URL+" user "+user; got != want {
		t.Errorf("Account = %q, want %q", got, want)
	}
	iss, err := awsiam.New(awsiam.Config{UserName: "deploy", AccountID: "123456789012", Region: "eu-west-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := iss.Account(), "aws-iam account 123456789012 user deploy"; got != want {
		t.Errorf("Account = %q, want %q", got, want)
	}
}

// The grace runs from the deactivation that took effect: a revoked tag
// left by a revoke that failed, or on a key a person reactivated, does not
// get the key deleted early.
func TestGraceStartsAtTheDeactivation(t *testing.T) {
	e := newEnv(t, awsiam.Config{DeleteAfter: 7 * 24 * time.Hour})
	a, _ := e.create(t, "a")
	e.srv.Deny("UpdateAccessKey", true)
	if err := e.iss.Revoke(e.ctx, a.ID); !errors.Is(err, awsiam.ErrAccessDenied) {
		t.Fatalf("Revoke with UpdateAccessKey denied = %v, want ErrAccessDenied", err)
	}
	if k, _ := e.serverKey(t, a.ID); k.Status != "Active" {
		t.Fatalf("the key is %s after a failed revoke, want Active", k.Status)
	}
	e.srv.Deny("UpdateAccessKey", false)
	e.clock.Advance(30 * 24 * time.Hour)
	if err := e.iss.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.serverKey(t, a.ID); !ok {
		t.Fatal("Sweep deleted an active key")
	}
	if err := e.iss.Revoke(e.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if k, ok := e.serverKey(t, a.ID); !ok || k.Status != "Inactive" {
		t.Fatalf("after Revoke the key is %q (exists %v), want Inactive and kept for its grace", k.Status, ok)
	}
	e.clock.Advance(7*24*time.Hour - time.Second)
	if err := e.iss.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.serverKey(t, a.ID); !ok {
		t.Fatal("the key was deleted before 7d after its deactivation")
	}
	e.clock.Advance(time.Second)
	if err := e.iss.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.serverKey(t, a.ID); ok {
		t.Fatal("the key outlived its grace")
	}
}

// Throttling is retried by the SDK, a bounded number of times; what is
// left is returned as retryable, not permanent.
func TestThrottlingIsRetriedBounded(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	e.srv.Fail("ListAccessKeys", 400, "Throttling", 2)
	if _, err := e.iss.List(e.ctx); err != nil {
		t.Fatalf("List after two throttled answers: %v", err)
	}
	e.srv.Fail("ListAccessKeys", 400, "Throttling", 100)
	before := e.srv.Calls("ListAccessKeys")
	_, err := e.iss.List(e.ctx)
	if err == nil || retry.IsPermanent(err) {
		t.Fatalf("List while throttled = %v, want a retryable error", err)
	}
	if n := e.srv.Calls("ListAccessKeys") - before; n != 5 {
		t.Errorf("ListAccessKeys was tried %d times, want 5 (the SDK retryer's bound)", n)
	}
}

// CreateAccessKey is never retried blindly: a 5xx (which IAM may have
// acted on) is answered by looking, not by a second create.
func TestCreateNotRetriedBlindly(t *testing.T) {
	e := newEnv(t, awsiam.Config{})
	e.srv.Fail("CreateAccessKey", 500, "ServiceFailure", 1)
	_, _, err := e.iss.Create(e.ctx, "five-hundred")
	if !errors.Is(err, issuers.ErrMaybeCreated) {
		t.Fatalf("Create after a 500 = %v, want ErrMaybeCreated (the request may still land)", err)
	}
	if n := e.srv.Calls("CreateAccessKey"); n != 1 {
		t.Errorf("CreateAccessKey was sent %d times, want 1", n)
	}
	if _, ok := e.srv.Tags(user)["rekey:pending"]; !ok {
		t.Error("the pending tag is gone: a late key could not be attributed to the label")
	}
	// A throttled create made nothing: it is tried again.
	e.srv.Fail("CreateAccessKey", 400, "Throttling", 1)
	if _, _, err := e.iss.Create(e.ctx, "throttled"); err != nil {
		t.Fatalf("Create after one throttled answer: %v", err)
	}
	if n := len(e.srv.Keys(user)); n != 1 {
		t.Errorf("user holds %d keys, want 1", n)
	}
}

// HeldKeys names the inactive keys that still fill a slot: the one rekey
// revoked until its grace ends (then Create deletes it first, so it holds
// nothing), and one a person deactivated, which rekey never deletes.
func TestHeldKeys(t *testing.T) {
	e := newEnv(t, awsiam.Config{DeleteAfter: 7 * 24 * time.Hour})
	a, _ := e.create(t, "old")
	e.create(t, "new")
	if held, err := e.iss.HeldKeys(e.ctx); err != nil || len(held) != 0 {
		t.Fatalf("HeldKeys with two active keys = %v, %v; want none", held, err)
	}
	revokedAt := e.clock.Now().UTC()
	if err := e.iss.Revoke(e.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	held, err := e.iss.HeldKeys(e.ctx)
	want := []issuers.HeldKey{{ID: a.ID, Until: revokedAt.Add(7 * 24 * time.Hour)}}
	if err != nil || !slices.Equal(held, want) {
		t.Fatalf("HeldKeys after the revoke = %v, %v; want %v", held, err, want)
	}
	e.clock.Advance(7 * 24 * time.Hour)
	if held, err := e.iss.HeldKeys(e.ctx); err != nil || len(held) != 0 {
		t.Fatalf("HeldKeys after the grace = %v, %v; want none (Create deletes it first)", held, err)
	}
	if _, ok := e.serverKey(t, a.ID); !ok {
		t.Fatal("HeldKeys deleted the key: it must change nothing")
	}
	e.create(t, "third") // deletes a first
	person := e.srv.Keys(user)[0]
	e.srv.Deactivate(person.ID)
	held, err = e.iss.HeldKeys(e.ctx)
	if want := []issuers.HeldKey{{ID: person.ID}}; err != nil || !slices.Equal(held, want) {
		t.Fatalf("HeldKeys with a key a person deactivated = %v, %v; want %v (no end)", held, err, want)
	}
}
