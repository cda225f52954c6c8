package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/rekeyhq/rekey/config/schema"
)

// schemaFile is the committed schema, relative to the module root.
const schemaFile = "config/rekey.schema.json"

// schemaModeline is the first line of every example: the YAML language
// server's pointer to the committed schema, relative so it works offline.
const schemaModeline = "# yaml-language-server: $schema=../config/rekey.schema.json"

func TestSchemaCommittedIsCurrent(t *testing.T) {
	want, err := configSchema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(repoRoot, schemaFile))
	if err != nil {
		t.Fatalf("%v; create it with: go run ./cmd/rekey schema > %s", err, schemaFile)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the config types generate; regenerate it with: go run ./cmd/rekey schema > %s", schemaFile, schemaFile)
	}
}

func TestSchemaCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"schema"}, &out, &errOut); code != exitOK {
		t.Fatalf("rekey schema: exit %d: %s", code, errOut.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("rekey schema printed no JSON: %v", err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" || doc["$id"] != schema.ID {
		t.Fatalf("rekey schema: $schema %v, $id %v; want draft 2020-12 and %s", doc["$schema"], doc["$id"], schema.ID)
	}
}

// compileSchema compiles the committed schema with a validator that
// checks formats and patterns as draft 2020-12 says.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, schemaFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(schema.ID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schema.ID)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaFile, err)
	}
	return sch
}

// yamlInstance decodes a YAML config into the JSON value the schema
// describes (through JSON, so numbers are what a JSON validator expects).
func yamlInstance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// schemaExamples is every example config. (config/testdata/good holds
// configs valid to the config package alone, not to every back-end: its
// Vault sinks name no mount.)
func schemaExamples(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, glob := range []string{"examples/*.yaml"} {
		paths, err := filepath.Glob(filepath.Join(repoRoot, glob))
		if err != nil || len(paths) == 0 {
			t.Fatalf("%s: no files (%v)", glob, err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files[p] = b
		}
	}
	return files
}

func TestSchemaAcceptsExamples(t *testing.T) {
	sch := compileSchema(t)
	for path, data := range schemaExamples(t) {
		if err := sch.Validate(yamlInstance(t, data)); err != nil {
			t.Errorf("%s does not validate against %s:\n%v", path, schemaFile, err)
		}
	}
}

func TestExamplesPointAtSchema(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if first != schemaModeline {
			t.Errorf("%s: first line %q, want %q", p, first, schemaModeline)
		}
		// The relative path resolves from the example's directory.
		ref := strings.TrimPrefix(schemaModeline, "# yaml-language-server: $schema=")
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), ref)); err != nil {
			t.Errorf("%s: the schema path does not resolve: %v", p, err)
		}
	}
}

// TestSchemaRejects checks that the schema refuses what rekey refuses for
// the same reason: every bad fixture whose expected error is an unknown
// field, and changes made to a valid example, each named by the part of
// the instance the validator must blame.
func TestSchemaRejects(t *testing.T) {
	sch := compileSchema(t)
	fixtures, err := filepath.Glob(filepath.Join(repoRoot, "config", "testdata", "bad", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantRE := regexp.MustCompile(`(?m)^# (?:back-end )?want: [^:]+:\d+: (\S+): unknown field`)
	var unknown []string
	for _, p := range fixtures {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := wantRE.FindSubmatch(data)
		if m == nil {
			continue
		}
		unknown = append(unknown, filepath.Base(p))
		field := string(m[1])
		field = field[strings.LastIndex(field, ".")+1:]
		err = sch.Validate(yamlInstance(t, data))
		if err == nil {
			t.Errorf("%s: the schema accepts the unknown field %s", filepath.Base(p), m[1])
		} else if !strings.Contains(err.Error(), "'"+field+"'") {
			t.Errorf("%s: the schema refuses it, but not for %s: %v", filepath.Base(p), field, err)
		}
	}
	for _, want := range []string{"unknown_deep.yaml", "unknown_issuer_field.yaml", "unknown_top.yaml"} {
		if !slices.Contains(unknown, want) {
			t.Errorf("bad fixture %s with an unknown field is gone or no longer says so", want)
		}
	}

	base, err := os.ReadFile(filepath.Join(repoRoot, "examples", "file-dotenv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(yamlInstance(t, base)); err != nil {
		t.Fatalf("the base example does not validate: %v", err)
	}
	for _, tc := range []struct{ name, old, new, blame string }{
		{"unknown sink field", "\n        format: dotenv", "\n        colour: blue\n        format: dotenv", "colour"},
		{"unknown sink type", "\n      - type: file", "\n      - type: ftp", "/type"},
		{"field of another sink type", "\n        format: dotenv", "\n        secret_id: prod/x\n        format: dotenv", "secret_id"},
		{"bad file format", "\n        format: dotenv", "\n        format: toml", "/format"},
		{"duration without unit", "rotate_every: 90d", "rotate_every: 90", "/rotate_every"},
		{"duration in words", "rotate_every: 90d", "rotate_every: 90 days", "/rotate_every"},
		{"literal management token", "management_token: file:", "management_token: avm_", "/management_token"},
		{"version 2", "version: 1", "version: 2", "/version"},
	} {
		if !strings.Contains(string(base), tc.old) {
			t.Fatalf("%s: the example no longer has %q", tc.name, tc.old)
		}
		err := sch.Validate(yamlInstance(t, []byte(strings.Replace(string(base), tc.old, tc.new, 1))))
		if err == nil {
			t.Errorf("%s: the schema accepts it", tc.name)
		} else if !strings.Contains(err.Error(), tc.blame) {
			t.Errorf("%s: refused, but the error does not name %s: %v", tc.name, tc.blame, err)
		}
	}
}

// TestSchemaCoversEveryBackend keeps the schema's back-ends in step with
// build.go, the one switch that knows every issuer and sink type.
func TestSchemaCoversEveryBackend(t *testing.T) {
	src, err := os.ReadFile("build.go")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]string{"apexverify": "apexverify", "awsiam": "aws-iam", "httpissuer": "http", "execissuer": "exec", "file": "file", "awssm": "aws-secretsmanager", "vaultkv": "vault-kv", "ghactions": "github-actions", "kubernetes": "kubernetes-secret"}
	var inBuild []string
	for _, m := range regexp.MustCompile(`case (\w+)\.Type:`).FindAllStringSubmatch(string(src), -1) {
		typ, ok := pkgs[m[1]]
		if !ok {
			t.Errorf("build.go builds %s.Type, which the schema does not describe: add it to schemaIssuers or schemaSinks", m[1])
			continue
		}
		inBuild = append(inBuild, typ)
	}
	var inSchema []string
	for _, b := range append(slices.Clone(schemaIssuers), schemaSinks...) {
		inSchema = append(inSchema, b.Type)
	}
	slices.Sort(inBuild)
	slices.Sort(inSchema)
	if !slices.Equal(inBuild, inSchema) {
		t.Errorf("build.go builds %v, the schema describes %v", inBuild, inSchema)
	}
}
