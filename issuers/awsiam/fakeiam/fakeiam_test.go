package fakeiam_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

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
