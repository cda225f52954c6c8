package fakesm_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/rekeyhq/rekey/sinks/awssm/fakesm"
)

const (
	tokA = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	tokB = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	tokC = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
)

func client(t *testing.T) (*fakesm.Server, *secretsmanager.Client) {
	srv := fakesm.New(t)
	return srv, secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		BaseEndpoint: aws.String(srv.URL),
	})
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func stages(t *testing.T, c *secretsmanager.Client, id string) map[string][]string {
	t.Helper()
	out, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range out.VersionIdsToStages {
		slices.Sort(s)
	}
	return out.VersionIdsToStages
}

func put(t *testing.T, c *secretsmanager.Client, token, value string, stages ...string) *secretsmanager.PutSecretValueOutput {
	t.Helper()
	out, err := c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("app"), ClientRequestToken: aws.String(token), SecretString: aws.String(value), VersionStages: stages,
	})
	if err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	return out
}

func TestStagesMoveOnPut(t *testing.T) {
	srv, c := client(t)
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app"), ClientRequestToken: aws.String(tokA), SecretString: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	put(t, c, tokB, "b")
	put(t, c, tokC, "c")
	got := stages(t, c, "app")
	if len(got) != 2 || !slices.Equal(got[tokC], []string{fakesm.Current}) || !slices.Equal(got[tokB], []string{fakesm.Previous}) {
		t.Errorf("stages = %v: want C current, B previous, A deprecated (unlisted)", got)
	}
	if n := len(srv.Versions("app")); n != 3 {
		t.Errorf("%d versions stored, want 3", n)
	}
}

func TestClientRequestTokenIdempotency(t *testing.T) {
	srv, c := client(t)
	srv.Seed("app", "seed")
	first := put(t, c, tokA, "a")
	again := put(t, c, tokA, "a")
	if aws.ToString(again.VersionId) != aws.ToString(first.VersionId) || len(srv.Versions("app")) != 2 {
		t.Errorf("same token and value made a new version")
	}
	_, err := c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("app"), ClientRequestToken: aws.String(tokA), SecretString: aws.String("different"),
	})
	if code(err) != "ResourceExistsException" {
		t.Errorf("same token, other value: %v, want ResourceExistsException", err)
	}
	_, err = c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("app"), ClientRequestToken: aws.String("short"), SecretString: aws.String("x"),
	})
	if code(err) != "InvalidParameterException" {
		t.Errorf("short token: %v, want InvalidParameterException", err)
	}
}

func TestPendingStage(t *testing.T) {
	_, c := client(t)
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app"), ClientRequestToken: aws.String(tokA), SecretString: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	put(t, c, tokB, "b", fakesm.Pending)
	cur, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")})
	if err != nil || aws.ToString(cur.SecretString) != "a" {
		t.Fatalf("AWSCURRENT after a pending put: %v", err)
	}
	pend, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app"), VersionStage: aws.String(fakesm.Pending)})
	if err != nil || aws.ToString(pend.SecretString) != "b" {
		t.Fatalf("AWSPENDING: %v", err)
	}
	put(t, c, tokC, "c", fakesm.Pending)
	if got := stages(t, c, "app"); !slices.Equal(got[tokC], []string{fakesm.Pending}) || got[tokB] != nil {
		t.Errorf("AWSPENDING did not move: %v", got)
	}
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app"), VersionId: aws.String(tokC), VersionStage: aws.String(fakesm.Current)})
	if code(err) != "InvalidRequestException" {
		t.Errorf("version and a stage it lacks: %v", err)
	}
}

func TestUpdateSecretVersionStage(t *testing.T) {
	_, c := client(t)
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app"), ClientRequestToken: aws.String(tokA), SecretString: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	put(t, c, tokB, "b")
	move := func(to, from string) error {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app"), VersionStage: aws.String(fakesm.Current), MoveToVersionId: aws.String(to)}
		if from != "" {
			in.RemoveFromVersionId = aws.String(from)
		}
		_, err := c.UpdateSecretVersionStage(ctx, in)
		return err
	}
	if err := move(tokA, ""); code(err) != "InvalidParameterException" {
		t.Errorf("move without RemoveFromVersionId: %v, want InvalidParameterException", err)
	}
	if err := move(tokA, tokA); code(err) != "InvalidParameterException" {
		t.Errorf("remove from a version without the label: %v", err)
	}
	if err := move("dddddddd-dddd-4ddd-8ddd-dddddddddddd", tokB); code(err) != "ResourceNotFoundException" {
		t.Errorf("move to an unknown version: %v", err)
	}
	if err := move(tokA, tokB); err != nil {
		t.Fatal(err)
	}
	if got := stages(t, c, "app"); !slices.Equal(got[tokA], []string{fakesm.Current}) || !slices.Equal(got[tokB], []string{fakesm.Previous}) {
		t.Errorf("after moving AWSCURRENT back: %v, want A current, B previous", got)
	}
	_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app"), VersionStage: aws.String(fakesm.Current), RemoveFromVersionId: aws.String(tokA)})
	if code(err) != "InvalidParameterException" {
		t.Errorf("removing AWSCURRENT outright: %v", err)
	}
	list, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("app")})
	if err != nil || len(list.Versions) != 2 {
		t.Errorf("ListSecretVersionIds: %v, %d versions", err, len(list.Versions))
	}
}

func TestErrorsAndLookup(t *testing.T) {
	srv, c := client(t)
	ctx := context.Background()
	_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("nope")})
	if code(err) != "ResourceNotFoundException" {
		t.Errorf("missing secret: %v", err)
	}
	srv.Seed("app", "v")
	d, _ := srv.Describe("app")
	for _, id := range []string{d.ARN, "arn:aws:secretsmanager:us-east-1:123456789012:secret:app"} {
		if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}); err != nil {
			t.Errorf("GetSecretValue by %s: %v", id, err)
		}
	}
	srv.Fail("GetSecretValue", "AccessDeniedException", "no", 1)
	if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")}); code(err) != "AccessDeniedException" {
		t.Errorf("injected fault: %v", err)
	}
	if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")}); err != nil {
		t.Errorf("fault outlived its count: %v", err)
	}
	anon := secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}})
	if _, err := anon.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")}); code(err) != "MissingAuthenticationTokenException" {
		t.Errorf("unsigned request: %v", err)
	}
}
