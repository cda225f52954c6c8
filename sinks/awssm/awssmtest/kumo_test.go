package awssmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/sivchari/kumo"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/awssm"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

var creds = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")

var fixtures atomic.Int64

type noDelay struct{}

func (noDelay) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// withoutRollback hides the sink's Rollbacker: kumo has no
// UpdateSecretVersionStage, so the contract's Rollback subtest would test
// kumo, not the sink. Rollback is covered against fakesm in the root module.
type withoutRollback struct {
	sinks.Sink
	sinks.Reader
}

// kumoFixture runs one sink configuration over a fresh kumo server. With
// exists, the secret exists without a value before the test.
func kumoFixture(c awssm.Config, exists bool) func(t *testing.T) sinktest.Fixture {
	return func(t *testing.T) sinktest.Fixture {
		srv := kumo.NewServer()
		t.Cleanup(srv.Close)
		// kumo's servers share one store: give every fixture its own secret.
		c.SecretID = fmt.Sprintf("%s-%d", c.SecretID, fixtures.Add(1))
		direct := secretsmanager.New(secretsmanager.Options{
			Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL),
		})
		ctx := context.Background()
		if exists {
			if _, err := direct.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(c.SecretID)}); err != nil {
				t.Fatalf("kumo CreateSecret: %v", err)
			}
		}
		c.Region, c.Endpoint = "us-east-1", srv.URL
		s, err := awssm.New(c, zap.NewNop(), awssm.WithRetryBackoff(noDelay{}),
			awssm.WithClientOptions(func(o *secretsmanager.Options) { o.Credentials = creds }))
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Fixture{
			Sink: withoutRollback{s, s},
			Peek: func(t *testing.T) (string, bool) {
				out, err := direct.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.SecretID)})
				var ae smithy.APIError
				if errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException" {
					return "", false
				}
				if err != nil {
					t.Fatalf("kumo GetSecretValue: %v", err)
				}
				str := aws.ToString(out.SecretString)
				if c.Key == "" {
					return str, true
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(str), &m); err != nil {
					t.Fatalf("secret is not a JSON object: %v", err)
				}
				v, ok := m[c.Key].(string)
				return v, ok
			},
			Seed: func(t *testing.T, value string) {
				if c.Key != "" {
					b, _ := json.Marshal(map[string]string{"user": "svc", c.Key: value})
					value = string(b)
				}
				_, err := direct.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(c.SecretID), SecretString: aws.String(value)})
				var ae smithy.APIError
				if errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException" {
					_, err = direct.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(c.SecretID), SecretString: aws.String(value)})
				}
				if err != nil {
					t.Fatalf("kumo seed: %v", err)
				}
			},
		}
	}
}

func TestContractAgainstKumo(t *testing.T) {
	t.Log("Rollback is skipped against kumo: it lacks UpdateSecretVersionStage (covered against sinks/awssm/fakesm)")
	t.Run("whole string", func(t *testing.T) {
		sinktest.Run(t, kumoFixture(awssm.Config{SecretID: "prod/crm/apexverify"}, true))
	})
	t.Run("whole string created", func(t *testing.T) {
		sinktest.Run(t, kumoFixture(awssm.Config{SecretID: "prod/crm/apexverify", CreateIfMissing: true}, false))
	})
	t.Run("json field", func(t *testing.T) {
		sinktest.Run(t, kumoFixture(awssm.Config{SecretID: "prod/crm/apexverify", Key: "api_key"}, true))
	})
	t.Run("json field created", func(t *testing.T) {
		sinktest.Run(t, kumoFixture(awssm.Config{SecretID: "prod/crm/apexverify", Key: "api_key", CreateIfMissing: true}, false))
	})
}

var pairFields = map[string]string{sinktest.FieldID: "access_key_id", sinktest.FieldSecret: "secret_access_key"}

// kumoFieldsFixture is kumoFixture for a sink that maps a pair to two
// fields of the JSON secret.
func kumoFieldsFixture(c awssm.Config, exists bool) func(t *testing.T) sinktest.FieldsFixture {
	return func(t *testing.T) sinktest.FieldsFixture {
		c.Fields = pairFields
		srv := kumo.NewServer()
		t.Cleanup(srv.Close)
		c.SecretID = fmt.Sprintf("%s-%d", c.SecretID, fixtures.Add(1))
		direct := secretsmanager.New(secretsmanager.Options{
			Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL),
		})
		ctx := context.Background()
		if exists {
			if _, err := direct.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(c.SecretID)}); err != nil {
				t.Fatalf("kumo CreateSecret: %v", err)
			}
		}
		c.Region, c.Endpoint = "us-east-1", srv.URL
		s, err := awssm.New(c, zap.NewNop(), awssm.WithRetryBackoff(noDelay{}),
			awssm.WithClientOptions(func(o *secretsmanager.Options) { o.Credentials = creds }))
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.FieldsFixture{
			Sink: withoutRollback{s, s},
			Peek: func(t *testing.T) map[string]string {
				got := map[string]string{}
				out, err := direct.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.SecretID)})
				var ae smithy.APIError
				if errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException" {
					return got
				}
				if err != nil {
					t.Fatalf("kumo GetSecretValue: %v", err)
				}
				var m map[string]any
				if str := aws.ToString(out.SecretString); str != "" {
					if err := json.Unmarshal([]byte(str), &m); err != nil {
						t.Fatalf("secret is not a JSON object: %v", err)
					}
				}
				for f, pl := range pairFields {
					if v, ok := m[pl].(string); ok {
						got[f] = v
					}
				}
				return got
			},
			Seed: func(t *testing.T, fields map[string]string) {
				obj := map[string]string{"user": "svc"}
				for f, v := range fields {
					obj[pairFields[f]] = v
				}
				b, _ := json.Marshal(obj)
				_, err := direct.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(c.SecretID), SecretString: aws.String(string(b))})
				var ae smithy.APIError
				if errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException" {
					_, err = direct.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(c.SecretID), SecretString: aws.String(string(b))})
				}
				if err != nil {
					t.Fatalf("kumo seed: %v", err)
				}
			},
		}
	}
}

func TestFieldsContractAgainstKumo(t *testing.T) {
	t.Run("existing", func(t *testing.T) {
		sinktest.RunFields(t, kumoFieldsFixture(awssm.Config{SecretID: "prod/crm/aws"}, true))
	})
	t.Run("created", func(t *testing.T) {
		sinktest.RunFields(t, kumoFieldsFixture(awssm.Config{SecretID: "prod/crm/aws", CreateIfMissing: true}, false))
	})
}
