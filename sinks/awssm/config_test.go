package awssm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks/awssm"
)

func decode(t *testing.T, file string) (awssm.Config, error) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var spec config.SinkSpec
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if spec.Type != awssm.Type {
		t.Fatalf("%s: type %q", file, spec.Type)
	}
	var c awssm.Config
	return c, spec.Decode(&c)
}

func TestConfigGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good-*.yaml")
	if len(files) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := decode(t, f)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if c.SecretID == "" {
				t.Errorf("secret_id not decoded")
			}
		})
	}
	c, _ := decode(t, "testdata/good-full.yaml")
	want := awssm.Config{
		SecretID: "prod/crm/apexverify", Key: "api_key", Region: "eu-central-1", Profile: "rekey",
		RoleARN: "arn:aws:iam::123456789012:role/rekey-rotator", ExternalID: "rekey-prod", SessionName: "rekey-crm",
		Endpoint:        "https://vpce-0abc.secretsmanager.eu-central-1.vpce.amazonaws.com",
		CreateIfMissing: true, KMSKeyID: "alias/crm", Description: "ApexVerify API key, rotated by rekey",
		Tags: map[string]string{"owner": "platform", "app": "crm"},
	}
	if c.Name() != want.Name() || c.Endpoint != want.Endpoint || c.ExternalID != want.ExternalID || c.SessionName != want.SessionName ||
		c.Region != want.Region || c.Profile != want.Profile || c.RoleARN != want.RoleARN || !c.CreateIfMissing ||
		c.KMSKeyID != want.KMSKeyID || c.Description != want.Description || len(c.Tags) != 2 || c.Tags["app"] != "crm" {
		t.Errorf("decoded %+v\nwant    %+v", c, want)
	}
}

func TestConfigBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad-*.yaml")
	if len(files) == 0 {
		t.Fatal("no bad fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, _ := os.ReadFile(f)
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			_, err := decode(t, f)
			if err == nil {
				t.Fatalf("no error, want %q", wants)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}
