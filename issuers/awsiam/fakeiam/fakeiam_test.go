package fakeiam_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/rekeyhq/rekey/issuers/awsiam/fakeiam"
)

func iamClient(srv *fakeiam.Server, id, secret string, opts ...func(*iam.Options)) *iam.Client {
	return iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")}, opts...)
}

func stsClient(srv *fakeiam.Server, id, secret string) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestSignaturesAreChecked(t *testing.T) {
	srv := fakeiam.New(t)
	srv.AddUser("u")
	ctx := context.Background()
	in := &iam.ListAccessKeysInput{UserName: aws.String("u")}
	if _, err := iamClient(srv, fakeiam.AdminKeyID, fakeiam.AdminSecret).ListAccessKeys(ctx, in); err != nil {
		t.Fatalf("correctly signed ListAccessKeys: %v", err)
	}
	if _, err := iamClient(srv, fakeiam.AdminKeyID, fakeiam.AdminSecret+"x").ListAccessKeys(ctx, in); code(err) != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret: err = %v, want SignatureDoesNotMatch", err)
	}
	if _, err := iamClient(srv, "AKIAUNKNOWN000000000", fakeiam.AdminSecret).ListAccessKeys(ctx, in); code(err) != "InvalidClientTokenId" {
		t.Errorf("unknown key: err = %v, want InvalidClientTokenId", err)
	}
	// A body changed after signing: the user name differs from the signed one.
	tamper := func(o *iam.Options) {
		o.HTTPClient = smithyhttp.ClientDoFunc(func(r *http.Request) (*http.Response, error) {
			b := make([]byte, r.ContentLength)
			_, _ = r.Body.Read(b)
			nb := strings.Replace(string(b), "UserName=u", "UserName=v", 1)
			r.Body = http.NoBody
			r2, _ := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), strings.NewReader(nb))
			r2.Header = r.Header.Clone()
			r2.ContentLength = int64(len(nb))
			return http.DefaultClient.Do(r2)
		})
	}
	if _, err := iamClient(srv, fakeiam.AdminKeyID, fakeiam.AdminSecret, tamper).ListAccessKeys(ctx, in); code(err) != "SignatureDoesNotMatch" {
		t.Errorf("tampered body: err = %v, want SignatureDoesNotMatch", err)
	}
	resp, err := http.PostForm(srv.URL, url.Values{"Action": {"ListAccessKeys"}, "Version": {"2010-05-08"}, "UserName": {"u"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned request: status %d, want 403", resp.StatusCode)
	}
}

func TestIssuedKeysAtSTSAndIAM(t *testing.T) {
	srv := fakeiam.New(t)
	srv.AddUser("u")
	ctx := context.Background()
	admin := iamClient(srv, fakeiam.AdminKeyID, fakeiam.AdminSecret)
	out, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("u")})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := aws.ToString(out.AccessKey.AccessKeyId), aws.ToString(out.AccessKey.SecretAccessKey)
	who, err := stsClient(srv, id, secret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != "arn:aws:iam::"+fakeiam.Account+":user/u" {
		t.Fatalf("GetCallerIdentity with the new key = %v, %v; want user u", who, err)
	}
	if _, err := stsClient(srv, id, secret[:len(secret)-1]+"x").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret at STS: %v, want SignatureDoesNotMatch", err)
	}
	if _, err := iamClient(srv, id, secret).ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("u")}); code(err) != "AccessDenied" {
		t.Errorf("issued key calling IAM: %v, want AccessDenied", err)
	}
	if _, err := admin.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("u"), AccessKeyId: aws.String(id), Status: "Inactive"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stsClient(srv, id, secret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "InvalidClientTokenId" {
		t.Errorf("inactive key at STS: %v, want InvalidClientTokenId", err)
	}
	lu, err := admin.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(id)})
	if err != nil || lu.AccessKeyLastUsed.LastUsedDate == nil || aws.ToString(lu.UserName) != "u" {
		t.Errorf("GetAccessKeyLastUsed after one use = %+v, %v; want a date and user u", lu, err)
	}
	if _, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("u")}); err != nil {
		t.Fatal(err)
	}
	// Inactive keys count against the quota of 2.
	if _, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("u")}); code(err) != "LimitExceeded" {
		t.Errorf("third key: %v, want LimitExceeded", err)
	}
	if _, err := admin.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("u"), AccessKeyId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("u"), AccessKeyId: aws.String(id)}); code(err) != "NoSuchEntity" {
		t.Errorf("deleting a deleted key: %v, want NoSuchEntity", err)
	}
}

// TestHistoryKeepsRevokedKeys: a key made Inactive and then deleted stays
// in History with both times, taken from the server's clock, and STS
// refuses it from the deactivation on; Keys forgets it.
func TestHistoryKeepsRevokedKeys(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	srv := fakeiam.New(t, fakeiam.WithClock(func() time.Time { return now }))
	srv.AddUser("u")
	ctx := context.Background()
	admin := iamClient(srv, fakeiam.AdminKeyID, fakeiam.AdminSecret)
	k := srv.CreateKey("u")
	if !k.Revoked().IsZero() {
		t.Errorf("a new key has Revoked %v, want zero", k.Revoked())
	}
	now = now.Add(time.Minute)
	deactivated := now
	if _, err := admin.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("u"), AccessKeyId: aws.String(k.ID), Status: "Inactive"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := admin.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("u"), AccessKeyId: aws.String(k.ID)}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Keys("u")); n != 0 {
		t.Errorf("Keys lists %d keys after the delete, want 0", n)
	}
	h := srv.History("u")
	if len(h) != 1 || h[0].ID != k.ID {
		t.Fatalf("History = %+v, want the deleted key", h)
	}
	if !h[0].Deactivated.Equal(deactivated) || !h[0].Deleted.Equal(now) || !h[0].Revoked().Equal(deactivated) {
		t.Errorf("History: deactivated %v, deleted %v, revoked %v; want %v, %v, %v", h[0].Deactivated, h[0].Deleted, h[0].Revoked(), deactivated, now, deactivated)
	}
	if _, err := stsClient(srv, k.ID, k.Secret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "InvalidClientTokenId" {
		t.Errorf("deleted key at STS: %v, want InvalidClientTokenId", err)
	}
	// A key deleted while Active was revoked at its deletion.
	k2 := srv.CreateKey("u")
	now = now.Add(time.Minute)
	if _, err := admin.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("u"), AccessKeyId: aws.String(k2.ID)}); err != nil {
		t.Fatal(err)
	}
	if h := srv.History("u"); len(h) != 2 || !h[1].Revoked().Equal(now) {
		t.Errorf("History after deleting an active key = %+v, want it revoked at %v", h, now)
	}
}

// TestSetQuotaAndPropagation: the quota and STS's delay change while the
// server runs.
func TestSetQuotaAndPropagation(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	srv := fakeiam.New(t, fakeiam.WithClock(func() time.Time { return now }), fakeiam.WithQuota(5))
	srv.AddUser("u")
	ctx := context.Background()
	admin := iamClient(srv, fakeiam.AdminKeyID, fakeiam.AdminSecret)
	k := srv.CreateKey("u")
	srv.SetQuota(1)
	if _, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("u")}); code(err) != "LimitExceeded" {
		t.Errorf("second key under quota 1: %v, want LimitExceeded", err)
	}
	srv.SetQuota(2)
	if _, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("u")}); err != nil {
		t.Errorf("second key under quota 2: %v", err)
	}
	srv.SetQuota(5)
	srv.SetPropagation(time.Hour)
	if _, err := stsClient(srv, k.ID, k.Secret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Errorf("a key issued before SetPropagation at STS: %v", err)
	}
	fresh := srv.CreateKey("u")
	if _, err := stsClient(srv, fresh.ID, fresh.Secret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "InvalidClientTokenId" {
		t.Errorf("key within the propagation delay at STS: %v, want InvalidClientTokenId", err)
	}
	now = now.Add(time.Hour)
	if _, err := stsClient(srv, fresh.ID, fresh.Secret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Errorf("key past the propagation delay at STS: %v", err)
	}
}

// TestOutOfBandChangesAreInHistory: Deactivate and Delete, a person's
// console changes, are recorded in History like the API's.
func TestOutOfBandChangesAreInHistory(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	srv := fakeiam.New(t, fakeiam.WithClock(func() time.Time { return now }))
	srv.AddUser("u")
	k := srv.CreateKey("u")
	now = now.Add(time.Minute)
	srv.Deactivate(k.ID)
	deactivated := now
	now = now.Add(time.Minute)
	srv.Delete(k.ID)
	h := srv.History("u")
	if len(h) != 1 || !h[0].Deactivated.Equal(deactivated) || !h[0].Deleted.Equal(now) || !h[0].Revoked().Equal(deactivated) {
		t.Errorf("History after Deactivate and Delete = %+v; want deactivated %v, deleted %v", h, deactivated, now)
	}
}
