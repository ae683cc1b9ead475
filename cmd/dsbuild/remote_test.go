package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/internal/testenv"
)

// A build on one machine with a shared S3 store, then on a second machine
// (an empty store directory over the same bucket): the second runs nothing
// and publishes byte-identical output. The store's remote comes from
// --remote or DSBUILD_REMOTE; verify and gc cover it.
func TestSecondMachineOverSharedRemoteRunsNothing(t *testing.T) {
	srv := testenv.S3(t)
	url := srv.Bucket(t) + "/dsbuild"
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, `name: shared
stages:
  words: {uses: list, with: {count: 30}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
  out:   {uses: bundle, from: [greet]}
`)
	env := srv.Env()
	a := dsbuildEnv(t, dir, env, "--cache", "store-a", "--remote", url, "--out", "out-a", "build", recipe)
	if a.code != 0 {
		t.Fatalf("build on A: exit %d\n%s\n%s", a.code, a.stdout, a.stderr)
	}
	if ran := ranNodes(t, a.stdout); ran == 0 {
		t.Fatalf("build on A ran nothing:\n%s", a.stdout)
	}

	envB := append(env, "DSBUILD_REMOTE="+url)
	plan := dsbuildEnv(t, dir, envB, "--cache", "store-b", "plan", recipe)
	if plan.code != 0 || !strings.Contains(plan.stdout, " 0 will run, 0 waiting") {
		t.Fatalf("plan on B: exit %d\n%s\n%s", plan.code, plan.stdout, plan.stderr)
	}
	b := dsbuildEnv(t, dir, envB, "--cache", "store-b", "--out", "out-b", "build", recipe)
	if b.code != 0 {
		t.Fatalf("build on B: exit %d\n%s\n%s", b.code, b.stdout, b.stderr)
	}
	if ran := ranNodes(t, b.stdout); ran != 0 {
		t.Fatalf("build on B ran %d nodes; want all cached:\n%s", ran, b.stdout)
	}
	sameTrees(t, readTree(t, filepath.Join(dir, "out-a")), readTree(t, filepath.Join(dir, "out-b")))

	v := dsbuildEnv(t, dir, envB, "--cache", "store-b", "cache", "verify")
	if v.code != 0 || !strings.Contains(v.stdout, "build records on "+url+": 0 problems") {
		t.Fatalf("verify on B: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	g := dsbuildEnv(t, dir, envB, "--cache", "store-b", "cache", "gc")
	if g.code != 0 || !strings.Contains(g.stdout, "removed from "+url+": 1 build records, 0 memo entries, 0 blobs") {
		t.Fatalf("gc on B: exit %d\n%s\n%s", g.code, g.stdout, g.stderr)
	}
	if r := dsbuildEnv(t, dir, env, "--cache", "store-c", "--remote", "https://example.invalid/x", "plan", recipe); r.code != 2 || !strings.Contains(r.stderr, "want s3://") {
		t.Fatalf("a remote that is no s3:// URL: exit %d: %s", r.code, r.stderr)
	}
	r := dsbuildEnv(t, dir, append(env, "AWS_SECRET_ACCESS_KEY=not-the-secret-8d7f6a"), "--cache", "store-c", "--remote", url, "plan", recipe)
	if r.code != 1 || strings.Contains(r.stderr, "not-the-secret-8d7f6a") || strings.Contains(r.stderr, srv.SecretKey) {
		t.Fatalf("a wrong secret: exit %d: %s", r.code, r.stderr)
	}
}

// ranNodes adds up the RAN column of a build summary.
func ranNodes(t *testing.T, summary string) int {
	t.Helper()
	lines := strings.Split(summary, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "STAGE") {
		t.Fatalf("no summary table:\n%s", summary)
	}
	total := 0
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 5 || strings.HasPrefix(l, "build ") {
			continue
		}
		var n int
		for _, c := range f[3] {
			n = n*10 + int(c-'0')
		}
		total += n
	}
	return total
}
