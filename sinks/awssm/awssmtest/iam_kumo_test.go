package awssmtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
	"github.com/sivchari/kumo"

	"github.com/rekeyhq/rekey/issuers/awsiam/fakeiam"
)

// The aws-iam issuer is tested in the root module against fakeiam, which
// must behave like IAM. kumo is an independent IAM implementation for the
// part it has (CreateAccessKey, ListAccessKeys, DeleteAccessKey and the
// quota of two keys per user; it has no UpdateAccessKey,
// GetAccessKeyLastUsed or user tags, so the issuer itself cannot run on
// it): the same scenario runs against both, and both must answer alike.

var iamUsers int

func iamAgainst(t *testing.T, name string) (*iam.Client, string) {
	t.Helper()
	iamUsers++
	user := fmt.Sprintf("rekey-kumo-%d-%d", time.Now().UnixNano(), iamUsers)
	switch name {
	case "kumo":
		srv := kumo.NewServer()
		t.Cleanup(srv.Close)
		c := iam.New(iam.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1})
		if _, err := c.CreateUser(context.Background(), &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
			t.Fatalf("kumo CreateUser: %v", err)
		}
		return c, user
	default:
		srv := fakeiam.New(t)
		srv.AddUser(user)
		return iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(fakeiam.AdminKeyID, fakeiam.AdminSecret, "")}), user
	}
}

func iamCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestIAMAccessKeysKumoAndFakeiamAgree(t *testing.T) {
	for _, name := range []string{"kumo", "fakeiam"} {
		t.Run(name, func(t *testing.T) {
			c, user := iamAgainst(t, name)
			ctx := context.Background()
			create := func() (*iam.CreateAccessKeyOutput, error) {
				return c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
			}
			list := func() []string {
				t.Helper()
				out, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
				if err != nil {
					t.Fatalf("ListAccessKeys: %v", err)
				}
				var ids []string
				for _, k := range out.AccessKeyMetadata {
					if aws.ToString(k.UserName) != user || k.Status != "Active" || k.CreateDate == nil {
						t.Errorf("listed key %s: user %q, status %q, created %v", aws.ToString(k.AccessKeyId), aws.ToString(k.UserName), k.Status, k.CreateDate)
					}
					ids = append(ids, aws.ToString(k.AccessKeyId))
				}
				slices.Sort(ids)
				return ids
			}
			var ids []string
			for range 2 {
				out, err := create()
				if err != nil {
					t.Fatalf("CreateAccessKey: %v", err)
				}
				k := out.AccessKey
				if aws.ToString(k.AccessKeyId) == "" || len(aws.ToString(k.SecretAccessKey)) < 30 || k.Status != "Active" || aws.ToString(k.UserName) != user {
					t.Fatalf("CreateAccessKey returned id %q, a secret of %d characters, status %q, user %q",
						aws.ToString(k.AccessKeyId), len(aws.ToString(k.SecretAccessKey)), k.Status, aws.ToString(k.UserName))
				}
				ids = append(ids, aws.ToString(k.AccessKeyId))
			}
			if ids[0] == ids[1] {
				t.Fatal("two creates returned the same access key ID")
			}
			if _, err := create(); iamCode(err) != "LimitExceeded" {
				t.Fatalf("third CreateAccessKey: %v, want LimitExceeded (2 keys per user)", err)
			}
			slices.Sort(ids)
			if got := list(); !slices.Equal(got, ids) {
				t.Fatalf("ListAccessKeys = %v, want %v", got, ids)
			}
			del := func(id string) error {
				_, err := c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(id)})
				return err
			}
			if err := del(ids[0]); err != nil {
				t.Fatalf("DeleteAccessKey: %v", err)
			}
			if err := del(ids[0]); iamCode(err) != "NoSuchEntity" {
				t.Errorf("deleting a deleted key: %v, want NoSuchEntity", err)
			}
			if got := list(); !slices.Equal(got, ids[1:]) {
				t.Fatalf("after delete ListAccessKeys = %v, want %v", got, ids[1:])
			}
			if _, err := create(); err != nil {
				t.Errorf("CreateAccessKey after a delete freed a slot: %v", err)
			}
			if _, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user + "-missing")}); iamCode(err) != "NoSuchEntity" {
				t.Errorf("CreateAccessKey for a missing user: %v, want NoSuchEntity", err)
			}
		})
	}
}
