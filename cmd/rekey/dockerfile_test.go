package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDockerfile checks what the Dockerfile promises without building it
// (no daemon or registry here): base images pinned by digest, a Go image
// new enough for go.mod, the version stamped by build args, OCI labels.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	args := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ARG (\w+)=(\S+)$`).FindAllStringSubmatch(df, -1) {
		args[m[1]] = m[2]
	}
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) != 2 {
		t.Fatalf("want two FROM lines (build and runtime), got %d", len(froms))
	}
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$`)
	for _, f := range froms {
		img := f[1]
		if m := regexp.MustCompile(`^\$\{(\w+)\}$`).FindStringSubmatch(img); m != nil {
			img = args[m[1]]
		}
		if !pinned.MatchString(img) {
			t.Errorf("FROM %s (%s): want IMAGE:TAG@sha256:DIGEST", f[1], img)
		}
	}

	// The build image's Go is at least go.mod's: the image will not fetch
	// a newer toolchain (GOTOOLCHAIN=local).
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	have := regexp.MustCompile(`^golang:(\d+\.\d+(?:\.\d+)?)`).FindStringSubmatch(args["GO_IMAGE"])
	if want == nil || have == nil {
		t.Fatalf("go.mod go %q, GO_IMAGE %q: want both versions", want, args["GO_IMAGE"])
	}
	if olderVersion(have[1], string(want[1])) {
		t.Errorf("GO_IMAGE has Go %s, older than go.mod's go %s", have[1], want[1])
	}

	for _, w := range []string{
		"-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "-X main.date=${DATE}",
		"CGO_ENABLED=0", "USER 65532:65532", `ENTRYPOINT ["rekey"]`, `CMD ["daemon"]`,
		`org.opencontainers.image.version="${VERSION}"`, `org.opencontainers.image.revision="${COMMIT}"`,
		`org.opencontainers.image.created="${DATE}"`, "org.opencontainers.image.source=",
		`org.opencontainers.image.licenses="Apache-2.0"`, "org.opencontainers.image.title=",
	} {
		if !strings.Contains(df, w) {
			t.Errorf("Dockerfile lacks %q", w)
		}
	}
	// The runtime stage sees the build args it labels with.
	runtime := df[strings.LastIndex(df, "\nFROM "):]
	for _, a := range []string{"VERSION", "COMMIT", "DATE"} {
		if !regexp.MustCompile(`(?m)^ARG ` + a + `\b`).MatchString(runtime) {
			t.Errorf("the runtime stage does not declare ARG %s, so its label would be empty", a)
		}
	}
}

// olderVersion reports whether dotted version a is older than b ("1.26" is
// older than "1.26.8").
func olderVersion(a, b string) bool {
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(x), len(y)) {
		var p, q int
		if i < len(x) {
			p, _ = strconv.Atoi(x[i])
		}
		if i < len(y) {
			q, _ = strconv.Atoi(y[i])
		}
		if p != q {
			return p < q
		}
	}
	return false
}
